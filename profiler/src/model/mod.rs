//! The model: two cumulative samples → what every consumer shows (live TUI, replay, report,
//! check, export). Pure functions only, so recordings double as test fixtures.
//!
//! The JSON form of [`View`] is a contract (`kvmprof report --format json`, the real-KVM
//! tests): fields only used by the TUI are `#[serde(skip)]` so the schema stays exact.

mod compute;
mod cpu;
mod delta;
mod evidence;
mod fold;
mod lookup;
mod name;
#[cfg(test)]
mod reference;
mod refresh;
pub mod rips;
mod rows;
mod select;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_cpu;
#[cfg(test)]
mod tests_fast;
#[cfg(test)]
mod tests_fold;
#[cfg(test)]
mod tests_scale;

use serde::Serialize;

use crate::sample::Hist;

pub use compute::{compute, compute_elapsed, span_ns};
pub use cpu::host_cpu;
#[cfg(test)]
pub(crate) use evidence::port_0x70_sample;
pub use evidence::{evidence_deltas, EvDelta};
pub use fold::fold_view;
pub use name::Name;
pub use refresh::Model;
pub use rows::set_shares;
pub use select::{SelectError, VmSelector};

/// Everything shown for one span between two samples.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct View {
    pub duration_s: f64,
    pub names_source: String,
    pub counters: Counters,
    pub probe_cost: Vec<ProbeCost>,
    /// Whether the rows' `wait_ns`/`blocked_ns` were measured (the kernel followed the vCPU
    /// threads' context switches); false: they are 0 because unknown.
    pub sched_split: bool,
    pub vms: Vec<VmView>,
}

/// Delta of the programs' bookkeeping counters (profiler_common::counter), named as in NAMES.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    pub orphan_entry: u64,
    pub unpaired_exit: u64,
    pub stats_map_full: u64,
    pub pending_map_full: u64,
    pub read_error: u64,
    pub exits: u64,
    pub entries: u64,
    pub userspace_exits: u64,
    /// Sub-reason events the evidence map had no room for (a loss of evidence, not of exits).
    pub evidence_map_full: u64,
    /// Context switches the kernel skipped the scheduler programs for: the time split is
    /// short by those switches (not a loss of exits).
    pub sched_missed: u64,
}

impl Counters {
    /// Counters that mean lost or unpaired events, with their names (for warnings).
    pub fn losses(&self) -> [(&'static str, u64); 6] {
        [
            ("orphan_entry", self.orphan_entry),
            ("unpaired_exit", self.unpaired_exit),
            ("stats_map_full", self.stats_map_full),
            ("pending_map_full", self.pending_map_full),
            ("read_error", self.read_error),
            ("evidence_map_full", self.evidence_map_full),
        ]
    }
}

/// One BPF program's own cost over the span.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ProbeCost {
    pub name: String,
    pub events: u64,
    pub events_per_s: f64,
    pub ns_per_event: f64,
    /// Run time spent in the program over the span (for CPU %).
    #[serde(skip)]
    pub run_time_ns: u64,
}

/// One VM process.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct VmView {
    pub pid: u32,
    pub name: String,
    pub uuid: Option<String>,
    /// kvm_exit exits seen (HLT included, userspace returns not).
    pub exits: u64,
    pub exits_per_s: f64,
    /// Non-HLT handling time / (elapsed × vCPUs seen) × 100.
    pub overhead_pct: f64,
    /// Aggregated over vCPUs.
    pub reasons: Vec<Row>,
    pub vcpus: Vec<VcpuView>,
    /// Returns of KVM_RUN to the VMM (isa 0x100), aggregated over threads.
    pub userspace: Vec<Row>,
    /// The host CPU the VM's process used over the span; null when either sample lacks it
    /// (perf imports, recordings before format 3, a span "since attach").
    pub host_cpu: Option<HostCpu>,
    /// Where in the guest its exits come from, per reason: sampled guest RIPs (absent where
    /// the session has none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub guest_rips: Vec<rips::GuestRips>,
}

