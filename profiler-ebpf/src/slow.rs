//! The slow-exit log: exits whose handling time reached `SLOW.threshold_ns` go to userspace one
//! by one through a ring buffer, at most `SLOW.per_cpu_per_s` per CPU and second (the rest are
//! counted). Ordinary exits pay one compare at their entry.

use aya_ebpf::{
    macros::map,
    maps::{PerCpuArray, RingBuf},
};
use profiler_common::{counter, Pending, SlowExit, SlowWindow, ISA_SVM, ISA_VMX};

use crate::agg::bump;

/// Slow exits for userspace: 80 B each (88 with the ring's header), so about 3000 events (what a host sends in a second at the
/// default rate on 4 CPUs) before the sampler drains it.
#[map]
static SLOW_LOG: RingBuf = RingBuf::with_byte_size(256 * 1024, 0);

/// Each CPU's rate window.
#[map]
static SLOW_RATE: PerCpuArray<SlowWindow> = PerCpuArray::with_max_entries(1, 0);

const SECOND: u64 = 1_000_000_000;
/// HLT: VMX basic exit reason 12, SVM exit code 0x78.
const VMX_HLT: u32 = 12;
const SVM_HLT: u32 = 0x78;

/// Called at the entry that ends the exit `p` (its `ts` already cleared) of thread `tid`,
/// which exited at `exit_ns` and took `took` ns, `wait` of them runnable and `blocked` asleep.
#[inline(always)]
pub fn check(p: &Pending, tid: u32, exit_ns: u64, took: u64, wait: u64, blocked: u64) {
    let threshold = crate::slow_threshold();
    if threshold == 0 || took < threshold {
        return;
    }
    let cfg = crate::slow_cfg();
    let hlt = (p.isa == ISA_VMX && p.reason & 0xffff == VMX_HLT)
        || (p.isa == ISA_SVM && p.reason == SVM_HLT);
    if hlt && cfg.with_hlt == 0 {
        return;
    }
    bump(counter::SLOW_EXITS);
    let now = exit_ns + took;
    let Some(w) = SLOW_RATE.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: this CPU's copy of a live per-CPU value; tracepoints run with preemption disabled.
    let w = unsafe { &mut *w };
    if now.wrapping_sub(w.start_ns) >= SECOND {
        w.start_ns = now;
        w.sent = 0;
    }
    if w.sent >= cfg.per_cpu_per_s as u64 {
        bump(counter::SLOW_DROPPED);
        return;
    }
    // The exit path clears only the kind: a sub-reason's other fields may be an older exit's.
    let (flags, a) = if p.detail_kind != 0 {
        (p.detail_flags, p.detail_a)
    } else {
        (0, 0)
    };
    let ev = SlowExit {
        exit_ns,
        took_ns: took,
        rip: p.rip,
        detail_a: a,
        tgid: p.tgid,
        tid,
        vcpu_id: p.vcpu_id,
        isa: p.isa,
        reason: p.reason,
        exit_cpu: p.cpu,
        entry_cpu: crate::agg::cpu(),
        detail_kind: p.detail_kind,
        detail_flags: flags,
        wait_ns: wait,
        blocked_ns: blocked,
    };
    if SLOW_LOG.output::<SlowExit>(&ev, 0).is_ok() {
        w.sent += 1;
    } else {
        bump(counter::SLOW_DROPPED);
    }
}
