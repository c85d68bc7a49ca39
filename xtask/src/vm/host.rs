//! Host side of the VM test: Debian packages, the cached kernel, command helpers.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{anyhow, bail, Context, Result};

const PACKAGES: &[&str] = &[
    "qemu-system-x86",
    "busybox-static",
    "cpio",
    "kmod",
    "xz-utils",
    // perf in the guest: kvmprof against `perf kvm stat` on the same exits (real_kvm_perf.rs).
    "linux-perf",
];

fn cache_dir() -> Result<PathBuf> {
    let home = std::env::var_os("HOME")
        .ok_or_else(|| anyhow!("HOME is not set: set it to locate ~/.cache"))?;
    Ok(PathBuf::from(home).join(".cache/kvmprof/vm"))
}

pub fn cmd_output(cmd: &mut Command) -> Result<String> {
    let shown = format!("{cmd:?}");
    let out = cmd
        .stderr(Stdio::piped())
        .output()
        .with_context(|| format!("cannot run {shown}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        bail!("{shown} failed ({}): {}", out.status, err.trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub fn cmd_status(cmd: &mut Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    let status = cmd
        .status()
        .with_context(|| format!("cannot run {shown}"))?;
    if !status.success() {
        bail!("{shown} failed ({status})");
    }
    Ok(())
}

/// Install the missing Debian packages (one `apt-get update`, one `apt-get install`).
pub fn ensure_packages() -> Result<()> {
    crate::apt::install_missing(PACKAGES, "vm-test")
}

/// The profilers `cargo xtask bench-vm` compares kvmprof with (packed into its own initramfs).
pub const BENCH_PACKAGES: &[&str] = &["linux-perf", "bpftrace"];

/// Install the missing benchmark packages (perf, bpftrace), as `ensure_packages` does.
pub fn ensure_bench_packages() -> Result<()> {
    crate::apt::install_missing(BENCH_PACKAGES, "bench-vm")
}

/// The host's `name` executable (ELF, not a wrapper script), to pack into a guest initramfs.
pub fn find_program(name: &str) -> Result<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into());
    for dir in path.split(':').chain(["/usr/bin", "/usr/sbin"]) {
        let p = Path::new(dir).join(name);
        if let Ok(data) = std::fs::read(&p) {
            if data.starts_with(b"\x7fELF") {
                return Ok(p);
            }
        }
    }
    bail!("no {name} executable (ELF) in PATH: apt-get install linux-perf bpftrace")
}

/// A line of Debian kernels the VM test boots: tracepoint formats and the set of tracepoints
/// differ between them, so kvmprof is tested on each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelLine {
    /// How the tests name it: the release prefix (`uname -r` starts with `<name>.` or `<name>-`).
    pub name: &'static str,
    /// Package name = prefix + build number + suffix (6.12: patch level, 6.1: ABI number).
    prefix: &'static str,
    suffix: &'static str,
    /// `apt-cache search --names-only` pattern for the line's packages.
    pattern: &'static str,
}

/// Bookworm's backported 6.12 (the default, also for `cargo xtask bench-vm`) and its own 6.1.
pub const KERNEL_LINES: [KernelLine; 2] = [
    KernelLine {
        name: "6.12",
        prefix: "linux-image-6.12.",
        suffix: "+deb12-amd64-unsigned",
        pattern: r"^linux-image-6\.12\.[0-9]+\+deb12-amd64-unsigned$",
    },
    KernelLine {
        name: "6.1",
        prefix: "linux-image-6.1.0-",
        suffix: "-amd64-unsigned",
        pattern: r"^linux-image-6\.1\.0-[0-9]+-amd64-unsigned$",
    },
];

impl KernelLine {
    /// The line's newest package in `apt-cache search` output (highest build number).
    pub fn newest_package(&self, search: &str) -> Option<String> {
        search
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter_map(|name| {
                let build = name.strip_prefix(self.prefix)?.strip_suffix(self.suffix)?;
                Some((build.parse::<u64>().ok()?, name.to_string()))
            })
            .max()
            .map(|(_, name)| name)
    }
}

