//! `kvmprof serve`: a Prometheus / OpenMetrics exporter.
//!
//! [`Exporter`] is the pure part: it is fed cumulative samples and keeps its own counters, built
//! by adding the model's per-interval deltas, so every counter stays monotonic when kernel keys
//! are recreated (LRU eviction, pid reuse) or pruned, and when VMs come and go. [`serve`] runs it
//! on a live source behind a small HTTP server (default `127.0.0.1:9477`, see [`DEFAULT_LISTEN`]).
//!
//! Metrics (labels in braces; `vcpu` only with `per_vcpu`):
//! - `kvmprof_exits_total{vm,pid,vcpu,isa,reason}`: exits, as `kvmprof report` counts them.
//! - `kvmprof_exit_handling_seconds{vm,pid,vcpu,isa,reason}`: histogram of exit→entry time,
//!   `le` bounds [`encode::LE_NS`] (250 ns … 1 s, 1-2.5-5 steps), `_sum`, `_count`.
//! - `kvmprof_exit_busy_seconds_total{vm,pid}`: non-HLT handling time; overhead % =
//!   `100 * rate(kvmprof_exit_busy_seconds_total[1m]) / kvmprof_vcpus`.
//! - `kvmprof_vcpus{vm,pid}`: vCPUs seen.
//! - `kvmprof_vm_cpu_seconds_total{vm,pid,threads}`: host CPU time of the VM process from
//!   /proc, `threads="vcpu"` (its vCPU threads) or `"other"` (the VMM's other threads: main
//!   loop, timers, I/O), and `"unknown"` for spans where the vCPU threads were not known; % of
//!   a core = `100 * rate(...[1m])` summed over `threads`.
//! - `kvmprof_vm_guest_seconds_total{vm,pid}`: of that, the time its vCPUs ran the guest.
//! - `kvmprof_vm_vcpu_wait_seconds_total{vm,pid}`: time its vCPU threads waited for a host CPU
//!   while runnable (run-queue delay from schedstat, summed over the threads: steal).
//! - `kvmprof_userspace_exits_total{vm,pid,reason}`: returns of KVM_RUN to the VMM.
//! - `kvmprof_probe_runs_total{program}`, `kvmprof_probe_run_seconds_total{program}`: the eBPF
//!   programs' own cost (kernel.bpf_stats_enabled).
//! - `kvmprof_lost_events_total{kind}`: orphan entries, unpaired exits, full maps, read errors.
//! - `kvmprof_advice_findings{vm,pid,rule,severity}`: current advice findings (gauge).
//! - `kvmprof_samples_total`, `kvmprof_sample_errors_total`, `kvmprof_last_sample_timestamp_seconds`.
//!
//! Cardinality: per VM at most `top_reasons` named reasons (the first ones to rank in the top
//! by exit count; a reason keeps its series once it has one, so counters never move between
//! series) plus `reason="other"` for the rest, times vCPUs with `per_vcpu`. A VM that leaves
//! keeps its last values for `keep_exited`, then its series are dropped.

mod cpu;
mod encode;
mod http;
mod serve;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_cpu;
#[cfg(test)]
mod tests_hostile;

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use prometheus_client::metrics::MetricType;

pub use encode::{rebucket, CONTENT_TYPE, LE_NS};
pub use http::{HttpLimits, MAX_HEADER_BYTES};
pub use serve::{serve, ServeOpts, Server, DEFAULT_LISTEN};

use crate::{
    advice::AdviceSummary,
    decode::{isa_name, ExitNames},
    model::{compute, Row, View},
    sample::{Hist, Sample},
};
use encode::{labels, Family, Value};

/// What the exposition contains.
#[derive(Clone, Debug)]
pub struct ExportOpts {
    /// Named reasons per VM; the rest are summed into reason="other" (default 10).
    pub top_reasons: usize,
    /// Add a `vcpu` label (series × vCPUs).
    pub per_vcpu: bool,
    /// How long a VM that left keeps being exported with its last values (default 5 min).
    pub keep_exited: Duration,
}

impl Default for ExportOpts {
    fn default() -> Self {
        ExportOpts {
            top_reasons: 10,
            per_vcpu: false,
            keep_exited: Duration::from_secs(300),
        }
    }
}

/// A reason's series: its own code, or the VM's "other" bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Slot {
    Reason(u32),
    Other,
}

#[derive(Clone, Debug, Default)]
struct Acc {
    exits: u64,
    hist: Hist,
    sum_ns: u64,
}

#[derive(Clone, Debug, Default)]
struct VmState {
    last_seen_ns: u64,
    promoted: BTreeSet<(u32, u32)>,
    /// (vcpu when per-vCPU, isa, slot) → accumulated values.
    exits: BTreeMap<(Option<u32>, u32, Slot), Acc>,
    userspace: BTreeMap<u32, u64>,
    busy_ns: u64,
    vcpus: BTreeSet<u32>,
    cpu: cpu::CpuAcc,
}

