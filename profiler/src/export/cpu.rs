//! `kvmprof_vm_cpu_seconds_total`, `kvmprof_vm_guest_seconds_total` and
//! `kvmprof_vm_vcpu_wait_seconds_total`: each VM's host CPU and its vCPUs' wait for one, added
//! up from the model's per-span figures so the counters only grow.

use prometheus_client::metrics::MetricType;

use super::encode::{labels, Family, Labels, Value};
use crate::model::HostCpu;

/// `threads` label values, in `CpuAcc::split` order.
const THREADS: [&str; 3] = ["vcpu", "other", "unknown"];

/// One VM's CPU times so far, ns. None until a span had them: no series rather than zeros.
#[derive(Clone, Debug, Default)]
pub(super) struct CpuAcc {
    /// vCPU threads, the VMM's other threads, and spans where the split was not known.
    split: Option<[u64; 3]>,
    guest: Option<u64>,
    /// The vCPU threads' run-queue wait (summed over the threads).
    wait: Option<u64>,
}

impl CpuAcc {
    pub(super) fn add(&mut self, c: &HostCpu) {
        let acc = self.split.get_or_insert_default();
        match c.vcpu_ns {
            Some(v) => {
                acc[0] += v;
                acc[1] += c.total_ns - v;
            }
            None => acc[2] += c.total_ns,
        }
        if let Some(g) = c.guest_ns {
            *self.guest.get_or_insert(0) += g;
        }
        if let Some(w) = c.vcpu_wait_ns {
            *self.wait.get_or_insert(0) += w;
        }
    }

    /// Appends this VM's series (with its labels `vm`) to the families of [`families`].
    pub(super) fn series(&self, vm: &Labels, [cpu, guest, wait]: &mut [Family; 3]) {
        let secs = |ns: u64| Value::Counter(ns as f64 / 1e9);
        for (threads, ns) in self.split.iter().flat_map(|s| THREADS.iter().zip(*s)) {
            // "unknown" only once some span could not be split; the others always, so a
            // rate() over them starts from the VM's first span.
            if *threads != "unknown" || ns > 0 {
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
    }
}

/// The families, empty.
pub(super) fn families() -> [Family; 3] {
    let f = |name, help| Family::new(name, help, MetricType::Counter, true);
    [
        f(
            "kvmprof_vm_cpu",
            "Host CPU time of the VM's threads (from /proc): vCPU threads, the VMM's other threads",
        ),
        f(
            "kvmprof_vm_guest",
            "Time the VM's vCPU threads ran the guest (part of the VM's host CPU time)",
        ),
        f(
            "kvmprof_vm_vcpu_wait",
            "Time the VM's vCPU threads waited for a host CPU while runnable (steal), summed over the threads",
        ),
    ]
}
