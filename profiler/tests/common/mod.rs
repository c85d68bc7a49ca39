//! What the CLI test files share: running the binary, and the CI rule for privileged tests.
#![allow(dead_code)]

use std::process::{Command, Output};

pub fn kvmprof(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kvmprof"))
        .args(args)
        .output()
        .expect("running kvmprof")
}

/// Privileged checks: fail in CI when they cannot run, say why elsewhere.
pub fn privileged(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    let ok = unsafe { libc::geteuid() } == 0 && kvmprof::probe::HAS_OBJECT;
    if !ok {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
        assert!(
            !ci,
            "{test}: needs root and the eBPF object (cargo xtask test)"
        );
        eprintln!("{test}: NOT RUN: needs root and the eBPF object (cargo xtask test)");
    }
    ok
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A file of the repository, by its path from the workspace root.
pub fn repo_file(rel: &str) -> String {
    format!("{}/../{rel}", env!("CARGO_MANIFEST_DIR"))
}

/// A recording being written at `path`: the built-in exit names, one sample a second.
pub fn recorder(path: &std::path::Path) -> kvmprof::store::Recorder {
    kvmprof::store::Recorder::create(
        path,
        &kvmprof::store::Header {
            names: kvmprof::decode::ExitNames::builtin(),
            interval_ms: 1000,
            ..Default::default()
        },
    )
    .expect("creating a recording")
}
