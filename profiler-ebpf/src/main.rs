//! Kernel side of kvmprof: pairs kvm_exit with the next kvm_entry on the same thread and
//! aggregates counts, handling time and an HDR-style histogram per (VM, vCPU, isa, reason).
//!
//! The tracepoint programs only read their record; the aggregation lives in `agg`, which the
//! `kvmprof_test` raw_tp entry also calls so BPF_PROG_TEST_RUN exercises the verified code.
#![no_std]
#![no_main]
#![feature(core_intrinsics)]
#![allow(internal_features)]

mod agg;
mod ev;

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns},
    macros::{raw_tracepoint, tracepoint},
    programs::{RawTracePointContext, TracePointContext},
    EbpfContext,
};
use aya_log_ebpf::warn;
use profiler_common::{counter, Offsets, UEXIT_ERROR, UEXIT_RESTART};

/// Field offsets of the running kernel's records; written by the loader (read-only global).
#[no_mangle]
static OFFSETS: Offsets = Offsets {
    exit_reason: 0,
    exit_isa: 0,
    exit_vcpu_id: 0,
    entry_vcpu_id: 0,
    uexit_reason: 0,
    uexit_errno: 0,
    exit_info1: 0,
    exit_info2: 0,
    exit_intr_info: 0,
    valid: 0,
};

/// KVM_RUN = _IO(KVMIO, 0x80): the ioctl that re-enters the guest after a userspace exit.
const KVM_RUN: u64 = 0xae80;
/// Offset of `cmd` in syscalls:sys_enter_ioctl (stable since the syscall tracepoints exist:
/// common header 8, __syscall_nr 4 + pad 4, fd 8, cmd 8).
const IOCTL_CMD_OFFSET: usize = 24;

#[inline(always)]
fn offsets() -> Offsets {
    // SAFETY: OFFSETS is a plain-integer global; volatile keeps the compiler from folding the
    // zero initialiser that the loader overwrites.
    unsafe { core::ptr::read_volatile(&OFFSETS) }
}

#[inline(always)]
fn now() -> u64 {
    // SAFETY: bpf_ktime_get_ns has no preconditions; it is `unsafe` only as an FFI helper.
    unsafe { bpf_ktime_get_ns() }
}

#[inline(always)]
pub(crate) fn ids() -> (u32, u32) {
    let id = bpf_get_current_pid_tgid();
    ((id >> 32) as u32, id as u32)
}

#[inline(always)]
fn read_u32(ctx: &TracePointContext, off: u32) -> Option<u32> {
    // SAFETY: read_at uses bpf_probe_read on the record; a bad offset yields an error, not UB.
    match unsafe { ctx.read_at::<u32>(off as usize) } {
        Ok(v) => Some(v),
        Err(_) => {
            agg::bump(counter::READ_ERROR);
            None
        }
    }
}

#[tracepoint(category = "kvm", name = "kvm_exit")]
pub fn kvm_exit(ctx: TracePointContext) -> u32 {
    let o = offsets();
    if o.valid == 0 {
        return 0;
    }
    let (Some(reason), Some(isa), Some(vcpu)) = (
        read_u32(&ctx, o.exit_reason),
        read_u32(&ctx, o.exit_isa),
        read_u32(&ctx, o.exit_vcpu_id),
    ) else {
        return 0;
    };
    let (tgid, tid) = ids();
    agg::on_exit(tgid, tid, now(), vcpu, isa, reason);
    ev::exit_detail(&ctx, &o, tgid, isa, reason);
    0
}

#[tracepoint(category = "kvm", name = "kvm_entry")]
pub fn kvm_entry(ctx: TracePointContext) -> u32 {
    let o = offsets();
    if o.valid == 0 {
        return 0;
    }
    let Some(vcpu) = read_u32(&ctx, o.entry_vcpu_id) else {
        return 0;
    };
    let (tgid, tid) = ids();
    if agg::on_entry(tgid, tid, now(), vcpu) {
        log_stats_full(&ctx, tgid);
    }
    0
}

