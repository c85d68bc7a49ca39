//! Where an exit's handling time goes: between a vCPU thread's kvm_exit and its kvm_entry,
//! sched_switch and sched_wakeup split the time into runnable-but-not-running (preempted, or
//! woken and waiting for a host CPU), asleep (blocked: HLT, the VMM sleeping) and the rest, on
//! a CPU. Only threads that own a `PSLOTS` slot are followed: every other thread's context
//! switch costs two pid reads, two array lookups and two compares, and no clock read.
//!
//! Raw tracepoints (task pointers, `pid` at a BTF offset): no classic record is built, and
//! the kernel does not skip them while a BPF map syscall is preempted on that CPU (it skips
//! classic tracepoint programs then, and a skipped switch would lose its time).

use aya_ebpf::{
    helpers::bpf_probe_read_kernel, macros::raw_tracepoint, programs::RawTracePointContext,
};

use crate::{agg::own_slot, now, offsets};

/// `Pending::off_ns` bit 0: the thread left its CPU asleep.
const ASLEEP: u64 = 1;

#[inline(always)]
fn field_u32(task: u64, off: u32) -> Option<u32> {
    if task == 0 {
        return None;
    }
    // SAFETY: bpf_probe_read_kernel of a kernel task_struct field at its BTF offset; a bad
    // address yields an error, not a fault.
    unsafe { bpf_probe_read_kernel((task + off as u64) as *const u32) }.ok()
}

/// sched_switch(bool preempt, struct task_struct *prev, struct task_struct *next
/// [, unsigned int prev_state since 5.18]).
#[raw_tracepoint]
pub fn sched_switch(ctx: RawTracePointContext) -> i32 {
    let o = offsets();
    if o.task_pid == 0 {
        return 0;
    }
    let preempt: u64 = ctx.arg(0);
    let (prev, next): (u64, u64) = (ctx.arg(1), ctx.arg(2));
    let (Some(prev_pid), Some(next_pid)) =
        (field_u32(prev, o.task_pid), field_u32(next, o.task_pid))
    else {
        return 0;
    };
    let state = || -> u32 {
        if preempt & 0xff != 0 {
            0
        } else if o.sched_state_arg != 0 {
            ctx.arg::<u64>(3) as u32
        } else {
            field_u32(prev, o.task_state).unwrap_or(0)
        }
    };
    switched(prev_pid, state, next_pid, now);
    0
}

/// sched_wakeup(struct task_struct *p).
#[raw_tracepoint]
pub fn sched_wakeup(ctx: RawTracePointContext) -> i32 {
    let o = offsets();
    if o.task_pid == 0 {
        return 0;
    }
    if let Some(pid) = field_u32(ctx.arg(0), o.task_pid) {
        woken(pid, now);
    }
    0
}

/// `prev` left its CPU in `state` (read only if `prev` is followed) and `next` got it. The
/// clock is read only when one of them is a vCPU thread with an exit in flight.
#[inline(always)]
pub fn switched(prev: u32, state: impl Fn() -> u32, next: u32, clock: impl Fn() -> u64) {
    let mut t = 0;
    if let Some(p) = own_slot(prev, false) {
        if p.ts != 0 {
            t = clock();
            // Not preempted and not TASK_RUNNING (0): it is going to sleep.
            let asleep = if state() != 0 { ASLEEP } else { 0 };
            p.off_ns = (t & !ASLEEP) | asleep;
        }
    }
    if let Some(p) = own_slot(next, false) {
        if p.ts != 0 && p.off_ns != 0 {
            if t == 0 {
                t = clock();
            }
            let off = p.off_ns;
            let away = t.saturating_sub(off & !ASLEEP);
            // Asleep with no wake-up seen (it came before we attached): all of it blocked.
            if off & ASLEEP != 0 {
                p.blocked_ns += away;
            } else {
                p.wait_ns += away;
            }
            p.off_ns = 0;
        }
    }
}

/// `pid` was woken: its sleep ends here, its wait for a CPU starts.
#[inline(always)]
pub fn woken(pid: u32, clock: impl Fn() -> u64) {
    if let Some(p) = own_slot(pid, false) {
        let off = p.off_ns;
        if p.ts != 0 && off & ASLEEP != 0 {
            let t = clock();
            p.blocked_ns += t.saturating_sub(off & !ASLEEP);
            p.off_ns = t & !ASLEEP;
        }
    }
}
