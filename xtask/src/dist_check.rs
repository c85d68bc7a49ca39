//! The packages in use (part of `cargo xtask test`, as root): `dist`'s .deb installed with dpkg
//! into a clean Debian root made by debootstrap from Debian's packages, then, in that root,
//! `kvmprof --version`, `man -w`, the three completion files and `systemd-analyze verify` on
//! the installed unit; and the tarball's binary run there too.
//!
//! The root is Debian 11 (bullseye): glibc 2.31 and systemd 247, older than the build host's,
//! so the same run shows the static binary needs nothing of the host's glibc and that the unit
//! uses no directive an older systemd does not know. Made once with debootstrap and kept as a
//! tarball in the cache; each run unpacks a fresh copy (seconds, where debootstrap takes
//! minutes).

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, ensure, Context, Result};

use crate::{
    cargo::{target_dir, workspace_root},
    dist::{Dist, TARGET},
    setup::cache_dir,
    util::{cmd_output, run},
};

const SUITE: &str = "bullseye";
const MIRROR: &str = "http://deb.debian.org/debian";
/// What the checks run besides dpkg: man (man-db) and systemd-analyze (systemd).
const INCLUDE: &str = "man-db,systemd";
/// `systemd-analyze security`'s exposure of the unit, ×10 as `--threshold` takes it: the 2.1
/// SECURITY.md states. Weakening the unit fails the test.
const EXPOSURE_LIMIT: &str = "21";
/// A perf kvm stat table from the corpus, for `report` with the tarball's binary.
const FIXTURE: &str = "profiler/tests/corpus/04-win-3dgame-no-hyperv-baseline.txt";

pub fn check(d: &Dist) -> Result<()> {
    if !crate::apt::is_root() {
        bail!("the package test installs into a chroot: run `cargo xtask test` as root");
    }
    // systemd: the host's systemd-analyze (≥ 252 for --offline) rates the unit.
    crate::apt::install_missing(&["debootstrap", "systemd"], "xtask dist check")?;
    let unit = workspace_root().join("packaging/kvmprof.service");
    cmd_output(
        Command::new("systemd-analyze")
            .args(["security", "--offline=yes", "--no-pager"])
            .arg(format!("--threshold={EXPOSURE_LIMIT}"))
            .arg(&unit),
    )
    .context("the unit is more exposed than SECURITY.md says (2.1): harden it back")?;
    let root = fresh_root()?;
    let _mounts = Mounts::new(&root)?;
    let want = expected_version(d)?;

    // The .deb, as a user installs it.
    std::fs::copy(&d.deb, root.join("tmp/kvmprof.deb"))?;
    run(chroot(&root).args(["dpkg", "-i", "/tmp/kvmprof.deb"]))?;
    let got = cmd_output(chroot(&root).args(["kvmprof", "--version"]))?;
    ensure!(
        got.trim() == want,
        "installed kvmprof --version: {got:?}, want {want:?}"
    );
    for page in ["kvmprof", "kvmprof-serve", "kvmprof-top"] {
        let at = cmd_output(chroot(&root).args(["man", "-w", page]))?;
        let want_at = format!("/usr/share/man/man1/{page}.1.gz");
        ensure!(
            at.trim() == want_at,
            "man -w {page}: {at:?}, want {want_at}"
        );
    }
    for file in [
        "usr/share/bash-completion/completions/kvmprof",
        "usr/share/zsh/vendor-completions/_kvmprof",
        "usr/share/fish/vendor_completions.d/kvmprof.fish",
    ] {
        let text = std::fs::read_to_string(root.join(file))
            .with_context(|| format!("the package did not install /{file}"))?;
        ensure!(
            text.contains("kvmprof") && text.contains("serve"),
            "/{file} is not kvmprof's completion script:\n{text}"
        );
    }
    ensure!(
        root.join("usr/share/doc/kvmprof/examples/thresholds.toml")
            .is_file(),
        "the package did not install the example thresholds file"
    );
    // verify exits 0 on warnings (an unknown directive, a missing binary): any output fails.
    let unit = "/usr/lib/systemd/system/kvmprof.service";
    let out = chroot(&root)
        .args(["systemd-analyze", "verify", unit])
        .output()?;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(
        out.status.success() && said.trim().is_empty(),
        "systemd-analyze verify {unit} in Debian {SUITE} ({}): {said}",
        out.status
    );

    // The tarball, unpacked anywhere.
    run(Command::new("tar")
        .arg("-C")
        .arg(root.join("opt"))
        .arg("-xzf")
        .arg(&d.tarball))?;
    let name = d.tarball.file_name().unwrap_or_default().to_string_lossy();
    let bin = format!("/opt/{}/bin/kvmprof", name.trim_end_matches(".tar.gz"));
    let got = cmd_output(chroot(&root).args([bin.as_str(), "--version"]))?;
    ensure!(
        got.trim() == want,
        "tarball kvmprof --version: {got:?}, want {want:?}"
    );
    std::fs::copy(workspace_root().join(FIXTURE), root.join("tmp/perf.txt"))?;
    let table = cmd_output(chroot(&root).args([&bin, "report", "--from-perf", "/tmp/perf.txt"]))?;
    ensure!(
        table.contains("APIC_WRITE") && table.contains("EPT_MISCONFIG"),
        "the tarball's kvmprof report of {FIXTURE} lacks its reasons:\n{table}"
    );
    let libc = cmd_output(chroot(&root).args(["ldd", "--version"]))?;
    eprintln!(
        "xtask: package test passed in Debian {SUITE} ({})",
        libc.lines().next().unwrap_or("?")
    );
    Ok(())
}

