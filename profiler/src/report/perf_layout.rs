//! perf kvm stat's table layout shared by the exit table (perf_table.rs), the sub-reason
//! tables (evidence.rs) and the perf text readers: which table, row order, name width, header
//! and footer lines. Below all of them, so none imports another back.

use super::printf::{f, s};

/// perf's name column width (KVM_EVENT_NAME_LEN of perf ≥ 6.4; before, DECODE_STR_LEN 20:
/// a table read from such a perf prints back in its own width, `Data::name_width`).
pub const NAME_WIDTH: usize = 40;
/// perf before 6.4's name column width (DECODE_STR_LEN).
pub const OLD_NAME_WIDTH: usize = 20;

/// Which table: perf's `--event`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Event {
    #[default]
    Vmexit,
    Msr,
    Ioport,
    Mmio,
}

impl Event {
    /// The name column's header, as perf prints it.
    pub fn header(self) -> &'static str {
        match self {
            Event::Vmexit => "VM-EXIT",
            Event::Msr => "MSR Access",
            Event::Ioport => "IO Port Access",
            Event::Mmio => "MMIO Access",
        }
    }

    /// The `--event` value.
    pub fn arg(self) -> &'static str {
        match self {
            Event::Vmexit => "vmexit",
            Event::Msr => "msr",
            Event::Ioport => "ioport",
            Event::Mmio => "mmio",
        }
    }

    /// From a table header (`MSR Access`, ...).
    pub fn from_header(h: &str) -> Option<Event> {
        [Event::Vmexit, Event::Msr, Event::Ioport, Event::Mmio]
            .into_iter()
            .find(|e| e.header().eq_ignore_ascii_case(h))
    }
}

/// Which of perf's two table layouts: `classic` is print_result (what `perf kvm stat report
/// --stdio`, `live` and every perf before 6.4 print: µs with two decimals, `( +- x% )`), `6.4`
/// the hist-browser columns of perf ≥ 6.4 (`Event name … Mean Time (ns)`: integer ns, shares
/// cut to whole percents), which is what its TUI shows and people copy from their terminal.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum PerfLayout {
    #[default]
    Classic,
    #[value(name = "6.4")]
    V6_4,
}

/// Row order: perf's `-k` keys (numbers descending, names ascending) plus p99.
/// `time` is the total handling time (perf ≥ 6.3; older perf sorted `time` by the mean:
/// use `mean_t`). Ties go as the perf whose table is printed orders them (`rows::Ties`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum SortBy {
    #[default]
    Sample,
    Time,
    #[value(name = "max_t")]
    MaxT,
    #[value(name = "min_t")]
    MinT,
    #[value(name = "mean_t")]
    MeanT,
    P99,
    #[value(name = "name", alias = "ev_name")]
    Name,
}

/// perf's header line (with its trailing space) and the blank line after it; `extremes`:
/// with the Min Time and Max Time columns (a table read from a perf that printed none has
/// none to show).
pub(crate) fn header(name: &str, width: usize, timed: bool, extremes: bool) -> String {
    let mut h = format!(
        "{} {} {} ",
        s(width, name),
        s(10, "Samples"),
        s(9, "Samples%")
    );
    if timed {
        h.push_str(&format!("{} ", s(9, "Time%")));
        if extremes {
            h.push_str(&format!("{} {} ", s(11, "Min Time"), s(11, "Max Time")));
        }
        h.push_str(&format!("{} ", s(16, "Avg time")));
    }
    h
}

/// perf's footer; without a time for the untimed sub-reason tables.
pub(crate) fn footer(n: u64, t: Option<u64>) -> String {
    match t {
        Some(t) => format!(
            "\nTotal Samples:{n}, Total events handled time:{}us.\n\n",
            f(0, 2, t as f64 / 1e3)
        ),
        None => format!("\nTotal Samples:{n}.\n\n"),
    }
}

/// What to print.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableOptions {
    pub event: Event,
    /// One VM; None: all VMs.
    pub vm: Option<crate::model::VmSelector>,
    /// One vCPU id (in every selected VM, like perf's `--vcpu`); None: all.
    pub vcpu: Option<u32>,
    pub sort: SortBy,
    /// Add p50 / p99 / p99.9 columns after perf's.
    pub percentiles: bool,
    /// After the all-VMs table, one table per VM (when there are several).
    pub per_vm: bool,
    /// perf's classic print_result layout, or perf ≥ 6.4's (see perf_table64.rs).
    pub layout: PerfLayout,
}

/// One row of perf's classic table, as print_result prints it (without the newline):
/// `%40s %10llu %8.2f%% %8.2f%% [%9.2fus %9.2fus ]%9.2fus ( +-%7.2f%% )`.
pub(crate) struct ClassicRow<'a> {
    pub name: &'a str,
    /// The name column's width (NAME_WIDTH, or the imported table's own).
    pub width: usize,
    pub count: u64,
    pub count_pct: f64,
    pub time_pct: f64,
    /// (min, max) in ns; None: a table read from a perf that printed no Min/Max columns.
    pub extremes: Option<(u64, u64)>,
    pub mean_ns: f64,
    /// perf's `( +- x% )`; None prints `n/a` there.
    pub rel_err: Option<f64>,
}

/// The row `r` in perf's classic layout.
pub(crate) fn classic_row(r: &ClassicRow) -> String {
    let us = |ns: f64| format!("{}us", f(9, 2, ns / 1e3));
    let min_max = r.extremes.map_or_else(String::new, |(min, max)| {
        format!("{} {} ", us(min as f64), us(max as f64))
    });
    format!(
        "{} {:>10} {}% {}% {min_max}{} ( +-{} )",
        s(r.width, r.name),
        r.count,
        f(8, 2, r.count_pct),
        f(8, 2, r.time_pct),
        us(r.mean_ns),
        r.rel_err
            .map_or_else(|| "    n/a ".to_string(), |e| format!("{}%", f(7, 2, e))),
    )
}
