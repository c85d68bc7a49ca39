//! Sub-reason evidence: what the advice engine needs beyond exit reasons (MSR indexes, ports,
//! MMIO addresses, hypercall codes, APICv inhibits, SynIC/stimer settings, EOIs, IPIs, halt
//! polling, VMX exit details), counted in kernel per VM like the exit statistics.

/// Evidence kinds (EvKey::kind). `a`, `flags` and EvValue::last meaning per kind:
pub const MSR_READ: u16 = 1; // a = MSR index; last = data
pub const MSR_WRITE: u16 = 2; // a = MSR index; flags = MSR-class bits (below); last = data
pub const PIO_IN: u16 = 3; // a = port; flags = size
pub const PIO_OUT: u16 = 4; // a = port; flags = size
pub const MMIO_READ: u16 = 5; // a = GPA; flags = len
pub const MMIO_WRITE: u16 = 6; // a = GPA; flags = len
pub const HV_HYPERCALL: u16 = 7; // a = call code (& 0xffff); flags = fast
pub const APICV_INHIBIT: u16 = 8; // a = inhibit reason bit; flags = set; last = inhibit mask
pub const SYNIC_MSR: u16 = 9; // a = MSR; flags = host | AutoEOI<<1 | masked<<2 (SINTx); last = data
pub const STIMER_EXPIRE: u16 = 10; // a = timer index; flags = direct
pub const STIMER_CONFIG: u16 = 11; // a = timer index; flags = direct (config bit 12); last = config
pub const EOI: u16 = 12; // a = vector
pub const PV_EOI: u16 = 13; // a = vector
pub const IPI: u16 = 14; // a = vector; flags = delivery mode
pub const WAKEUP: u16 = 15; // flags = waited | valid<<1; sum = ns
pub const HALT_POLL: u16 = 16; // flags = grow; last = new halt_poll_ns
pub const EXIT_DETAIL: u16 = 17; // VMX: flags = basic exit reason; a = vector / register offset
pub const NPF_MMIO: u16 = 18; // SVM npf with the reserved-bit (MMIO) flag: a = GPA page
/// A sampled exit's guest RIP (kvm_exit's guest_rip): a = RIP; flags = `rip_flags(isa, reason)`.
/// Counted in the kernel's `RIPS` map (shared, LRU), read into the evidence like the rest.
pub const GUEST_RIP: u16 = 19;

/// One exit in `1 << RIP_SAMPLE_LOG2` has its guest RIP counted (chosen from the exit's
/// timestamp, so a guest loop of any period is not always caught at the same place).
pub const RIP_SAMPLE_LOG2: u32 = 6;

/// GUEST_RIP's flags: the ISA (1 VMX, 2 SVM) above the exit reason's basic code (VMX: the low
/// 16 bits); None for codes of 0x1000 and above (never sampled).
#[inline(always)]
pub fn rip_flags(isa: u32, reason: u32) -> Option<u16> {
    let base = if isa == crate::ISA_VMX {
        reason & 0xffff
    } else {
        reason
    };
    (base < 0x1000 && isa < 16).then_some(((isa as u16) << 12) | base as u16)
}

/// (isa, basic reason code) of GUEST_RIP's flags.
pub fn rip_reason(flags: u16) -> (u32, u32) {
    (u32::from(flags >> 12), u32::from(flags & 0xfff))
}

/// Whether the exit at `now_ns` is one whose RIP is sampled: a multiplicative hash of the
/// timestamp's bits, so coarse clocks (low bits constant) still sample about one in 2^N.
#[inline(always)]
pub fn rip_sampled(now_ns: u64) -> bool {
    let h = (now_ns ^ (now_ns >> 23)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    h >> (64 - RIP_SAMPLE_LOG2) == 0
}

/// MSR_WRITE flags for Hyper-V MSR classes, decoded in kernel from the written value.
pub const MSRF_SINT: u16 = 0x100; // | AutoEOI (bit 17) << 1 | masked (bit 16)
pub const MSRF_STIMER_CONFIG: u16 = 0x200; // | direct (bit 12)

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EvKey {
    pub tgid: u32,
    pub kind: u16,
    pub flags: u16,
    pub a: u64,
}

/// A slot of the kernel's RIPS array: a sampled guest RIP's key (kind GUEST_RIP) and how many
/// exits were sampled there. The key is written before the slot is published in RIP_INDEX and
/// the count only after; a free slot is all zero. Mapped by userspace, which reads the slots
/// with a count.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RipSlot {
    pub key: EvKey,
    pub count: u64,
}

