//! Command line: global options flattened into every subcommand; `top` is the default.

use std::{path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::model::VmSelector;

mod diff;
pub use diff::{DiffArgs, DiffFormat, VmPick};

#[derive(Parser, Debug)]
#[command(
    name = "kvmprof",
    version,
    about = "Live eBPF profiler of KVM VM exits: per-VM, per-vCPU exit reasons and latency",
    after_help = "Run as root (or with CAP_BPF+CAP_PERFMON). With no subcommand, opens the live TUI."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Args, Debug, Clone)]
pub struct Global {
    /// Refresh / sampling interval, e.g. 1s, 500ms, 2.5s.
    #[arg(long, short = 'i', global = true, default_value = "1s", value_parser = parse_duration)]
    pub interval: Duration,
    /// tracefs mount point (default: /sys/kernel/tracing, then /sys/kernel/debug/tracing).
    #[arg(long, global = true, value_name = "DIR")]
    pub tracefs: Option<PathBuf>,
    /// Most (VM, vCPU, reason) rows kept in the kernel (about 400 bytes of kernel memory each,
    /// whatever the CPU count); further ones are counted as drops.
    #[arg(long, global = true, default_value_t = 16384, value_name = "N",
          value_parser = clap::value_parser!(u32).range(64..=4_194_304))]
    pub max_keys: u32,
    /// Run even if another kvmprof is already profiling this host.
    #[arg(long, global = true)]
    pub allow_concurrent: bool,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Live TUI (the default).
    Top,
    /// Start a tiny built-in guest on the local /dev/kvm and show it live.
    Demo(DemoArgs),
    /// Record the live session to a file (headless), for replay, report, diff and advice.
    Record(RecordArgs),
    /// Replay a recording in the TUI.
    Replay(ReplayArgs),
    /// Report a live collection, a recording or perf text as perf kvm stat's table, JSON or CSV.
    Report(ReportArgs),
    /// Compare sessions (two or more recordings or perf text, any mix): what moved, by how
    /// much, against the first; as a table, JSON, CSV or bar charts.
    Diff(DiffArgs),
    /// Which Hyper-V enlightenments help or hurt each VM, with the evidence.
    Advise(AdviseArgs),
    /// Load-test gate: measure, compare with thresholds, exit 0 pass / 1 fail / 2 unmeasured.
    Check(CheckArgs),
    /// Prometheus/OpenMetrics exporter (headless; binds 127.0.0.1:9477 by default).
    Serve(ServeArgs),
    /// Print shell completions.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Run the built-in exerciser guest (used by the demo and the real-KVM test).
    #[command(hide = true)]
    Exercise(ExerciseArgs),
}

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Loop iterations per guest run (each does out, cpuid, rdmsr, wrmsr).
    #[arg(long, default_value_t = 2000)]
    pub iters: u64,
    /// Pause between guest runs, e.g. 20ms.
    #[arg(long, default_value = "20ms", value_parser = parse_duration)]
    pub pause: Duration,
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Output format.
    #[arg(long, short = 'f', value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Only this VM (name, uuid or pid).
    #[arg(long, value_name = "VM", value_parser = VmSelector::parse)]
    pub vm: Option<VmSelector>,
    /// Only this vCPU id (in every selected VM, like perf's --vcpu).
    #[arg(long, value_name = "N")]
    pub vcpu: Option<u32>,
    /// Which table: exits, or the MSR / port I/O / MMIO accesses behind them.
    #[arg(long, value_enum, default_value_t = crate::report::Event::Vmexit)]
    pub event: crate::report::Event,
    /// Row order.
    #[arg(long, short = 'k', value_enum, default_value_t = crate::report::SortBy::Sample)]
    pub sort: crate::report::SortBy,
    /// Add p50 / p99 / p99.9 columns to the table.
    #[arg(long)]
    pub percentiles: bool,
    /// The table's layout: perf's classic one (`perf kvm stat report --stdio`, µs), or that of
    /// perf >= 6.4's report screen (`Event name ... Mean Time (ns)`, integer ns).
    #[arg(long, value_enum, value_name = "LAYOUT", default_value_t = crate::report::PerfLayout::Classic)]
    pub perf_layout: crate::report::PerfLayout,
    /// Write the report to this file (a regular file; `-` for stdout) instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Time × latency per (VM, reason): one CSV line per interval and latency band (octaves)
    /// with exits in it (needs -f csv, and a recording or a live collection: perf text has
    /// no intervals). With --vcpu N, that vCPU's rows.
    #[arg(long)]
    pub heatmap: bool,
    /// Only this exit reason (its name, any case), with --heatmap.
    #[arg(long, value_name = "NAME", requires = "heatmap")]
    pub reason: Option<String>,
}