fn chroot(root: &Path) -> Command {
    let mut c = Command::new("chroot");
    c.arg(root)
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("LC_ALL", "C")
        .env("SYSTEMD_COLORS", "0");
    c
}

/// `kvmprof VERSION (commit C; eBPF object sha256:H)`, H from the object the build embedded.
fn expected_version(d: &Dist) -> Result<String> {
    let builds = target_dir().join(TARGET).join("release/build");
    let mut objects: Vec<PathBuf> = std::fs::read_dir(&builds)?
        .flatten()
        .map(|e| e.path().join("out/profiler"))
        .filter(|p| p.is_file())
        .collect();
    // The newest: older build directories of other feature sets may linger.
    objects.sort_by_key(|p| p.metadata().and_then(|m| m.modified()).ok());
    let object = objects
        .last()
        .with_context(|| format!("no eBPF object under {}", builds.display()))?;
    let sum = cmd_output(Command::new("sha256sum").arg(object))?;
    let hex = sum.get(..12).context("sha256sum printed no hash")?;
    Ok(format!(
        "kvmprof {} (commit {}; eBPF object sha256:{hex})",
        env!("CARGO_PKG_VERSION"),
        d.commit,
    ))
}

/// A clean Debian root under target/, unpacked from the cached debootstrap tarball (made
/// first if missing).
fn fresh_root() -> Result<PathBuf> {
    let cached = cache_dir().join(format!("debian-{SUITE}-root.tar.gz"));
    if !cached.is_file() {
        bootstrap(&cached)?;
    }
    let root = target_dir().join("dist-check/root");
    Mounts::clear(&root);
    if root.exists() {
        std::fs::remove_dir_all(&root).with_context(|| format!("removing {}", root.display()))?;
    }
    std::fs::create_dir_all(&root)?;
    run(Command::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-xzf")
        .arg(&cached))?;
    Ok(root)
}

fn bootstrap(cached: &Path) -> Result<()> {
    let dir = cache_dir().join(format!("debian-{SUITE}.tmp"));
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    eprintln!(
        "xtask: debootstrap {SUITE} into {} (once; a few minutes)",
        dir.display()
    );
    run(Command::new("debootstrap")
        .args(["--variant=minbase", &format!("--include={INCLUDE}"), SUITE])
        .arg(&dir)
        .arg(MIRROR))?;
    let tmp = cached.with_extension("partial");
    run(Command::new("tar")
        .arg("-C")
        .arg(&dir)
        .args(["--numeric-owner", "-czf"])
        .arg(&tmp)
        .arg("."))?;
    std::fs::rename(&tmp, cached)?;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

/// /proc, /sys and the cgroup tree mounted in the root for the checks (dpkg reads /proc,
/// systemd-analyze its cgroup), unmounted in reverse order when dropped, also on failure.
struct Mounts(Vec<PathBuf>);

impl Mounts {
    fn new(root: &Path) -> Result<Self> {
        let mut m = Mounts(Vec::new());
        for (args, at) in [
            (&["-t", "proc", "proc"][..], "proc"),
            (&["-t", "sysfs", "sysfs"][..], "sys"),
            (&["--bind", "/sys/fs/cgroup"][..], "sys/fs/cgroup"),
        ] {
            let at = root.join(at);
            run(Command::new("mount").args(args).arg(&at))?;
            m.0.push(at);
        }
        Ok(m)
    }

    /// Unmount what a killed run left mounted under `root`.
    fn clear(root: &Path) {
        for at in ["sys/fs/cgroup", "sys", "proc"] {
            let _ = Command::new("umount")
                .arg(root.join(at))
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

impl Drop for Mounts {
    fn drop(&mut self) {
        for at in self.0.iter().rev() {
            let _ = Command::new("umount").arg(at).status();
        }
    }
}
