//! Gate for privileged tests: they run as root with the embedded eBPF objects (the release one
//! and the test one of `--features kvmprof/ebpf-test`). Outside CI a
//! machine that cannot run them says why and passes; in CI (CI=true) that is a failure.

#![allow(dead_code)]

pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// True when this test can run; otherwise fails in CI, or prints why and returns false.
pub fn privileged(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let why = if !root {
        Some("not running as root")
    } else if !kvmprof::probe::HAS_TEST_OBJECT {
        Some("built without the eBPF test object (run `cargo xtask test`, or pass `--features kvmprof/ebpf-test`)")
    } else {
        None
    };
    match why {
        None => true,
        Some(why) if in_ci() => panic!("{test}: cannot run in CI: {why}"),
        Some(why) => {
            eprintln!("{test}: NOT RUN: {why}");
            false
        }
    }
}

/// The test-run programs (raw_tp entry, BPF_PROG_TEST_RUN) with room for `max_keys` rows.
pub fn test_probe(max_keys: u32) -> kvmprof::probe::Probe {
    use kvmprof::probe::{Probe, ProbeOptions, Programs};
    Probe::load(&ProbeOptions {
        programs: Programs::TestRun,
        max_keys,
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("loading the test entry: {e}"))
}
