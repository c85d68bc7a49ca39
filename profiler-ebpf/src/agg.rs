//! The aggregation shared by the tracepoint programs and the raw_tp test entry.
//!
//! The exit table (docs/architecture.md, "The exit table"): rows live in one shared,
//! mmappable array (`ROWS`), not per CPU. A vCPU thread that owns a `PSLOTS` slot also owns a
//! reason table (`VROWS`) mapping its exit reasons to rows, so the hot path is array indexing
//! and adds; other threads and odd reason codes find their row through the `ROW_INDEX` hash.
//! Rows, histogram octaves and reason tables come from free lists (queue maps that userspace
//! fills at load and refills when it forgets a dead VM): nothing is allocated per CPU, and
//! nothing on the exit path but a queue pop on a key's first exit.

use aya_ebpf::{
    bindings::{BPF_F_MMAPABLE, BPF_F_NO_PREALLOC, BPF_NOEXIST},
    helpers::bpf_get_smp_processor_id,
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray, Queue},
};
use profiler_common::{
    counter, cut, hist, reason_index, Oct, OverflowKey, Pending, Row, StatKey, FILL_CHUNK,
    FILL_OCTS, FILL_RIPS, FILL_ROWS, FILL_VCTX, ISA_USERSPACE, LINKS, LINK_OVERFLOW, OTHER_REASON,
    PSLOTS, PSLOT_MASK, REASON_SLOTS, SLOT_WORDS,
};

use crate::slow;

/// The exit table. The loader sizes it (`--max-keys`) and the free lists below.
#[map]
static ROWS: Array<Row> = Array::with_max_entries(16384, BPF_F_MMAPABLE);

/// Free `ROWS` indexes.
#[map]
static FREE_ROWS: Queue<u32> = Queue::with_max_entries(16384, 0);

/// Histogram octaves linked from rows (`Row::oct`).
#[map]
static OCTS: Array<Oct> = Array::with_max_entries(49152, BPF_F_MMAPABLE);

/// Free `OCTS` indexes.
#[map]
static FREE_OCTS: Queue<u32> = Queue::with_max_entries(49152, 0);

/// Octaves of rows whose links are all taken (or when `OCTS` ran out); flagged in `Row::more`.
#[map]
static OVERFLOW: HashMap<OverflowKey, Oct> = HashMap::with_max_entries(16384, BPF_F_NO_PREALLOC);

/// Reason tables of slot-owning vCPU threads: `reason_index` → `ROWS` index + 1.
#[map]
static VROWS: Array<[u32; REASON_SLOTS]> = Array::with_max_entries(1024, 0);

/// Free `VROWS` indexes.
#[map]
static FREE_VCTX: Queue<u32> = Queue::with_max_entries(1024, 0);

/// `ROWS` index of the keys of threads without a reason table, of userspace exits, and of
/// reason codes without their own table entry.
#[map]
static ROW_INDEX: HashMap<StatKey, u32> = HashMap::with_max_entries(16384, BPF_F_NO_PREALLOC);

/// Exit waiting for its entry, per thread, fast path: slot `tid & PSLOT_MASK`, owned by the
/// first thread that claims it (atomically) and never taken back by the kernel. Mmappable so
/// userspace counts exits in flight by reading memory instead of 65536 map lookups.
#[map]
static PSLOTS_MAP: Array<Pending> = Array::with_max_entries(PSLOTS, BPF_F_MMAPABLE);

/// One byte per PSLOTS slot, set by the thread that claims the slot (its own byte: one
/// writer), cleared by userspace when it frees the slot: a refresh looks only at the slots
/// whose byte is set.
#[map]
static SLOT_USED: Array<u64> = Array::with_max_entries(SLOT_WORDS, BPF_F_MMAPABLE);

