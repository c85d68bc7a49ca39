//! The KVM ABI (linux/kvm.h, x86-64) and the VM/vCPU plumbing the exerciser needs.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use anyhow::{anyhow, bail, Context, Result};

pub(super) const MEM_SIZE: usize = 0x10000;
pub(super) const CODE_GPA: u64 = 0x1000;

const KVMIO: u64 = 0xAE;
const fn ioc(dir: u64, nr: u64, size: usize) -> u64 {
    (dir << 30) | ((size as u64) << 16) | (KVMIO << 8) | nr
}
const IOC_NONE: u64 = 0;
const IOC_WRITE: u64 = 1;
const IOC_READ: u64 = 2;
pub(super) const KVM_GET_API_VERSION: u64 = ioc(IOC_NONE, 0x00, 0);
pub(super) const KVM_CREATE_VM: u64 = ioc(IOC_NONE, 0x01, 0);
pub(super) const KVM_CHECK_EXTENSION: u64 = ioc(IOC_NONE, 0x03, 0);
pub(super) const KVM_GET_VCPU_MMAP_SIZE: u64 = ioc(IOC_NONE, 0x04, 0);
pub(super) const KVM_GET_SUPPORTED_CPUID: u64 = ioc(IOC_READ | IOC_WRITE, 0x05, 8);
pub(super) const KVM_CREATE_VCPU: u64 = ioc(IOC_NONE, 0x41, 0);
pub(super) const KVM_SET_USER_MEMORY_REGION: u64 = ioc(IOC_WRITE, 0x46, 32);
pub(super) const KVM_CREATE_IRQCHIP: u64 = ioc(IOC_NONE, 0x60, 0);
pub(super) const KVM_RUN: u64 = ioc(IOC_NONE, 0x80, 0);
pub(super) const KVM_GET_REGS: u64 = ioc(IOC_READ, 0x81, std::mem::size_of::<KvmRegs>());
pub(super) const KVM_SET_REGS: u64 = ioc(IOC_WRITE, 0x82, std::mem::size_of::<KvmRegs>());
pub(super) const KVM_GET_SREGS: u64 = ioc(IOC_READ, 0x83, std::mem::size_of::<KvmSregs>());
pub(super) const KVM_SET_SREGS: u64 = ioc(IOC_WRITE, 0x84, std::mem::size_of::<KvmSregs>());
pub(super) const KVM_GET_LAPIC: u64 = ioc(IOC_READ, 0x8e, LAPIC_REGS);
pub(super) const KVM_SET_LAPIC: u64 = ioc(IOC_WRITE, 0x8f, LAPIC_REGS);
pub(super) const KVM_SET_CPUID2: u64 = ioc(IOC_WRITE, 0x90, 8);
pub(super) const KVM_ENABLE_CAP: u64 = ioc(IOC_WRITE, 0xa3, std::mem::size_of::<KvmEnableCap>());
pub(super) const KVM_GET_SUPPORTED_HV_CPUID: u64 = ioc(IOC_READ | IOC_WRITE, 0xc1, 8);
const KVM_API_VERSION: i32 = 12;
pub(super) const KVM_EXIT_IO: u32 = 2;
pub(super) const KVM_EXIT_HLT: u32 = 5;
pub(super) const KVM_EXIT_HYPERV: u32 = 27;
pub(super) const KVM_RUN_EXIT_REASON_OFFSET: usize = 8;
/// Start of the exit-specific union in `struct kvm_run`.
pub(super) const KVM_RUN_UNION_OFFSET: usize = 32;
pub(super) const CPUID_ENTRIES: usize = 256;
pub(super) const LAPIC_REGS: usize = 1024;

