//! `kvmprof serve`: a Prometheus / OpenMetrics exporter.
//!
//! [`Exporter`] is the pure part: it is fed cumulative samples and keeps its own counters, built
//! by adding the model's per-interval deltas, so every counter stays monotonic when kernel keys
//! are recreated (LRU eviction, pid reuse) or pruned, and when VMs come and go. [`serve`] runs it
//! on a live source behind a small HTTP server (default `127.0.0.1:9477`, see [`DEFAULT_LISTEN`]),
//! answering the Prometheus text format 0.0.4, or OpenMetrics when the scraper's `Accept` asks
//! for it ([`Format::negotiate`]).
//!
//! A VM's series are labelled `domain` (libvirt domain name, else QEMU `-name`, else
//! `comm[pid]`) and `uuid` (libvirt's, else QEMU `-uuid`; absent when unknown), the labels
//! libvirt exporters use, so queries join on them. The pid is not part of any series' identity:
//! a VM restarted by libvirt is a new process with the same domain and uuid, and its counters go
//! on growing in the same series instead of starting new ones (issue #16). The pid is in
//! `kvmprof_vm_info`, one series per running process.
//!
//! Metrics (`{vm}` = `domain`, `uuid`; `vcpu` only with `per_vcpu`):
//! - `kvmprof_vm_info{vm,pid}`: 1 per VM process (joins a pid to its VM).
//! - `kvmprof_exits_total{vm,vcpu,isa,reason}`: exits, as `kvmprof report` counts them.
//! - `kvmprof_exit_handling_seconds{vm,vcpu,isa,reason}`: histogram of exit→entry time,
//!   `le` bounds [`encode::LE_NS`] (250 ns … 1 s, 1-2.5-5 steps), `_sum`, `_count`.
//! - `kvmprof_exit_busy_seconds_total{vm}`: non-HLT handling time; overhead % =
//!   `100 * rate(kvmprof_exit_busy_seconds_total[1m]) / kvmprof_vcpus`.
//! - `kvmprof_vcpus{vm}`: vCPUs of the VM's running process(es): those with kvm_exit exits, or,
//!   on a KVM that emits no kvm_exit, the threads returning from KVM_RUN to the VMM.
//! - `kvmprof_vm_cpu_seconds_total{vm,threads}`: host CPU time of the VM from /proc,
//!   `threads="vcpu"` (its vCPU threads), `"other"` (the VMM's other threads: main loop,
//!   timers, I/O), `"vhost"` (its vhost workers, kernel threads outside the process included),
//!   and `"unknown"` for spans where the vCPU threads were not known; % of a core =
//!   `100 * rate(...[1m])` summed over `threads`.
//! - `kvmprof_vm_guest_seconds_total{vm}`: of that, the time its vCPUs ran the guest.
//! - `kvmprof_vm_vcpu_wait_seconds_total{vm}`, `kvmprof_vm_vhost_wait_seconds_total{vm}`: time
//!   its vCPU threads, and its vhost workers, waited for a host CPU while runnable (run-queue
//!   delay from schedstat, summed over the threads: steal).
//! - `kvmprof_vcpu_cpu_seconds_total{vm,vcpu}`, `kvmprof_vcpu_wait_seconds_total{vm,vcpu}`
//!   (only with `per_vcpu`): the same per vCPU thread, where the VMM names its threads.
//! - `kvmprof_userspace_exits_total{vm,reason}`, `kvmprof_userspace_exit_seconds_total{vm,reason}`:
//!   returns of KVM_RUN to the VMM, and the time from each until the thread's next KVM_RUN
//!   (the VMM handling it): all a KVM without kvm_exit lets kvmprof measure.
//! - `kvmprof_slow_exits_total{vm,isa,reason}`: exits the slow-exit log holds (`--slow`),
//!   reasons named as in `kvmprof_exits_total`; `kvmprof_slow_exits_dropped_total`: those the
//!   kernel dropped (rate limit, full buffer), all VMs.
//! - `kvmprof_exit_accesses_total{vm,access,address}` (only with `sub_reasons`): MSR, port and
//!   MMIO accesses by address, the top `top_reasons` addresses per access kind, the rest
//!   `address="other"`.
//! - `kvmprof_kvm_exit_seen`: 1 once the host's KVM emitted kvm_exit, 0 while it has not.
//! - `kvmprof_probe_runs_total{program}`, `kvmprof_probe_run_seconds_total{program}`: the eBPF
//!   programs' own cost (kernel.bpf_stats_enabled).
//! - `kvmprof_lost_events_total{kind}`: orphan entries, unpaired exits, full maps, read errors.
//! - `kvmprof_advice_findings{vm,rule,severity}`: current advice findings (gauge).
//! - `kvmprof_samples_total`, `kvmprof_sample_errors_total`, `kvmprof_last_sample_timestamp_seconds`.
//!
//! Cardinality: per VM at most `top_reasons` named reasons (the first ones to rank in the top
//! by exit count; a reason keeps its series once it has one, so counters never move between
//! series) plus `reason="other"` for the rest, times vCPUs with `per_vcpu`; README.md states
//! the series per VM for each setting (tests_format checks it). A VM that leaves keeps its last
//! values for `keep_exited`, then its series are dropped.