/// Turns a stream of cumulative samples into exposition text.
#[derive(Clone, Debug)]
pub struct Exporter {
    opts: ExportOpts,
    names: ExitNames,
    prev: Option<Sample>,
    /// Keyed by (pid, VM name): a renamed or reused pid gets new series.
    vms: BTreeMap<(u32, String), VmState>,
    probe: BTreeMap<String, (u64, u64)>,
    lost: BTreeMap<&'static str, u64>,
    advice: Vec<(u32, String, String, String)>,
    samples: u64,
    errors: u64,
    last_wall_ms: u64,
}

impl Exporter {
    pub fn new(names: ExitNames, opts: ExportOpts) -> Self {
        Exporter {
            opts,
            names,
            prev: None,
            vms: BTreeMap::new(),
            probe: BTreeMap::new(),
            lost: BTreeMap::new(),
            advice: Vec::new(),
            samples: 0,
            errors: 0,
            last_wall_ms: 0,
        }
    }

    /// The exposition of `latest − first` (what `kvmprof report` shows for the same samples).
    pub fn from_pair(first: &Sample, latest: &Sample, names: &ExitNames, opts: ExportOpts) -> Self {
        let mut e = Exporter::new(names.clone(), opts);
        e.observe(first.clone());
        e.observe(latest.clone());
        e
    }

    /// Adds a new cumulative sample; the first one is the baseline.
    pub fn observe(&mut self, sample: Sample) {
        self.samples += 1;
        self.last_wall_ms = sample.wall_ms;
        let Some(prev) = self.prev.take() else {
            self.prev = Some(sample);
            return;
        };
        let view = compute(&prev, &sample, &self.names);
        self.add(&view, sample.mono_ns);
        self.prev = Some(sample);
    }

    /// Counts a failed read of the source.
    pub fn observe_error(&mut self) {
        self.errors += 1;
    }

    /// Replaces the advice findings exported as `kvmprof_advice_findings`.
    pub fn set_advice(&mut self, a: &AdviceSummary) {
        self.advice = a
            .findings
            .iter()
            .map(|f| {
                (
                    f.pid,
                    f.vm.clone(),
                    f.rule.clone(),
                    f.severity.label().to_lowercase(),
                )
            })
            .collect();
    }

    /// The most recent sample (for callers computing advice windows).
    pub fn latest(&self) -> Option<&Sample> {
        self.prev.as_ref()
    }

    fn add(&mut self, view: &View, now_ns: u64) {
        let top = self.opts.top_reasons;
        for vm in &view.vms {
            let st = self.vms.entry((vm.pid, vm.name.clone())).or_default();
            st.last_seen_ns = now_ns;
            // Fill free slots with the busiest reasons not yet named; never take one back.
            let mut ranked: Vec<&Row> = vm.reasons.iter().filter(|r| r.count > 0).collect();
            ranked.sort_by(|a, b| b.count.cmp(&a.count).then(a.reason.cmp(&b.reason)));
            for r in ranked {
                if st.promoted.len() >= top {
                    break;
                }
                st.promoted.insert((r.isa, r.reason));
            }
            let rows: Vec<(Option<u32>, &Row)> = if self.opts.per_vcpu {
                vm.vcpus
                    .iter()
                    .flat_map(|v| v.reasons.iter().map(move |r| (Some(v.vcpu), r)))
                    .collect()
            } else {
                vm.reasons.iter().map(|r| (None, r)).collect()
            };
            for (vcpu, r) in rows {
                let slot = if st.promoted.contains(&(r.isa, r.reason)) {
                    Slot::Reason(r.reason)
                } else {
                    Slot::Other
                };
                let a = st.exits.entry((vcpu, r.isa, slot)).or_default();
                a.exits += r.count;
                a.hist.add(&r.hist);
                a.sum_ns += r.total_ns;
                if !r.hlt {
                    st.busy_ns += r.total_ns;
                }
            }
            st.vcpus.extend(vm.vcpus.iter().map(|v| v.vcpu));
            if let Some(c) = &vm.host_cpu {
                st.cpu.add(c);
            }
            for r in &vm.userspace {
                *st.userspace.entry(r.reason).or_default() += r.count;
            }
        }
        let keep = self.opts.keep_exited.as_nanos() as u64;
        self.vms
            .retain(|_, st| now_ns.saturating_sub(st.last_seen_ns) <= keep);
        for p in &view.probe_cost {
            let e = self.probe.entry(p.name.clone()).or_default();
            e.0 += p.events;
            e.1 += p.run_time_ns;
        }
        for (kind, n) in view.counters.losses() {
            *self.lost.entry(kind).or_default() += n;
        }
    }

