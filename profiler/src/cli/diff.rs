//! `kvmprof diff`'s arguments.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::model::VmSelector;

#[derive(Args, Debug)]
#[command(
    after_help = "Example: kvmprof diff no-flags.txt all-flags.kvmprof fixed.kvmprof \
    --label none --label all --label fixed -f chart"
)]
pub struct DiffArgs {
    /// The sessions, the first being the reference: kvmprof recordings or perf kvm stat text,
    /// in any mix (two or more).
    #[arg(value_name = "FILE", num_args = 2.., required = true)]
    pub files: Vec<PathBuf>,
    /// Each session's name, in order (repeat once per FILE; default: its file name without
    /// extension).
    #[arg(long, value_name = "NAME")]
    pub label: Vec<String>,
    /// The VM to compare in each session, in order (name, uuid or pid; `*`: all of that
    /// session's VMs). Once for every session, or once per FILE; default: all VMs.
    #[arg(long, value_name = "VM", value_parser = VmPick::parse)]
    pub vm: Vec<VmPick>,
    /// Old spelling of the first `--vm` (of the first session).
    #[arg(long, value_name = "VM", hide = true, value_parser = VmSelector::parse,
          conflicts_with = "vm")]
    pub vm_a: Option<VmSelector>,
    /// Old spelling of the second `--vm` (of the second session).
    #[arg(long, value_name = "VM", hide = true, value_parser = VmSelector::parse,
          conflicts_with = "vm")]
    pub vm_b: Option<VmSelector>,
    /// Output format.
    #[arg(long, short = 'f', value_enum, default_value_t = DiffFormat::Table)]
    pub format: DiffFormat,
    /// Write the diff to this file (a regular file; `-` for stdout) instead of stdout; needed
    /// for `--format html`.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Width of `--format chart` in columns (default: $COLUMNS, else the terminal's, else 80).
    #[arg(long, value_name = "COLUMNS", value_parser = clap::value_parser!(u16).range(20..))]
    pub width: Option<u16>,
}

/// `kvmprof diff --format`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiffFormat {
    /// One row per exit reason, a column group per session, ratios to the first.
    Table,
    /// Every number of the comparison, for scripts.
    Json,
    /// One line per (reason, session), and the sessions' totals.
    Csv,
    /// Bar charts of exits and handling time per reason, one bar per session.
    Chart,
    /// One self-contained page with the charts, the numbers and each session's advice.
    Html,
}

/// One session's `diff --vm`: a VM, or `*` for all of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmPick(pub Option<VmSelector>);

impl VmPick {
    pub fn parse(s: &str) -> Result<VmPick, String> {
        if s.trim() == "*" {
            return Ok(VmPick(None));
        }
        VmSelector::parse(s).map(|v| VmPick(Some(v)))
    }
}
