//! Test and benchmark programs, built only with the `test-programs` feature (profiler's
//! `ebpf-test` feature builds that second object): never in the object kvmprof ships.

use aya_ebpf::{
    cty::c_void,
    helpers::generated::bpf_loop,
    macros::{raw_tracepoint, tracepoint},
    programs::{RawTracePointContext, TracePointContext},
};

use profiler_common::cut;

use crate::{agg, ev, ids, log_stats_full, offsets, sched};

/// Test entry for BPF_PROG_TEST_RUN: args = [op, tgid, tid, now_ns, vcpu, isa, reason].
/// op 0 = kvm_exit, 1 = kvm_entry, 2 = kvm_userspace_exit, 3 = KVM_RUN ioctl,
/// 4 = kvm_msr with args [4, tgid, write, msr, data, -, -] (no thread: no slow-exit detail),
/// 5 = exit with its slow-exit fields: [5, tgid, tid, now_ns, vcpu, rip, isa << 32 | reason],
/// 6 = a sub-reason event of the exit in flight: [6, -, tid, kind, flags, a, -],
/// 7 = sched_switch: [7, prev_state, prev, now_ns, next, -, -], 8 = sched_wakeup: [8, -, tid, now_ns].
#[raw_tracepoint]
pub fn kvmprof_test(ctx: RawTracePointContext) -> u32 {
    let op: u64 = ctx.arg(0);
    // The helper calls the tracepoint programs make, made here too so that this entry costs
    // what they do; the arguments stand in for their results.
    let (real_tgid, real_tid) = ids();
    let real_now = crate::now();
    let tgid: u64 = ctx.arg(1);
    let tid: u64 = ctx.arg(2);
    let now: u64 = ctx.arg(3);
    if tid == 0 && real_tid == 0 {
        return (real_now == 0 && real_tgid == 0) as u32;
    }
    let vcpu: u64 = ctx.arg(4);
    let isa: u64 = ctx.arg(5);
    let reason: u64 = ctx.arg(6);
    match op {
        // As kvm_exit: the RIP check on every exit; the RIP itself comes with the fields
        // (kvm_exit reads them with one call), as `vcpu` here.
        0 => {
            let (tgid, isa, reason) = (tgid as u32, isa as u32, reason as u32);
            let slow_on = crate::slow_threshold() != 0;
            let rip = ev::exit_rip(tgid, isa, reason, now, slow_on, || Some(vcpu));
            agg::on_exit(tgid, tid as u32, now, vcpu as u32, isa, reason, rip)
        }
        // An exit at guest RIP `isa`, of (isa, reason) = `reason`'s (high, low) halves.
        5 => {
            let (tgid, i, r) = (tgid as u32, (reason >> 32) as u32, reason as u32);
            let rip = ev::exit_rip(tgid, i, r, now, crate::slow_threshold() != 0, || Some(isa));
            agg::on_exit(tgid, tid as u32, now, vcpu as u32, i, r, rip)
        }
        6 => agg::note_detail(tid as u32, now as u16, vcpu as u16, isa),
        7 => sched::switched(tid as u32, || tgid as u32, vcpu as u32, || now),
        8 => sched::woken(tid as u32, || now),
        1 => {
            if agg::on_entry(tgid as u32, tid as u32, now) {
                log_stats_full(&ctx, tgid as u32);
            }
        }
        2 => agg::on_uexit(tgid as u32, tid as u32, now, reason as u32),
        3 => agg::on_kvm_run(tgid as u32, tid as u32, now),
        4 => ev::on_msr(tgid as u32, 0, tid != 0, now as u32, vcpu),
        _ => return 1,
    }
    0
}

/// A `kvmprof_kcost*` run: which work a pair does (`KCOST_*`), the first pair's number, and
/// what the work returned (kept so that none of it can be left out).
#[repr(C)]
struct Kcost {
    mode: u64,
    start: u64,
    acc: u64,
}