/// Exit waiting for its entry, per thread (a vCPU thread may migrate between the two), for
/// threads whose PSLOTS slot another thread owns (their tids collide in the slot index). LRU
/// so threads that died with an exit pending cannot fill it. Preallocated: each entry costs
/// ~150 B of kernel memory and each refresh scans its buckets, so it is sized for collisions,
/// not for every thread.
#[map]
static PENDING: LruHashMap<u32, Pending> = LruHashMap::with_max_entries(4096, 0);

/// Owner (tid) of each claimed PSLOTS slot. Inserting with BPF_NOEXIST is the atomic claim:
/// the kernel lets exactly one concurrent insert of a key succeed. (Rust's core has no
/// compare-and-swap on the BPF target, whose spec says `atomic-cas: false`.) Userspace deletes
/// the entry when it frees the slot (probe/forget.rs).
#[map]
static PSLOT_OWNERS: HashMap<u32, u32> = HashMap::with_max_entries(PSLOTS, BPF_F_NO_PREALLOC);

/// Userspace exit waiting for the thread's next KVM_RUN, per thread, for threads without a
/// PSLOTS slot (slot owners keep it in the slot: `Pending::uts`). Sized as `PENDING`.
#[map]
static UPENDING: LruHashMap<u32, Pending> = LruHashMap::with_max_entries(4096, 0);

#[map]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counter::SLOTS, 0);

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
pub(crate) fn own_slot(tid: u32, claim: bool) -> Option<&'static mut Pending> {
    if tid == 0 {
        return None;
    }
    let p = PSLOTS_MAP.get_ptr_mut(tid & PSLOT_MASK)?;
    // SAFETY: pointer to a live array value; only the owning thread writes it past its tid.
    let p = unsafe { &mut *p };
    if p.owner == tid {
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
    p.owner = tid;
    if let Some(w) = SLOT_USED.get_ptr_mut(idx / 8) {
        // SAFETY: byte `idx % 8` (< 8) of a live 8-byte array value; this slot's claimant is
        // its only kernel writer, and a byte store leaves the neighbours' bytes alone.
        unsafe { core::ptr::write_volatile((w as *mut u8).add((idx % 8) as usize), 1) };
    }
    // No table left (or the queue is busy): this thread's rows take the hash.
    p.vctx = match FREE_VCTX.pop() {
        Ok(Some(v)) => v + 1,
        _ => 0,
    };
    // A pending exit of this thread may sit in the hash (e.g. its slot was freed by
    // userspace meanwhile): from now on the slot is the only truth for this thread.
    let _ = PENDING.remove(&tid);
    Some(p)
}

/// The pending exit of thread `tid` (its slot, else its PENDING entry), if any.
#[inline(always)]
fn pending_of(tid: u32, claim: bool) -> Option<&'static mut Pending> {
    hash_unless(own_slot(tid, claim), tid)
}

/// `slot`, else thread `tid`'s PENDING entry, if any.
#[inline(always)]
fn hash_unless(slot: Option<&'static mut Pending>, tid: u32) -> Option<&'static mut Pending> {
    match slot {
        Some(p) => Some(p),
        // SAFETY: pointer to a live map value; only this thread writes its own entry.
        None => PENDING.get_ptr_mut(tid).map(|p| unsafe { &mut *p }),
    }
}

/// [`pending_of`] on a kvm_exit (`claim`: it may claim a slot) or kvm_entry, the event counted:
/// in the slot's `exits` / `entries` when the thread owns one (memory both paths write anyway),
/// else in the per-CPU `EXITS` / `ENTRIES` counter (a lookup).
#[inline(always)]
fn counted_pending<const CUT: u32>(tid: u32, claim: bool) -> Option<&'static mut Pending> {
    let mut slot = own_slot(tid, claim);
    if CUT & cut::COUNTERS == 0 {
        match (&mut slot, claim) {
            (Some(p), true) => p.exits += 1,
            (Some(p), false) => p.entries += 1,
            (None, true) => _ = bump(counter::EXITS),
            (None, false) => _ = bump(counter::ENTRIES),
        }
    }
    hash_unless(slot, tid)
}

