//! Layouts shared by the eBPF programs and the host side.
//!
//! Everything here is `#[repr(C)]`, fixed-size and made of plain integers: no Rust enums or
//! `Option` cross the kernel boundary.
#![no_std]

pub mod ev;
pub mod hist;

/// `isa` values as the kvm_exit tracepoint reports them.
pub const ISA_VMX: u32 = 1;
pub const ISA_SVM: u32 = 2;
/// Pseudo-ISA for returns of KVM_RUN to the VMM (`kvm_userspace_exit`). For these keys
/// `vcpu_id` holds the vCPU thread's TID: the tracepoint has no vCPU id.
pub const ISA_USERSPACE: u32 = 0x100;

/// Statistics key: one row per (VM process, vCPU, isa, exit reason).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StatKey {
    pub tgid: u32,
    pub vcpu_id: u32,
    pub isa: u32,
    pub reason: u32,
}

/// Histogram octaves a [`Row`] links to [`Oct`]s of the shared pool; further octaves of the
/// same row go to the `OVERFLOW` hash, keyed by [`OverflowKey`].
pub const LINKS: usize = 7;

/// Indexes the `kvmprof_fill` program pushes onto a free list per run, at most: a bounded loop
/// the verifier walks iteration by iteration, so a larger chunk costs more to load than its
/// fewer runs save (kvmprof-bench, default --max-keys: 256 took 31 ms, 32 takes 9 ms; one push
/// syscall per index, 78 ms).
pub const FILL_CHUNK: u32 = 32;
/// `kvmprof_fill`'s first argument: which free list.
pub const FILL_ROWS: u64 = 0;
pub const FILL_OCTS: u64 = 1;
pub const FILL_VCTX: u64 = 2;
pub const FILL_RIPS: u64 = 3;

/// One exit-table row: the handling times of one [`StatKey`], in the shared, mmappable `ROWS`
/// array (not per CPU: a row costs the same on every host). A row has one writer at a time
/// (the vCPU thread whose exits it counts, serialised on that thread), so plain adds suffice;
/// `gen` is a sequence lock for readers: odd while the writer updates the row and its octaves,
/// and it changes with every update, so userspace skips rows whose `gen` it has seen.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Row {
    /// Written once, before the row is published (linked from a table or the index hash).
    pub key: StatKey,
    pub gen: u64,
    pub count: u64,
    pub sum_ns: u64,
    /// Valid once `count` > 0.
    pub min_ns: u64,
    pub max_ns: u64,
    /// The octave the last exit's time fell in (+ 1; 0 = none) and its `OCTS` index, in the
    /// row's first cache line with the sums: an exit in the same octave as the one before (most
    /// do) adds to its octave without reading the link nibble and the link, two dependent
    /// loads on the exit path. The kernel's cache, not statistics: readers skip it.
    pub hot_oct: u32,
    pub hot_oi: u32,
    /// Of `sum_ns`: time the vCPU thread was runnable but not running (preempted, or woken
    /// and waiting for a host CPU), and time it slept (blocked), between exit and entry.
    /// The rest was on a CPU. Counted only for threads that own a `PSLOTS` slot.
    pub wait_ns: u64,
    pub blocked_ns: u64,
    /// Octave → link number, one nibble each (octave `o` in byte `o / 2`, low nibble first):
    /// 0 = none yet, 1..=LINKS = `oct[n - 1]`, [`LINK_OVERFLOW`] = in the `OVERFLOW` hash.
    pub link: [u8; LINK_BYTES],
    /// Links in use.
    pub nlinks: u8,
    /// `OCTS` index of each link.
    pub oct: [u32; LINKS],
}

/// Bytes of [`Row::link`]: a nibble per histogram octave.
pub const LINK_BYTES: usize = hist::ROWS.div_ceil(2);
/// The nibble of an octave whose counts are in the `OVERFLOW` hash (never also linked).
pub const LINK_OVERFLOW: u8 = 0xf;

