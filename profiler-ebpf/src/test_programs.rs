//! Test and benchmark programs, built only with the `test-programs` feature (profiler's
//! `ebpf-test` feature builds that second object): never in the object kvmprof ships.

use aya_ebpf::{
    macros::{raw_tracepoint, tracepoint},
    programs::{RawTracePointContext, TracePointContext},
};

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
            let slow_on = crate::slow_cfg().threshold_ns != 0;
            let rip = ev::exit_rip(tgid, isa, reason, now, slow_on, || Some(vcpu));
            agg::on_exit(tgid, tid as u32, now, vcpu as u32, isa, reason, rip)
        }
        // An exit at guest RIP `isa`, of (isa, reason) = `reason`'s (high, low) halves.
        5 => {
            let (tgid, i, r) = (tgid as u32, (reason >> 32) as u32, reason as u32);
            let rip = ev::exit_rip(tgid, i, r, now, crate::slow_cfg().threshold_ns != 0, || {
                Some(isa)
            });
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
