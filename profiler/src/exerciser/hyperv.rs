//! Hyper-V mode of the exerciser: the VMM exposes KVM's Hyper-V CPUID leaves
//! (KVM_GET_SUPPORTED_HV_CPUID → KVM_SET_CPUID2), an in-kernel irqchip and SynIC
//! (KVM_ENABLE_CAP KVM_CAP_HYPERV_SYNIC), and the guest (guest.rs) identifies itself as Windows 11
//! through GUEST_OS_ID, enables SynIC with an AutoEOI SINT, arms synthetic timer 0 in message
//! mode, and writes the synthetic EOI MSR in a loop: the MSR pattern of an enlightened Windows
//! guest whose SynIC AutoEOI would inhibit APICv (KB rule R07, fingerprints P2/P3).

use std::fs::File;
use std::os::fd::OwnedFd;

use anyhow::{bail, Result};

use super::kvm::{self, KvmCpuid2, KvmCpuidEntry2, KvmEnableCap, Vm, VmSetup, CPUID_ENTRIES};

// Hyper-V MSRs (TLFS; include/hyperv/hvgdk_mini.h).
pub const GUEST_OS_ID: u32 = 0x4000_0000;
pub const TIME_REF_COUNT: u32 = 0x4000_0020;
pub const EOI: u32 = 0x4000_0070;
pub const SCONTROL: u32 = 0x4000_0080;
pub const SIEFP: u32 = 0x4000_0082;
pub const SIMP: u32 = 0x4000_0083;
pub const EOM: u32 = 0x4000_0084;
pub const SINT0: u32 = 0x4000_0090;
pub const STIMER0_CONFIG: u32 = 0x4000_00b0;
pub const STIMER0_COUNT: u32 = 0x4000_00b1;
pub const fn sint(n: u8) -> u32 {
    SINT0 + n as u32
}
pub const PAGE_ENABLE: u64 = 1;
pub const SCONTROL_ENABLE: u64 = 1;
pub const SINT_MASKED: u64 = 1 << 16;
pub const SINT_AUTO_EOI: u64 = 1 << 17;
pub const STIMER_ENABLE: u64 = 1 << 0;
pub const STIMER_AUTO_ENABLE: u64 = 1 << 3;
pub const STIMER_DIRECT: u64 = 1 << 12;
pub const STIMER_SINTX_SHIFT: u32 = 16;

/// GUEST_OS_ID of Windows 11 23H2 (TLFS "Guest OS Identity" for proprietary OSes): bit 63 = 0
/// (closed source), 62:48 vendor 0x0001 Microsoft, 47:40 OS id 4 (Windows NT), 39:32 major 10,
/// 31:24 minor 0, 23:16 service version 0, 15:0 build 22631.
pub const WINDOWS_11_GUEST_OS_ID: u64 = guest_os_id(0x0001, 4, 10, 0, 0, 22631);

pub const fn guest_os_id(vendor: u16, os: u8, major: u8, minor: u8, sp: u8, build: u16) -> u64 {
    (vendor as u64) << 48
        | (os as u64) << 40
        | (major as u64) << 32
        | (minor as u64) << 24
        | (sp as u64) << 16
        | build as u64
}

/// The guest's `out` that ends a batch (after the stimer woke it from `hlt`).
pub const DONE_PORT: u16 = 0x11;

const KVM_CAP_IRQCHIP: u32 = 0;
const KVM_CAP_HYPERV: u32 = 44;
const KVM_CAP_HYPERV_SYNIC: u32 = 123;
const KVM_CAP_HYPERV_CPUID: u32 = 167;
const KVM_CAP_SYS_HYPERV_CPUID: u32 = 191;
pub const KVM_EXIT_HYPERV_SYNIC: u32 = 1;
const HYPERV_LEAVES: std::ops::RangeInclusive<u32> = 0x4000_0000..=0x4000_00ff;
const CPUID_1_ECX_HYPERVISOR: u32 = 1 << 31;
const APIC_SPIV: usize = 0xf0;
const IRET: u8 = 0xcf;

/// Where the Hyper-V guest keeps its pages, vector and timer (all below 64 KiB, real mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HvLayout {
    pub simp_gpa: u64,
    pub siefp_gpa: u64,
    /// SINT used for the stimer's messages (not 0: KVM disables a timer with SINTx 0).
    pub sint: u8,
    /// Interrupt vector of that SINT (≥ 16, as SynIC requires).
    pub vector: u8,
    /// Handler address (a lone `iret`), entered through the real-mode IVT.
    pub handler_gpa: u64,
    pub stack_top: u64,
    /// One-shot stimer delay after the loop, in 100 ns reference-time units.
    pub stimer_delay_100ns: u32,
}