#[repr(C)]
#[derive(Default)]
struct KvmUserspaceMemoryRegion {
    slot: u32,
    flags: u32,
    guest_phys_addr: u64,
    memory_size: u64,
    userspace_addr: u64,
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
pub(super) struct KvmRegs {
    pub gpr: [u64; 16], // rax rbx rcx rdx rsi rdi rsp rbp r8..r15
    pub rip: u64,
    pub rflags: u64,
}
pub(super) const RSP: usize = 4;
pub(super) const RDI: usize = 5;

#[repr(C)]
#[derive(Default, Clone, Copy)]
pub(super) struct KvmSegment {
    base: u64,
    limit: u32,
    selector: u16,
    type_: u8,
    present: u8,
    dpl: u8,
    db: u8,
    s: u8,
    l: u8,
    g: u8,
    avl: u8,
    unusable: u8,
    padding: u8,
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
pub(super) struct KvmDtable {
    base: u64,
    limit: u16,
    padding: [u16; 3],
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
pub(super) struct KvmSregs {
    seg: [KvmSegment; 8], // cs ds es fs gs ss tr ldt
    gdt: KvmDtable,
    idt: KvmDtable,
    cr: [u64; 5], // cr0 cr2 cr3 cr4 cr8
    efer: u64,
    apic_base: u64,
    interrupt_bitmap: [u64; 4],
}

#[repr(C)]
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub(super) struct KvmCpuidEntry2 {
    pub function: u32,
    pub index: u32,
    pub flags: u32,
    pub regs: [u32; 4], // eax ebx ecx edx
    pub padding: [u32; 3],
}

#[repr(C)]
pub(super) struct KvmCpuid2 {
    pub nent: u32,
    pub padding: u32,
    pub entries: [KvmCpuidEntry2; CPUID_ENTRIES],
}

impl KvmCpuid2 {
    pub fn new_boxed() -> Box<KvmCpuid2> {
        Box::new(KvmCpuid2 {
            nent: CPUID_ENTRIES as u32,
            padding: 0,
            entries: [KvmCpuidEntry2::default(); CPUID_ENTRIES],
        })
    }
    pub fn as_arg(&mut self) -> libc::c_ulong {
        self as *mut KvmCpuid2 as libc::c_ulong
    }
    /// The entries the kernel filled in (`nent` clamped to the array).
    pub fn used(&self) -> &[KvmCpuidEntry2] {
        &self.entries[..(self.nent as usize).min(CPUID_ENTRIES)]
    }
}

#[repr(C)]
pub(super) struct KvmEnableCap {
    pub cap: u32,
    pub flags: u32,
    pub args: [u64; 4],
    pub pad: [u8; 64],
}

pub(super) fn ioctl(fd: &impl AsRawFd, req: u64, arg: libc::c_ulong, what: &str) -> Result<i32> {
    // SAFETY: `fd` is an open KVM fd; every caller passes either an integer argument or a pointer
    // to a live #[repr(C)] value whose size matches the size encoded in `req`.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), req as _, arg) };
    if rc < 0 {
        return Err(io::Error::last_os_error()).with_context(|| format!("{what} failed"));
    }
    Ok(rc)
}

/// KVM_CHECK_EXTENSION: 0 when the capability is absent (or the query itself fails).
pub(crate) fn check_extension(fd: &impl AsRawFd, cap: u32) -> i32 {
    ioctl(
        fd,
        KVM_CHECK_EXTENSION,
        cap as libc::c_ulong,
        "KVM_CHECK_EXTENSION",
    )
    .unwrap_or(0)
}

fn take_fd(rc: i32) -> OwnedFd {
    // SAFETY: `rc` is a fresh file descriptor just returned by a successful ioctl; nobody else owns it.
    unsafe { OwnedFd::from_raw_fd(rc) }
}

/// An anonymous or fd-backed shared mapping, unmapped on drop.
pub(super) struct Mapping {
    pub ptr: *mut u8,
    pub len: usize,
}

impl Mapping {
    fn new(len: usize, fd: Option<&OwnedFd>, what: &str) -> Result<Self> {
        let (flags, raw) = match fd {
            Some(fd) => (libc::MAP_SHARED, fd.as_raw_fd()),
            None => (libc::MAP_SHARED | libc::MAP_ANONYMOUS, -1),
        };
        // SAFETY: a fresh mapping at a kernel-chosen address; no existing memory is affected.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                raw,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error()).with_context(|| format!("mmap {what} failed"));
        }
        Ok(Mapping {
            ptr: ptr.cast(),
            len,
        })
    }

    /// Copies `bytes` to offset `at`; fails (instead of writing out of bounds) when they do not fit.
    pub fn write(&self, at: usize, bytes: &[u8]) -> Result<()> {
        if at.checked_add(bytes.len()).is_none_or(|end| end > self.len) {
            bail!(
                "guest image of {} bytes at {at:#x} does not fit in {:#x} bytes",
                bytes.len(),
                self.len
            );
        }
        // SAFETY: `at + bytes.len() <= len` (checked above), the mapping is writable and
        // `bytes` cannot overlap it (it is Rust-owned memory, the mapping is an mmap region).
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.ptr.add(at), bytes.len()) };
        Ok(())
    }