    /// The metric families, in exposition order.
    fn families(&self) -> Vec<Family> {
        use MetricType::{Counter, Gauge, Histogram};
        let mut exits = Family::new("kvmprof_exits", "VM exits by reason", Counter, false);
        let mut hist = Family::new(
            "kvmprof_exit_handling",
            "Exit handling time (kvm_exit to kvm_entry)",
            Histogram,
            true,
        );
        let mut busy = Family::new(
            "kvmprof_exit_busy",
            "Non-HLT exit handling time (virtualization overhead)",
            Counter,
            true,
        );
        let mut vcpus = Family::new("kvmprof_vcpus", "vCPUs seen", Gauge, false);
        let mut cpu = cpu::families();
        let mut user = Family::new(
            "kvmprof_userspace_exits",
            "Returns of KVM_RUN to the VMM by reason",
            Counter,
            false,
        );
        for ((pid, name), st) in &self.vms {
            let pid_s = pid.to_string();
            let vm_l = labels(&[("vm", name), ("pid", &pid_s)]);
            for ((vcpu, isa, slot), a) in &st.exits {
                let reason = match slot {
                    Slot::Reason(r) => self.names.name(*isa, *r),
                    Slot::Other => "other".into(),
                };
                let vcpu_s = vcpu.map(|v| v.to_string());
                let mut l = vm_l.clone();
                if let Some(v) = &vcpu_s {
                    l.extend(labels(&[("vcpu", v)]));
                }
                l.extend(labels(&[("isa", isa_name(*isa)), ("reason", &reason)]));
                exits.series.push((l.clone(), Value::Count(a.exits)));
                let sum = a.sum_ns as f64 / 1e9;
                hist.series
                    .push((l, Value::Histogram(sum, a.hist.total(), rebucket(&a.hist))));
            }
            busy.series
                .push((vm_l.clone(), Value::Counter(st.busy_ns as f64 / 1e9)));
            vcpus
                .series
                .push((vm_l.clone(), Value::Gauge(st.vcpus.len() as f64)));
            st.cpu.series(&vm_l, &mut cpu);
            for (r, n) in &st.userspace {
                let name = self.names.name(profiler_common::ISA_USERSPACE, *r);
                let mut l = vm_l.clone();
                l.extend(labels(&[("reason", &name)]));
                user.series.push((l, Value::Count(*n)));
            }
        }
        let mut runs = Family::new("kvmprof_probe_runs", "eBPF program runs", Counter, false);
        let mut run_s = Family::new(
            "kvmprof_probe_run",
            "Time spent in kvmprof's eBPF programs",
            Counter,
            true,
        );
        for (name, (n, ns)) in &self.probe {
            let l = labels(&[("program", name)]);
            runs.series.push((l.clone(), Value::Count(*n)));
            run_s.series.push((l, Value::Counter(*ns as f64 / 1e9)));
        }
        let mut lost = Family::new(
            "kvmprof_lost_events",
            "Events kvmprof could not account (orphan entries, unpaired exits, full maps, read errors)",
            Counter,
            false,
        );
        for (kind, n) in &self.lost {
            lost.series
                .push((labels(&[("kind", kind)]), Value::Count(*n)));
        }
        let mut advice = Family::new(
            "kvmprof_advice_findings",
            "Current enlightenment advice findings by rule and severity",
            Gauge,
            false,
        );
        let mut counted: BTreeMap<(u32, &str, &str, &str), u64> = BTreeMap::new();
        for (pid, vm, rule, sev) in &self.advice {
            *counted.entry((*pid, vm, rule, sev)).or_default() += 1;
        }
        for ((pid, vm, rule, sev), n) in counted {
            let pid_s = pid.to_string();
            let l = labels(&[
                ("vm", vm),
                ("pid", &pid_s),
                ("rule", rule),
                ("severity", sev),
            ]);
            advice.series.push((l, Value::Gauge(n as f64)));
        }
        let mut samples = Family::new("kvmprof_samples", "Samples read", Counter, false);
        samples
            .series
            .push((Vec::new(), Value::Count(self.samples)));
        let mut errors = Family::new(
            "kvmprof_sample_errors",
            "Failed sample reads",
            Counter,
            false,
        );
        errors.series.push((Vec::new(), Value::Count(self.errors)));
        let mut ts = Family::new(
            "kvmprof_last_sample_timestamp",
            "Wall-clock time of the latest sample",
            Gauge,
            true,
        );
        ts.series
            .push((Vec::new(), Value::Gauge(self.last_wall_ms as f64 / 1e3)));
        let [cpu, guest, wait] = cpu;
        vec![
            exits, hist, busy, vcpus, cpu, guest, wait, user, runs, run_s, lost, advice, samples,
            errors, ts,
        ]
    }

    /// OpenMetrics text of everything accumulated so far.
    pub fn render(&self) -> String {
        encode::render(self.families())
    }
}
