//! Names for evidence subjects (MSRs, ports, guest-physical addresses, hypercalls, APICv
//! inhibit bits, host vectors), so the TUI and reports show names, not only hex.
//! Sources: KB "Tables" (docs/enlightenment-advice.md), the Hyper-V TLFS, asm/apicdef.h,
//! asm/irq_vectors.h, asm/kvm_host.h.

/// Hyper-V synthetic MSRs (TLFS; include/hyperv/hvgdk_mini.h).
pub const HV_MSRS: &[(u32, &str)] = &[
    (0x4000_0000, "HV_GUEST_OS_ID"),
    (0x4000_0001, "HV_HYPERCALL"),
    (0x4000_0002, "HV_VP_INDEX"),
    (0x4000_0003, "HV_RESET"),
    (0x4000_0010, "HV_VP_RUNTIME"),
    (0x4000_0020, "HV_TIME_REF_COUNT"),
    (0x4000_0021, "HV_REFERENCE_TSC"),
    (0x4000_0022, "HV_TSC_FREQUENCY"),
    (0x4000_0023, "HV_APIC_FREQUENCY"),
    (0x4000_0070, "HV_EOI"),
    (0x4000_0071, "HV_ICR"),
    (0x4000_0072, "HV_TPR"),
    (0x4000_0073, "HV_VP_ASSIST_PAGE"),
    (0x4000_0080, "HV_SCONTROL"),
    (0x4000_0081, "HV_SVERSION"),
    (0x4000_0082, "HV_SIEFP"),
    (0x4000_0083, "HV_SIMP"),
    (0x4000_0084, "HV_EOM"),
    (0x4000_0106, "HV_REENLIGHTENMENT_CONTROL"),
    (0x4000_0107, "HV_TSC_EMULATION_CONTROL"),
    (0x4000_0108, "HV_TSC_EMULATION_STATUS"),
    (0x4000_00f0, "HV_SYNDBG_CONTROL"),
];

/// KVM paravirtual MSRs (0x4b564d00–08) and the legacy kvmclock pair.
pub const KVM_PV_MSRS: &[(u32, &str)] = &[
    (0x11, "KVM_WALL_CLOCK"),
    (0x12, "KVM_SYSTEM_TIME"),
    (0x4b56_4d00, "KVM_WALL_CLOCK_NEW"),
    (0x4b56_4d01, "KVM_SYSTEM_TIME_NEW"),
    (0x4b56_4d02, "KVM_ASYNC_PF_EN"),
    (0x4b56_4d03, "KVM_STEAL_TIME"),
    (0x4b56_4d04, "KVM_PV_EOI_EN"),
    (0x4b56_4d05, "KVM_POLL_CONTROL"),
    (0x4b56_4d06, "KVM_ASYNC_PF_INT"),
    (0x4b56_4d07, "KVM_ASYNC_PF_ACK"),
    (0x4b56_4d08, "KVM_MIGRATION_CONTROL"),
];

/// Architectural MSRs a guest commonly touches.
pub const COMMON_MSRS: &[(u32, &str)] = &[
    (0x10, "IA32_TSC"),
    (0x1b, "IA32_APIC_BASE"),
    (0x3a, "IA32_FEATURE_CONTROL"),
    (0x48, "IA32_SPEC_CTRL"),
    (0x49, "IA32_PRED_CMD"),
    (0x8b, "IA32_UCODE_REV"),
    (0xe7, "IA32_MPERF"),
    (0xe8, "IA32_APERF"),
    (0x10a, "IA32_ARCH_CAPABILITIES"),
    (0x10b, "IA32_FLUSH_CMD"),
    (0x174, "IA32_SYSENTER_CS"),
    (0x175, "IA32_SYSENTER_ESP"),
    (0x176, "IA32_SYSENTER_EIP"),
    (0x1a0, "IA32_MISC_ENABLE"),
    (0x1d9, "IA32_DEBUGCTL"),
    (0x277, "IA32_PAT"),
    (0x38d, "IA32_FIXED_CTR_CTRL"),
    (0x38f, "IA32_PERF_GLOBAL_CTRL"),
    (0x390, "IA32_PERF_GLOBAL_OVF_CTRL"),
    (0x6e0, "IA32_TSC_DEADLINE"),
    (0xc000_0080, "EFER"),
    (0xc000_0081, "STAR"),
    (0xc000_0082, "LSTAR"),
    (0xc000_0083, "CSTAR"),
    (0xc000_0084, "SYSCALL_MASK"),
    (0xc000_0100, "FS_BASE"),
    (0xc000_0101, "GS_BASE"),
    (0xc000_0102, "KERNEL_GS_BASE"),
    (0xc000_0103, "TSC_AUX"),
];

