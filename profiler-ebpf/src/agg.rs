//! The aggregation shared by the tracepoint programs and the raw_tp test entry.

use aya_ebpf::{
    bindings::{BPF_F_MMAPABLE, BPF_F_NO_PREALLOC, BPF_NOEXIST},
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray, PerCpuHashMap},
};
use profiler_common::{
    counter, hist, HistKey, HistRow, Pending, StatKey, StatValue, ISA_USERSPACE, PSLOTS, PSLOT_MASK,
};

/// Per-CPU statistics (32 bytes a row and CPU); entries are allocated on first use (no
/// prealloc) so kernel memory follows the keys really seen. The loader may change max_entries.
#[map]
static STATS: PerCpuHashMap<StatKey, StatValue> =
    PerCpuHashMap::with_max_entries(16384, BPF_F_NO_PREALLOC);

/// Per-CPU histogram rows: one per (key, octave) hit beyond the octaves held inline in the
/// STATS value (`StatValue::oct`). The loader sizes it.
#[map]
static HIST: PerCpuHashMap<HistKey, HistRow> =
    PerCpuHashMap::with_max_entries(65536, BPF_F_NO_PREALLOC);

/// Exit waiting for its entry, per thread, fast path: slot `tid & PSLOT_MASK`, owned by the
/// first thread that claims it (atomically) and never taken back by the kernel. Mmappable so
/// userspace counts exits in flight by reading memory instead of 65536 map lookups.
#[map]
static PSLOTS_MAP: Array<Pending> = Array::with_max_entries(PSLOTS, BPF_F_MMAPABLE);

/// Exit waiting for its entry, per thread (a vCPU thread may migrate between the two), for
/// threads whose PSLOTS slot another thread owns. LRU so threads that died with an exit
/// pending cannot fill it.
#[map]
static PENDING: LruHashMap<u32, Pending> = LruHashMap::with_max_entries(65536, 0);

/// Owner (tid) of each claimed PSLOTS slot. Inserting with BPF_NOEXIST is the atomic claim:
/// the kernel lets exactly one concurrent insert of a key succeed. (Rust's core has no
/// compare-and-swap on the BPF target, whose spec says `atomic-cas: false`.) Userspace deletes
/// the entry when it frees the slot (probe/read.rs `forget`).
#[map]
static PSLOT_OWNERS: HashMap<u32, u32> = HashMap::with_max_entries(PSLOTS, BPF_F_NO_PREALLOC);

/// Userspace exit waiting for the thread's next KVM_RUN, per thread.
#[map]
static UPENDING: LruHashMap<u32, Pending> = LruHashMap::with_max_entries(65536, 0);

#[map]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counter::COUNT, 0);

/// Pointer to a counter slot (for the deliberately rejected test program).
#[cfg(feature = "test-programs")]
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

/// This thread's PSLOTS slot if it owns it (claiming a free one on exits).
#[inline(always)]
fn own_slot(tid: u32, claim: bool) -> Option<&'static mut Pending> {
    if tid == 0 {
        return None;
    }
    let p = PSLOTS_MAP.get_ptr_mut(tid & PSLOT_MASK)?;
    // SAFETY: pointer to a live array value; only the owning thread writes it past its tid.
    let p = unsafe { &mut *p };
    if p.owner == tid as u64 {
        return Some(p);
    }
    if !claim || p.owner != 0 {
        return None;
    }
    let idx = tid & PSLOT_MASK;
    let won = PSLOT_OWNERS.insert(&idx, &tid, BPF_NOEXIST as u64).is_ok();
    if !won {
        return None;
    }
    // Only the winner writes `owner`; a claimant that reads 0 meanwhile loses the insert.
    p.owner = tid as u64;
    // A pending exit of this thread may sit in the hash (e.g. its slot was freed by
    // userspace meanwhile): from now on the slot is the only truth for this thread.
    let _ = PENDING.remove(&tid);
    Some(p)
}

#[inline(always)]
pub fn on_exit(tgid: u32, tid: u32, now: u64, vcpu_id: u32, isa: u32, reason: u32) {
    bump(counter::EXITS);
    let slot = match own_slot(tid, true) {
        Some(p) => Some(p),
        // SAFETY: pointer to a live map value; only this thread writes its own entry.
        None => PENDING.get_ptr_mut(tid).map(|p| unsafe { &mut *p }),
    };
    if let Some(p) = slot {
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
        owner: 0,
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
    let slot = match own_slot(tid, false) {
        Some(p) => Some(p),
        // SAFETY: pointer to a live map value; only this thread writes its own entry.
        None => PENDING.get_ptr_mut(tid).map(|p| unsafe { &mut *p }),
    };
    let Some(p) = slot else {
        bump(counter::ORPHAN_ENTRY);
        return false;
    };
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
        owner: 0,
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
    let Some(v) = stat_slot(key) else {
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
    let b = hist::bucket(delta);
    let sub = b & (hist::SUB as usize - 1);
    let row = (b / hist::SUB as usize) as u32;
    // Inline windows first: claimed in order by the first distinct octaves seen on this CPU
    // (per-CPU value, preemption disabled: no other writer).
    let tag = row + 1;
    let w = if v.oct[0] == tag {
        0
    } else if v.oct[1] == tag {
        1
    } else if v.oct[0] == 0 {
        v.oct[0] = tag;
        0
    } else if v.oct[1] == 0 {
        v.oct[1] = tag;
        1
    } else {
        spill(key, row, sub);
        return 0;
    };
    if let Some(n) = v.n.get_mut(w).and_then(|r| r.get_mut(sub)) {
        *n += 1;
    }
    0
}

/// An octave beyond the inline windows: its own HIST row.
#[inline(always)]
fn spill(key: &StatKey, row: u32, sub: usize) {
    let hk = HistKey { key: *key, row };
    match hist_slot(&hk) {
        Some(r) => {
            if let Some(n) = r.n.get_mut(sub) {
                *n += 1;
            }
        }
        None => {
            bump(counter::HIST_FULL);
        }
    }
}

#[inline(always)]
fn stat_slot(key: &StatKey) -> Option<&'static mut StatValue> {
    if let Some(v) = STATS.get_ptr_mut(key) {
        // SAFETY: per-CPU map value of this CPU; preemption is disabled in these tracepoints.
        return Some(unsafe { &mut *v });
    }
    // Another CPU may insert the key meanwhile: NOEXIST then fails and the lookup finds it.
    let _ = STATS.insert(key, &StatValue::ZERO, BPF_NOEXIST as u64);
    // SAFETY: as above.
    STATS.get_ptr_mut(key).map(|v| unsafe { &mut *v })
}

#[inline(always)]
fn hist_slot(key: &HistKey) -> Option<&'static mut HistRow> {
    if let Some(v) = HIST.get_ptr_mut(key) {
        // SAFETY: per-CPU map value of this CPU; preemption is disabled in these tracepoints.
        return Some(unsafe { &mut *v });
    }
    let _ = HIST.insert(key, &HistRow::default(), BPF_NOEXIST as u64);
    // SAFETY: as above.
    HIST.get_ptr_mut(key).map(|v| unsafe { &mut *v })
}