/// Host CPU of one VM process over a span, in % of one core (a busy 4-vCPU VM can reach 400).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct HostCpu {
    /// All the VM's threads.
    pub total_pct: f64,
    /// Of which running the guest (vCPUs in guest mode; the kernel samples it at ticks). Null
    /// when the kernel accounts no guest time to the VM at all (e.g. a PVM backend).
    pub guest_pct: Option<f64>,
    /// Its vCPU threads: the guest, plus what they do outside it (in-kernel exit handling,
    /// halt polling, the VMM emulating the vCPU's exits). Null when the vCPU threads are not
    /// known or changed over the span.
    pub vcpu_pct: Option<f64>,
    /// The rest, the VMM's other threads (main loop and its timers, I/O threads): where
    /// device emulation that is not a vCPU's exit shows up.
    pub vmm_pct: Option<f64>,
    /// How long the average vCPU thread waited for a host CPU while runnable, in % of the
    /// span: the host's steal from this VM (what the guest sees as steal time). Null when the
    /// vCPU threads or their schedstat are not known both times.
    pub vcpu_wait_pct: Option<f64>,
    /// The CPU time behind `total_pct`, `guest_pct` and `vcpu_pct`, ns (for counters, e.g.
    /// the exporter's).
    #[serde(skip)]
    pub total_ns: u64,
    #[serde(skip)]
    pub guest_ns: Option<u64>,
    #[serde(skip)]
    pub vcpu_ns: Option<u64>,
    /// The vCPU threads' run-queue wait behind `vcpu_wait_pct`, ns.
    #[serde(skip)]
    pub vcpu_wait_ns: Option<u64>,
    /// The VM's vhost workers (vhost-net, -scsi, -vsock virtqueues): kernel threads outside the
    /// process (not in `total_pct`) or, Linux 6.4 on, its own tasks (then not in `vmm_pct`).
    /// Null when the VM has none, or their number changed over the span.
    pub vhost_pct: Option<f64>,
    /// How long the average vhost worker waited for a host CPU while runnable, % of the span.
    pub vhost_wait_pct: Option<f64>,
    /// All the host CPU the VM cost: `total_pct` plus its vhost kernel threads outside it.
    pub all_pct: f64,
    /// The CPU time behind `vhost_pct`, ns, and the part of it inside `total_ns`.
    #[serde(skip)]
    pub vhost_ns: Option<u64>,
    #[serde(skip)]
    pub vhost_inside_ns: u64,
    /// The vhost workers' run-queue wait behind `vhost_wait_pct`, ns.
    #[serde(skip)]
    pub vhost_wait_ns: Option<u64>,
}

impl VmView {
    pub fn vcpu_count(&self) -> usize {
        self.vcpus.len()
    }

    /// The non-HLT reason costing the most handling time (ties: more exits).
    pub fn top_reason(&self) -> Option<&Row> {
        top_reason(&self.reasons)
    }

    /// The worst p99 over non-HLT reasons, ns.
    pub fn worst_p99_ns(&self) -> u64 {
        worst_p99(&self.reasons)
    }

    /// Exits seen but not yet re-entered (e.g. halted vCPUs), kvm_exit side only.
    pub fn in_flight(&self) -> u64 {
        self.reasons.iter().map(|r| r.in_flight).sum()
    }
}

/// One vCPU of a VM.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct VcpuView {
    pub vcpu: u32,
    pub exits: u64,
    pub exits_per_s: f64,
    /// This vCPU's non-HLT handling time / elapsed × 100.
    pub overhead_pct: f64,
    pub reasons: Vec<Row>,
    /// Returns to the VMM of this vCPU's thread, when the thread → vCPU map knows it.
    #[serde(skip)]
    pub userspace: Vec<Row>,
    /// Host CPU of this vCPU's thread over the span (the guest included), % of one core; null
    /// when the VMM does not name its threads or the thread was not read both times.
    pub cpu_pct: Option<f64>,
    /// How long it waited for a host CPU while runnable, % of the span: the steal this vCPU
    /// felt. Null likewise, or without schedstat.
    pub steal_pct: Option<f64>,
    /// The times behind `cpu_pct` and `steal_pct`, ns.
    #[serde(skip)]
    pub cpu_ns: Option<u64>,
    #[serde(skip)]
    pub steal_ns: Option<u64>,
}

impl VcpuView {
    pub fn top_reason(&self) -> Option<&Row> {
        top_reason(&self.reasons)
    }
    pub fn worst_p99_ns(&self) -> u64 {
        worst_p99(&self.reasons)
    }
}

/// One exit reason: perf kvm stat's columns plus percentiles and rate.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Row {
    pub isa: u32,
    pub isa_name: Name,
    pub reason: u32,
    pub name: Name,
    pub hlt: bool,
    /// Exits seen: timed + change of in-flight.
    pub count: u64,
    pub in_flight: u64,
    pub timed: u64,
    pub hist_total: u64,
    pub rate_per_s: f64,
    /// Share of non-HLT exits (HLT rows: share of all exits).
    pub samples_pct: f64,
    /// Share of non-HLT handling time (HLT rows: share of all time).
    pub time_pct: f64,
    pub total_ns: u64,
    /// Of `total_ns`: time the vCPU thread was runnable but not running between exit and
    /// entry (preempted, or woken and waiting for a host CPU), and time it slept (blocked:
    /// a halted vCPU, the VMM waiting); the rest was on a CPU. 0 where not measured (see
    /// `View::sched_split`).
    pub wait_ns: u64,
    pub blocked_ns: u64,
    pub min_ns: u64,
    pub max_ns: u64,
    pub mean_ns: f64,
    pub p50_ns: u64,
    pub p99_ns: u64,
    pub p999_ns: u64,
    /// Delta histogram, for the drill-down chart.
    #[serde(skip)]
    pub hist: Hist,
}