    /// Reads a u32 at byte offset `at` of the mapping (volatile: KVM writes it).
    pub fn read_u32(&self, at: usize) -> u32 {
        assert!(
            at.is_multiple_of(4) && at + 4 <= self.len,
            "kvm_run offset {at} out of bounds"
        );
        // SAFETY: in bounds and 4-byte aligned (asserted; mmap returns page-aligned memory); KVM
        // only writes the kvm_run page while KVM_RUN is in progress on this same thread.
        unsafe { std::ptr::read_volatile(self.ptr.add(at).cast::<u32>()) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` came from a successful mmap and are unmapped exactly once.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

pub(super) fn open_kvm() -> Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => anyhow!(
                "/dev/kvm does not exist: load KVM (`modprobe kvm_amd` or `modprobe kvm_intel`) \
                 or run on a machine with virtualization enabled"
            ),
            io::ErrorKind::PermissionDenied => anyhow!(
                "cannot open /dev/kvm: permission denied; run as root or add your user to the `kvm` group"
            ),
            _ => anyhow!("cannot open /dev/kvm: {e}"),
        })
}

pub(super) struct Vm {
    /// Kept open for the VM's lifetime.
    pub _kvm: File,
    pub _vm: OwnedFd,
    pub vcpu: OwnedFd,
    pub mem: Mapping,
    pub run: Mapping,
}

/// What to do between creating the VM and its vCPU, and after the vCPU exists (Hyper-V setup).
pub(super) trait VmSetup {
    /// Before KVM_CREATE_VCPU (e.g. KVM_CREATE_IRQCHIP).
    fn before_vcpu(&self, kvm: &File, vm: &OwnedFd) -> Result<()>;
    /// Adjusts the CPUID set; returns whether KVM_SET_CPUID2 must succeed.
    fn cpuid(&self, kvm: &File, vcpu: &OwnedFd, cpuid: &mut KvmCpuid2) -> Result<bool>;
    /// After CPUID (e.g. KVM_ENABLE_CAP, LAPIC state, guest data pages).
    fn after_cpuid(&self, vm: &Vm) -> Result<()>;
}

/// Plain real-mode guest: nothing beyond the host CPUID (best effort).
pub(super) struct Plain;

impl VmSetup for Plain {
    fn before_vcpu(&self, _: &File, _: &OwnedFd) -> Result<()> {
        Ok(())
    }
    fn cpuid(&self, _: &File, _: &OwnedFd, _: &mut KvmCpuid2) -> Result<bool> {
        Ok(false)
    }
    fn after_cpuid(&self, _: &Vm) -> Result<()> {
        Ok(())
    }
}

pub(super) fn create_vm(code: &[u8], setup: &dyn VmSetup) -> Result<Vm> {
    let kvm = open_kvm()?;
    let ver = ioctl(&kvm, KVM_GET_API_VERSION, 0, "KVM_GET_API_VERSION")?;
    if ver != KVM_API_VERSION {
        bail!("/dev/kvm reports API version {ver}, expected {KVM_API_VERSION}: this kernel's KVM is unsupported");
    }
    let vm = take_fd(ioctl(&kvm, KVM_CREATE_VM, 0, "KVM_CREATE_VM").context(
        "cannot create a VM (is another hypervisor holding VT-x/SVM, or is KVM disabled?)",
    )?);
    let mem = Mapping::new(MEM_SIZE, None, "guest memory")?;
    mem.write(CODE_GPA as usize, code)?;
    let region = KvmUserspaceMemoryRegion {
        memory_size: MEM_SIZE as u64,
        userspace_addr: mem.ptr as u64,
        ..Default::default()
    };
    let arg = &region as *const _ as libc::c_ulong;
    ioctl(
        &vm,
        KVM_SET_USER_MEMORY_REGION,
        arg,
        "KVM_SET_USER_MEMORY_REGION",
    )?;
    setup.before_vcpu(&kvm, &vm)?;
    let vcpu = take_fd(ioctl(&vm, KVM_CREATE_VCPU, 0, "KVM_CREATE_VCPU")?);
    let size = ioctl(&kvm, KVM_GET_VCPU_MMAP_SIZE, 0, "KVM_GET_VCPU_MMAP_SIZE")? as usize;
    let run = Mapping::new(size, Some(&vcpu), "kvm_run")?;

    // Give the guest the host-supported CPUID so leaf 0 has content.
    let mut cpuid = KvmCpuid2::new_boxed();
    let got = ioctl(
        &kvm,
        KVM_GET_SUPPORTED_CPUID,
        cpuid.as_arg(),
        "KVM_GET_SUPPORTED_CPUID",
    );
    if got.is_err() {
        cpuid.nent = 0;
    }
    let required = setup.cpuid(&kvm, &vcpu, &mut cpuid)?;
    match got {
        Err(e) if required => return Err(e),
        Err(_) => {}
        Ok(_) => {
            let set = ioctl(&vcpu, KVM_SET_CPUID2, cpuid.as_arg(), "KVM_SET_CPUID2");
            if required {
                set?;
            }
        }
    }

    let mut sregs = KvmSregs::default();
    let arg = &mut sregs as *mut KvmSregs as libc::c_ulong;
    ioctl(&vcpu, KVM_GET_SREGS, arg, "KVM_GET_SREGS")?;
    for seg in &mut sregs.seg[..6] {
        seg.base = 0;
        seg.selector = 0;
    }
    ioctl(&vcpu, KVM_SET_SREGS, arg, "KVM_SET_SREGS")?;
    let vm = Vm {
        _kvm: kvm,
        _vm: vm,
        vcpu,
        mem,
        run,
    };
    setup.after_cpuid(&vm)?;
    Ok(vm)
}

/// Points the vCPU at the code with `edi = iters` (and a stack at `rsp`).
pub(super) fn set_regs(vm: &Vm, iters: u64, rsp: u64) -> Result<()> {
    let mut regs = KvmRegs {
        rip: CODE_GPA,
        rflags: 0x2,
        ..Default::default()
    };
    regs.gpr[RDI] = iters;
    regs.gpr[RSP] = rsp;
    let arg = &mut regs as *mut KvmRegs as libc::c_ulong;
    ioctl(&vm.vcpu, KVM_SET_REGS, arg, "KVM_SET_REGS")?;
    Ok(())
}

/// The guest's rip, for error messages (0 when it cannot be read).
pub(super) fn rip(vm: &Vm) -> u64 {
    let mut regs = KvmRegs::default();
    let arg = &mut regs as *mut KvmRegs as libc::c_ulong;
    ioctl(&vm.vcpu, KVM_GET_REGS, arg, "KVM_GET_REGS").map_or(0, |_| regs.rip)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abi_sizes_match_linux_kvm_h() {
        assert_eq!(std::mem::size_of::<KvmRegs>(), 144);
        assert_eq!(std::mem::size_of::<KvmSegment>(), 24);
        assert_eq!(std::mem::size_of::<KvmSregs>(), 312);
        assert_eq!(std::mem::size_of::<KvmUserspaceMemoryRegion>(), 32);
        assert_eq!(std::mem::size_of::<KvmCpuidEntry2>(), 40);
        assert_eq!(std::mem::size_of::<KvmEnableCap>(), 104);
        assert_eq!(KVM_RUN, 0xAE80);
        assert_eq!(KVM_GET_REGS, 0x8090_AE81);
        assert_eq!(KVM_SET_SREGS, 0x4138_AE84);
        assert_eq!(KVM_SET_USER_MEMORY_REGION, 0x4020_AE46);
        assert_eq!(KVM_GET_SUPPORTED_CPUID, 0xC008_AE05);
        assert_eq!(KVM_ENABLE_CAP, 0x4068_AEA3);
        assert_eq!(KVM_GET_SUPPORTED_HV_CPUID, 0xC008_AEC1);
        assert_eq!(KVM_CREATE_IRQCHIP, 0xAE60);
        assert_eq!(KVM_GET_LAPIC, 0x8400_AE8E);
        assert_eq!(KVM_SET_LAPIC, 0x4400_AE8F);
        assert_eq!(KVM_CHECK_EXTENSION, 0xAE03);
    }
}
