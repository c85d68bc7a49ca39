//! Where the workspace and its build outputs are, and the cargo builds the tasks share
//! (below tasks.rs, vm.rs and bench_vm.rs, which all use them).

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::{
    setup,
    util::{cmd_output, run},
};

pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

/// Where cargo puts build outputs (CARGO_TARGET_DIR wins, as cargo itself does).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// Build kvmprof with its eBPF programs (release) and return the binary's path.
pub fn build_release(env: &setup::Env) -> Result<PathBuf> {
    let commit = git_commit()?;
    run(env
        .command("cargo")
        .current_dir(workspace_root())
        .env("KVMPROF_COMMIT", commit)
        .args(["build", "--release", "-p", "kvmprof", "--features", "ebpf"]))?;
    Ok(target_dir().join("release/kvmprof"))
}

/// The short commit hash, `-dirty` when the work tree has uncommitted changes (tags ignored:
/// the hash is what names a build).
pub fn git_commit() -> Result<String> {
    let out = cmd_output(
        std::process::Command::new("git")
            .current_dir(workspace_root())
            .args([
                "describe",
                "--always",
                "--dirty",
                "--abbrev=10",
                "--exclude=*",
            ]),
    )
    .context("naming the commit for `kvmprof --version` (is this a git checkout?)")?;
    Ok(out.trim().to_string())
}

/// Build `kvmprof-empty` (the bench-vm baseline, tests/src/bin/kvmprof-empty.rs) with the eBPF
/// test object and return its path.
pub fn build_empty_baseline(env: &setup::Env) -> Result<PathBuf> {
    build_test_bin(env, "kvmprof-empty")
}

/// Build one release binary of the tests crate with the eBPF test object (the benchmarks'
/// programs) and return its path.
pub fn build_test_bin(env: &setup::Env, bin: &str) -> Result<PathBuf> {
    run(env.command("cargo").current_dir(workspace_root()).args([
        "build",
        "--release",
        "-p",
        "kvmprof-tests",
        "--features",
        "kvmprof/ebpf-test",
        "--bin",
        bin,
    ]))?;
    Ok(target_dir().join("release").join(bin))
}
