//! Kernel side of kvmprof: pairs kvm_exit with the next kvm_entry on the same thread and
//! aggregates counts, handling time and an HDR-style histogram per (VM, vCPU, isa, reason).
//!
//! The tracepoint programs only read their record; the aggregation lives in `agg`, which the
//! `kvmprof_test` raw_tp entry also calls so BPF_PROG_TEST_RUN exercises the verified code.
//! That entry and the other test/benchmark programs are in `test_programs`, built only with
//! the `test-programs` feature: the object kvmprof embeds holds the programs users run.
#![no_std]
#![no_main]

/// A classic tracepoint program `$name` in ELF section `$section` that returns what `$body`
/// returns ([`KEEP`]). aya's `#[tracepoint]` cannot be used: the program it makes always returns
/// 0, whatever the function returns, and so hides the event from perf (see [`KEEP`]).
macro_rules! tracepoint_program {
    ($section:literal, $name:ident, $body:ident) => {
        #[no_mangle]
        #[link_section = $section]
        pub fn $name(ctx: *mut ::core::ffi::c_void) -> u32 {
            $body(::aya_ebpf::programs::TracePointContext::new(ctx))
        }
    };
}

mod agg;
mod ev;
mod sched;
mod slow;
#[cfg(feature = "test-programs")]
mod test_programs;

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns, bpf_probe_read_kernel},
    programs::TracePointContext,
    EbpfContext,
};
use aya_log_ebpf::warn;
use profiler_common::{counter, Offsets, SlowCfg, UEXIT_ERROR, UEXIT_RESTART};

/// Field offsets of the running kernel's records; written by the loader (read-only global).
#[no_mangle]
static OFFSETS: Offsets = Offsets {
    exit_reason: 0,
    exit_isa: 0,
    exit_vcpu_id: 0,
    uexit_reason: 0,
    uexit_errno: 0,
    exit_info1: 0,
    exit_info2: 0,
    exit_intr_info: 0,
    exit_rip: 0,
    task_pid: 0,
    task_state: 0,
    sched_state_arg: 0,
    valid: 0,
};

/// The slow-exit log's settings; written by the loader (read-only global).
#[no_mangle]
static SLOW: SlowCfg = SlowCfg {
    threshold_ns: 0,
    per_cpu_per_s: 0,
    with_hlt: 0,
};

/// What every classic tracepoint program returns. The kernel hands a tracepoint's event to perf
/// only when its BPF programs return non-zero (`perf_trace_run_bpf_submit`): returning 0 would hide
/// each kvm_exit/kvm_entry/kvm_msr/... from `perf kvm stat record` (and any other perf user of the
/// same tracepoint) for as long as kvmprof is attached.
pub(crate) const KEEP: u32 = 1;
/// KVM_RUN = _IO(KVMIO, 0x80): the ioctl that re-enters the guest after a userspace exit.
const KVM_RUN: u64 = 0xae80;
/// Offset of `cmd` in syscalls:sys_enter_ioctl (stable since the syscall tracepoints exist:
/// common header 8, __syscall_nr 4 + pad 4, fd 8, cmd 8).
const IOCTL_CMD_OFFSET: u32 = 24;

#[inline(always)]
pub(crate) fn offsets() -> Offsets {
    // SAFETY: OFFSETS is a plain-integer global; volatile keeps the compiler from folding the
    // zero initialiser that the loader overwrites.
    unsafe { core::ptr::read_volatile(&OFFSETS) }
}

#[inline(always)]
pub(crate) fn slow_cfg() -> SlowCfg {
    // SAFETY: as for `offsets`.
    unsafe { core::ptr::read_volatile(&SLOW) }
}

/// `SLOW.threshold_ns` alone, 0 while the slow-exit log is off: one load where the whole
/// settings are three (every exit and entry asks).
#[inline(always)]
pub(crate) fn slow_threshold() -> u64 {
    // SAFETY: as for `offsets`.
    unsafe { core::ptr::read_volatile(core::ptr::addr_of!(SLOW.threshold_ns)) }
}

#[inline(always)]
pub(crate) fn now() -> u64 {
    // SAFETY: bpf_ktime_get_ns has no preconditions; it is `unsafe` only as an FFI helper.
    unsafe { bpf_ktime_get_ns() }
}

#[inline(always)]
pub(crate) fn ids() -> (u32, u32) {
    let id = bpf_get_current_pid_tgid();
    ((id >> 32) as u32, id as u32)
}

/// The record's field at `off`, its failed reads counted (READ_ERROR).
#[inline(always)]
pub(crate) fn read_field<T>(ctx: &TracePointContext, off: u32) -> Option<T> {
    // SAFETY: read_at uses bpf_probe_read on the record; a bad offset yields an error, not UB.
    match unsafe { ctx.read_at::<T>(off as usize) } {
        Ok(v) => Some(v),
        Err(_) => {
            agg::bump(counter::READ_ERROR);
            None
        }
    }
}

/// Fills a free list at load (see `agg::fill`): args = [list, start, n]; returns how many
/// indexes it pushed. Never attached: userspace runs it with BPF_PROG_TEST_RUN, then unloads it.
/// Written out rather than with `#[raw_tracepoint]`, whose program always returns 0.
#[no_mangle]
#[link_section = "raw_tp"]
pub fn kvmprof_fill(ctx: *mut ::core::ffi::c_void) -> u32 {
    let ctx = aya_ebpf::programs::RawTracePointContext::new(ctx);
    agg::fill(ctx.arg(0), ctx.arg(1), ctx.arg(2))
}