/// Entries of RIPS (and of RIP_INDEX and FREE_RIPS).
pub const RIP_SLOTS: u32 = 4096;

/// Key of the kernel's EVIDENCE map: an [`EvKey`] per thread that bumped it. Each key then
/// has one writer (a thread runs on one CPU at a time and programs do not nest on a CPU), so
/// plain adds are exact without atomic instructions, which stable Rust does not offer on the
/// BPF target; and the map's size follows the threads, not the host's CPU count. Userspace
/// sums a key over its threads.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ThreadEvKey {
    pub tid: u32,
    /// Zero: padding is part of a hash key.
    pub pad: u32,
    pub key: EvKey,
}

/// A key just added to EVIDENCE (`map` 0) or RIPS (`map` 1, its `key.key` the RIPS key), as
/// the kernel tells the sampler through the `NEW_KEYS` ring buffer.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NewKey {
    pub map: u32,
    pub pad: u32,
    pub key: ThreadEvKey,
}

pub const NEW_KEY_EVIDENCE: u32 = 0;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvValue {
    pub count: u64,
    pub sum: u64,
    pub last: u64,
}

/// Where a field sits in a tracepoint record; size 0 = absent on this kernel.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FieldSpec {
    pub offset: u16,
    pub size: u16,
}

/// Slots of the EV_FIELDS global, filled from the running kernel's format files.
pub mod f {
    pub const MSR_WRITE: usize = 0;
    pub const MSR_ECX: usize = 1;
    pub const MSR_DATA: usize = 2;
    pub const PIO_RW: usize = 3;
    pub const PIO_PORT: usize = 4;
    pub const PIO_SIZE: usize = 5;
    pub const MMIO_TYPE: usize = 6;
    pub const MMIO_LEN: usize = 7;
    pub const MMIO_GPA: usize = 8;
    pub const HC_CODE: usize = 9;
    pub const HC_FAST: usize = 10;
    pub const INH_REASON: usize = 11;
    pub const INH_SET: usize = 12;
    pub const INH_MASK: usize = 13;
    pub const SYNIC_MSR: usize = 14;
    pub const SYNIC_DATA: usize = 15;
    pub const SYNIC_HOST: usize = 16;
    pub const STEXP_TIMER: usize = 17;
    pub const STEXP_DIRECT: usize = 18;
    pub const STCFG_TIMER: usize = 19;
    pub const STCFG_CONFIG: usize = 20;
    pub const EOI_VECTOR: usize = 21;
    pub const PVEOI_VECTOR: usize = 22;
    pub const IPI_ICR: usize = 23;
    pub const WAKE_NS: usize = 24;
    pub const WAKE_WAITED: usize = 25;
    pub const WAKE_VALID: usize = 26;
    pub const HPOLL_GROW: usize = 27;
    pub const HPOLL_NEW: usize = 28;
    pub const COUNT: usize = 29;
}