impl Default for HvLayout {
    fn default() -> Self {
        HvLayout {
            simp_gpa: 0x3000,
            siefp_gpa: 0x4000,
            sint: 2,
            vector: 0x50,
            handler_gpa: 0x0f00,
            stack_top: 0x8000,
            stimer_delay_100ns: 1000,
        }
    }
}

/// MSR exits (SVM 0x7c / VMX 31+32) one batch of `iters` makes: 6 + 2·iters + 3.
pub const fn msr_exits_per_batch(iters: u64) -> u64 {
    6 + 2 * iters + 3
}

/// SynIC MSR writes that KVM reports to the VMM as KVM_EXIT_HYPERV (SYNIC), per batch.
pub const SYNIC_EXITS_PER_BATCH: u64 = 3;

/// Fails with a one-line reason when this host's KVM cannot run the Hyper-V guest.
pub(super) fn check_support(kvm: &File) -> Result<()> {
    if kvm::check_extension(kvm, KVM_CAP_HYPERV_SYNIC) <= 0
        || kvm::check_extension(kvm, KVM_CAP_HYPERV) <= 0
    {
        bail!("this host's KVM has no Hyper-V support (KVM_CAP_HYPERV_SYNIC); it needs CONFIG_KVM_HYPERV=y");
    }
    if kvm::check_extension(kvm, KVM_CAP_IRQCHIP) <= 0 {
        bail!("this host's KVM has no in-kernel irqchip (KVM_CAP_IRQCHIP), which SynIC needs");
    }
    Ok(())
}

/// KVM's supported Hyper-V CPUID leaves, from the system fd (Linux ≥ 5.11) or the vCPU fd.
fn supported_hv_cpuid(kvm: &File, vcpu: &OwnedFd) -> Result<Vec<KvmCpuidEntry2>> {
    let mut hv = KvmCpuid2::new_boxed();
    let what = "KVM_GET_SUPPORTED_HV_CPUID";
    if kvm::check_extension(kvm, KVM_CAP_SYS_HYPERV_CPUID) > 0 {
        kvm::ioctl(kvm, kvm::KVM_GET_SUPPORTED_HV_CPUID, hv.as_arg(), what)?;
    } else if kvm::check_extension(kvm, KVM_CAP_HYPERV_CPUID) > 0 {
        kvm::ioctl(vcpu, kvm::KVM_GET_SUPPORTED_HV_CPUID, hv.as_arg(), what)?;
    } else {
        bail!("this host's KVM cannot list its Hyper-V CPUID leaves (no KVM_CAP_SYS_HYPERV_CPUID / KVM_CAP_HYPERV_CPUID)");
    }
    Ok(hv.used().to_vec())
}

/// Replaces KVM's own paravirtual leaves (0x40000000–0x400000ff, "KVMKVMKVM") by the Hyper-V
/// ones and sets the hypervisor-present bit (CPUID.1:ECX[31]).
pub(super) fn merge_cpuid(base: &mut KvmCpuid2, hv: &[KvmCpuidEntry2]) -> Result<()> {
    if !hv
        .iter()
        .any(|e| e.function == 0x4000_0001 && e.regs[0] == u32::from_le_bytes(*b"Hv#1"))
    {
        bail!(
            "KVM_GET_SUPPORTED_HV_CPUID returned no Hyper-V interface leaf 0x40000001 (\"Hv#1\")"
        );
    }
    let mut entries: Vec<KvmCpuidEntry2> = base
        .used()
        .iter()
        .filter(|e| !HYPERV_LEAVES.contains(&e.function))
        .copied()
        .collect();
    for e in entries.iter_mut().filter(|e| e.function == 1) {
        e.regs[2] |= CPUID_1_ECX_HYPERVISOR;
    }
    entries.extend_from_slice(hv);
    if entries.len() > CPUID_ENTRIES {
        bail!(
            "{} CPUID entries with the Hyper-V leaves, more than {CPUID_ENTRIES}",
            entries.len()
        );
    }
    base.entries[..entries.len()].copy_from_slice(&entries);
    base.nent = entries.len() as u32;
    Ok(())
}

/// The Hyper-V [`VmSetup`].
pub(super) struct HvSetup(pub HvLayout);

impl VmSetup for HvSetup {
    fn before_vcpu(&self, kvm: &File, vm: &OwnedFd) -> Result<()> {
        check_support(kvm)?;
        kvm::ioctl(vm, kvm::KVM_CREATE_IRQCHIP, 0, "KVM_CREATE_IRQCHIP")?;
        Ok(())
    }

    fn cpuid(&self, kvm: &File, vcpu: &OwnedFd, cpuid: &mut KvmCpuid2) -> Result<bool> {
        let hv = supported_hv_cpuid(kvm, vcpu)?;
        merge_cpuid(cpuid, &hv)?;
        Ok(true)
    }

