//! Builds the eBPF object with aya-build when the `ebpf` feature is on (cargo xtask does that
//! after `setup` has installed rust-src and bpf-linker); plain `cargo test` skips it.
//! With `ebpf-test` it also builds a second object holding the test and benchmark programs
//! (the eBPF crate's `test-programs` feature), for the privileged tests and benchmarks only.
//!
//! It also sets what `kvmprof --version` prints: KVMPROF_COMMIT (the git commit, given by
//! `cargo xtask` as `git describe --always --dirty` saw it, else "unknown") and KVMPROF_EBPF
//! (the first 12 hex digits of the embedded object's SHA-256, or why there is none).
use std::path::Path;

use sha2::{Digest, Sha256};

fn main() -> anyhow::Result<()> {
    println!("cargo:rerun-if-env-changed=CARGO_FEATURE_EBPF");
    println!("cargo:rerun-if-env-changed=CARGO_FEATURE_EBPF_TEST");
    // Passed in rather than asked of git here: a build script cannot tell cargo to rerun when
    // the work tree gets dirty, so its own answer would go stale; xtask asks git every build.
    println!("cargo:rerun-if-env-changed=KVMPROF_COMMIT");
    let commit = std::env::var("KVMPROF_COMMIT").unwrap_or_else(|_| "unknown".into());
    println!("cargo:rustc-env=KVMPROF_COMMIT={commit}");
    if std::env::var_os("CARGO_FEATURE_EBPF").is_none() {
        println!("cargo:rustc-env=KVMPROF_EBPF=none, built without the ebpf feature");
        return Ok(());
    }
    // aya-build watches the eBPF crate only; the shared layouts are compiled into it too.
    println!("cargo:rerun-if-changed=../profiler-common/src");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../profiler-ebpf");
    let root = root.to_str().expect("utf-8 path");
    let build = |features: &[&str]| {
        aya_build::build_ebpf(
            [aya_build::Package {
                name: "profiler-ebpf",
                root_dir: root,
                features,
                ..Default::default()
            }],
            aya_build::Toolchain::Nightly,
        )
    };
    // Both builds write OUT_DIR/profiler (the eBPF binary's name): the test one first, moved
    // aside, so OUT_DIR/profiler is always the release object.
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    if std::env::var_os("CARGO_FEATURE_EBPF_TEST").is_some() {
        build(&["test-programs"])?;
        std::fs::rename(out.join("profiler"), out.join("profiler-test"))?;
    }
    build(&[])?;
    let object = std::fs::read(out.join("profiler"))?;
    let hex: String = Sha256::digest(&object)[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    println!("cargo:rustc-env=KVMPROF_EBPF=sha256:{hex}");
    Ok(())
}
