//! `cargo xtask vm-test`: boot a stock Debian kernel under QEMU/TCG with AMD SVM, load kvm_amd,
//! run kvmprof while the exerciser guest runs, and compare kvmprof's counts with the guest
//! kernel's own hist triggers (see shared/docs/real-kvm.md and tests/tests/real_kvm.rs). The same
//! boot then runs the Hyper-V exerciser (SynIC, AutoEOI, stimer) under `kvmprof report` and
//! `kvmprof advise` (tests/tests/real_kvm_hyperv.rs).

pub(crate) mod host;
pub(crate) mod initramfs;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
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
    /// Kernel package (default: newest linux-image-6.12.*+deb12-amd64-unsigned).
    #[arg(long)]
    pub kernel_package: Option<String>,
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
            kernel_package: None,
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

/// One boot of the Debian kernel with an initramfs under QEMU/TCG (2 vCPUs, `-cpu max`: nested
/// SVM), serial console to `log`, until the guest powers off.
pub(crate) struct Qemu<'a> {
    pub kroot: &'a Path,
    pub ver: &'a str,
    pub initrd: &'a Path,
    pub memory: &'a str,
    pub append: &'a str,
    /// Seconds before the guest is killed.
    pub timeout: u64,
    pub log: &'a Path,
}

impl Qemu<'_> {
    /// Boot and wait; `poll(elapsed)` runs every `every` meanwhile. Returns the wall time.
    pub fn run(&self, every: Duration, mut poll: impl FnMut(Duration)) -> Result<Duration> {
        let log = self.log;
        let serial = std::fs::File::create(log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        let mut qemu = Command::new("qemu-system-x86_64");
        qemu.args([
            // One host thread for both vCPUs: with multi-threaded TCG, the guest kernel's live
            // code patching (text_poke with int3, e.g. KVM toggling the preempt-notifier static
            // key in __schedule on every VM create/destroy) races with the other vCPU's cached
            // translation and the guest dies of an unhandled int3 now and then.
            "-accel",
            "tcg,thread=single",
            "-cpu",
            "max",
            "-m",
            self.memory,
            "-smp",
            "2",
            "-nographic",
            "-no-reboot",
        ])
        .arg("-kernel")
        .arg(self.kroot.join(format!("boot/vmlinuz-{}", self.ver)))
        .arg("-initrd")
        .arg(self.initrd)
        .args(["-append", self.append])
        .stdin(Stdio::null())
        .stdout(serial.try_clone()?)
        .stderr(serial);
        let t0 = Instant::now();
        let mut child = qemu
            .spawn()
            .context("cannot start qemu-system-x86_64 (apt-get install qemu-system-x86)")?;
        let deadline = t0 + Duration::from_secs(self.timeout);
        loop {
            if let Some(status) = child.try_wait()? {
                if !status.success() {
                    bail!("qemu exited with {status}; serial log {}", log.display());
                }
                return Ok(t0.elapsed());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                let text = std::fs::read_to_string(log).unwrap_or_default();
                bail!(
                    "QEMU did not power off within {} s (raise --timeout); serial log {}:\n{}",
                    self.timeout,
                    log.display(),
                    tail(&text, 20)
                );
            }
            poll(t0.elapsed());
            std::thread::sleep(every);
        }
    }
}

pub fn vm_test(args: &VmTestArgs) -> Result<()> {
    let t_all = Instant::now();
    host::ensure_packages()?;
    let (kroot, ver) = host::ensure_kernel(args.kernel_package.as_deref())?;
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
    let archive = build_initramfs(&kroot, &ver, &kvmprof)?;
    let initrd = out.join("initramfs.cpio");
    let bytes = archive.to_newc();
    std::fs::write(&initrd, &bytes)?;
    println!(
        "vm-test: initramfs {} entries, {:.1} MiB: {}",
        archive.paths().len(),
        bytes.len() as f64 / (1024.0 * 1024.0),
        archive.paths().join(" ")
    );
    let prep = t_all.elapsed();
    println!(
        "vm-test: kernel {ver}, kvmprof {}, iters {}, output {}",
        kvmprof.display(),
        args.iters,
        out.display()
    );

    let log = out.join("serial.log");
    let wall = boot(&kroot, &ver, &initrd, args, &log)?;
    let text = std::fs::read_to_string(&log)?;
    let (sections, status) = extract_sections(&text);
    for (name, body) in &sections {
        // Binary files (recordings) travel base64-encoded over the serial console.
        if let Some(bin) = name.strip_suffix(".b64") {
            let clean: String = body.chars().filter(|c| !c.is_whitespace()).collect();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(clean)
                .with_context(|| format!("section {name} is not base64"))?;
            std::fs::write(out.join(bin), bytes)?;
        } else {
            std::fs::write(out.join(name), body)?;
        }
    }
    let _ = std::fs::remove_file(&initrd);
    let latest = out.with_file_name("latest");
    let _ = std::fs::remove_file(&latest);
    let _ = std::os::unix::fs::symlink(&out, &latest);
    println!(
        "vm-test: prepare {:.1} s, QEMU boot+run {:.1} s; files: {}",
        prep.as_secs_f64(),
        wall.as_secs_f64(),
        sections.keys().cloned().collect::<Vec<_>>().join(" ")
    );
    let timing = format!(
        "prepare_s={:.1}\nqemu_boot_run_s={:.1}\n",
        prep.as_secs_f64(),
        wall.as_secs_f64()
    );
    std::fs::write(out.join("timing.txt"), timing)?;
    if let Some(info) = sections.get("info.txt") {
        println!("{}", info.trim_end());
    }
    if let Some(hv) = sections.get("hv_status.txt") {
        println!("vm-test: Hyper-V run: {}", hv.trim_end());
    }
    match status.as_deref() {
        Some("ok") => {}
        Some(why) => bail!("the VM run failed: {why}; see {}", out.display()),
        None => bail!(
            "the VM printed no status (crashed or kernel panic?); serial log {}:\n{}",
            log.display(),
            tail(&text, 20)
        ),
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
    ]);
    if !args.no_hyperv {
        test.args(["--test", "real_kvm_hyperv"]);
    }
    test.args(["--", "--nocapture", "--test-threads", "1"])
        .current_dir(crate::cargo::workspace_root())
        .env("KVMPROF_VM_OUT", &out);
    cmd_status(&mut test).context("real-KVM assertions failed")?;
    println!(
        "vm-test: passed in {:.1} s (QEMU {:.1} s)",
        t_all.elapsed().as_secs_f64(),
        wall.as_secs_f64()
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