    fn after_cpuid(&self, vm: &Vm) -> Result<()> {
        let mut cap = KvmEnableCap {
            cap: KVM_CAP_HYPERV_SYNIC,
            flags: 0,
            args: [0; 4],
            pad: [0; 64],
        };
        let arg = &mut cap as *mut KvmEnableCap as libc::c_ulong;
        kvm::ioctl(
            &vm.vcpu,
            kvm::KVM_ENABLE_CAP,
            arg,
            "KVM_ENABLE_CAP(KVM_CAP_HYPERV_SYNIC)",
        )?;
        // Software-enable the local APIC (SVR bit 8), or SynIC interrupts are never accepted.
        let mut lapic = [0u8; kvm::LAPIC_REGS];
        let arg = lapic.as_mut_ptr() as libc::c_ulong;
        kvm::ioctl(&vm.vcpu, kvm::KVM_GET_LAPIC, arg, "KVM_GET_LAPIC")?;
        lapic[APIC_SPIV..APIC_SPIV + 4].copy_from_slice(&0x1ffu32.to_le_bytes());
        kvm::ioctl(&vm.vcpu, kvm::KVM_SET_LAPIC, arg, "KVM_SET_LAPIC")?;
        // Real-mode IVT entry for the SINT vector → a lone `iret` (AutoEOI: no EOI needed).
        let l = &self.0;
        let (off, seg) = (l.handler_gpa as u16, 0u16);
        let ivt = [off.to_le_bytes(), seg.to_le_bytes()].concat();
        vm.mem.write(usize::from(l.vector) * 4, &ivt)?;
        vm.mem.write(l.handler_gpa as usize, &[IRET])?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(function: u32, regs: [u32; 4]) -> KvmCpuidEntry2 {
        KvmCpuidEntry2 {
            function,
            regs,
            ..Default::default()
        }
    }

    #[test]
    fn windows_11_guest_os_id_encoding() {
        assert_eq!(WINDOWS_11_GUEST_OS_ID, 0x0001_040a_0000_5867);
        assert_eq!(WINDOWS_11_GUEST_OS_ID >> 48, 0x0001, "vendor Microsoft");
        assert_eq!((WINDOWS_11_GUEST_OS_ID >> 40) & 0xff, 4, "OS id NT");
        assert_eq!(WINDOWS_11_GUEST_OS_ID >> 63, 0, "not open source");
        assert_eq!(WINDOWS_11_GUEST_OS_ID & 0xffff, 22631);
    }

    #[test]
    fn merge_replaces_kvm_leaves_and_sets_hypervisor_bit() {
        let mut base = KvmCpuid2::new_boxed();
        let kvm_sig = u32::from_le_bytes(*b"KVMK");
        let own = [
            leaf(0, [0xd, 0, 0, 0]),
            leaf(1, [0, 0, 0, 0]),
            leaf(0x4000_0000, [0x4000_0001, kvm_sig, 0, 0]),
            leaf(0x4000_0001, [0x7ff, 0, 0, 0]),
        ];
        base.entries[..own.len()].copy_from_slice(&own);
        base.nent = own.len() as u32;
        let hv = [
            leaf(0x4000_0000, [0x4000_000a, 1, 2, 3]),
            leaf(0x4000_0001, [u32::from_le_bytes(*b"Hv#1"), 0, 0, 0]),
            leaf(0x4000_0003, [0x2ff, 0, 0, 0]),
        ];
        merge_cpuid(&mut base, &hv).unwrap();
        let got = base.used();
        assert_eq!(got.len(), 5);
        assert!(
            !got.iter().any(|e| e.regs[1] == kvm_sig),
            "KVM signature leaf kept"
        );
        assert_eq!(
            got.iter().find(|e| e.function == 1).unwrap().regs[2],
            CPUID_1_ECX_HYPERVISOR
        );
        assert_eq!(&got[2..], &hv);
        let err = merge_cpuid(&mut base, &hv[..1]).unwrap_err().to_string();
        assert!(err.contains("Hv#1"), "{err}");
    }

    #[test]
    fn layout_fits_real_mode() {
        let l = HvLayout::default();
        assert!(l.vector >= 16 && l.sint != 0 && l.sint < 16);
        assert!(l.simp_gpa.is_multiple_of(4096) && l.siefp_gpa.is_multiple_of(4096));
        assert!(l.simp_gpa + 4096 <= kvm::MEM_SIZE as u64 && l.stack_top <= 0x1_0000);
        assert!(l.handler_gpa < kvm::CODE_GPA);
        assert_eq!(sint(2), 0x4000_0092);
    }
}
