//! `cargo xtask vm-test`: boot a stock Debian kernel under QEMU/TCG with AMD SVM, load kvm_amd,
//! run kvmprof while the exerciser guest runs, and compare kvmprof's counts with the guest
//! kernel's own hist triggers (see shared/docs/real-kvm.md and tests/tests/real_kvm.rs). The same
//! boot then runs the Hyper-V exerciser (SynIC, AutoEOI, stimer) under `kvmprof report` and
//! `kvmprof advise` (tests/tests/real_kvm_hyperv.rs). Each kernel line in `host::KERNEL_LINES`
//! (Debian's 6.12 and 6.1) gets its own boot (side by side on hosts with CPUs to spare) and its
//! own output directory named by its release; the tests check every one.

pub(crate) mod host;
pub(crate) mod initramfs;
mod qemu;

pub(crate) use qemu::Qemu;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use base64::Engine as _;

use host::{cmd_output, cmd_status};
use initramfs::Archive;

/// Kernel modules in load order (paths under lib/modules/<ver>/kernel/).
const MODULES: &[&str] = &[
    "virt/lib/irqbypass",
    "drivers/crypto/ccp/ccp",
    "arch/x86/kvm/kvm",
    "arch/x86/kvm/kvm-amd",
];
const STATUS_MARK: &str = "===KVMPROF-STATUS ";

#[derive(clap::Args, Debug)]
pub struct VmTestArgs {
    /// Loop iterations of the exerciser guest (N io, N cpuid, 2N msr exits).
    #[arg(long, env = "KVMPROF_VM_ITERS", default_value_t = 2000)]
    pub iters: u64,
    /// Hard limit for the QEMU boot + run, in seconds.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
    /// Use this kvmprof binary instead of the one in `cargo xtask dist`'s Debian package.
    #[arg(long)]
    pub kvmprof: Option<PathBuf>,
    /// Kernel package to boot; repeat for several (default: the newest of each line the
    /// tests need, linux-image-6.12.*+deb12-amd64-unsigned and linux-image-6.1.0-*-amd64-unsigned).
    #[arg(long = "kernel-package")]
    pub kernel_packages: Vec<String>,
    /// Only boot and collect; do not run the assertions.
    #[arg(long)]
    pub no_check: bool,
    /// Skip the Hyper-V run (and its test).
    #[arg(long)]
    pub no_hyperv: bool,
}

impl Default for VmTestArgs {
    fn default() -> Self {
        VmTestArgs {
            iters: 2000,
            timeout: 300,
            kvmprof: None,
            kernel_packages: Vec::new(),
            no_check: false,
            no_hyperv: false,
        }
    }
}

