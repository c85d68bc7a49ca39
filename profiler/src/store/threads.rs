//! Format 5's additions to the per-VM CPU times (cpu.rs): each vCPU thread's CPU time and
//! run-queue wait, and the VM's vhost workers. Columns run parallel to `CpuColumns::pid` (the
//! VMs whose times changed or appeared), as differences from the previous sample.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::delta::{diff, undiff, CodecError};
use crate::sample::{ThreadCpu, VmCpu};

#[derive(Serialize, Deserialize, Default, Debug, Clone, PartialEq, Eq)]
pub(crate) struct ThreadColumns {
    /// Per changed VM: the vhost workers' differences (`Threads`, then `vhost_in_total_ns`).
    vhost_cpu: Vec<i64>,
    vhost_wait: Vec<i64>,
    vhost_threads: Vec<i64>,
    vhost_waited: Vec<i64>,
    vhost_in_total: Vec<i64>,
    /// Per changed VM: how many entries of `gone`, and of the vCPU columns, are its.
    n_gone: Vec<u32>,
    n_set: Vec<u32>,
    /// vCPU indexes no longer read.
    gone: Vec<u32>,
    /// vCPUs that changed or appeared, and their differences.
    vcpu: Vec<u32>,
    cpu: Vec<i64>,
    wait: Vec<i64>,
    /// 1 when the wait is known (schedstat), else 0.
    waited: Vec<u8>,
}

impl ThreadColumns {
    /// `old` → `new` for the VMs of `pids` (`CpuColumns::pid`, in that order).
    pub(super) fn encode(
        old: &BTreeMap<u32, VmCpu>,
        new: &BTreeMap<u32, VmCpu>,
        pids: &[u32],
    ) -> ThreadColumns {
        let mut c = ThreadColumns::default();
        let zero = VmCpu::default();
        for pid in pids {
            let (o, n) = (old.get(pid).unwrap_or(&zero), &new[pid]);
            let (ov, nv) = (&o.vhost, &n.vhost);
            c.vhost_cpu.push(diff(nv.cpu_ns, ov.cpu_ns));
            c.vhost_wait.push(diff(nv.wait_ns, ov.wait_ns));
            c.vhost_threads
                .push(diff(nv.threads.into(), ov.threads.into()));
            c.vhost_waited
                .push(diff(nv.waited.into(), ov.waited.into()));
            c.vhost_in_total
                .push(diff(n.vhost_in_total_ns, o.vhost_in_total_ns));
            let gone: Vec<u32> = (o.vcpus.keys())
                .filter(|v| !n.vcpus.contains_key(v))
                .copied()
                .collect();
            c.n_gone.push(gone.len() as u32);
            c.gone.extend(gone);
            let mut set = 0;
            let none = ThreadCpu::default();
            for (v, t) in n.vcpus.iter().filter(|(v, t)| o.vcpus.get(v) != Some(t)) {
                let was = o.vcpus.get(v).unwrap_or(&none);
                c.vcpu.push(*v);
                c.cpu.push(diff(t.cpu_ns, was.cpu_ns));
                let w = |t: &ThreadCpu| t.wait_ns.unwrap_or(0);
                c.wait.push(diff(w(t), w(was)));
                c.waited.push(t.wait_ns.is_some().into());
                set += 1;
            }
            c.n_set.push(set);
        }
        c
    }

    /// Applies the columns to `s`, whose VMs of `pids` `CpuColumns::apply` has just updated.
    pub(super) fn apply(
        &self,
        pids: &[u32],
        s: &mut BTreeMap<u32, VmCpu>,
    ) -> Result<(), CodecError> {
        let n = pids.len();
        let per_vm = [
            self.vhost_cpu.len(),
            self.vhost_wait.len(),
            self.vhost_threads.len(),
            self.vhost_waited.len(),
            self.vhost_in_total.len(),
            self.n_gone.len(),
            self.n_set.len(),
        ];
        let m = self.vcpu.len();
        let per_vcpu = [self.cpu.len(), self.wait.len(), self.waited.len()];
        let sum = |v: &[u32]| v.iter().map(|&x| x as usize).sum::<usize>();
        if per_vm != [n; 7]
            || per_vcpu != [m; 3]
            || sum(&self.n_gone) != self.gone.len()
            || sum(&self.n_set) != m
        {
            return Err("vCPU and vhost columns disagree in length".into());
        }
        let count = |v, d| {
            u32::try_from(undiff(u64::from(v), d)).map_err(|_| "vhost thread count out of range")
        };
        let (mut g, mut k) = (0, 0);
        for (i, pid) in pids.iter().enumerate() {
            let c = s
                .get_mut(pid)
                .ok_or("vCPU columns of a VM without CPU times")?;
            let v = &mut c.vhost;
            v.cpu_ns = undiff(v.cpu_ns, self.vhost_cpu[i]);
            v.wait_ns = undiff(v.wait_ns, self.vhost_wait[i]);
            v.threads = count(v.threads, self.vhost_threads[i])?;
            v.waited = count(v.waited, self.vhost_waited[i])?;
            c.vhost_in_total_ns = undiff(c.vhost_in_total_ns, self.vhost_in_total[i]);
            let ng = self.n_gone[i] as usize;
            for v in &self.gone[g..g + ng] {
                c.vcpus.remove(v);
            }
            g += ng;
            let ns = self.n_set[i] as usize;
            for j in k..k + ns {
                let t = c.vcpus.entry(self.vcpu[j]).or_default();
                t.cpu_ns = undiff(t.cpu_ns, self.cpu[j]);
                t.wait_ns = match self.waited[j] {
                    0 => None,
                    1 => Some(undiff(t.wait_ns.unwrap_or(0), self.wait[j])),
                    _ => return Err("vCPU wait flag out of range".into()),
                };
            }
            k += ns;
        }
        Ok(())
    }
}
