//! Command line: the live-collection options (`Global`) on the commands that collect live
//! (and on bare `kvmprof`, which is `top`); `top` is the default.

use std::{path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::model::VmSelector;

mod diff;
mod man;
pub use diff::{DiffArgs, DiffFormat, VmPick};
pub use man::write_man_pages;

/// `kvmprof --version`: which commit was built and which eBPF object is inside (both set by
/// build.rs; a build without the object says so).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("KVMPROF_COMMIT"),
    "; eBPF object ",
    env!("KVMPROF_EBPF"),
    ")"
);

#[derive(Parser, Debug)]
#[command(
    name = "kvmprof",
    version = VERSION,
    about = "Live eBPF profiler of KVM VM exits: per-VM, per-vCPU exit reasons and latency",
    after_help = "Run as root (or with CAP_BPF, CAP_PERFMON and CAP_DAC_READ_SEARCH: see SECURITY.md). With no subcommand, opens the live TUI. \
    A subcommand's options go after it: kvmprof record -i 500ms -o s.kvmprof",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Options of a live collection (the probe and how often it is read): on `kvmprof` / `top`,
/// demo, record, report, advise, check and serve; not on what reads files only.
#[derive(Args, Debug, Clone)]
pub struct Global {
    /// Refresh / sampling interval, e.g. 1s, 500ms, 2.5s.
    #[arg(long, short = 'i', default_value = "1s", value_parser = parse_span)]
    pub interval: Duration,
    /// tracefs mount point (default: /sys/kernel/tracing, then /sys/kernel/debug/tracing).
    #[arg(long, value_name = "DIR")]
    pub tracefs: Option<PathBuf>,
    /// Most (VM, vCPU, reason) rows kept in the kernel (about 400 bytes of kernel memory each,
    /// whatever the CPU count); further ones are counted as drops.
    #[arg(long, default_value_t = 16384, value_name = "N",
          value_parser = clap::value_parser!(u32).range(64..=4_194_304))]
    pub max_keys: u32,
    /// Run even if another kvmprof is already profiling this host.
    #[arg(long)]
    pub allow_concurrent: bool,
    /// Log every exit that takes at least this long, one by one, with its guest RIP, host CPUs
    /// and sub-reason (default 500us; recorded with the samples). HLT exits are left out (a
    /// halted vCPU's exit lasts until it is woken) unless --slow-hlt; `off`: no log. On
    /// `report`, --slow prints the logged exits of at least TIME instead of the table.
    #[arg(long, value_name = "TIME|off", value_parser = parse_slow)]
    pub slow: Option<Duration>,
    /// Most slow exits logged per host CPU and second; more are counted as dropped.
    #[arg(long, default_value_t = 1000, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub slow_rate: u32,
    /// Log slow HLT exits too.
    #[arg(long)]
    pub slow_hlt: bool,
    /// Do not split exit times into on-CPU, preempted (waiting for a host CPU) and blocked
    /// (asleep): the split follows every context switch of the host (sched_switch,
    /// sched_wakeup), which costs each switch a few tens of ns.
    #[arg(long)]
    pub no_sched_split: bool,
}

impl Global {
    /// The slow-exit log's kernel settings.
    pub fn slow_cfg(&self) -> profiler_common::SlowCfg {
        profiler_common::SlowCfg {
            threshold_ns: self
                .slow
                .map_or(crate::probe::SLOW_DEFAULT.threshold_ns, |d| {
                    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
                }),
            per_cpu_per_s: self.slow_rate,
            with_hlt: self.slow_hlt.into(),
        }
    }
}

