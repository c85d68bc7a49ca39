//! Format 3's per-VM CPU times in a frame: like the other counters, differences from the
//! previous sample (whole values in key frames, which encode against an empty sample).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::delta::{diff, undiff, CodecError};
use crate::sample::VmCpu;

/// Columns so zstd sees like next to like: pids, then each value's differences.
#[derive(Serialize, Deserialize, Default, Debug, Clone, PartialEq, Eq)]
pub(crate) struct CpuColumns {
    /// VMs whose times are no longer read (exited).
    gone: Vec<u32>,
    /// VMs whose times changed or appeared, and their differences.
    pid: Vec<u32>,
    total: Vec<i64>,
    vcpu: Vec<i64>,
    guest: Vec<i64>,
    threads: Vec<i64>,
    wait: Vec<i64>,
    waited: Vec<i64>,
}

impl CpuColumns {
    pub(super) fn encode(old: &BTreeMap<u32, VmCpu>, new: &BTreeMap<u32, VmCpu>) -> CpuColumns {
        let mut c = CpuColumns {
            gone: (old.keys())
                .filter(|p| !new.contains_key(p))
                .copied()
                .collect(),
            ..Default::default()
        };
        let zero = VmCpu::default();
        for (pid, n) in new.iter().filter(|(p, n)| old.get(p) != Some(n)) {
            let o = old.get(pid).unwrap_or(&zero);
            c.pid.push(*pid);
            c.total.push(diff(n.total_ns, o.total_ns));
            c.vcpu.push(diff(n.vcpu_ns, o.vcpu_ns));
            c.guest.push(diff(n.guest_ns, o.guest_ns));
            c.threads
                .push(diff(n.vcpu_threads.into(), o.vcpu_threads.into()));
            c.wait.push(diff(n.vcpu_wait_ns, o.vcpu_wait_ns));
            c.waited
                .push(diff(n.waited_threads.into(), o.waited_threads.into()));
        }
        c
    }

    /// The VMs whose times changed or appeared, in column order.
    pub(super) fn pids(&self) -> &[u32] {
        &self.pid
    }

    pub(super) fn apply(&self, s: &mut BTreeMap<u32, VmCpu>) -> Result<(), CodecError> {
        let n = self.pid.len();
        let lens = [
            self.total.len(),
            self.vcpu.len(),
            self.guest.len(),
            self.threads.len(),
            self.wait.len(),
            self.waited.len(),
        ];
        if lens != [n; 6] {
            return Err("CPU time columns disagree in length".into());
        }
        for pid in &self.gone {
            s.remove(pid);
        }
        for (i, pid) in self.pid.iter().enumerate() {
            let v = s.entry(*pid).or_default();
            v.total_ns = undiff(v.total_ns, self.total[i]);
            v.vcpu_ns = undiff(v.vcpu_ns, self.vcpu[i]);
            v.guest_ns = undiff(v.guest_ns, self.guest[i]);
            v.vcpu_threads = u32::try_from(undiff(v.vcpu_threads.into(), self.threads[i]))
                .map_err(|_| "vCPU thread count out of range")?;
            v.vcpu_wait_ns = undiff(v.vcpu_wait_ns, self.wait[i]);
            v.waited_threads = u32::try_from(undiff(v.waited_threads.into(), self.waited[i]))
                .map_err(|_| "vCPU thread count out of range")?;
        }
        Ok(())
    }
}
