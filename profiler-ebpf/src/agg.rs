//! The aggregation shared by the tracepoint programs and the raw_tp test entry.

use aya_ebpf::{
    bindings::{BPF_F_NO_PREALLOC, BPF_NOEXIST},
    macros::map,
    maps::{LruHashMap, PerCpuArray, PerCpuHashMap},
};
use profiler_common::{counter, hist, Pending, StatKey, StatValue, ISA_USERSPACE};

/// Per-CPU statistics; entries are allocated on first use (no prealloc) so kernel memory
/// follows the keys really seen. The loader may change max_entries.
#[map]
static STATS: PerCpuHashMap<StatKey, StatValue> =
    PerCpuHashMap::with_max_entries(16384, BPF_F_NO_PREALLOC);

/// Exit waiting for its entry, per thread (a vCPU thread may migrate between the two).
/// LRU so threads that died with an exit pending cannot fill it.
#[map]
static PENDING: LruHashMap<u32, Pending> = LruHashMap::with_max_entries(65536, 0);

/// Userspace exit waiting for the thread's next KVM_RUN, per thread.
#[map]
static UPENDING: LruHashMap<u32, Pending> = LruHashMap::with_max_entries(65536, 0);

#[map]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counter::COUNT, 0);

/// A zeroed value to insert from: a StatValue is far larger than the 512-byte BPF stack.
#[map]
static INIT: PerCpuArray<StatValue> = PerCpuArray::with_max_entries(1, 0);

/// Pointer to a counter slot (for the deliberately rejected test program).
#[inline(always)]
pub fn counter_ptr(slot: u32) -> Option<*mut u64> {
    COUNTERS.get_ptr_mut(slot)
}

/// Add one to a counter slot; returns the new value on this CPU (0 if the slot is missing).
#[inline(always)]
pub fn bump(slot: u32) -> u64 {
    if let Some(c) = COUNTERS.get_ptr_mut(slot) {
        // SAFETY: per-CPU slot, and these tracepoints run with preemption disabled.
        unsafe {
            *c += 1;
            return *c;
        }
    }
    0
}

#[inline(always)]
pub fn on_exit(tgid: u32, tid: u32, now: u64, vcpu_id: u32, isa: u32, reason: u32) {
    bump(counter::EXITS);
    if let Some(p) = PENDING.get_ptr_mut(tid) {
        // SAFETY: pointer to a live map value; only this thread writes its own entry.
        let p = unsafe { &mut *p };
        if p.ts != 0 {
            bump(counter::UNPAIRED_EXIT);
        }
        p.ts = now;
        p.vcpu_id = vcpu_id;
        p.isa = isa;
        p.reason = reason;
        p.tgid = tgid;
        return;
    }
    let p = Pending {
        ts: now,
        vcpu_id,
        isa,
        reason,
        tgid,
    };
    if PENDING.insert(tid, p, 0).is_err() {
        bump(counter::PENDING_FULL);
    }
}

/// Returns true the first time (on this CPU) the stats map refused a row, so the caller can
/// log it once instead of on every dropped exit.
#[inline(always)]
pub fn on_entry(tgid: u32, tid: u32, now: u64, vcpu_id: u32) -> bool {
    bump(counter::ENTRIES);
    let Some(p) = PENDING.get_ptr_mut(tid) else {
        bump(counter::ORPHAN_ENTRY);
        return false;
    };
    // SAFETY: pointer to a live map value; only this thread writes its own entry.
    let p = unsafe { &mut *p };
    if p.ts == 0 || p.ts > now {
        bump(counter::ORPHAN_ENTRY);
        p.ts = 0;
        return false;
    }
    let key = StatKey {
        tgid,
        vcpu_id,
        isa: p.isa,
        reason: p.reason,
    };
    let delta = now - p.ts;
    p.ts = 0;
    account(&key, delta) == 1
}

#[inline(always)]
pub fn on_uexit(tgid: u32, tid: u32, now: u64, reason: u32) {
    bump(counter::USERSPACE_EXITS);
    let p = Pending {
        ts: now,
        vcpu_id: tid,
        isa: ISA_USERSPACE,
        reason,
        tgid,
    };
    if UPENDING.insert(tid, p, 0).is_err() {
        bump(counter::PENDING_FULL);
    }
}

#[inline(always)]
pub fn on_kvm_run(tgid: u32, tid: u32, now: u64) {
    let Some(p) = UPENDING.get_ptr_mut(tid) else {
        return; // first KVM_RUN of a thread, or a non-vCPU ioctl path.
    };
    // SAFETY: pointer to a live map value; only this thread writes its own entry.
    let p = unsafe { &mut *p };
    if p.ts == 0 || p.ts > now {
        return;
    }
    let key = StatKey {
        tgid,
        vcpu_id: tid,
        isa: ISA_USERSPACE,
        reason: p.reason,
    };
    let delta = now - p.ts;
    p.ts = 0;
    account(&key, delta);
}

/// Returns 0 when accounted, else the number of drops so far on this CPU.
#[inline(always)]
fn account(key: &StatKey, delta: u64) -> u64 {
    let Some(v) = slot(key) else {
        return bump(counter::STATS_FULL);
    };
    if v.count == 0 || delta < v.min_ns {
        v.min_ns = delta;
    }
    if delta > v.max_ns {
        v.max_ns = delta;
    }
    v.count += 1;
    v.sum_ns += delta;
    if let Some(h) = v.hist.get_mut(hist::bucket(delta)) {
        *h += 1;
    }
    0
}

#[inline(always)]
fn slot(key: &StatKey) -> Option<&'static mut StatValue> {
    if let Some(v) = STATS.get_ptr_mut(key) {
        // SAFETY: per-CPU map value of this CPU; preemption is disabled in these tracepoints.
        return Some(unsafe { &mut *v });
    }
    let init = INIT.get_ptr(0)?;
    // SAFETY: INIT's value lives as long as the map; it is never written.
    let _ = STATS.insert(key, unsafe { &*init }, BPF_NOEXIST as u64);
    // SAFETY: as above.
    STATS.get_ptr_mut(key).map(|v| unsafe { &mut *v })
}