impl Row {
    pub const ZERO: Row = Row {
        key: StatKey {
            tgid: 0,
            vcpu_id: 0,
            isa: 0,
            reason: 0,
        },
        gen: 0,
        count: 0,
        sum_ns: 0,
        min_ns: 0,
        max_ns: 0,
        hot_oct: 0,
        hot_oi: 0,
        wait_ns: 0,
        blocked_ns: 0,
        link: [0; LINK_BYTES],
        nlinks: 0,
        oct: [0; LINKS],
    };

    /// (octave, link nibble) of the octaves with one, lowest first: what a reader walks
    /// instead of every octave's nibble (a row uses a few octaves of 35).
    pub fn links(&self) -> impl Iterator<Item = (usize, u8)> + '_ {
        let bytes = self.link.iter().enumerate().filter(|(_, &b)| b != 0);
        bytes.flat_map(|(i, &b)| {
            let pair = [(2 * i, b & 0xf), (2 * i + 1, b >> 4)].into_iter();
            pair.filter(|&(o, l)| l != 0 && o < hist::ROWS)
        })
    }
}

impl Default for Row {
    fn default() -> Self {
        Row::ZERO
    }
}

/// One octave of a row's histogram: the [`hist::SUB`] sub-bucket counts (bucket indexes
/// `o * SUB .. o * SUB + SUB` of the [`hist`] layout), in the shared, mmappable `OCTS` pool.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Oct {
    pub n: [u64; hist::SUB as usize],
}

/// Key of an octave in the `OVERFLOW` hash: a row's octaves beyond its [`LINKS`] links.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OverflowKey {
    /// `ROWS` index.
    pub row: u32,
    /// `hist::bucket(v) / SUB`, < `hist::ROWS`.
    pub oct: u32,
}

/// `OCTS` pool entries per row of `ROWS` (rows hit about three octaves; more go to the hash).
pub const OCTS_PER_ROW: u32 = 3;

/// Entries of a vCPU thread's reason table (`VROWS`): exit reason → `ROWS` index + 1, so
/// finding a row on the hot path is two array indexings, no hash.
pub const REASON_SLOTS: usize = 176;
/// The table entry for any reason without its own: holds the first such code seen (the row's
/// key keeps it); other codes take the `ROW_INDEX` hash.
pub const OTHER_REASON: usize = 172;
/// `ROWS` entries per reason table: a vCPU thread hits a dozen or two reasons.
pub const ROWS_PER_VCTX: u32 = 24;

/// A reason's entry in a reason table: VMX basic reasons and SVM exit codes below 0xa8 are
/// their own index, SVM's 0x400–0x403 (npf, AVIC, VMGEXIT) follow, anything else is
/// [`OTHER_REASON`].
#[inline(always)]
pub fn reason_index(isa: u32, reason: u32) -> usize {
    if (isa == ISA_VMX || isa == ISA_SVM) && reason < 0xa8 {
        reason as usize
    } else if isa == ISA_SVM && (0x400..=0x403).contains(&reason) {
        (0xa8 + reason - 0x400) as usize
    } else {
        OTHER_REASON
    }
}

const _: () = assert!(core::mem::size_of::<Row>() == 128);
const _: () = assert!(LINKS < LINK_OVERFLOW as usize, "link numbers fit a nibble");