impl Cli {
    /// The live-collection options of the command given (bare `kvmprof`: its own).
    pub fn global(&self) -> Global {
        match &self.command {
            Some(Command::Top(a)) => a.global.clone(),
            Some(Command::Demo(a)) => a.global.clone(),
            Some(Command::Record(a)) => a.global.clone(),
            Some(Command::Report(a)) => a.global.clone(),
            Some(Command::Advise(a)) => a.global.clone(),
            Some(Command::Check(a)) => a.global.clone(),
            Some(Command::Serve(a)) => a.global.clone(),
            _ => self.global.clone(),
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Live TUI (the default).
    #[command(after_help = "Example: kvmprof top -i 500ms      (or just: kvmprof)")]
    Top(TopArgs),
    /// Start a tiny built-in guest on the local /dev/kvm and show it live.
    #[command(after_help = "Example: kvmprof demo --pause 50ms")]
    Demo(DemoArgs),
    /// Record the live session to a file (headless), for replay, report, diff and advice.
    #[command(after_help = "Example: kvmprof record -o game.kvmprof --duration 10m --vm win11")]
    Record(RecordArgs),
    /// Replay a recording in the TUI.
    #[command(after_help = "Example: kvmprof replay game.kvmprof")]
    Replay(ReplayArgs),
    /// Report a live collection, a recording or perf text as perf kvm stat's table, JSON or CSV.
    #[command(
        after_help = "Example: kvmprof report game.kvmprof --percentiles;  kvmprof report --from-perf perf.txt -f json;  kvmprof report --duration 10s --vm win11"
    )]
    Report(ReportArgs),
    /// Compare sessions (two or more recordings or perf text, any mix): what moved, by how
    /// much, against the first; as a table, JSON, CSV or bar charts.
    Diff(DiffArgs),
    /// Which Hyper-V enlightenments help or hurt each VM, with the evidence.
    #[command(
        after_help = "Example: kvmprof advise game.kvmprof --guest windows;  kvmprof advise --duration 30s --vm win11"
    )]
    Advise(AdviseArgs),
    /// Load-test gate: measure, compare with thresholds, exit 0 pass / 1 fail / 2 unmeasured.
    #[command(
        after_help = "Example: kvmprof check --vm win11 --duration 30s --config thresholds.toml --junit out.xml  (kvmprof check --example prints a thresholds file)"
    )]
    Check(CheckArgs),
    /// Prometheus/OpenMetrics exporter (headless; binds 127.0.0.1:9477 by default).
    #[command(after_help = "Example: kvmprof serve --listen 127.0.0.1:9477")]
    Serve(ServeArgs),
    /// Print shell completions.
    #[command(after_help = "Example: kvmprof completions bash > /etc/bash_completion.d/kvmprof")]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Run the built-in exerciser guest (used by the demo and the real-KVM test).
    #[command(hide = true)]
    Exercise(ExerciseArgs),
    /// Write the man pages (kvmprof.1, kvmprof-SUBCOMMAND.1) into DIR (for `cargo xtask dist`).
    #[command(hide = true)]
    ManPages {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
}

#[derive(Args, Debug)]
pub struct TopArgs {
    #[command(flatten)]
    pub global: Global,
}

#[derive(Args, Debug)]
pub struct DemoArgs {
    #[command(flatten)]
    pub global: Global,
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
    pub global: Global,
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
    /// Log a live collection like `kvm_stat -l`: every this long, one CSV line per (VM, exit
    /// reason) that had exits, flushed, until --duration or a signal (with -f csv).
    #[arg(long, value_name = "DURATION", value_parser = parse_span,
          conflicts_with_all = ["file", "from_perf", "output", "heatmap"])]
    pub every: Option<Duration>,
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
    #[arg(value_name = "FILE", conflicts_with_all = ["duration", "until_signal", "from_perf", "once"])]
    pub file: Option<PathBuf>,
    /// Read `perf kvm stat report --stdio` output (any perf version; exit reasons only, so
    /// less evidence than a recording).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["duration", "until_signal", "once"])]
    pub from_perf: Option<PathBuf>,
    /// Collect live for this long (e.g. 10s, 1m).
    #[arg(long, short = 'd', value_parser = parse_span, conflicts_with = "until_signal")]
    pub duration: Option<Duration>,
    /// Collect live until SIGINT or SIGTERM.
    #[arg(long)]
    pub until_signal: bool,
    /// Collect live for one second, like `kvm_stat -1` (the same as --duration 1s).
    #[arg(long, short = '1', conflicts_with_all = ["duration", "until_signal"])]
    pub once: bool,
    /// Create this file once the probes are attached (for scripts that start a workload next).
    #[arg(long, value_name = "PATH")]
    pub ready_file: Option<PathBuf>,
}

impl InputArgs {
    /// How long to collect live: --duration, or 1 s for --once; None: until a signal.
    pub fn live_for(&self) -> Option<Duration> {
        self.duration
            .or(self.once.then_some(Duration::from_secs(1)))
    }
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// perf kvm stat report --stdio's layout, per VM and for all VMs.
    Table,
    Json,
    Csv,
    /// One self-contained page with charts, advice and the numbers (needs -o FILE or -o -).
    Html,
    /// With --slow: perf kvm stat live --duration's line for each slow exit.
    #[value(name = "perf-live")]
    PerfLive,
}