mod access;
mod cpu;
mod encode;
mod families;
mod http;
mod serve;
mod slow;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_cpu;
#[cfg(test)]
mod tests_format;
#[cfg(test)]
mod tests_hostile;
#[cfg(test)]
mod tests_identity;
#[cfg(test)]
mod tests_slow;
mod text;
mod vcpus;

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

pub use encode::{rebucket, LE_NS};
pub use http::{HttpLimits, MAX_HEADER_BYTES};
pub use serve::{serve, ServeOpts, Server, DEFAULT_LISTEN};
pub use text::Format;

use vcpus::{vmm_threads, Vcpus};

use crate::{
    advice::AdviceSummary,
    decode::ExitNames,
    model::{compute, Row, View},
    sample::{Hist, Sample},
};

/// What the exposition contains.
#[derive(Clone, Debug)]
pub struct ExportOpts {
    /// Named reasons per VM; the rest are summed into reason="other" (default 10).
    pub top_reasons: usize,
    /// Add a `vcpu` label (series × vCPUs).
    pub per_vcpu: bool,
    /// How long a VM that left keeps being exported with its last values (default 5 min).
    pub keep_exited: Duration,
    /// Export MSR, port and MMIO accesses by address (`kvmprof_exit_accesses_total`).
    pub sub_reasons: bool,
}

