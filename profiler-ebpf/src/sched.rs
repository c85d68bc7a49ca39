//! Where an exit's handling time goes: between a vCPU thread's kvm_exit and its kvm_entry,
//! sched_switch and sched_wakeup split the time into runnable-but-not-running (preempted, or
//! woken and waiting for a host CPU), asleep (blocked: HLT, the VMM sleeping) and the rest, on
//! a CPU. Only threads that own a `PSLOTS` slot are followed: every other thread's context
//! switch costs two array lookups and two compares, and no clock read.

use aya_ebpf::programs::TracePointContext;

use crate::{agg::own_slot, now, offsets, read_u32, KEEP};

/// `prev_state` bits that mean the task went to sleep (TASK_REPORT and TASK_REPORT_IDLE);
/// none of them set is "R" (preempted or yielding: still runnable).
const SLEEP_STATES: u32 = 0xff;
/// `Pending::off_ns` bit 0: the thread left its CPU asleep.
const ASLEEP: u64 = 1;

tracepoint_program!(
    "tracepoint/sched/sched_switch",
    sched_switch,
    sched_switch_body
);
fn sched_switch_body(ctx: TracePointContext) -> u32 {
    let o = offsets();
    if o.sw_next_pid == 0 {
        return KEEP;
    }
    let (Some(prev), Some(next)) = (read_u32(&ctx, o.sw_prev_pid), read_u32(&ctx, o.sw_next_pid))
    else {
        return KEEP;
    };
    let state = read_u32(&ctx, o.sw_prev_state).unwrap_or(0);
    switched(prev, state, next, now);
    KEEP
}

tracepoint_program!(
    "tracepoint/sched/sched_wakeup",
    sched_wakeup,
    sched_wakeup_body
);
fn sched_wakeup_body(ctx: TracePointContext) -> u32 {
    let o = offsets();
    if o.wake_pid == 0 {
        return KEEP;
    }
    if let Some(pid) = read_u32(&ctx, o.wake_pid) {
        woken(pid, now);
    }
    KEEP
}

/// `prev` left its CPU in `state` and `next` got it. The clock is read only when one of them
/// is a vCPU thread with an exit in flight.
#[inline(always)]
pub fn switched(prev: u32, state: u32, next: u32, clock: impl Fn() -> u64) {
    let mut t = 0;
    if let Some(p) = own_slot(prev, false) {
        if p.ts != 0 {
            t = clock();
            let asleep = if state & SLEEP_STATES != 0 { ASLEEP } else { 0 };
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