/// xAPIC register offsets (asm/apicdef.h); x2APIC MSR = 0x800 + (offset >> 4).
pub const APIC_REGS: &[(u32, &str)] = &[
    (0x020, "ID"),
    (0x030, "VERSION"),
    (0x080, "TPR"),
    (0x0a0, "PPR"),
    (0x0b0, "EOI"),
    (0x0d0, "LDR"),
    (0x0e0, "DFR"),
    (0x0f0, "SVR"),
    (0x280, "ESR"),
    (0x2f0, "LVT_CMCI"),
    (0x300, "ICR"),
    (0x310, "ICR2"),
    (0x320, "LVT_TIMER"),
    (0x330, "LVT_THERMAL"),
    (0x340, "LVT_PMI"),
    (0x350, "LVT_LINT0"),
    (0x360, "LVT_LINT1"),
    (0x370, "LVT_ERROR"),
    (0x380, "TMICT"),
    (0x390, "TMCCT"),
    (0x3e0, "TDCR"),
    (0x3f0, "SELF_IPI"),
];

fn find(table: &[(u32, &'static str)], v: u64) -> Option<&'static str> {
    let v = u32::try_from(v).ok()?;
    table.iter().find(|(c, _)| *c == v).map(|(_, n)| *n)
}

/// xAPIC register name at `offset` (ISR/TMR/IRR banks included).
pub fn apic_reg_name(offset: u64) -> Option<String> {
    if let Some(n) = find(APIC_REGS, offset) {
        return Some(n.to_string());
    }
    let bank = |base: u64, name: &str| {
        (base..base + 0x80)
            .contains(&offset)
            .then(|| format!("{name}{}", (offset - base) >> 4))
    };
    bank(0x100, "ISR")
        .or_else(|| bank(0x180, "TMR"))
        .or_else(|| bank(0x200, "IRR"))
}

/// Name of an MSR index: Hyper-V, x2APIC, KVM PV, architectural.
pub fn msr_name(idx: u64) -> Option<String> {
    if let Some(n) = find(HV_MSRS, idx)
        .or_else(|| find(KVM_PV_MSRS, idx))
        .or_else(|| find(COMMON_MSRS, idx))
    {
        return Some(n.to_string());
    }
    match idx {
        0x4000_0090..=0x4000_009f => Some(format!("HV_SINT{}", idx - 0x4000_0090)),
        0x4000_00b0..=0x4000_00b7 => {
            let kind = if idx & 1 == 0 { "CONFIG" } else { "COUNT" };
            Some(format!("HV_STIMER{}_{kind}", (idx - 0x4000_00b0) / 2))
        }
        0x4000_0100..=0x4000_0104 => Some(format!("HV_CRASH_P{}", idx - 0x4000_0100)),
        0x4000_0105 => Some("HV_CRASH_CTL".into()),
        0x800..=0x83f => apic_reg_name((idx - 0x800) << 4).map(|r| format!("X2APIC_{r}")),
        0x186..=0x18d => Some(format!("IA32_PERFEVTSEL{}", idx - 0x186)),
        0xc1..=0xc8 => Some(format!("IA32_PMC{}", idx - 0xc1)),
        0x309..=0x30b => Some(format!("IA32_FIXED_CTR{}", idx - 0x309)),
        _ => None,
    }
}

/// Well-known x86 I/O ports of QEMU pc/q35 machines.
pub fn port_name(port: u64) -> Option<&'static str> {
    Some(match port {
        0x20 | 0x21 => "PIC master",
        0xa0 | 0xa1 => "PIC slave",
        0x40 => "PIT ch0",
        0x41 => "PIT ch1",
        0x42 => "PIT ch2",
        0x43 => "PIT mode",
        0x61 => "PIT gate/NMI status",
        0x60 | 0x64 => "i8042",
        0x70 => "RTC index",
        0x71 => "RTC data",
        0x80 => "POST/delay",
        0x92 => "A20 gate",
        0x1ce | 0x1cf => "Bochs VBE",
        0x2f8..=0x2ff => "COM2",
        0x3c0..=0x3df => "VGA",
        0x3f8..=0x3ff => "COM1",
        0x402 => "debugcon",
        0x4d0 | 0x4d1 => "ELCR",
        0x510 | 0x511 => "fw_cfg",
        0x514..=0x51b => "fw_cfg DMA",
        0x600 | 0x601 => "ACPI PM1a_EVT (q35)",
        0x604 | 0x605 => "ACPI PM1a_CNT (q35)",
        0x608 => "ACPI PM timer (q35/pc)",
        0xb000 | 0xb001 => "ACPI PM1a_EVT (PIIX4)",
        0xb004 | 0xb005 => "ACPI PM1a_CNT (PIIX4)",
        0xb008 => "ACPI PM timer (PIIX4/OVMF)",
        0xcf8 => "PCI config address",
        0xcf9 => "reset control",
        0xcfc..=0xcff => "PCI config data",
        _ => return None,
    })
}

/// True for the ACPI PM timer ports (R03).
pub fn is_pm_timer_port(port: u64) -> bool {
    matches!(port, 0x608 | 0xb008)
}

pub const HPET_BASE: u64 = 0xfed0_0000;
pub const HPET_END: u64 = 0xfed0_03ff;
pub const IOAPIC_BASE: u64 = 0xfec0_0000;
pub const LAPIC_BASE: u64 = 0xfee0_0000;

/// Where a guest-physical MMIO address falls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GpaRegion {
    /// Offset into the HPET block.
    Hpet(u64),
    Lapic(u64),
    Ioapic(u64),
    Other(u64),
}

pub fn gpa_region(gpa: u64) -> GpaRegion {
    match gpa {
        HPET_BASE..=HPET_END => GpaRegion::Hpet(gpa - HPET_BASE),
        LAPIC_BASE..=0xfee0_0fff => GpaRegion::Lapic(gpa - LAPIC_BASE),
        IOAPIC_BASE..=0xfec0_0fff => GpaRegion::Ioapic(gpa - IOAPIC_BASE),
        _ => GpaRegion::Other(gpa),
    }
}

/// HPET register at `off` (0xF0 = main counter: reads mean HPET as clock source; timer
/// comparators at 0x108 + 0x20n: writes mean HPET as clock-event source — R01).
pub fn hpet_reg_name(off: u64) -> String {
    match off {
        0x000..=0x007 => "GCAP_ID".into(),
        0x010..=0x017 => "CONFIG".into(),
        0x020..=0x027 => "ISR".into(),
        0x0f0..=0x0f7 => "MAIN_COUNTER".into(),
        0x100..=0x3ff => {
            let n = (off - 0x100) / 0x20;
            match (off - 0x100) % 0x20 {
                0x00..=0x07 => format!("T{n}_CONFIG"),
                0x08..=0x0f => format!("T{n}_COMPARATOR"),
                _ => format!("T{n}_FSB_ROUTE"),
            }
        }
        _ => format!("{off:#x}"),
    }
}

/// "HPET+0xf0 MAIN_COUNTER", "LAPIC+0x300 ICR", "IOAPIC+0x10", "0xfebf1000".
pub fn gpa_label(gpa: u64) -> String {
    match gpa_region(gpa) {
        GpaRegion::Hpet(o) => format!("HPET+{o:#x} {}", hpet_reg_name(o)),
        GpaRegion::Lapic(o) => match apic_reg_name(o) {
            Some(n) => format!("LAPIC+{o:#x} {n}"),
            None => format!("LAPIC+{o:#x}"),
        },
        GpaRegion::Ioapic(o) => {
            let n = match o {
                0x00 => " IOREGSEL",
                0x10 => " IOWIN",
                0x40 => " EOI",
                _ => "",
            };
            format!("IOAPIC+{o:#x}{n}")
        }
        GpaRegion::Other(g) => format!("{g:#x}"),
    }
}

/// Hyper-V hypercall codes (TLFS; `code & 0xffff`).
pub const HYPERCALLS: &[(u32, &str)] = &[
    (0x0001, "HvSwitchVirtualAddressSpace"),
    (0x0002, "HvFlushVirtualAddressSpace"),
    (0x0003, "HvFlushVirtualAddressList"),
    (0x0008, "HvNotifyLongSpinWait"),
    (0x000b, "HvSendSyntheticClusterIpi"),
    (0x0013, "HvFlushVirtualAddressSpaceEx"),
    (0x0014, "HvFlushVirtualAddressListEx"),
    (0x0015, "HvSendSyntheticClusterIpiEx"),
    (0x005c, "HvPostMessage"),
    (0x005d, "HvSignalEvent"),
    (0x007e, "HvRetargetDeviceInterrupt"),
    (0x00af, "HvFlushGuestPhysicalAddressSpace"),
    (0x00b0, "HvFlushGuestPhysicalAddressList"),
    (0x8001, "HvExtCallQueryCapabilities"),
    (0x8002, "HvExtCallGetBootZeroedMemory"),
];

pub fn hypercall_name(code: u64) -> Option<&'static str> {
    find(HYPERCALLS, code & 0xffff)
}

