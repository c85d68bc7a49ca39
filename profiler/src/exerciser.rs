//! A tiny KVM guest with a known number of exits, used by `kvmprof exercise`, `kvmprof demo`
//! and the real-KVM VM test.
//!
//! The guest runs in 16-bit real mode at GPA 0x1000:
//! `loop: [out 0x10,al] [cpuid] [rdmsr 0x10] [wrmsr 0x10]; dec edi; jnz loop; hlt`
//! (the `ops` string selects any of `o`, `c`, `r`, `w`). Under AMD SVM one batch of `iters`
//! produces exactly `iters` io, `iters` cpuid, `iters` msr per selected msr op and one hlt exit.
//! The vCPU runs on a thread named `CPU 0/KVM`, as QEMU names its vCPU threads.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

/// What to run.
#[derive(Debug, Clone)]
pub struct ExerciseOpts {
    /// Loop iterations per batch (the guest's edi).
    pub iters: u64,
    /// Any of `o` (out 0x10), `c` (cpuid), `r` (rdmsr 0x10), `w` (wrmsr 0x10).
    pub ops: String,
    /// Repeat batches until the process is killed.
    pub forever: bool,
    /// Sleep between batches (only with `forever`).
    pub pause: Duration,
}

/// What the VMM saw (userspace exits only; in-kernel exits are invisible here).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExerciseReport {
    pub kvm_runs: u64,
    pub io: u64,
    pub hlt: u64,
    pub other: u64,
    pub elapsed: Duration,
}

/// Name of the vCPU thread, exactly as QEMU names vCPU 0.
pub const VCPU_THREAD_NAME: &str = "CPU 0/KVM";
const MEM_SIZE: usize = 0x10000;
const CODE_GPA: u64 = 0x1000;
const MAX_OTHER_EXITS: u64 = 5;

// ---- KVM ABI (linux/kvm.h, x86-64) ----
const KVMIO: u64 = 0xAE;
const fn ioc(dir: u64, nr: u64, size: usize) -> u64 {
    (dir << 30) | ((size as u64) << 16) | (KVMIO << 8) | nr
}
const IOC_NONE: u64 = 0;
const IOC_WRITE: u64 = 1;
const IOC_READ: u64 = 2;
const KVM_GET_API_VERSION: u64 = ioc(IOC_NONE, 0x00, 0);
const KVM_CREATE_VM: u64 = ioc(IOC_NONE, 0x01, 0);
const KVM_GET_VCPU_MMAP_SIZE: u64 = ioc(IOC_NONE, 0x04, 0);
const KVM_GET_SUPPORTED_CPUID: u64 = ioc(IOC_READ | IOC_WRITE, 0x05, 8);
const KVM_CREATE_VCPU: u64 = ioc(IOC_NONE, 0x41, 0);
const KVM_SET_USER_MEMORY_REGION: u64 = ioc(IOC_WRITE, 0x46, 32);
const KVM_RUN: u64 = ioc(IOC_NONE, 0x80, 0);
const KVM_GET_REGS: u64 = ioc(IOC_READ, 0x81, std::mem::size_of::<KvmRegs>());
const KVM_SET_REGS: u64 = ioc(IOC_WRITE, 0x82, std::mem::size_of::<KvmRegs>());
const KVM_GET_SREGS: u64 = ioc(IOC_READ, 0x83, std::mem::size_of::<KvmSregs>());
const KVM_SET_SREGS: u64 = ioc(IOC_WRITE, 0x84, std::mem::size_of::<KvmSregs>());
const KVM_SET_CPUID2: u64 = ioc(IOC_WRITE, 0x90, 8);
const KVM_API_VERSION: i32 = 12;
const KVM_EXIT_IO: u32 = 2;
const KVM_EXIT_HLT: u32 = 5;
const KVM_RUN_EXIT_REASON_OFFSET: usize = 8;
const CPUID_ENTRIES: usize = 256;

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
struct KvmRegs {
    gpr: [u64; 16], // rax rbx rcx rdx rsi rdi rsp rbp r8..r15
    rip: u64,
    rflags: u64,
}
const RDI: usize = 5;