#[tracepoint(category = "kvm", name = "kvm_userspace_exit")]
pub fn kvm_userspace_exit(ctx: TracePointContext) -> u32 {
    let o = offsets();
    if o.valid == 0 {
        return 0;
    }
    let (Some(reason), Some(errno)) = (
        read_u32(&ctx, o.uexit_reason),
        read_u32(&ctx, o.uexit_errno),
    ) else {
        return 0;
    };
    // errno is an int: -EINTR (restart) or another negative value (error).
    let reason = match errno as i32 {
        0.. => reason,
        -4 => UEXIT_RESTART,
        _ => UEXIT_ERROR,
    };
    let (tgid, tid) = ids();
    agg::on_uexit(tgid, tid, now(), reason);
    0
}

#[tracepoint(category = "syscalls", name = "sys_enter_ioctl")]
pub fn sys_enter_ioctl(ctx: TracePointContext) -> u32 {
    // SAFETY: see read_u32; cmd is an unsigned long in every kernel's sys_enter_ioctl record.
    let Ok(cmd) = (unsafe { ctx.read_at::<u64>(IOCTL_CMD_OFFSET) }) else {
        return 0;
    };
    if cmd as u32 != KVM_RUN as u32 {
        return 0;
    }
    let (tgid, tid) = ids();
    agg::on_kvm_run(tgid, tid, now());
    0
}

/// Test entry for BPF_PROG_TEST_RUN: args = [op, tgid, tid, now_ns, vcpu, isa, reason].
/// op 0 = kvm_exit, 1 = kvm_entry, 2 = kvm_userspace_exit, 3 = KVM_RUN ioctl,
/// 4 = kvm_msr with args [4, tgid, write, msr, data, -, -].
#[raw_tracepoint]
pub fn kvmprof_test(ctx: RawTracePointContext) -> u32 {
    let op: u64 = ctx.arg(0);
    let tgid: u64 = ctx.arg(1);
    let tid: u64 = ctx.arg(2);
    let now: u64 = ctx.arg(3);
    let vcpu: u64 = ctx.arg(4);
    let isa: u64 = ctx.arg(5);
    let reason: u64 = ctx.arg(6);
    match op {
        0 => agg::on_exit(
            tgid as u32,
            tid as u32,
            now,
            vcpu as u32,
            isa as u32,
            reason as u32,
        ),
        1 => {
            if agg::on_entry(tgid as u32, tid as u32, now, vcpu as u32) {
                log_stats_full(&ctx, tgid as u32);
            }
        }
        2 => agg::on_uexit(tgid as u32, tid as u32, now, reason as u32),
        3 => agg::on_kvm_run(tgid as u32, tid as u32, now),
        4 => ev::on_msr(tgid as u32, tid != 0, now as u32, vcpu),
        _ => return 1,
    }
    0
}

/// Baselines for cost measurements on real exits (`--empty-probes`): the same field reads as
/// `kvm_exit` / `kvm_entry`, no work.
#[tracepoint]
pub fn kvmprof_empty_exit(ctx: TracePointContext) -> u32 {
    let o = offsets();
    let mut acc = 0;
    for off in [o.exit_reason, o.exit_isa, o.exit_vcpu_id] {
        // SAFETY: as in read_u32.
        acc ^= unsafe { ctx.read_at::<u32>(off as usize) }.unwrap_or(0);
    }
    (acc == u32::MAX) as u32
}

#[tracepoint]
pub fn kvmprof_empty_entry(ctx: TracePointContext) -> u32 {
    // SAFETY: as in read_u32.
    let v = unsafe { ctx.read_at::<u32>(offsets().entry_vcpu_id as usize) }.unwrap_or(0);
    (v == u32::MAX) as u32
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

/// Once per CPU: later drops only count (logging each would cost more than the exit).
#[inline(always)]
fn log_stats_full<C: EbpfContext>(ctx: &C, tgid: u32) {
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