/// Hypercalls that mean the guest uses hv-tlbflush (KB "which enlightenments").
pub const TLBFLUSH_CALLS: [u64; 4] = [0x2, 0x3, 0x13, 0x14];
/// Hypercalls that mean the guest uses hv-ipi.
pub const IPI_CALLS: [u64; 2] = [0xb, 0x15];

/// Host IDT vectors (asm/irq_vectors.h): what an EXTERNAL_INTERRUPT exit was for.
pub fn vector_name(v: u64) -> Option<&'static str> {
    Some(match v {
        0xff => "SPURIOUS_APIC",
        0xfe => "ERROR_APIC",
        0xfd => "RESCHEDULE (KVM kick)",
        0xfc => "CALL_FUNCTION",
        0xfb => "CALL_FUNCTION_SINGLE",
        0xfa => "THERMAL_APIC",
        0xf9 => "THRESHOLD_APIC",
        0xf8 => "REBOOT",
        0xf7 => "X86_PLATFORM_IPI",
        0xf6 => "IRQ_WORK",
        0xf4 => "DEFERRED_ERROR",
        0xf3 => "HYPERVISOR_CALLBACK",
        0xf2 => "POSTED_INTR",
        0xf1 => "POSTED_INTR_WAKEUP",
        0xf0 => "POSTED_INTR_NESTED",
        0xef => "MANAGED_IRQ_SHUTDOWN",
        0xec => "LOCAL_TIMER",
        _ => return None,
    })
}