/// A sub-reason event (MSR, port, MMIO address, hypercall, vector) of the thread's exit in
/// flight, kept for the slow-exit log; the last one before the entry wins.
#[inline(always)]
pub fn note_detail(tid: u32, kind: u16, flags: u16, a: u64) {
    if crate::slow_threshold() == 0 {
        return;
    }
    if let Some(p) = pending_of(tid, false) {
        if p.ts != 0 {
            p.detail_kind = kind;
            p.detail_flags = flags;
            p.detail_a = a;
        }
    }
}

#[inline(always)]
pub fn cpu() -> u32 {
    // SAFETY: no preconditions; `unsafe` only as an FFI helper.
    unsafe { bpf_get_smp_processor_id() }
}

#[inline(always)]
pub fn on_exit(tgid: u32, tid: u32, now: u64, vcpu_id: u32, isa: u32, reason: u32, rip: u64) {
    on_exit_cut::<0>(tgid, tid, now, vcpu_id, isa, reason, rip)
}

/// [`on_exit`] without the parts in `CUT` (`profiler_common::cut`): for the benchmark
/// programs only, which price each part; every program users run has `CUT` = 0, so the
/// compiler drops the checks.
#[inline(always)]
pub fn on_exit_cut<const CUT: u32>(
    tgid: u32,
    tid: u32,
    now: u64,
    vcpu_id: u32,
    isa: u32,
    reason: u32,
    rip: u64,
) {
    let cpu = if CUT & cut::SLOW == 0 && crate::slow_threshold() != 0 {
        cpu()
    } else {
        0
    };
    let Some(p) = counted_pending::<CUT>(tid, true) else {
        let p = Pending {
            ts: now,
            vcpu_id,
            isa,
            reason,
            tgid,
            rip,
            cpu,
            ..Pending::default()
        };
        bump(counter::PENDING_USED);
        if PENDING.insert(tid, p, 0).is_err() {
            bump(counter::PENDING_FULL);
        }
        return;
    };
    if p.ts != 0 {
        bump(counter::UNPAIRED_EXIT);
    }
    p.ts = now;
    p.vcpu_id = vcpu_id;
    p.isa = isa;
    p.reason = reason;
    p.tgid = tgid;
    p.rip = rip;
    p.cpu = cpu;
    p.detail_kind = 0;
    if p.off_ns | p.wait_ns | p.blocked_ns != 0 {
        // Left by an exit that never saw its entry (or a switch it missed).
        p.off_ns = 0;
        p.wait_ns = 0;
        p.blocked_ns = 0;
    }
}

/// Returns true the first time (on this CPU) the stats map refused a row, so the caller can
/// log it once instead of on every dropped exit.
#[inline(always)]
pub fn on_entry(tgid: u32, tid: u32, now: u64) -> bool {
    on_entry_cut::<0>(tgid, tid, now)
}

/// [`on_entry`] without the parts in `CUT` (see [`on_exit_cut`]).
#[inline(always)]
pub fn on_entry_cut<const CUT: u32>(tgid: u32, tid: u32, now: u64) -> bool {
    let Some(p) = counted_pending::<CUT>(tid, false) else {
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
        vcpu_id: p.vcpu_id,
        isa: p.isa,
        reason: p.reason,
    };
    let delta = now - p.ts;
    let exit_ns = p.ts;
    p.ts = 0;
    // The scheduler's share of this exit (sched.rs), never more than the exit took.
    let (wait, blocked) = if p.wait_ns | p.blocked_ns != 0 {
        let w = p.wait_ns.min(delta);
        let b = p.blocked_ns.min(delta - w);
        p.wait_ns = 0;
        p.blocked_ns = 0;
        (w, b)
    } else {
        (0, 0)
    };
    p.off_ns = 0;
    if CUT & cut::SLOW == 0 {
        slow::check(p, tid, exit_ns, delta, wait, blocked);
    }
    if CUT & cut::ACCOUNT != 0 {
        return false;
    }
    account::<CUT>(&key, p.vctx, delta, wait, blocked) == 1
}