/// An exit seen on a thread and not yet followed by its entry.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Pending {
    /// bpf_ktime_get_ns() at kvm_exit; 0 = no exit pending.
    pub ts: u64,
    pub vcpu_id: u32,
    pub isa: u32,
    pub reason: u32,
    /// Process of the thread, so userspace can count exits still in flight per VM.
    pub tgid: u32,
    /// Thread owning a `PSLOTS` slot (0 = free); unused in the hash maps (keyed by tid).
    pub owner: u32,
    /// The owner's reason table (`VROWS` index + 1; 0 = none, its rows take the hash).
    pub vctx: u32,
    /// For the slow-exit log (written only while it is on): the guest RIP and host CPU at
    /// the exit, and the sub-reason a kvm_msr/kvm_pio/kvm_mmio/... event named before the entry
    /// (`detail_kind` an `ev` kind, 0 = none; flags and subject as in `ev::EvKey`).
    pub rip: u64,
    pub detail_a: u64,
    pub cpu: u32,
    pub detail_kind: u16,
    pub detail_flags: u16,
    /// Where the exit's time goes (sched_switch/sched_wakeup, while an exit is in flight):
    /// when the thread left its CPU (0 = on a CPU; bit 0 set = asleep, clear = runnable),
    /// and the runnable and asleep time so far. Cleared at the entry that reads them.
    pub off_ns: u64,
    pub wait_ns: u64,
    pub blocked_ns: u64,
    /// In a slot only: the owner's userspace exit waiting for its next KVM_RUN
    /// (bpf_ktime_get_ns() at kvm_userspace_exit, 0 = none) and its reason; threads without a
    /// slot keep theirs in the `UPENDING` hash.
    pub uts: u64,
    pub ureason: u32,
    pub _upad: u32,
    /// In a slot only: the owner's kvm_exit and kvm_entry events (the `EXITS` and `ENTRIES`
    /// counters count other threads'). Kept here because this memory is already being written
    /// on those paths, where a per-CPU counter is a lookup each; userspace adds them up and
    /// keeps a freed slot's.
    pub exits: u64,
    pub entries: u64,
}

/// One exit whose handling time reached the slow-exit threshold, as the kernel hands it to
/// userspace through the `SLOW_LOG` ring buffer.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SlowExit {
    /// bpf_ktime_get_ns() (CLOCK_MONOTONIC) at kvm_exit.
    pub exit_ns: u64,
    /// kvm_exit to kvm_entry, ns.
    pub took_ns: u64,
    pub rip: u64,
    pub detail_a: u64,
    pub tgid: u32,
    pub tid: u32,
    pub vcpu_id: u32,
    pub isa: u32,
    pub reason: u32,
    pub exit_cpu: u32,
    pub entry_cpu: u32,
    pub detail_kind: u16,
    pub detail_flags: u16,
    /// Of `took_ns`: runnable but not running, and asleep (see [`Row::wait_ns`]).
    pub wait_ns: u64,
    pub blocked_ns: u64,
}

const _: () = assert!(core::mem::size_of::<SlowExit>() == 80);

/// The slow-exit log's settings, written by the loader into the programs' read-only globals.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SlowCfg {
    /// Exits whose handling time is at least this go to `SLOW_LOG`; 0 = the log is off (and
    /// the exit path does not read the RIP or the CPU).
    pub threshold_ns: u64,
    /// Events each CPU may send per second; the rest are counted in `counter::SLOW_DROPPED`.
    pub per_cpu_per_s: u32,
    /// 1: HLT exits are logged too (a halted vCPU's exit lasts until it is woken: long by
    /// design, so they are left out unless asked for).
    pub with_hlt: u32,
}

/// One CPU's slow-exit rate window (`SLOW_RATE`, per CPU).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SlowWindow {
    pub start_ns: u64,
    pub sent: u64,
}

/// Slots of the `PSLOTS` array (a power of two): thread `tid` uses slot `tid & PSLOT_MASK`
/// when it owns it, else the `PENDING` hash. An array lookup is nearly free; a hash lookup
/// is most of the programs' cost.
pub const PSLOTS: u32 = 65536;
pub const PSLOT_MASK: u32 = PSLOTS - 1;
/// Words of the `SLOT_USED` array: one byte per `PSLOTS` slot, nonzero once a thread has
/// claimed the slot (until userspace frees it), so a refresh reads 64 KiB to find the slots in
/// use instead of two fields of every slot (6 MiB).
pub const SLOT_WORDS: u32 = PSLOTS / 8;

