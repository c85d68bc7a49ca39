//! A tiny KVM guest with a known number of exits, used by `kvmprof exercise`, `kvmprof demo`
//! and the real-KVM VM tests.
//!
//! The guest runs in 16-bit real mode at GPA 0x1000:
//! `loop: [out 0x10,al] [cpuid] [rdmsr 0x10] [wrmsr 0x10]; dec edi; jnz loop; hlt`
//! (the `ops` string selects any of `o`, `c`, `r`, `w`). Under AMD SVM one batch of `iters`
//! produces exactly `iters` io, `iters` cpuid, `iters` msr per selected msr op and one hlt exit.
//!
//! `ops` = `h` selects the Hyper-V guest instead (hyperv.rs, guest.rs): a Windows-11-like
//! GUEST_OS_ID, SynIC with an AutoEOI SINT, synthetic timer 0 and `iters` synthetic-EOI writes
//! and TIME_REF_COUNT reads; it needs a KVM built with CONFIG_KVM_HYPERV.
//! The vCPU runs on a thread named `CPU 0/KVM`, as QEMU names its vCPU threads.

mod guest;
mod hog;
pub mod hyperv;
mod kvm;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

pub use guest::guest_code;
pub use hog::pin_to;
pub(crate) use kvm::check_extension;
use kvm::{
    Vm, KVM_EXIT_HLT, KVM_EXIT_HYPERV, KVM_EXIT_IO, KVM_RUN, KVM_RUN_EXIT_REASON_OFFSET,
    KVM_RUN_UNION_OFFSET,
};

/// What to run.
#[derive(Debug, Clone)]
pub struct ExerciseOpts {
    /// Loop iterations per batch (the guest's edi).
    pub iters: u64,
    /// Any of `o` (out 0x10), `c` (cpuid), `r` (rdmsr 0x10), `w` (wrmsr 0x10); or `h` alone:
    /// the Hyper-V guest (see [`HYPERV_OPS`]).
    pub ops: String,
    /// Repeat batches until the process is killed.
    pub forever: bool,
    /// Sleep between batches (only with `forever`).
    pub pause: Duration,
    /// Sleep `delay_for` before re-entering after every `delay_every`th port write (0: never):
    /// slow exits at a known place (the `out`'s RIP, [`out_rip`]) and rate.
    pub delay_every: u64,
    pub delay_for: Duration,
    /// Pin the vCPU thread to this host CPU and keep a busy thread there for the run: the
    /// vCPU waits for its CPU in the middle of exits (the scheduler split's test).
    pub hog_cpu: Option<usize>,
}

/// Guest RIP of the `out` of the plain guest built from `ops` (None without `o`): where its
/// port-write exits happen.
pub fn out_rip(ops: &str) -> Option<u64> {
    let code = guest_code(ops).ok()?;
    let at = code.windows(2).position(|w| w == [0xe6, 0x10])?;
    Some(kvm::CODE_GPA + at as u64)
}

/// `ops` value that selects the Hyper-V guest.
pub const HYPERV_OPS: &str = "h";

impl ExerciseOpts {
    /// Whether these options select the Hyper-V guest.
    pub fn hyperv(&self) -> bool {
        self.ops.contains('h')
    }
}

/// What the VMM saw (userspace exits only; in-kernel exits are invisible here).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExerciseReport {
    pub kvm_runs: u64,
    /// KVM_EXIT_IO (in Hyper-V mode: the guest's one end-of-batch `out` per batch).
    pub io: u64,
    pub hlt: u64,
    pub other: u64,
    /// KVM_EXIT_HYPERV returns (SynIC MSR writes KVM reports to the VMM).
    pub hyperv: u64,
    /// KVM_EXIT_HYPERV_SYNIC returns per MSR.
    pub synic_msrs: BTreeMap<u32, u64>,
    pub batches: u64,
    /// Port writes whose completion the VMM delayed (`delay_every`).
    pub delayed: u64,
    pub elapsed: Duration,
    /// The vCPU thread's run-queue delay (schedstat) from its first KVM_RUN to its last
    /// return, ns; None without schedstat.
    pub run_delay_ns: Option<u64>,
}

impl ExerciseReport {
    /// `HYPERV key=value ...`: what the Hyper-V guest did, for tests and logs.
    pub fn hyperv_line(&self, iters: u64) -> String {
        let msrs: Vec<String> = self
            .synic_msrs
            .iter()
            .map(|(m, n)| format!("{m:#x}:{n}"))
            .collect();
        format!(
            "HYPERV batches={} hyperv_exits={} synic_msrs={} msr_exits_expected={} guest_os_id={:#018x} sint={:#x} vector={:#x}",
            self.batches,
            self.hyperv,
            msrs.join(","),
            self.batches * hyperv::msr_exits_per_batch(iters),
            hyperv::WINDOWS_11_GUEST_OS_ID,
            hyperv::sint(hyperv::HvLayout::default().sint),
            hyperv::HvLayout::default().vector,
        )
    }
}