#[inline(always)]
pub fn on_uexit(tgid: u32, tid: u32, now: u64, reason: u32) {
    bump(counter::USERSPACE_EXITS);
    if let Some(p) = own_slot(tid, false) {
        // Not claimed here: the exit before this one claimed it, if one could be had.
        p.uts = now;
        p.ureason = reason;
        p.tgid = tgid;
        return;
    }
    let p = Pending {
        ts: now,
        vcpu_id: tid,
        isa: ISA_USERSPACE,
        reason,
        tgid,
        ..Pending::default()
    };
    bump(counter::UPENDING_USED);
    if UPENDING.insert(tid, p, 0).is_err() {
        bump(counter::PENDING_FULL);
    }
}

#[inline(always)]
pub fn on_kvm_run(tgid: u32, tid: u32, now: u64) {
    if let Some(p) = own_slot(tid, false) {
        let (ts, reason) = (p.uts, p.ureason);
        if ts == 0 {
            return; // nothing pending: the slot's owner keeps no UPENDING entry.
        }
        p.uts = 0;
        if ts <= now {
            uaccount(tgid, tid, reason, now - ts);
        }
        return;
    }
    let Some(p) = UPENDING.get_ptr_mut(tid) else {
        return; // first KVM_RUN of a thread, or a non-vCPU ioctl path.
    };
    // SAFETY: pointer to a live map value; only this thread writes its own entry.
    let p = unsafe { &mut *p };
    if p.ts == 0 || p.ts > now {
        return;
    }
    let delta = now - p.ts;
    p.ts = 0;
    uaccount(tgid, tid, p.reason, delta);
}

#[inline(always)]
fn uaccount(tgid: u32, tid: u32, reason: u32, delta: u64) {
    let key = StatKey {
        tgid,
        vcpu_id: tid,
        isa: ISA_USERSPACE,
        reason,
    };
    account::<0>(&key, 0, delta, 0, 0);
}

/// Returns 0 when accounted, else the number of drops so far on this CPU.
#[inline(always)]
fn account<const CUT: u32>(key: &StatKey, vctx: u32, delta: u64, wait: u64, blocked: u64) -> u64 {
    let Some((idx, row)) = find_row(key, vctx) else {
        return bump(counter::STATS_FULL);
    };
    // Sequence lock for readers of the mapped array: odd while updating. Every store in the
    // window is volatile, so the compiler keeps them in program order (the BPF backend has no
    // compiler fence), and x86 does not reorder stores (kvm_exit exists on x86 only).
    let gen = row.gen;
    let seq = CUT & cut::SEQ == 0;
    if seq {
        set(&mut row.gen, gen + 1);
    }
    if CUT & cut::MIN_MAX == 0 {
        if row.count == 0 || delta < row.min_ns {
            set(&mut row.min_ns, delta);
        }
        if delta > row.max_ns {
            set(&mut row.max_ns, delta);
        }
    }
    add(&mut row.count, 1);
    add(&mut row.sum_ns, delta);
    if wait | blocked != 0 {
        add(&mut row.wait_ns, wait);
        add(&mut row.blocked_ns, blocked);
    }
    if CUT & cut::HIST == 0 {
        hist_add(idx, row, delta);
    }
    if seq {
        set(&mut row.gen, gen + 2);
    }
    0
}

/// A store the compiler neither drops nor moves across the other `set`s.
#[inline(always)]
fn set<T: Copy>(p: &mut T, v: T) {
    // SAFETY: `p` is a valid, exclusive reference.
    unsafe { core::ptr::write_volatile(p, v) }
}

#[inline(always)]
fn add(p: &mut u64, v: u64) {
    let x = *p + v;
    set(p, x);
}