/// Parts of the exit path a benchmark program leaves out (a mask: the test object's
/// `kvmprof_kcost_no_*` programs), so that kvmprof-bench prices each part against the whole,
/// taking turns. The programs users run leave out nothing.
pub mod cut {
    /// The entry stops once it has its pending exit: no row, no statistics.
    pub const ACCOUNT: u32 = 1;
    /// No histogram.
    pub const HIST: u32 = 2;
    /// No sequence lock.
    pub const SEQ: u32 = 4;
    /// No min/max.
    pub const MIN_MAX: u32 = 8;
    /// No exit/entry counters.
    pub const COUNTERS: u32 = 16;
    /// No guest-RIP sample check at the exit.
    pub const RIP: u32 = 32;
    /// The slow-exit log as if off: no CPU id or RIP at the exit, no threshold check at the
    /// entry.
    pub const SLOW: u32 = 64;
}

/// Slots of the per-CPU `COUNTERS` array: everything the programs saw but could not account.
pub mod counter {
    /// kvm_entry on a thread with no pending exit (e.g. the first entry after attach).
    pub const ORPHAN_ENTRY: u32 = 0;
    /// A second kvm_exit on a thread before its kvm_entry: the first one's time is lost.
    pub const UNPAIRED_EXIT: u32 = 1;
    /// The row table was full: an exit was counted nowhere.
    pub const STATS_FULL: u32 = 2;
    /// The pending map refused an insert: that exit's time is lost.
    pub const PENDING_FULL: u32 = 3;
    /// Reading the tracepoint record failed.
    pub const READ_ERROR: u32 = 4;
    /// Number of kvm_exit events seen (for cross-checking counts).
    pub const EXITS: u32 = 5;
    /// Number of kvm_entry events seen.
    pub const ENTRIES: u32 = 6;
    /// Number of kvm_userspace_exit events seen.
    pub const USERSPACE_EXITS: u32 = 7;
    /// The evidence map was full (a sub-reason event was counted nowhere), or RIPS had no free
    /// slot (a sampled guest RIP was counted nowhere).
    pub const EVIDENCE_FULL: u32 = 8;
    /// The octave pool and the overflow hash were full: an exit was counted but is missing
    /// from its histogram.
    pub const HIST_FULL: u32 = 9;
    /// Exits at or over the slow-exit threshold (sent or not).
    pub const SLOW_EXITS: u32 = 10;
    /// Slow exits not sent: over the per-CPU rate, or the ring buffer was full.
    pub const SLOW_DROPPED: u32 = 11;
    /// Context switches and wake-ups the kernel did not run the scheduler programs for
    /// (another BPF program, or a BPF map syscall preempted on that CPU, held it): their
    /// exits' time split is short of that switch. Filled by userspace from the programs'
    /// recursion misses; the programs never touch it.
    pub const SCHED_MISSED: u32 = 12;
    /// The counters above, the ones reported (`NAMES`).
    pub const COUNT: u32 = 13;
    /// From here, one slot per evidence program (`ev::program_index`): its runs, counted first
    /// thing, so the sampler asks the kernel for a program's run-time statistics (a syscall
    /// each) only when it ran since the last ask. Read with the others, not reported.
    pub const EV_RUNS: u32 = COUNT;
    /// Exits (userspace exits) a thread without a slot left in the PENDING (UPENDING) hash:
    /// while none, the sampler does not read that hash.
    pub const PENDING_USED: u32 = EV_RUNS + crate::ev::PROGRAMS.len() as u32;
    pub const UPENDING_USED: u32 = PENDING_USED + 1;
    /// Keys added to EVIDENCE that the `NEW_KEYS` ring had no room for: while this
    /// stands still, the keys the sampler read plus those the ring told it of are all there
    /// are, and it looks them up one by one instead of walking every bucket of the maps
    /// (32 768 in EVIDENCE) each refresh.
    pub const KEYS_UNLOGGED: u32 = UPENDING_USED + 1;
    /// Slots of the array.
    pub const SLOTS: u32 = KEYS_UNLOGGED + 1;
    pub const NAMES: [&str; COUNT as usize] = [
        "orphan_entry",
        "unpaired_exit",
        "stats_map_full",
        "pending_map_full",
        "read_error",
        "exits",
        "entries",
        "userspace_exits",
        "evidence_map_full",
        "hist_map_full",
        "slow_exits",
        "slow_dropped",
        "sched_missed",
    ];
}