#[repr(C)]
#[derive(Default, Clone, Copy)]
struct KvmSegment {
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
struct KvmDtable {
    base: u64,
    limit: u16,
    padding: [u16; 3],
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
struct KvmSregs {
    seg: [KvmSegment; 8], // cs ds es fs gs ss tr ldt
    gdt: KvmDtable,
    idt: KvmDtable,
    cr: [u64; 5], // cr0 cr2 cr3 cr4 cr8
    efer: u64,
    apic_base: u64,
    interrupt_bitmap: [u64; 4],
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct KvmCpuidEntry2 {
    function: u32,
    index: u32,
    flags: u32,
    regs: [u32; 4],
    padding: [u32; 3],
}

#[repr(C)]
struct KvmCpuid2 {
    nent: u32,
    padding: u32,
    entries: [KvmCpuidEntry2; CPUID_ENTRIES],
}

/// Guest code for `ops` (16-bit real mode), ending in `hlt`.
pub fn guest_code(ops: &str) -> Result<Vec<u8>> {
    if let Some(bad) = ops.chars().find(|c| !"ocrw".contains(*c)) {
        bail!("invalid op {bad:?} in --ops {ops:?}: use any of o (out), c (cpuid), r (rdmsr), w (wrmsr)");
    }
    let mut code = Vec::new();
    if ops.contains('o') {
        code.extend([0xe6, 0x10]); // out 0x10, al
    }
    if ops.contains('c') {
        code.extend([0x66, 0x31, 0xc0, 0x0f, 0xa2]); // xor eax, eax; cpuid
    }
    if ops.contains('r') || ops.contains('w') {
        code.extend([0x66, 0xb9, 0x10, 0, 0, 0]); // mov ecx, 0x10 (IA32_TSC)
    }
    if ops.contains('r') {
        code.extend([0x0f, 0x32]); // rdmsr
    }
    if ops.contains('w') {
        code.extend([0x0f, 0x30]); // wrmsr
    }
    code.extend([0x66, 0x4f]); // dec edi
    let back = -(code.len() as i64 + 2);
    code.extend([0x75, back as i8 as u8]); // jnz loop
    code.push(0xf4); // hlt
    Ok(code)
}

fn ioctl(fd: &impl AsRawFd, req: u64, arg: libc::c_ulong, what: &str) -> Result<i32> {
    // SAFETY: `fd` is an open KVM fd; every caller passes either an integer argument or a pointer
    // to a live #[repr(C)] value whose size matches the size encoded in `req`.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), req as _, arg) };
    if rc < 0 {
        return Err(io::Error::last_os_error()).with_context(|| format!("{what} failed"));
    }
    Ok(rc)
}

fn take_fd(rc: i32) -> OwnedFd {
    // SAFETY: `rc` is a fresh file descriptor just returned by a successful ioctl; nobody else owns it.
    unsafe { OwnedFd::from_raw_fd(rc) }
}

/// An anonymous or fd-backed shared mapping, unmapped on drop.
struct Mapping {
    ptr: *mut u8,
    len: usize,
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
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` came from a successful mmap and are unmapped exactly once.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

fn open_kvm() -> Result<File> {
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

struct Vm {
    _kvm: File,
    _vm: OwnedFd,
    vcpu: OwnedFd,
    _mem: Mapping,
    run: Mapping,
}

fn create_vm(code: &[u8]) -> Result<Vm> {
    let kvm = open_kvm()?;
    let ver = ioctl(&kvm, KVM_GET_API_VERSION, 0, "KVM_GET_API_VERSION")?;
    if ver != KVM_API_VERSION {
        bail!("/dev/kvm reports API version {ver}, expected {KVM_API_VERSION}: this kernel's KVM is unsupported");
    }
    let vm = take_fd(ioctl(&kvm, KVM_CREATE_VM, 0, "KVM_CREATE_VM").context(
        "cannot create a VM (is another hypervisor holding VT-x/SVM, or is KVM disabled?)",
    )?);
    let mem = Mapping::new(MEM_SIZE, None, "guest memory")?;
    // SAFETY: `mem` is MEM_SIZE bytes of writable memory and CODE_GPA + code.len() < MEM_SIZE
    // (guest_code produces < 32 bytes).
    unsafe {
        std::ptr::copy_nonoverlapping(code.as_ptr(), mem.ptr.add(CODE_GPA as usize), code.len())
    };
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
    let vcpu = take_fd(ioctl(&vm, KVM_CREATE_VCPU, 0, "KVM_CREATE_VCPU")?);
    let size = ioctl(&kvm, KVM_GET_VCPU_MMAP_SIZE, 0, "KVM_GET_VCPU_MMAP_SIZE")? as usize;
    let run = Mapping::new(size, Some(&vcpu), "kvm_run")?;

    // Give the guest the host-supported CPUID so leaf 0 has content (best effort).
    let mut cpuid = Box::new(KvmCpuid2 {
        nent: CPUID_ENTRIES as u32,
        padding: 0,
        entries: [KvmCpuidEntry2::default(); CPUID_ENTRIES],
    });
    let arg = &mut *cpuid as *mut KvmCpuid2 as libc::c_ulong;
    if ioctl(
        &kvm,
        KVM_GET_SUPPORTED_CPUID,
        arg,
        "KVM_GET_SUPPORTED_CPUID",
    )
    .is_ok()
    {
        let _ = ioctl(&vcpu, KVM_SET_CPUID2, arg, "KVM_SET_CPUID2");
    }

    let mut sregs = KvmSregs::default();
    let arg = &mut sregs as *mut KvmSregs as libc::c_ulong;
    ioctl(&vcpu, KVM_GET_SREGS, arg, "KVM_GET_SREGS")?;
    for seg in &mut sregs.seg[..6] {
        seg.base = 0;
        seg.selector = 0;
    }
    ioctl(&vcpu, KVM_SET_SREGS, arg, "KVM_SET_SREGS")?;
    Ok(Vm {
        _kvm: kvm,
        _vm: vm,
        vcpu,
        _mem: mem,
        run,
    })
}

fn set_regs(vm: &Vm, iters: u64) -> Result<()> {
    let mut regs = KvmRegs {
        rip: CODE_GPA,
        rflags: 0x2,
        ..Default::default()
    };
    regs.gpr[RDI] = iters;
    let arg = &mut regs as *mut KvmRegs as libc::c_ulong;
    ioctl(&vm.vcpu, KVM_SET_REGS, arg, "KVM_SET_REGS")?;
    Ok(())
}

/// Run one batch until `hlt`, adding what the VMM saw to `rep`.
fn run_batch(vm: &Vm, iters: u64, rep: &mut ExerciseReport) -> Result<()> {
    set_regs(vm, iters)?;
    let mut other = 0;
    loop {
        if let Err(e) = ioctl(&vm.vcpu, KVM_RUN, 0, "KVM_RUN") {
            if e.downcast_ref::<io::Error>()
                .and_then(io::Error::raw_os_error)
                == Some(libc::EINTR)
            {
                continue;
            }
            return Err(e);
        }
        rep.kvm_runs += 1;
        // SAFETY: the kvm_run mapping is at least one page, so offset 8 (exit_reason, u32) is in
        // bounds and aligned; KVM only writes it while KVM_RUN is in progress on this thread.
        let reason = unsafe {
            std::ptr::read_volatile(vm.run.ptr.add(KVM_RUN_EXIT_REASON_OFFSET).cast::<u32>())
        };
        match reason {
            KVM_EXIT_IO => rep.io += 1,
            KVM_EXIT_HLT => {
                rep.hlt += 1;
                return Ok(());
            }
            _ => {
                rep.other += 1;
                other += 1;
                log::warn!("exerciser: unexpected KVM exit reason {reason}");
                if other > MAX_OTHER_EXITS {
                    let mut regs = KvmRegs::default();
                    let arg = &mut regs as *mut KvmRegs as libc::c_ulong;
                    let rip = ioctl(&vm.vcpu, KVM_GET_REGS, arg, "KVM_GET_REGS").map(|_| regs.rip);
                    bail!(
                        "guest stopped with unexpected KVM exit reason {reason} (rip {:#x}): \
                         this KVM cannot run the real-mode exerciser",
                        rip.unwrap_or(0)
                    );
                }
            }
        }
    }
}

fn run_on_vcpu_thread(opts: &ExerciseOpts) -> Result<ExerciseReport> {
    let code = guest_code(&opts.ops)?;
    let vm = create_vm(&code)?;
    let mut rep = ExerciseReport::default();
    let t0 = Instant::now();
    loop {
        run_batch(&vm, opts.iters, &mut rep)?;
        if !opts.forever {
            break;
        }
        std::thread::sleep(opts.pause);
    }
    rep.elapsed = t0.elapsed();
    Ok(rep)
}

/// Run the exerciser guest on a thread named `CPU 0/KVM` and return what the VMM saw.
pub fn run(opts: &ExerciseOpts) -> Result<ExerciseReport> {
    let opts = opts.clone();
    std::thread::Builder::new()
        .name(VCPU_THREAD_NAME.to_string())
        .spawn(move || run_on_vcpu_thread(&opts))
        .context("cannot spawn the vCPU thread")?
        .join()
        .map_err(|_| anyhow!("the vCPU thread panicked"))?
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
        assert_eq!(KVM_RUN, 0xAE80);
        assert_eq!(KVM_GET_REGS, 0x8090_AE81);
        assert_eq!(KVM_SET_SREGS, 0x4138_AE84);
        assert_eq!(KVM_SET_USER_MEMORY_REGION, 0x4020_AE46);
        assert_eq!(KVM_GET_SUPPORTED_CPUID, 0xC008_AE05);
    }

    #[test]
    fn guest_code_matches_kvmtest() {
        let code = guest_code("ocrw").unwrap();
        assert_eq!(
            code,
            [
                0xe6, 0x10, 0x66, 0x31, 0xc0, 0x0f, 0xa2, 0x66, 0xb9, 0x10, 0, 0, 0, 0x0f, 0x32,
                0x0f, 0x30, 0x66, 0x4f, 0x75, 0xeb, 0xf4
            ]
        );
        assert_eq!(guest_code("").unwrap(), [0x66, 0x4f, 0x75, 0xfc, 0xf4]);
        let err = guest_code("ox").unwrap_err().to_string();
        assert!(err.contains("invalid op 'x'"), "{err}");
    }

    #[test]
    fn runs_on_host_kvm() {
        if !std::path::Path::new("/dev/kvm").exists() {
            let ci = std::env::var("CI").is_ok_and(|v| v == "true");
            assert!(
                !ci,
                "CI=true but /dev/kvm is absent: the exerciser test cannot run"
            );
            eprintln!("skipped: /dev/kvm is absent (load kvm_amd/kvm_intel to run this test)");
            return;
        }
        let opts = ExerciseOpts {
            iters: 500,
            ops: "ocrw".into(),
            forever: false,
            pause: Duration::ZERO,
        };
        let rep = run(&opts).expect("exerciser on host /dev/kvm");
        assert_eq!(rep.io, 500, "{rep:?}");
        assert_eq!(rep.hlt, 1, "{rep:?}");
        assert_eq!(rep.other, 0, "{rep:?}");
        assert_eq!(rep.kvm_runs, 501, "{rep:?}");
    }
}