/// Name of the vCPU thread, exactly as QEMU names vCPU 0.
pub const VCPU_THREAD_NAME: &str = "CPU 0/KVM";
const MAX_OTHER_EXITS: u64 = 5;

/// Run one batch until `hlt` (Hyper-V mode: until the `out` to DONE_PORT), adding what the
/// VMM saw to `rep`.
fn run_batch(
    vm: &Vm,
    iters: u64,
    hv: Option<&hyperv::HvLayout>,
    delay: (u64, Duration),
    rep: &mut ExerciseReport,
) -> Result<()> {
    kvm::set_regs(vm, iters, hv.map_or(0, |l| l.stack_top))?;
    let mut other = 0;
    loop {
        if let Err(e) = kvm::ioctl(&vm.vcpu, KVM_RUN, 0, "KVM_RUN") {
            if e.downcast_ref::<std::io::Error>()
                .and_then(std::io::Error::raw_os_error)
                == Some(libc::EINTR)
            {
                continue;
            }
            return Err(e);
        }
        rep.kvm_runs += 1;
        match vm.run.read_u32(KVM_RUN_EXIT_REASON_OFFSET) {
            KVM_EXIT_IO => {
                rep.io += 1;
                // struct kvm_run.io: direction u8, size u8, port u16.
                let port = (vm.run.read_u32(KVM_RUN_UNION_OFFSET) >> 16) as u16;
                if hv.is_some() && port == hyperv::DONE_PORT {
                    rep.batches += 1;
                    return Ok(());
                }
                if delay.0 != 0 && rep.io.is_multiple_of(delay.0) {
                    std::thread::sleep(delay.1);
                    rep.delayed += 1;
                }
            }
            KVM_EXIT_HLT => {
                rep.hlt += 1;
                rep.batches += 1;
                return Ok(());
            }
            // struct kvm_hyperv_exit: type u32, pad u32, synic.msr u32. Re-entering completes it.
            KVM_EXIT_HYPERV => {
                rep.hyperv += 1;
                if vm.run.read_u32(KVM_RUN_UNION_OFFSET) == hyperv::KVM_EXIT_HYPERV_SYNIC {
                    let msr = vm.run.read_u32(KVM_RUN_UNION_OFFSET + 8);
                    *rep.synic_msrs.entry(msr).or_default() += 1;
                }
            }
            reason => {
                rep.other += 1;
                other += 1;
                log::warn!("exerciser: unexpected KVM exit reason {reason}");
                if other > MAX_OTHER_EXITS {
                    bail!(
                        "guest stopped with unexpected KVM exit reason {reason} (rip {:#x}): \
                         this KVM cannot run the real-mode exerciser",
                        kvm::rip(vm)
                    );
                }
            }
        }
    }
}

fn run_on_vcpu_thread(opts: &ExerciseOpts) -> Result<ExerciseReport> {
    let hv = opts.hyperv().then(hyperv::HvLayout::default);
    let vm = match &hv {
        Some(l) => {
            if opts.ops != HYPERV_OPS {
                bail!("op h (the Hyper-V guest) cannot be combined with other ops: use --ops h");
            }
            kvm::create_vm(&guest::hyperv_guest_code(l)?, &hyperv::HvSetup(*l))?
        }
        None => kvm::create_vm(&guest_code(&opts.ops)?, &kvm::Plain)?,
    };
    let mut rep = ExerciseReport::default();
    let _hog = match opts.hog_cpu {
        Some(cpu) => {
            pin_to(cpu).with_context(|| format!("--hog-cpu {cpu}"))?;
            Some(hog::Hog::start(cpu)?)
        }
        None => None,
    };
    let t0 = Instant::now();
    let d0 = hog::run_delay_ns();
    loop {
        let delay = (opts.delay_every, opts.delay_for);
        run_batch(&vm, opts.iters, hv.as_ref(), delay, &mut rep)?;
        if !opts.forever {
            break;
        }
        std::thread::sleep(opts.pause);
    }
    rep.run_delay_ns = d0
        .zip(hog::run_delay_ns())
        .map(|(a, b)| b.saturating_sub(a));
    rep.elapsed = t0.elapsed();
    Ok(rep)
}