/// The first 64 bytes of a kvm_exit record, read with one helper call: every field kvmprof
/// uses ends by byte 60 in the kernels it supports (a field past it is read on its own), where
/// reading each field apart cost a call each (the reason, ISA, vCPU and, while the slow-exit log
/// is on, the RIP: four calls an exit, one now).
pub(crate) struct Rec([u64; 8]);

impl Rec {
    #[inline(always)]
    pub(crate) fn read(ctx: &TracePointContext) -> Option<Rec> {
        // SAFETY: bpf_probe_read_kernel of the record (a per-CPU trace buffer far larger than
        // 64 bytes): a bad read is an error, not a fault.
        match unsafe { bpf_probe_read_kernel(ctx.as_ptr() as *const [u64; 8]) } {
            Ok(w) => Some(Rec(w)),
            Err(_) => {
                agg::bump(counter::READ_ERROR);
                None
            }
        }
    }

    /// The u32 field at `off` (fields are naturally aligned: a u32 is a word's low or high half).
    #[inline(always)]
    pub(crate) fn u32_at(&self, ctx: &TracePointContext, off: u32) -> Option<u32> {
        if off + 4 > 64 {
            return read_field(ctx, off);
        }
        let w = self.0.get((off as usize >> 3) & 7).copied().unwrap_or(0);
        Some((w >> ((off & 4) * 8)) as u32)
    }

    #[inline(always)]
    pub(crate) fn u64_at(&self, ctx: &TracePointContext, off: u32) -> Option<u64> {
        if off + 8 > 64 {
            return read_field(ctx, off);
        }
        self.0.get((off as usize >> 3) & 7).copied()
    }
}

tracepoint_program!("tracepoint/kvm/kvm_exit", kvm_exit, kvm_exit_body);
fn kvm_exit_body(ctx: TracePointContext) -> u32 {
    let o = offsets();
    if o.valid == 0 {
        return KEEP;
    }
    let Some(rec) = Rec::read(&ctx) else {
        return KEEP;
    };
    let (Some(reason), Some(isa), Some(vcpu)) = (
        rec.u32_at(&ctx, o.exit_reason),
        rec.u32_at(&ctx, o.exit_isa),
        rec.u32_at(&ctx, o.exit_vcpu_id),
    ) else {
        return KEEP;
    };
    let (tgid, tid) = ids();
    let t = now();
    let rip = ev::exit_rip(tgid, isa, reason, t, slow_threshold() != 0, || {
        if o.exit_rip == 0 {
            return None;
        }
        rec.u64_at(&ctx, o.exit_rip)
    });
    agg::on_exit(tgid, tid, t, vcpu, isa, reason, rip);
    ev::exit_detail(&rec, &ctx, &o, tgid, tid, isa, reason);
    KEEP
}

// The entry reads nothing of its record: its vCPU is the pending exit's (a thread's exit and
// entry are of one KVM_RUN of one vCPU).
tracepoint_program!("tracepoint/kvm/kvm_entry", kvm_entry, kvm_entry_body);
fn kvm_entry_body(ctx: TracePointContext) -> u32 {
    if offsets().valid == 0 {
        return KEEP;
    }
    let (tgid, tid) = ids();
    if agg::on_entry(tgid, tid, now()) {
        log_stats_full(&ctx, tgid);
    }
    KEEP
}

tracepoint_program!(
    "tracepoint/kvm/kvm_userspace_exit",
    kvm_userspace_exit,
    kvm_userspace_exit_body
);
fn kvm_userspace_exit_body(ctx: TracePointContext) -> u32 {
    let o = offsets();
    if o.valid == 0 {
        return KEEP;
    }
    let (Some(reason), Some(errno)) = (
        read_field::<u32>(&ctx, o.uexit_reason),
        read_field::<u32>(&ctx, o.uexit_errno),
    ) else {
        return KEEP;
    };
    // errno is an int: -EINTR (restart) or another negative value (error).
    let reason = match errno as i32 {
        0.. => reason,
        -4 => UEXIT_RESTART,
        _ => UEXIT_ERROR,
    };
    let (tgid, tid) = ids();
    agg::on_uexit(tgid, tid, now(), reason);
    KEEP
}

tracepoint_program!(
    "tracepoint/syscalls/sys_enter_ioctl",
    sys_enter_ioctl,
    sys_enter_ioctl_body
);
fn sys_enter_ioctl_body(ctx: TracePointContext) -> u32 {
    // cmd is an unsigned long in every kernel's sys_enter_ioctl record.
    let Some(cmd) = read_field::<u64>(&ctx, IOCTL_CMD_OFFSET) else {
        return KEEP;
    };
    if cmd as u32 != KVM_RUN as u32 {
        return KEEP;
    }
    let (tgid, tid) = ids();
    agg::on_kvm_run(tgid, tid, now());
    KEEP
}

/// Once per CPU: later drops only count (logging each would cost more than the exit).
#[inline(always)]
pub(crate) fn log_stats_full<C: EbpfContext>(ctx: &C, tgid: u32) {
    warn!(
        ctx,
        "stats map full: exits of pid {} are counted as stats_map_full only; restart with a larger --max-keys",
        tgid
    );
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[link_section = "license"]
#[no_mangle]
static LICENSE: [u8; 4] = *b"GPL\0";