/// Tracepoint field offsets, read from the running kernel's format files at load time and
/// written into the programs' read-only globals, so layout drift between kernels is harmless.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Offsets {
    pub exit_reason: u32,
    pub exit_isa: u32,
    pub exit_vcpu_id: u32,
    pub uexit_reason: u32,
    pub uexit_errno: u32,
    /// kvm_exit info1 (u64), info2 (u64), intr_info (u32) for exit details; 0 = absent or
    /// of another size on this kernel (the common header makes 0 impossible otherwise).
    pub exit_info1: u32,
    pub exit_info2: u32,
    pub exit_intr_info: u32,
    /// kvm_exit guest_rip (u64); 0 = absent.
    pub exit_rip: u32,
    /// For the raw sched_switch/sched_wakeup programs: byte offsets of `pid` and of the state
    /// word in `struct task_struct` (from BTF; `task_pid` 0 = the programs do nothing), and 1
    /// when sched_switch passes `prev_state` as its fourth argument (5.18+; before, the
    /// program reads the state word).
    pub task_pid: u32,
    pub task_state: u32,
    pub sched_state_arg: u32,
    /// 1 once userspace filled this in; programs do nothing while it is 0.
    pub valid: u32,
}

/// Reason codes used under [`ISA_USERSPACE`] when `kvm_userspace_exit` reports an errno.
pub const UEXIT_RESTART: u32 = 0xffff_0004;
pub const UEXIT_ERROR: u32 = 0xffff_ffff;

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all of these are #[repr(C)], made only of integers, with no padding holes that
    // could leak uninitialised bytes (fields are laid out to natural alignment) and valid for
    // any bit pattern.
    unsafe impl aya::Pod for super::StatKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::Row {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::Oct {}
    // SAFETY: as above (8 bytes of u32).
    unsafe impl aya::Pod for super::OverflowKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::Pending {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::Offsets {}
    // SAFETY: as above (80 bytes: u64s, u32s, two u16s, u64s).
    unsafe impl aya::Pod for super::SlowExit {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::SlowCfg {}
    // SAFETY: as above (16 bytes: u32, u16, u16, u64).
    unsafe impl aya::Pod for super::ev::EvKey {}
    // SAFETY: as above (24 bytes: u32, u32, then an EvKey).
    unsafe impl aya::Pod for super::ev::ThreadEvKey {}
    // SAFETY: as above (24 bytes: an EvKey, then a u64).
    unsafe impl aya::Pod for super::ev::RipSlot {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::ev::EvValue {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::ev::FieldSpec {}
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec::Vec;

    use super::*;

    /// `links` gives what reading every octave's nibble gives, skipping the empty ones.
    #[test]
    fn links_are_every_octaves_nonzero_nibble_in_order() {
        let mut row = Row::ZERO;
        let nibble = |row: &Row, o: usize| (row.link[o / 2] >> ((o & 1) * 4)) & 0xf;
        for (step, o) in [0usize, 1, 6, 7, 20, 33, 34].into_iter().enumerate() {
            let v = if step == 3 {
                LINK_OVERFLOW
            } else {
                step as u8 + 1
            };
            row.link[o / 2] |= v << ((o & 1) * 4);
            let every: Vec<(usize, u8)> = (0..hist::ROWS)
                .map(|o| (o, nibble(&row, o)))
                .filter(|&(_, l)| l != 0)
                .collect();
            assert_eq!(row.links().collect::<Vec<_>>(), every);
        }
        assert_eq!(row.links().count(), 7);
    }
}
