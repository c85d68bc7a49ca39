//! The exporter's state as metric families, in exposition order.

use std::collections::BTreeMap;

use prometheus_client::metrics::MetricType::{Counter, Gauge, Histogram};

use super::{
    cpu,
    encode::{labels, rebucket, Family, Labels, Value},
    slow, Exporter, Slot, VmId,
};
use crate::decode::isa_name;

/// `domain`, and `uuid` where known (an empty value would mean the same to Prometheus).
fn vm_labels(id: &VmId) -> Labels {
    let mut l = labels(&[("domain", &id.domain)]);
    if let Some(u) = &id.uuid {
        l.extend(labels(&[("uuid", u)]));
    }
    l
}

impl Exporter {
    pub(super) fn families(&self) -> Vec<Family> {
        let mut info = Family::new(
            "kvmprof_vm_info",
            "VM processes: 1 per pid (the pid is not in other series, so a restart keeps them)",
            Gauge,
            false,
        );
        let mut exits = Family::new("kvmprof_exits", "VM exits by reason", Counter, false);
        let mut hist = Family::new(
            "kvmprof_exit_handling",
            "Exit handling time (kvm_exit to kvm_entry)",
            Histogram,
            true,
        );
        let mut wait = Family::new(
            "kvmprof_exit_wait",
            "Of the exit handling time, time the vCPU thread was runnable but not running: preempted, or woken and waiting for a host CPU (only where the kernel split the time)",
            Counter,
            true,
        );
        let mut asleep = Family::new(
            "kvmprof_exit_asleep",
            "Of the exit handling time, time the vCPU thread slept: a halted vCPU blocked, the VMM sleeping or waiting (only where the kernel split the time)",
            Counter,
            true,
        );
        let mut busy = Family::new(
            "kvmprof_exit_busy",
            "Non-HLT exit handling time (virtualization overhead)",
            Counter,
            true,
        );
        let mut vcpus = Family::new(
            "kvmprof_vcpus",
            "vCPUs of the VM's running process: those with kvm_exit exits; on a KVM without kvm_exit, the threads returning from KVM_RUN to the VMM",
            Gauge,
            false,
        );
        let mut cpu = cpu::families();
        let mut user = Family::new(
            "kvmprof_userspace_exits",
            "Returns of KVM_RUN to the VMM by reason (measured with or without kvm_exit)",
            Counter,
            false,
        );
        let mut user_s = Family::new(
            "kvmprof_userspace_exit",
            "Time from returns of KVM_RUN to the VMM until the thread's next KVM_RUN (the VMM handling them), by reason",
            Counter,
            true,
        );
        let mut slow_exits = slow::family();
        let mut accesses = Family::new(
            "kvmprof_exit_accesses",
            "MSR, I/O port and MMIO accesses by address (the top addresses per access kind, the rest as address other)",
            Counter,
            false,
        );
        for (id, st) in &self.vms {
            let vm_l = vm_labels(id);
            for pid in st.procs.keys() {
                let mut l = vm_l.clone();
                l.extend(labels(&[("pid", &pid.to_string())]));
                info.series.push((l, Value::Gauge(1.0)));
            }
            for ((vcpu, isa, slot), a) in &st.exits {
                let reason = match slot {
                    Slot::Reason(r) => self.names.name(*isa, *r),
                    Slot::Other => "other".into(),
                };
                let mut l = vm_l.clone();
                if let Some(v) = vcpu {
                    l.extend(labels(&[("vcpu", &v.to_string())]));
                }
                l.extend(labels(&[("isa", isa_name(*isa)), ("reason", &reason)]));
                exits.series.push((l.clone(), Value::Count(a.exits)));
                let sum = a.sum_ns as f64 / 1e9;
                if self.sched_split {
                    wait.series
                        .push((l.clone(), Value::Counter(a.wait_ns as f64 / 1e9)));
                    asleep
                        .series
                        .push((l.clone(), Value::Counter(a.blocked_ns as f64 / 1e9)));
                }
                hist.series
                    .push((l, Value::Histogram(sum, a.hist.total(), rebucket(&a.hist))));
            }
            busy.series
                .push((vm_l.clone(), Value::Counter(st.busy_ns as f64 / 1e9)));
            let n: usize = st.procs.values().map(|p| p.count()).sum();
            vcpus.series.push((vm_l.clone(), Value::Gauge(n as f64)));
            st.cpu.series(&vm_l, &mut cpu);
            for (r, (n, ns)) in &st.userspace {
                let name = self.names.name(profiler_common::ISA_USERSPACE, *r);
                let mut l = vm_l.clone();
                l.extend(labels(&[("reason", &name)]));
                user.series.push((l.clone(), Value::Count(*n)));
                user_s.series.push((l, Value::Counter(*ns as f64 / 1e9)));
            }
            st.slow.series(&vm_l, &self.names, &mut slow_exits);
            st.accesses.series(&vm_l, &mut accesses);
        }
        let mut seen = Family::new(
            "kvmprof_kvm_exit_seen",
            "1 once this host's KVM emitted kvm_exit; 0 while it has not (a KVM without it, e.g. a software backend, has no kvmprof_exits_total or kvmprof_exit_* series: what it measures are the returns to the VMM, kvmprof_userspace_exit*)",
            Gauge,
            false,
        );
        let was_seen = if self.kernel_exits > 0 { 1.0 } else { 0.0 };
        seen.series.push((Vec::new(), Value::Gauge(was_seen)));
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
        let advice = self.advice_family();
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
        let [cpu, guest, vcpu_wait, vhost_wait, thread_cpu, thread_wait] = cpu;
        let mut out = vec![info, exits, hist];
        // Where the kernel did not split the time: no series and not even a HELP.
        if self.sched_split {
            out.extend([wait, asleep]);
        }
        out.extend([busy, vcpus, cpu, guest, vcpu_wait, vhost_wait]);
        // Opt-in likewise: without --per-vcpu not even their HELP.
        if self.opts.per_vcpu {
            out.extend([thread_cpu, thread_wait]);
        }
        out.extend([user, user_s, slow_exits]);
        // Opt-in: without --sub-reasons not even its HELP.
        if self.opts.sub_reasons {
            out.push(accesses);
        }
        let dropped = slow::dropped_family(self.slow_dropped);
        out.extend([
            seen, runs, run_s, lost, dropped, advice, samples, errors, ts,
        ]);
        out
    }

    /// Findings counted by (VM, rule, severity); a finding's pid names its VM.
    fn advice_family(&self) -> Family {
        let mut advice = Family::new(
            "kvmprof_advice_findings",
            "Current enlightenment advice findings by rule and severity",
            Gauge,
            false,
        );
        let mut counted: BTreeMap<(VmId, &str, &str), u64> = BTreeMap::new();
        for (pid, vm, rule, sev) in &self.advice {
            let id = self.pids.get(pid).cloned().unwrap_or_else(|| VmId {
                domain: vm.clone(),
                uuid: None,
            });
            *counted.entry((id, rule, sev)).or_default() += 1;
        }
        for ((id, rule, sev), n) in counted {
            let mut l = vm_labels(&id);
            l.extend(labels(&[("rule", rule), ("severity", sev)]));
            advice.series.push((l, Value::Gauge(n as f64)));
        }
        advice
    }
}
