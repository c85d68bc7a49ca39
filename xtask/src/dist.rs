//! `cargo xtask dist`: what a host without Rust installs. One statically linked release binary
//! (glibc's static libc, so it runs on any x86-64 Linux whatever its glibc; the musl target
//! is not installable here) with the eBPF object embedded, packed twice:
//!
//! - `target/dist/kvmprof_VERSION-1_amd64.deb`, built by cargo-deb from
//!   `[package.metadata.deb]` in profiler/Cargo.toml: /usr/bin/kvmprof, man pages, bash/zsh/fish
//!   completions, the example thresholds file and the systemd unit (packaging/kvmprof.service);
//! - `target/dist/kvmprof-VERSION-x86_64-linux-static.tar.gz`: the same files in one directory.
//!
//! The man pages and completions come from the binary itself (`kvmprof man-pages DIR`,
//! `kvmprof completions SHELL`), so they describe exactly the binary they ship with.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context, Result};

use crate::{
    cargo::{target_dir, workspace_root},
    setup,
    util::{cmd_output, run},
};

/// The binary's target, named explicitly so `+crt-static` reaches only kvmprof, not the build
/// scripts and proc macros cargo builds for the host (which cannot be static).
pub const TARGET: &str = "x86_64-unknown-linux-gnu";
/// cargo-deb, installed once into the cache (like bpf-linker) when missing.
const CARGO_DEB: &str = "cargo-deb@3.6.4";

/// What `dist` made.
pub struct Dist {
    pub deb: PathBuf,
    pub tarball: PathBuf,
    /// `git describe` of the work tree when built: what `kvmprof --version` names.
    pub commit: String,
}

/// Where the packages go.
pub fn out_dir() -> PathBuf {
    target_dir().join("dist")
}

pub fn dist() -> Result<Dist> {
    let env = setup::setup()?;
    // readelf (binutils) checks the binary is static.
    crate::apt::install_missing(&["binutils"], "xtask dist")?;
    let commit = crate::cargo::git_commit()?;
    let binary = build_static(&env, &commit)?;
    // cargo-deb reads its assets from target/TARGET/release/…: generated ones go there too.
    let assets = target_dir().join(TARGET).join("release/dist-assets");
    generate_assets(&binary, &assets)?;
    let out = out_dir();
    std::fs::create_dir_all(&out)?;
    let deb = build_deb(&env, &out)?;
    let tarball = build_tarball(&binary, &assets, &out)?;
    eprintln!(
        "xtask: dist: {}\nxtask: dist: {}",
        deb.display(),
        tarball.display()
    );
    Ok(Dist {
        deb,
        tarball,
        commit,
    })
}

/// The package's binary as dpkg installs it (`dpkg-deb -x`), for the real-KVM test.
pub fn unpack_deb(deb: &Path) -> Result<PathBuf> {
    let dir = out_dir().join("unpacked");
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&dir))?;
    Ok(dir.join("usr/bin/kvmprof"))
}

fn build_static(env: &setup::Env, commit: &str) -> Result<PathBuf> {
    run(env
        .command("cargo")
        .current_dir(workspace_root())
        .env(
            "CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS",
            "-C target-feature=+crt-static",
        )
        .env("KVMPROF_COMMIT", commit)
        .args(["build", "--release", "-p", "kvmprof", "--features", "ebpf"])
        .args(["--target", TARGET]))?;
    let binary = target_dir().join(TARGET).join("release/kvmprof");
    // A static executable has no program interpreter (no PT_INTERP): ld.so is never asked.
    let headers = cmd_output(Command::new("readelf").arg("-lW").arg(&binary))?;
    if headers.contains("Requesting program interpreter") {
        bail!(
            "{} is dynamically linked although built with +crt-static",
            binary.display()
        );
    }
    Ok(binary)
}