/// The pair's fields only.
const KCOST_EMPTY: u64 = 0;
/// The fields and the helper calls of both tracepoint programs (thread ids, the clock).
const KCOST_FLOOR: u64 = 1;
/// The fields, the helper calls and kvmprof's exit and entry paths.
const KCOST_FULL: u64 = 2;
/// As KCOST_FULL, each row's exits alternating between two octaves (700–999 ns, then
/// 1 400–1 699 ns): no exit falls in its row's last exit's octave (`Row::hot_oct`).
const KCOST_TWO_OCTAVES: u64 = 3;

/// In-kernel cost measurement programs: args = [n, start]; each runs pairs
/// `start..start + n` (at most 65 536) of the busy pattern (kvmprof-bench's: 8 VMs × 4 vCPUs
/// × 8 reasons, the VM changing every pair) in one program run (bpf_loop), so that per-run
/// costs (the syscall, the run-time statistics' clock reads) are shared by thousands of pairs
/// instead of added to each, as they are through `kvmprof_test`.
macro_rules! kcost_program {
    ($(#[$doc:meta])* $name:ident, $mode:expr, $cut:expr) => {
        $(#[$doc])*
        #[raw_tracepoint]
        pub fn $name(ctx: RawTracePointContext) -> u32 {
            kcost::<{ $cut }>(&ctx, $mode)
        }
    };
}

kcost_program!(
    /// The whole exit and entry paths, as kvm_exit and kvm_entry run them.
    kvmprof_kcost, KCOST_FULL, 0
);
kcost_program!(
    /// The same again: what two copies of one program differ by is the harness's resolution.
    kvmprof_kcost_again, KCOST_FULL, 0
);
kcost_program!(
    /// The whole, each exit in another octave than its row's last.
    kvmprof_kcost_two_octaves, KCOST_TWO_OCTAVES, 0
);
kcost_program!(
    /// The same pairs, fields and helper calls, no aggregation.
    kvmprof_kcost_floor, KCOST_FLOOR, 0
);
kcost_program!(
    /// The same pairs' fields, no helper calls, no aggregation.
    kvmprof_kcost_empty, KCOST_EMPTY, 0
);
kcost_program!(kvmprof_kcost_no_account, KCOST_FULL, cut::ACCOUNT);
kcost_program!(kvmprof_kcost_no_hist, KCOST_FULL, cut::HIST);
kcost_program!(kvmprof_kcost_no_seq, KCOST_FULL, cut::SEQ);
kcost_program!(kvmprof_kcost_no_min_max, KCOST_FULL, cut::MIN_MAX);
kcost_program!(kvmprof_kcost_no_counters, KCOST_FULL, cut::COUNTERS);
kcost_program!(kvmprof_kcost_no_rip, KCOST_FULL, cut::RIP);
kcost_program!(kvmprof_kcost_no_slow, KCOST_FULL, cut::SLOW);

#[inline(always)]
fn kcost<const CUT: u32>(ctx: &RawTracePointContext, mode: u64) -> u32 {
    let n: u64 = ctx.arg(0);
    let mut st = Kcost {
        mode,
        start: ctx.arg(1),
        acc: 0,
    };
    // SAFETY: bpf_loop calls `kcost_pair` n times with a pointer to `st`, which outlives it.
    unsafe {
        bpf_loop(
            n.min(65_536) as u32,
            kcost_pair::<CUT> as *mut c_void,
            &mut st as *mut Kcost as *mut c_void,
            0,
        )
    };
    (st.acc == u64::MAX) as u32
}

#[inline(never)]
extern "C" fn kcost_pair<const CUT: u32>(k: u64, st: *mut c_void) -> i64 {
    // SAFETY: bpf_loop passes `kcost`'s `st` back, alive for the whole loop.
    let st = unsafe { &mut *(st as *mut Kcost) };
    let i = st.start + k;
    let (vm, vcpu, reason) = ((i % 8) as u32, ((i / 8) % 4) as u32, ((i / 32) % 8) as u32);
    let (tgid, tid) = (1000 + vm, 10_000 + vm * 100 + vcpu);
    let t = 1_000_000 + i * 2_000;
    // A row's pairs are 256 apart.
    let other_octave = if st.mode == KCOST_TWO_OCTAVES {
        (i / 256) % 2 * 700
    } else {
        0
    };
    let te = t + 700 + i % 300 + other_octave;
    if st.mode == KCOST_EMPTY {
        st.acc ^= (tgid ^ tid ^ vcpu ^ reason) as u64 ^ t ^ te;
        return 0;
    }
    // The helper calls of kvm_exit and kvm_entry; the synthetic thread and times stand in
    // for their results, as in `kvmprof_test`.
    let (a, b) = ids();
    let c = crate::now();
    st.acc ^= (a ^ b) as u64 ^ c;
    let full = st.mode >= KCOST_FULL;
    if full {
        let isa = profiler_common::ISA_VMX;
        let slow_on = CUT & cut::SLOW == 0 && crate::slow_threshold() != 0;
        let rip = ev::exit_rip_cut::<CUT>(tgid, isa, reason, t, slow_on, || Some(t));
        agg::on_exit_cut::<CUT>(tgid, tid, t, vcpu, isa, reason, rip);
    } else {
        st.acc ^= (tgid ^ tid ^ vcpu ^ reason) as u64 ^ t;
    }
    let (a, b) = ids();
    let c = crate::now();
    st.acc ^= (a ^ b) as u64 ^ c;
    if full {
        st.acc ^= agg::on_entry_cut::<CUT>(tgid, tid, te) as u64;
    } else {
        st.acc ^= te;
    }
    0
}

/// Baselines for cost measurements on real exits (cargo xtask bench-vm, via kvmprof-empty): the
/// same record reads as `kvm_exit` / `kvm_entry` (one 64-byte read; none), no work.
#[tracepoint]
pub fn kvmprof_empty_exit(ctx: TracePointContext) -> u32 {
    let o = offsets();
    let Some(rec) = crate::Rec::read(&ctx) else {
        return 0;
    };
    let mut acc = 0;
    for off in [o.exit_reason, o.exit_isa, o.exit_vcpu_id] {
        acc ^= rec.u32_at(&ctx, off).unwrap_or(0);
    }
    (acc == u32::MAX) as u32
}

#[tracepoint]
pub fn kvmprof_empty_entry(_ctx: TracePointContext) -> u32 {
    (offsets().valid == u32::MAX) as u32
}

/// The floor of any layout: the same argument reads and helper calls (thread ids, clock) as
/// `kvmprof_test`, no aggregation.
#[raw_tracepoint]
pub fn kvmprof_floor(ctx: RawTracePointContext) -> u32 {
    let (tgid, tid) = ids();
    let mut acc = crate::now() ^ tgid as u64 ^ tid as u64;
    for i in 0..7 {
        let v: u64 = ctx.arg(i);
        acc ^= v;
    }
    (acc == u64::MAX) as u32
}

/// Baseline for cost measurements: the same argument reads as `kvmprof_test`, no work.
#[raw_tracepoint]
pub fn kvmprof_empty(ctx: RawTracePointContext) -> u32 {
    let mut acc = 0u64;
    for i in 0..7 {
        let v: u64 = ctx.arg(i);
        acc ^= v;
    }
    (acc == u64::MAX) as u32
}

/// Deliberately unverifiable (an unbounded map-value access): lets the privileged tests check
/// that a verifier rejection reaches the user with its log. Never loaded otherwise.
#[raw_tracepoint]
pub fn kvmprof_rejected(ctx: RawTracePointContext) -> u32 {
    let idx: u64 = ctx.arg(0);
    if let Some(p) = agg::counter_ptr(0) {
        // SAFETY: not safe at all, on purpose: the verifier must refuse this program.
        unsafe { *p.add(idx as usize) += 1 };
    }
    0
}