/// Where a row's handling time went, in % of it (the kernel's scheduler split).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Split {
    /// On a host CPU: KVM's and the VMM's work, and for HLT halt polling.
    pub on_cpu_pct: f64,
    /// Runnable but not running: preempted, or woken and waiting for a host CPU.
    pub wait_pct: f64,
    /// Asleep: a halted vCPU blocked, the VMM sleeping or waiting on a lock.
    pub sleep_pct: f64,
}

impl Row {
    /// The row's time split, when measured (`View::sched_split`) and there is time to split.
    pub fn split(&self, measured: bool) -> Option<Split> {
        if !measured || self.total_ns == 0 {
            return None;
        }
        let pct = |v: u64| v.min(self.total_ns) as f64 * 100.0 / self.total_ns as f64;
        let (wait_pct, sleep_pct) = (pct(self.wait_ns), pct(self.blocked_ns));
        Some(Split {
            on_cpu_pct: (100.0 - wait_pct - sleep_pct).max(0.0),
            wait_pct,
            sleep_pct,
        })
    }

    /// Whether the row has percentiles: timed exits and a histogram of them (perf text has
    /// neither, only min/max/mean).
    pub fn has_percentiles(&self) -> bool {
        self.hist_total > 0 || self.hist.total() > 0
    }
}

fn top_reason(rows: &[Row]) -> Option<&Row> {
    rows.iter()
        .filter(|r| !r.hlt && r.count > 0)
        .max_by_key(|r| (r.total_ns, r.count))
}

fn worst_p99(rows: &[Row]) -> u64 {
    rows.iter()
        .filter(|r| !r.hlt)
        .map(|r| r.p99_ns)
        .max()
        .unwrap_or(0)
}

/// Sort orders of the exit tables (perf kvm stat's `-k`, plus p99).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub enum SortKey {
    #[default]
    Count,
    Time,
    Max,
    Mean,
    P99,
    Name,
}

impl SortKey {
    pub const ALL: [SortKey; 6] = [
        SortKey::Count,
        SortKey::Time,
        SortKey::Max,
        SortKey::Mean,
        SortKey::P99,
        SortKey::Name,
    ];

    pub fn next(self) -> SortKey {
        let i = Self::ALL.iter().position(|k| *k == self).unwrap_or(0);
        Self::ALL[(i + 1) % Self::ALL.len()]
    }

    pub fn label(self) -> &'static str {
        match self {
            SortKey::Count => "count",
            SortKey::Time => "time",
            SortKey::Max => "max",
            SortKey::Mean => "mean",
            SortKey::P99 => "p99",
            SortKey::Name => "name",
        }
    }
}

/// Sorts rows: numbers descending, names ascending; ties broken by (isa, reason) so the order
/// is stable between refreshes.
pub fn sort_rows(rows: &mut [Row], key: SortKey) {
    use std::cmp::Ordering;
    let num = |a: &Row, b: &Row| -> Ordering {
        match key {
            SortKey::Count => b.count.cmp(&a.count),
            SortKey::Time => b.total_ns.cmp(&a.total_ns),
            SortKey::Max => b.max_ns.cmp(&a.max_ns),
            SortKey::Mean => b.mean_ns.total_cmp(&a.mean_ns),
            SortKey::P99 => b.p99_ns.cmp(&a.p99_ns),
            SortKey::Name => a.name.cmp(&b.name),
        }
    };
    rows.sort_by(|a, b| num(a, b).then((a.isa, a.reason).cmp(&(b.isa, b.reason))));
}

/// Sorts VMs by the closest per-VM measure of `key`; ties by pid.
pub fn sort_vms(vms: &mut [&VmView], key: SortKey) {
    vms.sort_by(|a, b| {
        let o = match key {
            SortKey::Count => b.exits.cmp(&a.exits),
            SortKey::Time | SortKey::Mean => b.overhead_pct.total_cmp(&a.overhead_pct),
            SortKey::Max | SortKey::P99 => b.worst_p99_ns().cmp(&a.worst_p99_ns()),
            SortKey::Name => a.name.cmp(&b.name),
        };
        o.then(a.pid.cmp(&b.pid))
    });
}