/// (slot, event, field name) for every slot: the loader's table.
pub const FIELD_SOURCES: [(usize, &str, &str); f::COUNT] = [
    (f::MSR_WRITE, "kvm_msr", "write"),
    (f::MSR_ECX, "kvm_msr", "ecx"),
    (f::MSR_DATA, "kvm_msr", "data"),
    (f::PIO_RW, "kvm_pio", "rw"),
    (f::PIO_PORT, "kvm_pio", "port"),
    (f::PIO_SIZE, "kvm_pio", "size"),
    (f::MMIO_TYPE, "kvm_mmio", "type"),
    (f::MMIO_LEN, "kvm_mmio", "len"),
    (f::MMIO_GPA, "kvm_mmio", "gpa"),
    (f::HC_CODE, "kvm_hv_hypercall", "code"),
    (f::HC_FAST, "kvm_hv_hypercall", "fast"),
    (f::INH_REASON, "kvm_apicv_inhibit_changed", "reason"),
    (f::INH_SET, "kvm_apicv_inhibit_changed", "set"),
    (f::INH_MASK, "kvm_apicv_inhibit_changed", "inhibits"),
    (f::SYNIC_MSR, "kvm_hv_synic_set_msr", "msr"),
    (f::SYNIC_DATA, "kvm_hv_synic_set_msr", "data"),
    (f::SYNIC_HOST, "kvm_hv_synic_set_msr", "host"),
    (f::STEXP_TIMER, "kvm_hv_stimer_expiration", "timer_index"),
    (f::STEXP_DIRECT, "kvm_hv_stimer_expiration", "direct"),
    (f::STCFG_TIMER, "kvm_hv_stimer_set_config", "timer_index"),
    (f::STCFG_CONFIG, "kvm_hv_stimer_set_config", "config"),
    (f::EOI_VECTOR, "kvm_eoi", "vector"),
    (f::PVEOI_VECTOR, "kvm_pv_eoi", "vector"),
    (f::IPI_ICR, "kvm_apic_ipi", "icr_low"),
    (f::WAKE_NS, "kvm_vcpu_wakeup", "ns"),
    (f::WAKE_WAITED, "kvm_vcpu_wakeup", "waited"),
    (f::WAKE_VALID, "kvm_vcpu_wakeup", "valid"),
    (f::HPOLL_GROW, "kvm_halt_poll_ns", "grow"),
    (f::HPOLL_NEW, "kvm_halt_poll_ns", "new"),
];

/// Evidence programs: (program name, kvm event). Each attaches only if its event exists and
/// all of its fields were found; a missing one degrades the advice, never the tool.
pub const PROGRAMS: [(&str, &str); 13] = [
    ("ev_msr", "kvm_msr"),
    ("ev_pio", "kvm_pio"),
    ("ev_mmio", "kvm_mmio"),
    ("ev_hv_hypercall", "kvm_hv_hypercall"),
    ("ev_apicv_inhibit", "kvm_apicv_inhibit_changed"),
    ("ev_synic_msr", "kvm_hv_synic_set_msr"),
    ("ev_stimer_expire", "kvm_hv_stimer_expiration"),
    ("ev_stimer_config", "kvm_hv_stimer_set_config"),
    ("ev_eoi", "kvm_eoi"),
    ("ev_pv_eoi", "kvm_pv_eoi"),
    ("ev_apic_ipi", "kvm_apic_ipi"),
    ("ev_vcpu_wakeup", "kvm_vcpu_wakeup"),
    ("ev_halt_poll", "kvm_halt_poll_ns"),
];

/// Position of evidence program `name` in [`PROGRAMS`]: its run counter is COUNTERS slot
/// `counter::EV_RUNS` + this. A name not in the list does not compile where it is used in a
/// const.
pub const fn program_index(name: &str) -> u32 {
    let mut i = 0;
    while i < PROGRAMS.len() {
        let (a, b) = (PROGRAMS[i].0.as_bytes(), name.as_bytes());
        if a.len() == b.len() {
            let mut j = 0;
            while j < a.len() && a[j] == b[j] {
                j += 1;
            }
            if j == a.len() {
                return i as u32;
            }
        }
        i += 1;
    }
    panic!("not an evidence program")
}

/// Flags of an MSR write, from the MSR index and the value written (SINTx AutoEOI/masked,
/// stimer config direct mode): shared by the kernel program and host-side tests.
#[inline(always)]
pub fn msr_write_flags(msr: u32, data: u64) -> u16 {
    if (0x4000_0090..=0x4000_009f).contains(&msr) {
        MSRF_SINT | (((data >> 17) & 1) as u16) << 1 | ((data >> 16) & 1) as u16
    } else if (0x4000_00b0..=0x4000_00b7).contains(&msr) && msr & 1 == 0 {
        MSRF_STIMER_CONFIG | ((data >> 12) & 1) as u16
    } else {
        0
    }
}