#[derive(Args, Debug)]
pub struct AdviseArgs {
    #[command(flatten)]
    pub global: Global,
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
    pub global: Global,
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
    #[arg(long, default_value = "100ms", value_parser = parse_span)]
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
    #[command(flatten)]
    pub global: Global,
    /// Address to listen on (loopback by default; a host's metrics are nobody else's business
    /// unless you say so).
    #[arg(long, default_value = "127.0.0.1:9477", value_name = "ADDR",
          value_parser = parse_listen)]
    pub listen: std::net::SocketAddr,
    /// Named exit reasons per VM; the rest are summed into reason="other".
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub top_reasons: usize,
    /// Add a vcpu label to the exit series (multiplies them by the vCPU count; README: series
    /// per VM).
    #[arg(long)]
    pub per_vcpu: bool,
    /// Also export MSR, port and MMIO accesses by address (kvmprof_exit_accesses_total; up
    /// to 6 × (top-reasons + 1) more series per VM).
    #[arg(long)]
    pub sub_reasons: bool,
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
    #[command(flatten)]
    pub global: Global,
    /// Output file (overwritten).
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: PathBuf,
    /// Stop after this long (default: until SIGINT or SIGTERM).
    #[arg(long, short = 'd', value_parser = parse_span)]
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
    /// The VMM sleeps --delay-for before completing every Nth port write (a known set of slow
    /// exits, for the slow-exit log's test); 0: never.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub delay_every: u64,
    #[arg(long, default_value = "3ms", value_parser = parse_duration)]
    pub delay_for: Duration,
    /// Pin the vCPU thread to this CPU and keep a busy thread there (the scheduler split's
    /// test); RESULT then says the vCPU thread's run-queue delay.
    #[arg(long, value_name = "CPU")]
    pub hog_cpu: Option<usize>,
    /// QEMU-style identity args (e.g. `-name guest=NAME`): ignored, but visible in
    /// /proc/PID/cmdline, where discovery names the VM from them.
    #[arg(last = true, allow_hyphen_values = true)]
    pub identity: Vec<String>,
}

/// `cmd` as shell completions should offer it: without hidden subcommands and options, which
/// clap_complete would list (clap has no way to remove them, so the tree is rebuilt).
pub fn completable(cmd: &clap::Command) -> clap::Command {
    let mut c = clap::Command::new(cmd.get_name().to_string());
    if let Some(a) = cmd.get_about() {
        c = c.about(a.clone());
    }
    if let Some(v) = cmd.get_version() {
        c = c.version(v.to_string());
    }
    c.args(cmd.get_arguments().filter(|a| !a.is_hide_set()).cloned())
        .subcommands(
            cmd.get_subcommands()
                .filter(|s| !s.is_hide_set())
                .map(completable),
        )
}

/// Where `serve` listens: `ADDR:PORT`, `[V6]:PORT`, `HOST:PORT` (resolved; IPv4 first, so
/// `localhost` is 127.0.0.1) or `:PORT` (every interface, as Go and nginx read it).
pub fn parse_listen(s: &str) -> Result<std::net::SocketAddr, String> {
    use std::net::{Ipv4Addr, SocketAddr, ToSocketAddrs};
    let s = s.trim();
    let bad = || {
        format!(
            "`{s}` is not an address to listen on: use ADDR:PORT, e.g. 127.0.0.1:9477, \
             [::1]:9477, localhost:9477 or :9477 (every interface)"
        )
    };
    if let Some(port) = s.strip_prefix(':') {
        let port = port.parse::<u16>().map_err(|_| bad())?;
        return Ok(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)));
    }
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    let addrs: Vec<SocketAddr> = s.to_socket_addrs().map_err(|_| bad())?.collect();
    (addrs.iter().find(|a| a.is_ipv4()))
        .or(addrs.first())
        .copied()
        .ok_or_else(bad)
}

/// A duration that must be above zero (how long to collect, how often to sample): `0s` would
/// collect nothing, or sample in a busy loop.
pub fn parse_span(s: &str) -> Result<Duration, String> {
    match parse_duration(s)? {
        Duration::ZERO => Err(format!(
            "`{}` is no time at all: give a duration above zero, e.g. 500ms or 10s",
            s.trim()
        )),
        d => Ok(d),
    }
}

/// `--slow`: a duration above zero, or `off` (zero: the log is off).
pub fn parse_slow(s: &str) -> Result<Duration, String> {
    if s.trim().eq_ignore_ascii_case("off") {
        return Ok(Duration::ZERO);
    }
    parse_span(s).map_err(|e| format!("{e} (or `off` for no slow-exit log)"))
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
mod tests;