/// Count `delta` in the row's histogram: its octave's linked `OCTS` entry (linking a free
/// one on first use), else the `OVERFLOW` hash (and the octave stays there).
#[inline(always)]
fn hist_add(idx: u32, row: &mut Row, delta: u64) {
    // Most exits fall in the octave of their row's last: that octave's counter directly, no
    // log2, no link nibble, no link.
    if let Some(sub) = hist::in_octave(delta, row.hot_oct.wrapping_sub(1)) {
        if oct_add(row.hot_oi, sub) {
            return;
        }
    }
    let b = hist::bucket(delta);
    // SAFETY: reads a local. Volatile hides where `b` came from, so the compiler keeps the
    // bounds checks below on the register it indexes with (the verifier cannot follow a
    // check the compiler made on a copy of it).
    let b = unsafe { core::ptr::read_volatile(&b) };
    let o = b / hist::SUB as usize;
    let sub = b % hist::SUB as usize;
    let shift = (o & 1) * 4;
    let Some(&byte) = row.link.get(o / 2) else {
        return;
    };
    let mut link = ((byte >> shift) & 0xf) as usize;
    if link == LINK_OVERFLOW as usize {
        return overflow(idx, o, sub, row);
    }
    if link == 0 && (row.nlinks as usize) < LINKS {
        if let Ok(Some(oi)) = FREE_OCTS.pop() {
            let n = row.nlinks as usize;
            if let Some(slot) = row.oct.get_mut(n) {
                set(slot, oi);
                set(&mut row.nlinks, n as u8 + 1);
                link = n + 1;
                set_link(row, o, link as u8);
            }
        }
    }
    if link == 0 {
        return overflow(idx, o, sub, row);
    }
    let oi = row.oct.get(link - 1).copied().unwrap_or(u32::MAX);
    if oct_add(oi, sub) {
        set(&mut row.hot_oct, o as u32 + 1);
        set(&mut row.hot_oi, oi);
        return;
    }
    bump(counter::HIST_FULL);
}

/// One more in sub-bucket `sub` of linked octave `OCTS[oi]`; false if there is no such entry.
#[inline(always)]
fn oct_add(oi: u32, sub: usize) -> bool {
    if let Some(oct) = OCTS.get_ptr_mut(oi) {
        // SAFETY: live OCTS element, linked from one row only; one writer (see Row).
        if let Some(n) = unsafe { &mut *oct }.n.get_mut(sub) {
            add(n, 1);
            return true;
        }
    }
    false
}

/// Octave `o`'s link nibble := `v`.
#[inline(always)]
fn set_link(row: &mut Row, o: usize, v: u8) {
    let shift = (o & 1) * 4;
    if let Some(byte) = row.link.get_mut(o / 2) {
        let x = (*byte & !(0xf << shift)) | (v << shift);
        set(byte, x);
    }
}

#[inline(always)]
fn overflow(idx: u32, o: usize, sub: usize, row: &mut Row) {
    let k = OverflowKey {
        row: idx,
        oct: o as u32,
    };
    if let Some(v) = OVERFLOW.get_ptr_mut(&k) {
        // SAFETY: live hash value of this row's octave; one writer (see Row).
        if let Some(n) = unsafe { &mut *v }.n.get_mut(sub) {
            add(n, 1);
        }
        return;
    }
    let mut v = Oct::default();
    if let Some(n) = v.n.get_mut(sub) {
        *n = 1;
    }
    if OVERFLOW.insert(&k, &v, 0).is_ok() {
        // Only an unlinked octave gets here: from now on all its counts go to the hash.
        set_link(row, o, LINK_OVERFLOW);
    } else {
        bump(counter::HIST_FULL);
    }
}

#[inline(always)]
fn row_at(idx: u32) -> Option<&'static mut Row> {
    // SAFETY: a live ROWS element; its writer is the thread whose exits it counts.
    ROWS.get_ptr_mut(idx).map(|r| unsafe { &mut *r })
}

