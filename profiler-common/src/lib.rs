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

/// Octaves of the histogram kept inline in a [`StatValue`] (the first distinct ones a key hits
/// on a CPU); further octaves spill to rows of [`HistRow`] keyed by [`HistKey`].
pub const INLINE_OCTAVES: usize = 2;

/// Aggregated exit→entry handling times for one [`StatKey`] on one CPU, with the histogram's
/// first [`INLINE_OCTAVES`] octaves inline so that the common case costs one hash lookup per
/// exit; only the octaves beyond those take rows of [`HistRow`] keyed by [`HistKey`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatValue {
    pub count: u64,
    pub sum_ns: u64,
    pub min_ns: u64,
    pub max_ns: u64,
    /// Histogram row (`hist::bucket(v) / SUB`) + 1 held by each inline window; 0 = unused.
    pub oct: [u32; INLINE_OCTAVES],
    /// Sub-bucket counts of the inline windows.
    pub n: [[u64; hist::SUB as usize]; INLINE_OCTAVES],
}

impl StatValue {
    pub const ZERO: StatValue = StatValue {
        count: 0,
        sum_ns: 0,
        min_ns: u64::MAX,
        max_ns: 0,
        oct: [0; INLINE_OCTAVES],
        n: [[0; hist::SUB as usize]; INLINE_OCTAVES],
    };
}

/// One histogram row: the [`hist::SUB`] sub-buckets of one octave (bucket indexes
/// `row * SUB .. row * SUB + SUB` of the [`hist`] layout) of one [`StatKey`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HistKey {
    pub key: StatKey,
    /// `hist::bucket(v) / SUB`, < `hist::ROWS`.
    pub row: u32,
}

/// Per-CPU counts of one [`HistKey`]'s sub-buckets.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HistRow {
    pub n: [u64; hist::SUB as usize],
}

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
    /// A u64 so the kernel can claim it with a 64-bit compare-and-swap.
    pub owner: u64,
}

/// Slots of the `PSLOTS` array (a power of two): thread `tid` uses slot `tid & PSLOT_MASK`
/// when it owns it, else the `PENDING` hash. An array lookup is nearly free; a hash lookup
/// is most of the programs' cost.
pub const PSLOTS: u32 = 65536;
pub const PSLOT_MASK: u32 = PSLOTS - 1;

/// Slots of the per-CPU `COUNTERS` array: everything the programs saw but could not account.
pub mod counter {
    /// kvm_entry on a thread with no pending exit (e.g. the first entry after attach).
    pub const ORPHAN_ENTRY: u32 = 0;
    /// A second kvm_exit on a thread before its kvm_entry: the first one's time is lost.
    pub const UNPAIRED_EXIT: u32 = 1;
    /// The stats map was full: an exit was counted nowhere.
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
    /// The evidence map was full: a sub-reason event was counted nowhere.
    pub const EVIDENCE_FULL: u32 = 8;
    /// The histogram map was full: an exit was counted but is missing from its histogram.
    pub const HIST_FULL: u32 = 9;
    pub const COUNT: u32 = 10;
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
    pub entry_vcpu_id: u32,
    pub uexit_reason: u32,
    pub uexit_errno: u32,
    /// kvm_exit info1 (u64), info2 (u64), intr_info (u32) for exit details; 0 = absent or
    /// of another size on this kernel (the common header makes 0 impossible otherwise).
    pub exit_info1: u32,
    pub exit_info2: u32,
    pub exit_intr_info: u32,
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
    unsafe impl aya::Pod for super::StatValue {}
    // SAFETY: as above (20 bytes of u32).
    unsafe impl aya::Pod for super::HistKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::HistRow {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::Pending {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::Offsets {}
    // SAFETY: as above (16 bytes: u32, u16, u16, u64).
    unsafe impl aya::Pod for super::ev::EvKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::ev::EvValue {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::ev::FieldSpec {}
}