impl Default for ExportOpts {
    fn default() -> Self {
        ExportOpts {
            top_reasons: 10,
            per_vcpu: false,
            keep_exited: Duration::from_secs(300),
            sub_reasons: false,
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
    /// Of `sum_ns`: runnable waiting for a host CPU, and asleep (the scheduler split).
    wait_ns: u64,
    blocked_ns: u64,
}

/// A VM's identity in the series: what libvirt exporters label it with, never its pid.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
struct VmId {
    domain: String,
    uuid: Option<String>,
}

#[derive(Clone, Debug, Default)]
struct VmState {
    last_seen_ns: u64,
    /// The VM's processes in the latest view that had the VM: pid → its vCPUs.
    procs: BTreeMap<u32, Vcpus>,
    promoted: BTreeSet<(u32, u32)>,
    /// (vcpu when per-vCPU, isa, slot) → accumulated values.
    exits: BTreeMap<(Option<u32>, u32, Slot), Acc>,
    /// Returns to the VMM by reason: (count, ns until the next KVM_RUN).
    userspace: BTreeMap<u32, (u64, u64)>,
    busy_ns: u64,
    cpu: cpu::CpuAcc,
    accesses: access::AccessAcc,
    slow: slow::SlowAcc,
}

/// Turns a stream of cumulative samples into exposition text.
#[derive(Clone, Debug)]
pub struct Exporter {
    opts: ExportOpts,
    names: ExitNames,
    prev: Option<Sample>,
    vms: BTreeMap<VmId, VmState>,
    /// The VM of each pid in the latest view (for advice findings, which name a pid).
    pids: BTreeMap<u32, VmId>,
    probe: BTreeMap<String, (u64, u64)>,
    lost: BTreeMap<&'static str, u64>,
    advice: Vec<(u32, String, String, String)>,
    kernel_exits: u64,
    slow_dropped: u64,
    samples: u64,
    errors: u64,
    last_wall_ms: u64,
    /// The kernel split exit times (sched programs ran): the wait/asleep series exist.
    sched_split: bool,
}

/// Both formats of one state of the exporter.
#[derive(Clone, Debug, Default)]
pub struct Exposition {
    pub text: String,
    pub openmetrics: String,
}

impl Exposition {
    pub fn get(&self, f: Format) -> &str {
        match f {
            Format::Prometheus => &self.text,
            Format::OpenMetrics => &self.openmetrics,
        }
    }
}

impl Exporter {
    pub fn new(names: ExitNames, opts: ExportOpts) -> Self {
        Exporter {
            opts,
            names,
            prev: None,
            sched_split: false,
            vms: BTreeMap::new(),
            pids: BTreeMap::new(),
            probe: BTreeMap::new(),
            lost: BTreeMap::new(),
            advice: Vec::new(),
            kernel_exits: 0,
            slow_dropped: 0,
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
        self.add(&view, &prev, &sample);
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

    fn add(&mut self, view: &View, older: &Sample, newer: &Sample) {
        let top = self.opts.top_reasons;
        let threads = vmm_threads(older, newer);
        let reused = newer.reused_pids(older);
        self.pids.clear();
        let mut seen: BTreeMap<VmId, BTreeSet<u32>> = BTreeMap::new();
        for vm in &view.vms {
            let id = VmId {
                domain: vm.name.clone(),
                uuid: vm.uuid.clone(),
            };
            self.pids.insert(vm.pid, id.clone());
            // A process that exited (its rows not pruned yet) is no longer one of the VM's.
            let running = !newer.vms.get(&vm.pid).is_some_and(|i| i.exited);
            let pids = seen.entry(id.clone()).or_default();
            let st = self.vms.entry(id).or_default();
            st.last_seen_ns = newer.mono_ns;
            if running {
                pids.insert(vm.pid);
                let p = st.procs.entry(vm.pid).or_default();
                if reused.contains(&vm.pid) {
                    *p = Vcpus::default();
                }
                p.kernel
                    .extend(vm.vcpus.iter().filter(|v| v.exits > 0).map(|v| v.vcpu));
                p.threads.extend(threads.get(&vm.pid).into_iter().flatten());
            }
            self.kernel_exits += vm.exits;
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
                a.wait_ns += r.wait_ns;
                a.blocked_ns += r.blocked_ns;
                if !r.hlt {
                    st.busy_ns += r.total_ns;
                }
            }
            if let Some(c) = &vm.host_cpu {
                st.cpu.add(c);
            }
            if self.opts.per_vcpu {
                st.cpu.add_vcpus(&vm.vcpus);
            }
            for r in &vm.userspace {
                let u = st.userspace.entry(r.reason).or_default();
                u.0 += r.count;
                u.1 += r.total_ns;
            }
        }
        // A VM's processes are the running ones of the latest view that had it (a restart
        // replaces one); a VM none of whose processes runs any more keeps its last ones, as
        // it keeps its other last values until `keep_exited`.
        for (id, pids) in seen.iter().filter(|(_, p)| !p.is_empty()) {
            if let Some(st) = self.vms.get_mut(id) {
                st.procs.retain(|pid, _| pids.contains(pid));
            }
        }
        // After the loop: the VMs' promoted reasons name the slow exits' series too.
        for e in &newer.slow {
            if let Some(st) = self.pids.get(&e.tgid).and_then(|id| self.vms.get_mut(id)) {
                let named = st.promoted.contains(&(e.isa, e.reason));
                let slot = if named {
                    Slot::Reason(e.reason)
                } else {
                    Slot::Other
                };
                st.slow.add(e.isa, slot);
            }
        }
        self.slow_dropped += slow::dropped(older, newer);
        if self.opts.sub_reasons {
            for (pid, counts) in access::deltas(older, newer) {
                if let Some(st) = self.pids.get(&pid).and_then(|id| self.vms.get_mut(id)) {
                    st.accesses.add(counts, top);
                }
            }
        }
        let keep = self.opts.keep_exited.as_nanos() as u64;
        self.vms
            .retain(|_, st| newer.mono_ns.saturating_sub(st.last_seen_ns) <= keep);
        for p in &view.probe_cost {
            let e = self.probe.entry(p.name.clone()).or_default();
            e.0 += p.events;
            e.1 += p.run_time_ns;
        }
        for (kind, n) in view.counters.losses() {
            *self.lost.entry(kind).or_default() += n;
        }
        self.sched_split |= view.sched_split;
    }

    /// OpenMetrics text of everything accumulated so far.
    pub fn render(&self) -> String {
        encode::render(self.families())
    }

    /// The Prometheus text format 0.0.4 of everything accumulated so far.
    pub fn render_text(&self) -> String {
        text::render_text(&self.families())
    }

    /// Both formats, from one set of families.
    pub fn expositions(&self) -> Exposition {
        let f = self.families();
        Exposition {
            text: text::render_text(&f),
            openmetrics: encode::render(f),
        }
    }
}