/// The session a command reads: a recording, a perf text report, or a live collection.
/// Flattened into every command that reads one (report, advise, check).
#[derive(Args, Debug, Clone, Default)]
pub struct InputArgs {
    /// A kvmprof recording or `perf kvm stat report` text; omit to collect live.
    #[arg(value_name = "FILE", conflicts_with_all = ["duration", "until_signal", "from_perf"])]
    pub file: Option<PathBuf>,
    /// Read `perf kvm stat report --stdio` output (any perf version; exit reasons only, so
    /// less evidence than a recording).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["duration", "until_signal"])]
    pub from_perf: Option<PathBuf>,
    /// Collect live for this long (e.g. 10s, 1m).
    #[arg(long, short = 'd', value_parser = parse_duration, conflicts_with = "until_signal")]
    pub duration: Option<Duration>,
    /// Collect live until SIGINT or SIGTERM.
    #[arg(long)]
    pub until_signal: bool,
    /// Create this file once the probes are attached (for scripts that start a workload next).
    #[arg(long, value_name = "PATH")]
    pub ready_file: Option<PathBuf>,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// perf kvm stat report --stdio's layout, per VM and for all VMs.
    Table,
    Json,
    Csv,
    /// One self-contained page with charts, advice and the numbers (needs -o FILE or -o -).
    Html,
}

#[derive(Args, Debug)]
pub struct AdviseArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// The VM's QEMU command line, when the host cannot read it (e.g. perf text from elsewhere).
    #[arg(long, value_name = "CMDLINE")]
    pub qemu_cmdline: Option<String>,
    /// Only this VM (name, uuid or pid).
    #[arg(long, value_name = "VM", value_parser = VmSelector::parse)]
    pub vm: Option<VmSelector>,
    /// What the guest is, when the profile cannot show it (a pasted perf table): Hyper-V
    /// advice is only given for Windows guests or where Hyper-V is seen in use.
    #[arg(long, value_enum, value_name = "OS")]
    pub guest: Option<GuestArg>,
    /// Advice trigger levels, TOML (JSON when the name ends in .json). Keys and defaults:
    /// dominant_pct = 25, high_rate_per_vcpu = 1000, timer_rate = 50, majority_pct = 50,
    /// spin_rate_per_vcpu = 100, min_exits = 100; unknown keys are refused.
    #[arg(long, value_name = "FILE")]
    pub thresholds: Option<PathBuf>,
    #[arg(long, short = 'f', value_enum, default_value_t = AdviseFormat::Text)]
    pub format: AdviseFormat,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestArg {
    Windows,
    Linux,
}