/// APICv inhibit reason bits of Linux 6.3+ (asm/kvm_host.h), the fallback when the running
/// kernel's kvm_apicv_inhibit_changed format cannot be read.
pub const INHIBITS_6_3: &[&str] = &[
    "DISABLED",
    "HYPERV",
    "ABSENT",
    "BLOCKIRQ",
    "PHYSICAL_ID_ALIASED",
    "APIC_ID_MODIFIED",
    "APIC_BASE_MODIFIED",
    "NESTED",
    "IRQWIN",
    "PIT_REINJ",
    "SEV",
    "LOGICAL_ID_ALIASED",
    "PHYSICAL_ID_TOO_BIG",
];

/// APICv inhibit bit → name. Bit numbers drift between kernels, so prefer the running
/// kernel's print fmt (KB: "read the format at run time").
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InhibitNames {
    pub names: Vec<String>,
    /// "kernel" or "built-in (6.3+)".
    pub source: String,
}

impl Default for InhibitNames {
    fn default() -> Self {
        InhibitNames {
            names: INHIBITS_6_3.iter().map(|s| s.to_string()).collect(),
            source: "built-in (6.3+)".into(),
        }
    }
}

impl InhibitNames {
    /// From the kvm_apicv_inhibit_changed format (whole file or print fmt): the order of the
    /// `APICV_INHIBIT_REASON_*` identifiers is the enum order, i.e. the bit number. Falls back
    /// to `{ (1UL << N), "NAME" }` entries with resolved numbers, then to the built-in table.
    pub fn from_format(fmt: &str) -> Self {
        const P: &str = "APICV_INHIBIT_REASON_";
        let mut names: Vec<String> = Vec::new();
        let mut rest = fmt;
        while let Some(i) = rest.find(P) {
            rest = &rest[i + P.len()..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            let n = &rest[..end];
            if !n.is_empty() && !names.iter().any(|x| x == n) {
                names.push(n.to_string());
            }
        }
        if names.is_empty() {
            names = resolved_flags(fmt);
        }
        if names.is_empty() {
            return Self::default();
        }
        InhibitNames {
            names,
            source: "kernel".into(),
        }
    }

    /// The running kernel's names (`<tracefs>/events/kvm/kvm_apicv_inhibit_changed/format`);
    /// where that prints bare numbers (before 6.3), its BTF's enum; else the built-in table.
    pub fn load(tracefs_root: &std::path::Path) -> Self {
        let from_format = std::fs::read_to_string(
            tracefs_root.join("events/kvm/kvm_apicv_inhibit_changed/format"),
        )
        .map(|f| Self::from_format(&f))
        .unwrap_or_default();
        if from_format.source == "kernel" {
            return from_format;
        }
        match super::inhibit_btf::load(std::path::Path::new("/sys/kernel/btf")) {
            Some(names) => InhibitNames {
                names,
                source: "kernel BTF".into(),
            },
            None => from_format,
        }
    }

    pub fn name(&self, bit: u64) -> String {
        usize::try_from(bit)
            .ok()
            .and_then(|b| self.names.get(b))
            .cloned()
            .unwrap_or_else(|| format!("bit {bit}"))
    }

    pub fn bit(&self, name: &str) -> Option<u64> {
        self.names.iter().position(|n| n == name).map(|b| b as u64)
    }

    /// "HYPERV|PIT_REINJ" for a mask.
    pub fn mask(&self, mask: u64) -> String {
        let v: Vec<String> = (0..64)
            .filter(|b| mask >> b & 1 == 1)
            .map(|b| self.name(b))
            .collect();
        if v.is_empty() {
            "none".into()
        } else {
            v.join("|")
        }
    }
}

/// `{ ((1UL) << (3)), "BLOCKIRQ" }` pairs of a `__print_flags` list with numeric bits.
fn resolved_flags(fmt: &str) -> Vec<String> {
    let mut out: Vec<(u32, String)> = Vec::new();
    for item in fmt.split('{').skip(1) {
        let Some(body) = item.split('}').next() else {
            continue;
        };
        let Some((expr, name)) = body.rsplit_once(',') else {
            continue;
        };
        let name = name.trim().trim_matches('"');
        let Some(v) = crate::decode::symbolic::eval(expr) else {
            continue;
        };
        if v > 0 && (v & (v - 1)) == 0 && !name.is_empty() {
            out.push((v.trailing_zeros(), name.to_string()));
        }
    }
    out.sort();
    // Only a dense 0..n list is trusted as a bit table.
    if out.iter().enumerate().all(|(i, (b, _))| *b as usize == i) {
        out.into_iter().map(|(_, n)| n).collect()
    } else {
        Vec::new()
    }
}