/// Run the exerciser guest on a thread named `CPU 0/KVM` and return what the VMM saw. In
/// Hyper-V mode the [`ExerciseReport::hyperv_line`] is printed to stdout.
pub fn run(opts: &ExerciseOpts) -> Result<ExerciseReport> {
    let opts = opts.clone();
    let rep = std::thread::Builder::new()
        .name(VCPU_THREAD_NAME.to_string())
        .spawn(move || run_on_vcpu_thread(&opts).map(|r| (r, opts)))
        .context("cannot spawn the vCPU thread")?
        .join()
        .map_err(|_| anyhow!("the vCPU thread panicked"))?;
    let (rep, opts) = rep?;
    if opts.hyperv() {
        println!("{}", rep.hyperv_line(opts.iters));
    }
    Ok(rep)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ci() -> bool {
        std::env::var("CI").is_ok_and(|v| v == "true")
    }

    #[test]
    fn runs_on_host_kvm() {
        if !std::path::Path::new("/dev/kvm").exists() {
            assert!(
                !ci(),
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
            delay_every: 100,
            delay_for: Duration::from_micros(10),
            hog_cpu: None,
        };
        let rep = run(&opts).expect("exerciser on host /dev/kvm");
        assert_eq!(rep.delayed, 5, "{rep:?}");
        assert_eq!(out_rip("ocrw"), Some(0x1000));
        assert_eq!(out_rip("c"), None);
        assert_eq!(rep.io, 500, "{rep:?}");
        assert_eq!(rep.hlt, 1, "{rep:?}");
        assert_eq!(rep.other, 0, "{rep:?}");
        assert_eq!(rep.kvm_runs, 501, "{rep:?}");
        assert_eq!(rep.hyperv, 0, "{rep:?}");
    }

    /// --hog-cpu: the vCPU thread shares its CPU with a busy thread and waits for it, as its
    /// schedstat says.
    #[test]
    fn the_hog_makes_the_vcpu_wait() {
        if !std::path::Path::new("/dev/kvm").exists() {
            assert!(!ci(), "CI=true but /dev/kvm is absent");
            eprintln!("skipped: /dev/kvm is absent");
            return;
        }
        // Busy, not sleeping: a thread waking from a short sleep may preempt the hog at once
        // (EEVDF's wake-up preemption; the run queue's clock is then not even updated, so
        // schedstat says 0 ns, as one CI run on 6.18 did for all 200 sleeps of a version of this
        // test). Two busy threads on one CPU share it: the vCPU thread waits about half the time.
        let opts = ExerciseOpts {
            iters: 20_000,
            ops: "o".into(),
            forever: false,
            pause: Duration::ZERO,
            delay_every: 0,
            delay_for: Duration::ZERO,
            hog_cpu: Some(0),
        };
        let rep = run(&opts).expect("exerciser with a hog");
        let waited = rep.run_delay_ns.expect("schedstat");
        assert!(
            u128::from(waited) * 4 >= rep.elapsed.as_nanos(),
            "waited {waited} ns of {:?}: {rep:?}",
            rep.elapsed
        );
        let e = format!(
            "{:#}",
            run(&ExerciseOpts {
                hog_cpu: Some(100_000),
                ..opts
            })
            .unwrap_err()
        );
        assert!(e.contains("--hog-cpu 100000"), "{e}");
    }

    /// On a KVM with Hyper-V (CONFIG_KVM_HYPERV) the guest runs and SynIC exits reach the VMM;
    /// on one without, the error says so in one line.
    #[test]
    fn hyperv_runs_or_says_why_not() {
        if !std::path::Path::new("/dev/kvm").exists() {
            assert!(
                !ci(),
                "CI=true but /dev/kvm is absent: the exerciser test cannot run"
            );
            eprintln!("skipped: /dev/kvm is absent");
            return;
        }
        let opts = ExerciseOpts {
            iters: 50,
            ops: HYPERV_OPS.into(),
            forever: false,
            pause: Duration::ZERO,
            delay_every: 0,
            delay_for: Duration::ZERO,
            hog_cpu: None,
        };
        match run(&opts) {
            Ok(rep) => {
                assert_eq!(rep.batches, 1, "{rep:?}");
                assert_eq!(rep.io, 1, "{rep:?}");
                assert_eq!(rep.other, 0, "{rep:?}");
                assert_eq!(rep.hyperv, hyperv::SYNIC_EXITS_PER_BATCH, "{rep:?}");
                for m in [hyperv::SIMP, hyperv::SIEFP, hyperv::SCONTROL] {
                    assert_eq!(rep.synic_msrs.get(&m), Some(&1), "{m:#x}: {rep:?}");
                }
            }
            Err(e) => {
                let e = format!("{e:#}");
                assert!(
                    e.contains("this host's KVM has no Hyper-V support (KVM_CAP_HYPERV_SYNIC)"),
                    "unexpected error: {e}"
                );
                eprintln!("Hyper-V exerciser not run here: {e}");
            }
        }
        let mixed = ExerciseOpts {
            ops: "oh".into(),
            ..opts
        };
        let e = format!("{:#}", run(&mixed).unwrap_err());
        assert!(e.contains("cannot be combined"), "{e}");
    }
}