/// The row of `key`: through the thread's reason table when it has one, else the hash.
#[inline(always)]
fn find_row(key: &StatKey, vctx: u32) -> Option<(u32, &'static mut Row)> {
    if vctx != 0 {
        if let Some(t) = VROWS.get_ptr_mut(vctx - 1) {
            let i = reason_index(key.isa, key.reason);
            // SAFETY: reads a local. Volatile hides where `i` came from, so the compiler keeps
            // the bounds check below instead of proving it from reason_index and dropping it
            // (the verifier cannot follow that proof).
            let i = unsafe { core::ptr::read_volatile(&i) };
            // SAFETY: live VROWS element; only its owning thread writes it.
            if let Some(e) = unsafe { &mut *t }.get_mut(i) {
                let r = *e;
                let mut fresh = r == 0;
                if r != 0 {
                    if let Some(row) = row_at(r - 1) {
                        if row.key == *key {
                            return Some((r - 1, row));
                        }
                        // The slot's tid now runs another process: its rows are new.
                        fresh = i != OTHER_REASON && row.key.tgid != key.tgid;
                    }
                }
                if fresh {
                    let (idx, row) = new_row(key)?;
                    *e = idx + 1;
                    return Some((idx, row));
                }
            }
        }
    }
    indexed(key)
}

#[inline(always)]
fn indexed(key: &StatKey) -> Option<(u32, &'static mut Row)> {
    if let Some(idx) = index_of(key) {
        return row_at(idx).map(|r| (idx, r));
    }
    let (idx, row) = new_row(key)?;
    if ROW_INDEX.insert(key, &idx, BPF_NOEXIST as u64).is_ok() {
        return Some((idx, row));
    }
    // Another CPU indexed the key meanwhile (or the hash is full): give the row back as
    // userspace keeps free rows, zeroed (it frees rows by their key's process).
    row.key = StatKey::default();
    let _ = FREE_ROWS.push(idx, 0);
    let idx = index_of(key)?;
    row_at(idx).map(|r| (idx, r))
}

#[inline(always)]
fn index_of(key: &StatKey) -> Option<u32> {
    // SAFETY: the value is copied out at once; a concurrent delete (userspace forgetting a
    // dead VM) cannot free it under us within this program run (RCU).
    unsafe { ROW_INDEX.get(key) }.copied()
}

/// A free row (zeroed by userspace) with `key` written in; the caller publishes it.
#[inline(always)]
fn new_row(key: &StatKey) -> Option<(u32, &'static mut Row)> {
    let idx = FREE_ROWS.pop().ok()??;
    let row = row_at(idx)?;
    row.key = *key;
    Some((idx, row))
}

/// `kvmprof_fill`'s work: pushes `start..start + n` (`n` ≤ FILL_CHUNK) onto free list `list`
/// (FILL_ROWS, FILL_OCTS, FILL_VCTX, FILL_RIPS); returns how many it pushed. Run at load by userspace
/// through BPF_PROG_TEST_RUN: one syscall per FILL_CHUNK indexes instead of one per index
/// (~66 000 at the default --max-keys, 0.7 s of kvmprof's start under an emulated CPU).
#[inline(always)]
pub fn fill(list: u64, start: u64, n: u64) -> u32 {
    let (start, n) = (start as u32, n.min(FILL_CHUNK as u64) as u32);
    // One loop per map: each push site then names one map, as the verifier prefers.
    match list {
        FILL_ROWS => push_range(&FREE_ROWS, start, n),
        FILL_OCTS => push_range(&FREE_OCTS, start, n),
        FILL_VCTX => push_range(&FREE_VCTX, start, n),
        FILL_RIPS => push_range(&crate::ev::FREE_RIPS, start, n),
        _ => 0,
    }
}

#[inline(always)]
fn push_range(q: &Queue<u32>, start: u32, n: u32) -> u32 {
    let mut pushed = 0;
    for i in 0..FILL_CHUNK {
        if i >= n || q.push(start + i, 0).is_err() {
            break;
        }
        pushed += 1;
    }
    pushed
}
