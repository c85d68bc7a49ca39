//! Programs the tests check kvmprof's output with, installed by `cargo xtask setup` (and
//! `cargo xtask test`), never by the tests: a missing one fails its test with a message naming
//! `cargo xtask setup`.
//!
//! - `prometheus` (Debian's): scrapes the exporter, and its `promtool check metrics` lints both
//!   exposition formats of the fed exporter and of the real `kvmprof serve`
//!   (tests/tests/prometheus.rs);
//! - `xmllint` (libxml2-utils): validates `check --junit` against a JUnit XSD;
//! - `chromium` (Debian's, headless): loads the HTML report from disk, screenshots it and
//!   reads its DOM (profiler/tests/html_browser.rs);
//! - `tmux`, `util-linux` (setpriv, setarch, unshare) and `passwd` (useradd): the interactive
//!   commands in a terminal, and every command as a throwaway user with an exact capability
//!   set (profiler/tests/capabilities.rs, cli_hostile.rs);
//! - Python's `junitparser`, for the `python3` on PATH: reads that JUnit file as CI tools do
//!   (tests/tests/junit.rs). Installed with pip, since PATH's python3 need not be Debian's.

use std::process::Command;

use anyhow::{bail, Result};

use crate::util::run;

/// Debian packages the tests run.
const PACKAGES: &[&str] = &[
    "prometheus",
    "libxml2-utils",
    "chromium",
    "tmux",
    "util-linux",
    "passwd",
];

pub fn ensure() -> Result<()> {
    crate::apt::install_missing(PACKAGES, "xtask setup (test tools)")?;
    ensure_junitparser()
}

fn junitparser_present() -> bool {
    Command::new("python3")
        .args(["-c", "import junitparser"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn ensure_junitparser() -> Result<()> {
    if junitparser_present() {
        return Ok(());
    }
    eprintln!("xtask: installing junitparser for python3 (pip)");
    let pip = |extra: &[&str]| {
        run(Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "junitparser"])
            .args(extra))
    };
    // Debian's own python3 refuses pip installs outside a venv (PEP 668) unless told.
    if pip(&[]).is_err() {
        pip(&["--break-system-packages"])?;
    }
    if !junitparser_present() {
        bail!("`python3 -m pip install junitparser` ran but python3 still cannot import it");
    }
    Ok(())
}
