//! `kvmprof_vm_cpu_seconds_total`, `kvmprof_vm_guest_seconds_total`,
//! `kvmprof_vm_vcpu_wait_seconds_total` and `kvmprof_vm_vhost_wait_seconds_total`: each VM's
//! host CPU and its threads' wait for one; with `per_vcpu` also `kvmprof_vcpu_cpu_seconds_total`
//! and `kvmprof_vcpu_wait_seconds_total` per vCPU. Added up from the model's per-span figures
//! so the counters only grow.

use std::collections::BTreeMap;

use prometheus_client::metrics::MetricType;

use super::encode::{labels, Family, Labels, Value};
use crate::model::{HostCpu, VcpuView};

/// `threads` label values, in `CpuAcc::split` order.
const THREADS: [&str; 4] = ["vcpu", "other", "unknown", "vhost"];

/// One VM's CPU times so far, ns. None until a span had them: no series rather than zeros.
#[derive(Clone, Debug, Default)]
pub(super) struct CpuAcc {
    /// vCPU threads, the VMM's other threads, spans where the split was not known, and the
    /// vhost workers.
    split: Option<[u64; 4]>,
    guest: Option<u64>,
    /// The vCPU threads' run-queue wait (summed over the threads).
    wait: Option<u64>,
    /// The vhost workers' run-queue wait (summed likewise).
    vhost_wait: Option<u64>,
    /// Per vCPU (only with `per_vcpu`): its thread's CPU time and wait, where known.
    vcpus: BTreeMap<u32, [Option<u64>; 2]>,
}

impl CpuAcc {
    pub(super) fn add(&mut self, c: &HostCpu) {
        let acc = self.split.get_or_insert_default();
        match c.vcpu_ns {
            Some(v) => {
                acc[0] += v;
                acc[1] += c.total_ns - v - c.vhost_inside_ns;
            }
            None => acc[2] += c.total_ns - c.vhost_inside_ns,
        }
        acc[3] += c.vhost_ns.unwrap_or(0);
        if let Some(w) = c.vhost_wait_ns {
            *self.vhost_wait.get_or_insert(0) += w;
        }
        if let Some(g) = c.guest_ns {
            *self.guest.get_or_insert(0) += g;
        }
        if let Some(w) = c.vcpu_wait_ns {
            *self.wait.get_or_insert(0) += w;
        }
    }

    /// Adds each vCPU's figures of one span.
    pub(super) fn add_vcpus(&mut self, vcpus: &[VcpuView]) {
        for v in vcpus {
            let acc = self.vcpus.entry(v.vcpu).or_default();
            for (a, ns) in acc.iter_mut().zip([v.cpu_ns, v.steal_ns]) {
                if let Some(ns) = ns {
                    *a.get_or_insert(0) += ns;
                }
            }
        }
    }

    /// Appends this VM's series (with its labels `vm`) to the families of [`families`].
    pub(super) fn series(&self, vm: &Labels, fams: &mut [Family; 6]) {
        let [cpu, guest, wait, vhost_wait, vcpu_cpu, vcpu_wait] = fams;
        let secs = |ns: u64| Value::Counter(ns as f64 / 1e9);
        for (threads, ns) in self.split.iter().flat_map(|s| THREADS.iter().zip(*s)) {
            // "unknown" and "vhost" only once some span had them; the others always, so a
            // rate() over them starts from the VM's first span.
            if !["unknown", "vhost"].contains(threads) || ns > 0 {
                let mut l = vm.clone();
                l.extend(labels(&[("threads", threads)]));
                cpu.series.push((l, secs(ns)));
            }
        }
        if let Some(g) = self.guest {
            guest.series.push((vm.clone(), secs(g)));
        }
        if let Some(w) = self.wait {
            wait.series.push((vm.clone(), secs(w)));
        }
        if let Some(w) = self.vhost_wait {
            vhost_wait.series.push((vm.clone(), secs(w)));
        }
        for (v, [c, w]) in &self.vcpus {
            let mut l = vm.clone();
            l.extend(labels(&[("vcpu", &v.to_string())]));
            for (fam, ns) in [(&mut *vcpu_cpu, c), (&mut *vcpu_wait, w)] {
                if let Some(ns) = ns {
                    fam.series.push((l.clone(), secs(*ns)));
                }
            }
        }
    }
}

/// The families, empty.
pub(super) fn families() -> [Family; 6] {
    let f = |name, help| Family::new(name, help, MetricType::Counter, true);
    [
        f(
            "kvmprof_vm_cpu",
            "Host CPU time of the VM's threads (from /proc): vCPU threads, the VMM's other threads, vhost workers",
        ),
        f(
            "kvmprof_vm_guest",
            "Time the VM's vCPU threads ran the guest (part of the VM's host CPU time)",
        ),
        f(
            "kvmprof_vm_vcpu_wait",
            "Time the VM's vCPU threads waited for a host CPU while runnable (steal), summed over the threads",
        ),
        f(
            "kvmprof_vm_vhost_wait",
            "Time the VM's vhost workers waited for a host CPU while runnable, summed over the threads",
        ),
        f(
            "kvmprof_vcpu_cpu",
            "Host CPU time of each vCPU's thread (from /proc; with --per-vcpu)",
        ),
        f(
            "kvmprof_vcpu_wait",
            "Time each vCPU's thread waited for a host CPU while runnable (steal; with --per-vcpu)",
        ),
    ]
}