/// kvmprof as hosts get it: `cargo xtask dist`'s Debian package, unpacked (`dpkg-deb -x`).
fn build_kvmprof() -> Result<PathBuf> {
    let packages = crate::dist::dist()?;
    crate::dist::unpack_deb(&packages.deb)
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

fn build_initramfs(kroot: &Path, ver: &str, kvmprof: &Path) -> Result<Archive> {
    let mut a = Archive::default();
    for d in ["/proc", "/sys", "/dev", "/tmp", "/root"] {
        a.add_dir(d)?;
    }
    a.add_char_dev("/dev/console", 5, 1)?;
    a.add_file(
        "/init",
        read(&crate::cargo::workspace_root().join("tests/vm/init.sh"))?,
        0o755,
    )?;
    a.add_file("/bin/busybox", read(Path::new("/bin/busybox"))?, 0o755)?;
    a.add_file("/bin/kvmprof", read(kvmprof)?, 0o755)?;
    let ldd = cmd_output(Command::new("ldd").arg(kvmprof)).unwrap_or_default();
    for lib in initramfs::parse_ldd(&ldd)? {
        a.add_file(&lib.to_string_lossy(), read(&lib)?, 0o755)?;
    }
    // The host's perf (Debian's linux-perf) with its libraries, as `cargo xtask bench-vm` packs
    // it: the guest runs `perf kvm stat` beside kvmprof on the same exits.
    let perf = host::find_program("perf")?;
    initramfs::add_program_with_libs(&mut a, "/bin/perf", &perf)?;
    let kdir = kroot.join("lib/modules").join(ver).join("kernel");
    initramfs::add_kernel_modules(&mut a, &kdir, MODULES)?;
    Ok(a)
}

/// Split the serial log into the `===KVMPROF-BEGIN name===` sections and the final status.
pub fn extract_sections(log: &str) -> (BTreeMap<String, String>, Option<String>) {
    let mut sections = BTreeMap::new();
    let mut status = None;
    let mut current: Option<(String, String)> = None;
    for raw in log.lines().map(|l| l.trim_end_matches('\r')) {
        // Console noise (firmware escapes, printk) can precede a marker on the same line.
        let line = raw.find("===KVMPROF-").map_or(raw, |i| &raw[i..]);
        if let Some(rest) = line.strip_prefix("===KVMPROF-BEGIN ") {
            let name = rest.trim_end_matches("===");
            let safe = !name.is_empty()
                && !name.starts_with('.')
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
            current = safe.then(|| (name.to_string(), String::new()));
        } else if line.starts_with("===KVMPROF-END ") {
            if let Some((name, body)) = current.take() {
                sections.insert(name, body.trim_end().to_string() + "\n");
            }
        } else if let Some(rest) = line.strip_prefix(STATUS_MARK) {
            status = Some(rest.trim_end_matches("===").to_string());
        } else if let Some((_, body)) = current.as_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    (sections, status)
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn boot(kroot: &Path, ver: &str, initrd: &Path, args: &VmTestArgs, log: &Path) -> Result<Duration> {
    let append = format!(
        "console=ttyS0 panic=-1 rdinit=/init loglevel=1 kvmprof.iters={} kvmprof.hyperv={}",
        args.iters,
        u8::from(!args.no_hyperv)
    );
    let qemu = Qemu {
        kroot,
        ver,
        initrd,
        memory: "1G",
        append: &append,
        timeout: args.timeout,
        log,
    };
    qemu.run(Duration::from_millis(200), |_| {})
}

/// One kernel's boot: where its files go and how it went.
struct Run {
    kroot: PathBuf,
    ver: String,
    dir: PathBuf,
}

impl Run {
    /// Write the initramfs, boot, and unpack the serial log's sections into `dir`. Returns the
    /// QEMU wall time, or why this boot failed.
    fn boot(&self, kvmprof: &Path, args: &VmTestArgs) -> Result<Duration> {
        let (dir, ver) = (&self.dir, &self.ver);
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let archive = build_initramfs(&self.kroot, ver, kvmprof)?;
        let initrd = dir.join("initramfs.cpio");
        let bytes = archive.to_newc();
        std::fs::write(&initrd, &bytes)?;
        println!(
            "vm-test: {ver}: initramfs {} entries, {:.1} MiB, output {}",
            archive.paths().len(),
            bytes.len() as f64 / (1024.0 * 1024.0),
            dir.display()
        );
        let log = dir.join("serial.log");
        let wall = boot(&self.kroot, ver, &initrd, args, &log);
        let _ = std::fs::remove_file(&initrd);
        let wall = wall?;
        let text = std::fs::read_to_string(&log)?;
        let (sections, status) = extract_sections(&text);
        for (name, body) in &sections {
            // Binary files (recordings) travel base64-encoded over the serial console.
            if let Some(bin) = name.strip_suffix(".b64") {
                let clean: String = body.chars().filter(|c| !c.is_whitespace()).collect();
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(clean)
                    .with_context(|| format!("section {name} is not base64"))?;
                std::fs::write(dir.join(bin), bytes)?;
            } else {
                std::fs::write(dir.join(name), body)?;
            }
        }
        std::fs::write(
            dir.join("timing.txt"),
            format!("qemu_boot_run_s={:.1}\n", wall.as_secs_f64()),
        )?;
        println!(
            "vm-test: {ver}: QEMU boot+run {:.1} s; files: {}",
            wall.as_secs_f64(),
            sections.keys().cloned().collect::<Vec<_>>().join(" ")
        );
        if let Some(info) = sections.get("info.txt") {
            println!("{}", info.trim_end());
        }
        if let Some(hv) = sections.get("hv_status.txt") {
            println!("vm-test: {ver}: Hyper-V run: {}", hv.trim_end());
        }
        match status.as_deref() {
            Some("ok") => Ok(wall),
            Some(why) => bail!("the VM run failed: {why}; see {}", dir.display()),
            None => bail!(
                "the VM printed no status (crashed or kernel panic?); serial log {}:\n{}",
                log.display(),
                tail(&text, 20)
            ),
        }
    }
}

pub fn vm_test(args: &VmTestArgs) -> Result<()> {
    let t_all = Instant::now();
    host::ensure_packages()?;
    // perf 6.12 reads the guest's perf.data afterwards (its report screen: real_kvm_perf.rs).
    let perf612 = crate::perf612::ensure()?;
    let packages = if args.kernel_packages.is_empty() {
        host::KERNEL_LINES
            .iter()
            .map(host::find_kernel_package)
            .collect::<Result<Vec<_>>>()?
    } else {
        args.kernel_packages.clone()
    };
    let kernels = packages
        .iter()
        .map(|p| host::ensure_kernel(Some(p)))
        .collect::<Result<Vec<_>>>()?;
    let kvmprof = match &args.kvmprof {
        Some(p) => p.clone(),
        None => build_kvmprof()?,
    };
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let out = crate::cargo::target_dir()
        .join("vm-test")
        .join(format!("run-{stamp}"));
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    // Each boot's files in a directory named by its kernel release; kernels.txt lists them.
    let runs: Vec<Run> = kernels
        .into_iter()
        .map(|(kroot, ver)| Run {
            dir: out.join(&ver),
            kroot,
            ver,
        })
        .collect();
    let listed: String = runs.iter().map(|r| format!("{}\n", r.ver)).collect();
    std::fs::write(out.join("kernels.txt"), listed)?;
    let prep = t_all.elapsed();
    println!(
        "vm-test: kernels {}, kvmprof {}, iters {}, output {}",
        runs.iter()
            .map(|r| r.ver.as_str())
            .collect::<Vec<_>>()
            .join(" "),
        kvmprof.display(),
        args.iters,
        out.display()
    );
    // Side by side only where each QEMU (its TCG thread and its main loop) has two host CPUs
    // to itself: real_kvm_perf compares perf's and kvmprof's clocks on the same exits, and a
    // QEMU descheduled between the two reads skews one tool's time (see QUANTILE_TOLERANCE there).
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let side_by_side = cpus >= 2 * runs.len();
    let t_boot = Instant::now();
    let results: Vec<Result<Duration>> = if side_by_side {
        std::thread::scope(|s| {
            let handles: Vec<_> = runs
                .iter()
                .map(|r| s.spawn(|| r.boot(&kvmprof, args)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("the boot thread panicked")))
                })
                .collect()
        })
    } else {
        runs.iter().map(|r| r.boot(&kvmprof, args)).collect()
    };
    let boots = t_boot.elapsed();
    let latest = out.with_file_name("latest");
    let _ = std::fs::remove_file(&latest);
    let _ = std::os::unix::fs::symlink(&out, &latest);
    let mut timing = format!(
        "prepare_s={:.1}\nboots_wall_s={:.1}\n",
        prep.as_secs_f64(),
        boots.as_secs_f64()
    );
    let mut failed = Vec::new();
    for (run, result) in runs.iter().zip(&results) {
        match result {
            Ok(wall) => timing += &format!("qemu_s[{}]={:.1}\n", run.ver, wall.as_secs_f64()),
            Err(e) => failed.push(format!("{}: {e:#}", run.ver)),
        }
    }
    std::fs::write(out.join("timing.txt"), &timing)?;
    println!(
        "vm-test: prepare {:.1} s, boots {:.1} s ({}, {cpus} CPUs)",
        prep.as_secs_f64(),
        boots.as_secs_f64(),
        if side_by_side {
            "side by side"
        } else {
            "one after the other"
        }
    );
    if !failed.is_empty() {
        bail!(
            "{} of {} boots failed:\n{}",
            failed.len(),
            runs.len(),
            failed.join("\n")
        );
    }
    for run in &runs {
        crate::perf612::capture(&perf612, &run.dir)?;
    }
    if args.no_check {
        return Ok(());
    }
    let mut test = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    test.args([
        "test",
        "--no-fail-fast",
        "-p",
        "kvmprof-tests",
        "--test",
        "real_kvm",
        "--test",
        "real_kvm_session",
        "--test",
        "real_kvm_perf",
        "--test",
        "real_kvm_slow",
        "--test",
        "real_kvm_sched",
        "--test",
        "real_kvm_tracepoints",
        "--test",
        "real_kvm_rips",
    ]);
    if !args.no_hyperv {
        test.args(["--test", "real_kvm_hyperv"]);
    }
    test.args(["--", "--nocapture", "--test-threads", "1"])
        .current_dir(crate::cargo::workspace_root())
        .env("KVMPROF_VM_OUT", &out);
    cmd_status(&mut test).context("real-KVM assertions failed")?;
    println!(
        "vm-test: passed in {:.1} s (boots {:.1} s)",
        t_all.elapsed().as_secs_f64(),
        boots.as_secs_f64()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_and_status() {
        let log = "[    1.0] boot\r\n\x1b[2J===KVMPROF-BEGIN a.txt===\r\nx 1\r\n\r\n===KVMPROF-END a.txt===\r\n\
                   ===KVMPROF-BEGIN b.json===\n{}\n===KVMPROF-END b.json===\n===KVMPROF-STATUS ok===\n";
        let (s, status) = extract_sections(log);
        assert_eq!(s.get("a.txt").map(String::as_str), Some("x 1\n"));
        assert_eq!(s.get("b.json").map(String::as_str), Some("{}\n"));
        assert_eq!(status.as_deref(), Some("ok"));
        let (s, status) = extract_sections("===KVMPROF-BEGIN ../x===\ny\n===KVMPROF-END ../x===\n");
        assert!(s.is_empty());
        let (s, status2) = extract_sections("===KVMPROF-BEGIN cut===\npartial\n");
        assert_eq!(status, status2);
        assert!(s.is_empty());
        assert_eq!(status, None);
    }
}