impl From<GuestArg> for crate::advice::GuestKind {
    fn from(g: GuestArg) -> Self {
        match g {
            GuestArg::Windows => crate::advice::GuestKind::Windows,
            GuestArg::Linux => crate::advice::GuestKind::Linux,
        }
    }
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdviseFormat {
    Text,
    Json,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// VM(s) to check, by name, uuid or pid (default: every VM seen).
    #[arg(long, value_name = "VM", value_parser = VmSelector::parse)]
    pub vm: Vec<VmSelector>,
    /// Thresholds file (TOML); `kvmprof check --example` prints a documented one.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// One threshold, KEY=VALUE (repeatable; wins over --config), e.g. max_overhead_pct=5,
    /// EPT_MISCONFIG.max_per_s=10000, frame_budget_pct=2.
    #[arg(long = "threshold", short = 't', value_name = "KEY=VALUE")]
    pub thresholds: Vec<String>,
    /// Fail when the advice has a finding of this severity or worse.
    #[arg(long, value_name = "critical|warn")]
    pub fail_on: Option<String>,
    /// Sampling interval of a live check: storms and frame windows are measured at this
    /// resolution.
    #[arg(long, default_value = "100ms", value_parser = parse_duration)]
    pub sample_every: Duration,
    #[arg(long, short = 'f', value_enum, default_value_t = AdviseFormat::Text)]
    pub format: AdviseFormat,
    /// Also write JUnit XML (one testcase per threshold per VM) for CI systems.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Print a documented example thresholds file and exit.
    #[arg(long)]
    pub example: bool,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on (loopback by default; a host's metrics are nobody else's business
    /// unless you say so).
    #[arg(long, default_value = "127.0.0.1:9477", value_name = "ADDR")]
    pub listen: std::net::SocketAddr,
    /// Named exit reasons per VM; the rest are summed into reason="other".
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub top_reasons: usize,
    /// Add a vcpu label (multiplies the series by the vCPU count).
    #[arg(long)]
    pub per_vcpu: bool,
    /// How long a VM that exited keeps being exported with its last values.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub keep_exited: Duration,
    /// No advice-finding metrics.
    #[arg(long)]
    pub no_advice: bool,
    /// Create this file once the server listens.
    #[arg(long, value_name = "PATH")]
    pub ready_file: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct RecordArgs {
    /// Output file (overwritten).
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: PathBuf,
    /// Stop after this long (default: until SIGINT or SIGTERM).
    #[arg(long, short = 'd', value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Only these VMs (by name, uuid or pid; repeatable).
    #[arg(long, value_name = "VM", value_parser = VmSelector::parse)]
    pub vm: Vec<VmSelector>,
    /// Create this file once recording has started.
    #[arg(long, value_name = "PATH")]
    pub ready_file: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// A kvmprof recording.
    pub file: PathBuf,
}

#[derive(Args, Debug)]
pub struct ExerciseArgs {
    #[arg(long, default_value_t = 2000)]
    pub iters: u64,
    /// Any of o (out 0x10), c (cpuid), r (rdmsr), w (wrmsr).
    #[arg(long, default_value = "ocrw")]
    pub ops: String,
    /// Repeat forever (until killed).
    #[arg(long)]
    pub forever: bool,
    /// Hyper-V mode: the VMM exposes Hyper-V CPUID and SynIC; the guest identifies as Windows 11
    /// (GUEST_OS_ID), sets a SINT with AutoEOI and a synthetic timer, then writes the synthetic
    /// EOI MSR in a loop (needs a host KVM with CONFIG_KVM_HYPERV).
    #[arg(long, conflicts_with = "ops")]
    pub hyperv: bool,
    #[arg(long, default_value = "0ms", value_parser = parse_duration)]
    pub pause: Duration,
    /// QEMU-style identity args (e.g. `-name guest=NAME`): ignored, but visible in
    /// /proc/PID/cmdline, where discovery names the VM from them.
    #[arg(last = true, allow_hyphen_values = true)]
    pub identity: Vec<String>,
}

/// A duration in jiff's friendly format ("500ms", "2.5s", "1.5m", "1h", "1m30s", "2 hours"),
/// or plain seconds ("3", "0.5").
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let bad = || format!("`{s}` is not a duration: use e.g. 500ms, 2s, 1.5m, 1h");
    let d = match s.parse::<f64>() {
        Ok(secs) if secs.is_nan() => return Err(bad()),
        Ok(secs) => jiff::SignedDuration::try_from_secs_f64(secs).map_err(|_| bad())?,
        Err(_) => s.parse::<jiff::SignedDuration>().map_err(|_| bad())?,
    };
    if d.is_negative() {
        return Err(format!("`{s}` is not a duration: it must be positive"));
    }
    Duration::try_from(d).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2.5s"), Ok(Duration::from_millis(2500)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("fast")
            .unwrap_err()
            .contains("not a duration"));
        assert!(parse_duration("-1s")
            .unwrap_err()
            .contains("it must be positive"));
        assert!(parse_duration("inf").is_err());
        assert!(parse_duration("1e30").is_err());
    }

    /// Compound durations, which jiff's format adds to the forms above.
    #[test]
    fn compound_durations() {
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h 5m"), Ok(Duration::from_secs(3900)));
        assert_eq!(parse_duration("1.5m"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("0ms"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("2 hours"), Ok(Duration::from_secs(7200)));
    }

    #[test]
    fn exercise_keeps_identity_args() {
        let cli = Cli::try_parse_from([
            "kvmprof",
            "exercise",
            "--iters",
            "5",
            "--",
            "-name",
            "guest=vm1",
        ])
        .unwrap();
        match cli.command {
            Some(Command::Exercise(a)) => {
                assert_eq!(a.iters, 5);
                assert_eq!(a.identity, ["-name", "guest=vm1"]);
            }
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn default_is_top() {
        let cli = Cli::try_parse_from(["kvmprof", "-i", "250ms"]).unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.global.interval, Duration::from_millis(250));
    }
}
