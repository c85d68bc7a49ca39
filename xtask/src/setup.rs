//! `cargo xtask setup`: make a fresh machine able to build and load the eBPF programs.
//! Idempotent; every step checks before it acts.

use std::{
    env, fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context, Result};

use crate::util::{cmd_output, run};

/// The nightly that builds the eBPF crate (aya-build's `Toolchain::Nightly`).
const NIGHTLY: &str = "nightly";
/// bpf-linker release that links against an external libLLVM (toolchain.md).
const BPF_LINKER: &str = "bpf-linker@0.13.0";

pub struct Env {
    /// Directory holding the bpf-linker binary: prepend to PATH for eBPF builds.
    pub linker_bin: PathBuf,
}

impl Env {
    /// PATH with bpf-linker first.
    pub fn path(&self) -> String {
        let old = env::var("PATH").unwrap_or_default();
        format!("{}:{old}", self.linker_bin.display())
    }

    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("PATH", self.path());
        c
    }
}

pub fn setup() -> Result<Env> {
    ensure_rust_src()?;
    let linker_bin = ensure_bpf_linker()?;
    ensure_tracefs();
    Ok(Env { linker_bin })
}

fn ensure_rust_src() -> Result<()> {
    let installed = cmd_output(Command::new("rustup").args([
        "component",
        "list",
        "--installed",
        "--toolchain",
        NIGHTLY,
    ]))
    .context(
        "rustup must be installed, with a nightly toolchain (`rustup toolchain install nightly`)",
    )?;
    if installed.lines().any(|l| l.starts_with("rust-src")) {
        return Ok(());
    }
    eprintln!("xtask: installing rust-src for {NIGHTLY}");
    run(Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", NIGHTLY]))
}

/// bpf-linker must use the LLVM of the nightly that compiles the eBPF crate: link it against
/// the nightly's own libLLVM, cached per nightly version so a new nightly rebuilds it.
fn ensure_bpf_linker() -> Result<PathBuf> {
    let vv = cmd_output(Command::new("rustc").args([&format!("+{NIGHTLY}"), "-vV"]))?;
    let llvm_major = vv
        .lines()
        .find_map(|l| l.strip_prefix("LLVM version: "))
        .and_then(|v| v.split('.').next())
        .context("`rustc +nightly -vV` printed no LLVM version")?
        .to_string();
    let cache = cache_dir().join(format!("bpf-linker-{}", short_hash(&vv)));
    let bin = cache.join("bin");
    if bin.join("bpf-linker").is_file() {
        return Ok(bin);
    }
    let sysroot =
        cmd_output(Command::new("rustc").args([&format!("+{NIGHTLY}"), "--print", "sysroot"]))?;
    let libdir = Path::new(sysroot.trim()).join("lib");
    let libllvm = fs::read_dir(&libdir)
        .with_context(|| format!("reading {}", libdir.display()))?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libLLVM.so.") || n.starts_with("libLLVM-"))
        })
        .with_context(|| format!("no libLLVM shared library in {}", libdir.display()))?;
    let prefix = cache.join("llvm");
    let lib = prefix.join("lib");
    fs::create_dir_all(&lib)?;
    for name in [
        "libLLVM.so".to_string(),
        libllvm
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned(),
    ] {
        let link = lib.join(name);
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(&libllvm, &link)
            .with_context(|| format!("linking {}", link.display()))?;
    }
    eprintln!(
        "xtask: building {BPF_LINKER} against {} (about a minute)",
        libllvm.display()
    );
    run(Command::new("cargo")
        .args([
            "install",
            BPF_LINKER,
            "--locked",
            "--no-default-features",
            "--features",
        ])
        .arg(format!("llvm-{llvm_major}"))
        .arg("--root")
        .arg(&cache)
        .env("LLVM_PREFIX", &prefix))?;
    if !bin.join("bpf-linker").is_file() {
        bail!(
            "cargo install finished but {} is missing",
            bin.join("bpf-linker").display()
        );
    }
    Ok(bin)
}

/// Mount tracefs where the probes look for it (fresh boots may lack it). Not fatal: without
/// root this fails and the privileged tests say so themselves.
fn ensure_tracefs() {
    let t = Path::new("/sys/kernel/tracing");
    if t.join("events").is_dir() || Path::new("/sys/kernel/debug/tracing/events").is_dir() {
        return;
    }
    let _ = Command::new("mount")
        .args(["-t", "tracefs", "nodev"])
        .arg(t)
        .status();
}

pub fn cache_dir() -> PathBuf {
    env::var_os("KVMPROF_CACHE")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/kvmprof")))
        .unwrap_or_else(|| PathBuf::from("/var/cache/kvmprof"))
}

/// FNV-1a: a stable cache key without pulling in a hashing crate.
fn short_hash(s: &str) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{h:016x}")
}