/// Man pages (gzipped, as Debian installs them) and the three shells' completions.
fn generate_assets(binary: &Path, assets: &Path) -> Result<()> {
    let _ = std::fs::remove_dir_all(assets);
    let man = assets.join("man");
    run(Command::new(binary).arg("man-pages").arg(&man))?;
    for page in std::fs::read_dir(&man)? {
        // -n: no name or time stamp in the header, so rebuilds give the same bytes.
        run(Command::new("gzip").args(["-9nf"]).arg(page?.path()))?;
    }
    let completions = assets.join("completions");
    std::fs::create_dir_all(&completions)?;
    for (shell, file) in [
        ("bash", "kvmprof.bash"),
        ("zsh", "_kvmprof"),
        ("fish", "kvmprof.fish"),
    ] {
        let script = cmd_output(Command::new(binary).args(["completions", shell]))?;
        std::fs::write(completions.join(file), script)?;
    }
    Ok(())
}

/// cargo-deb from the cache, installed there on first use.
fn cargo_deb_bin() -> Result<PathBuf> {
    let root = setup::cache_dir().join(CARGO_DEB.replace('@', "-"));
    let bin = root.join("bin");
    if !bin.join("cargo-deb").is_file() {
        eprintln!("xtask: installing {CARGO_DEB} into {}", root.display());
        run(Command::new("cargo")
            .args(["install", CARGO_DEB, "--locked", "--root"])
            .arg(&root))?;
    }
    Ok(bin)
}

fn build_deb(env: &setup::Env, out: &Path) -> Result<PathBuf> {
    let bin = cargo_deb_bin()?;
    let path = format!("{}:{}", bin.display(), env.path());
    // --no-build: the binary above is the one packaged (cargo-deb would build without the
    // static flag); --no-strip keeps it byte for byte what the tarball holds.
    let printed = cmd_output(
        Command::new("cargo")
            .current_dir(workspace_root())
            .env("PATH", path)
            .args([
                "deb",
                "-p",
                "kvmprof",
                "--no-build",
                "--no-strip",
                "--target",
                TARGET,
            ])
            .arg("--output")
            .arg(out),
    )?;
    let deb = PathBuf::from(printed.lines().last().unwrap_or_default().trim());
    if !deb.is_file() {
        bail!("cargo deb printed no package path (it printed: {printed})");
    }
    Ok(deb)
}

/// `kvmprof-VERSION-x86_64-linux-static/` with bin/, man/man1/, completions/, the unit, the
/// example and the README, as one .tar.gz.
fn build_tarball(binary: &Path, assets: &Path, out: &Path) -> Result<PathBuf> {
    let version = env!("CARGO_PKG_VERSION");
    let name = format!("kvmprof-{version}-x86_64-linux-static");
    let stage = target_dir().join(TARGET).join("release/dist-stage");
    let _ = std::fs::remove_dir_all(&stage);
    let top = stage.join(&name);
    let root = workspace_root();
    let copies: [(PathBuf, &str); 8] = [
        (binary.to_path_buf(), "bin/kvmprof"),
        (
            assets.join("completions/kvmprof.bash"),
            "completions/kvmprof.bash",
        ),
        (assets.join("completions/_kvmprof"), "completions/_kvmprof"),
        (
            assets.join("completions/kvmprof.fish"),
            "completions/kvmprof.fish",
        ),
        (root.join("packaging/kvmprof.service"), "kvmprof.service"),
        (
            root.join("profiler/src/check/example.toml"),
            "examples/thresholds.toml",
        ),
        (root.join("README.md"), "README.md"),
        (root.join("SECURITY.md"), "SECURITY.md"),
    ];
    for (from, to) in copies.iter().map(|(f, t)| (f, top.join(t))) {
        std::fs::create_dir_all(to.parent().expect("has a parent"))?;
        std::fs::copy(from, &to).with_context(|| format!("copying {}", from.display()))?;
    }
    let man1 = top.join("man/man1");
    std::fs::create_dir_all(&man1)?;
    for page in std::fs::read_dir(assets.join("man"))? {
        let page = page?;
        std::fs::copy(page.path(), man1.join(page.file_name()))?;
    }
    let tarball = out.join(format!("{name}.tar.gz"));
    run(Command::new("tar")
        .arg("-C")
        .arg(&stage)
        .args(["--owner=0", "--group=0", "--sort=name", "-czf"])
        .arg(&tarball)
        .arg(&name))?;
    Ok(tarball)
}