/// The newest package of `line` that apt knows (after one `apt-get update` if it knows none).
pub fn find_kernel_package(line: &KernelLine) -> Result<String> {
    let search =
        || cmd_output(Command::new("apt-cache").args(["search", "--names-only", line.pattern]));
    if let Some(p) = line.newest_package(&search()?) {
        return Ok(p);
    }
    cmd_status(Command::new("apt-get").args(["update", "-qq"]))?;
    line.newest_package(&search()?).ok_or_else(|| {
        anyhow!(
            "no {}{{N}}{} in apt: enable bookworm(-updates/-security) in sources.list",
            line.prefix,
            line.suffix
        )
    })
}

/// Download and unpack the kernel into the cache (reused across runs). Returns (root, version).
pub fn ensure_kernel(pkg: Option<&str>) -> Result<(PathBuf, String)> {
    let cache = cache_dir()?;
    std::fs::create_dir_all(&cache)
        .with_context(|| format!("cannot create {}", cache.display()))?;
    let pkg = match pkg {
        Some(p) => p.to_string(),
        None => find_kernel_package(&KERNEL_LINES[0])?,
    };
    let root = cache.join(&pkg);
    if !root.join(".complete").exists() {
        println!("vm-test: downloading {pkg} into {}", cache.display());
        let _ = std::fs::remove_dir_all(&root);
        cmd_status(
            Command::new("apt-get")
                .args(["download", "-qq", &pkg])
                .current_dir(&cache),
        )?;
        let deb = std::fs::read_dir(&cache)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| {
                let n = p
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                n.starts_with(&format!("{pkg}_")) && n.ends_with(".deb")
            })
            .ok_or_else(|| {
                anyhow!(
                    "apt-get download {pkg} produced no .deb in {}",
                    cache.display()
                )
            })?;
        cmd_status(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root))?;
        std::fs::write(root.join(".complete"), b"")?;
        let _ = std::fs::remove_file(&deb);
    }
    let ver = std::fs::read_dir(root.join("lib/modules"))
        .with_context(|| format!("{} has no lib/modules: delete it and rerun", root.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .next()
        .ok_or_else(|| {
            anyhow!(
                "{}/lib/modules is empty: delete {} and rerun",
                root.display(),
                root.display()
            )
        })?;
    if !root
        .join("lib/modules")
        .join(&ver)
        .join("modules.dep")
        .exists()
    {
        cmd_status(Command::new("depmod").arg("-b").arg(&root).arg(&ver))?;
    }
    Ok((root, ver))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_newest_kernel_of_each_line() {
        let s = "linux-image-6.12.9+deb12-amd64-unsigned - Linux\n\
                 linux-image-6.12.117+deb12-amd64-unsigned - Linux\n\
                 linux-image-6.12.41+deb12-amd64-unsigned - Linux\n\
                 linux-image-6.12.200+deb12-cloud-amd64-unsigned - Linux\n\
                 linux-image-6.1.0-9-amd64-unsigned - Linux 6.1\n\
                 linux-image-6.1.0-57-amd64-unsigned - Linux 6.1\n\
                 linux-image-6.1.0-60-cloud-amd64-unsigned - Linux 6.1\n\
                 linux-image-6.1.0-61-rt-amd64-unsigned - Linux 6.1\n";
        let [l612, l61] = KERNEL_LINES;
        assert_eq!(
            l612.newest_package(s).as_deref(),
            Some("linux-image-6.12.117+deb12-amd64-unsigned")
        );
        assert_eq!(
            l61.newest_package(s).as_deref(),
            Some("linux-image-6.1.0-57-amd64-unsigned")
        );
        assert_eq!(l612.newest_package(""), None);
        assert_eq!(l61.newest_package(""), None);
    }
}
