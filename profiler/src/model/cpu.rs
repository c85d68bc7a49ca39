//! Host CPU per VM over a span, from the two samples' cumulative CPU times.

use std::collections::BTreeSet;

use super::{HostCpu, VcpuView};
use crate::sample::Sample;

impl HostCpu {
    /// "34.0% of a core: guest 12.0, vCPU threads outside the guest 18.0, other VMM threads
    /// 4.0", for text outputs.
    pub fn describe(&self) -> String {
        let t = self.total_pct;
        let parts = match (self.guest_pct, self.vcpu_pct.zip(self.vmm_pct)) {
            (Some(g), Some((v, o))) => format!(
                ": guest {g:.1}, vCPU threads outside the guest {:.1}, other VMM threads {o:.1}",
                v - g
            ),
            (None, Some((v, o))) => format!(": vCPU threads {v:.1}, other VMM threads {o:.1}"),
            (Some(g), None) => format!(": guest {g:.1}, outside the guest {:.1}", t - g),
            (None, None) => String::new(),
        };
        let wait = self
            .vcpu_wait_pct
            .map(|w| format!("; vCPUs waited for a host CPU {w:.1}% of the time"))
            .unwrap_or_default();
        let vhost = self
            .vhost_pct
            .map(|v| format!("; vhost workers {v:.1} ({:.1}% in all)", self.all_pct))
            .unwrap_or_default();
        format!("{t:.1}% of a core{parts}{vhost}{wait}")
    }
}

/// `pid`'s CPU use between `older` and `newer` in % of one core, over their monotonic span.
/// None when either sample lacks the VM's times, the span is empty, or the pid now belongs to
/// another process (or the times went backwards: the same).
pub fn host_cpu(older: &Sample, newer: &Sample, pid: u32) -> Option<HostCpu> {
    host_cpu_of(older, newer, pid, &newer.reused_pids(older))
}

/// [`host_cpu`] with the reused pids known (they are the same for every VM of a view).
pub(super) fn host_cpu_of(
    older: &Sample,
    newer: &Sample,
    pid: u32,
    reused: &BTreeSet<u32>,
) -> Option<HostCpu> {
    let (o, n) = (older.vm_cpu.get(&pid)?, newer.vm_cpu.get(&pid)?);
    if older.mono_ns == 0 || reused.contains(&pid) {
        return None;
    }
    let span = newer
        .mono_ns
        .checked_sub(older.mono_ns)
        .filter(|&s| s > 0)? as f64;
    let total = n.total_ns.checked_sub(o.total_ns)?;
    let pct = |ns: u64| ns as f64 / span * 100.0;
    // The vCPU part only when the same number of vCPU threads was read both times (a thread
    // that came or went would count its whole life or drop out). /proc rounds each thread to
    // ticks separately, so the part is kept within the total.
    let vcpu = (n.vcpu_threads > 0 && n.vcpu_threads == o.vcpu_threads)
        .then(|| n.vcpu_ns.checked_sub(o.vcpu_ns))
        .flatten()
        .map(|v| v.min(total));
    // Guest time comes in unscaled ticks, user + system time scaled to the exact run time:
    // the guest is kept within the vCPU threads (or the total when they are not known). A
    // process with no guest time ever runs its guest where the kernel does not account it.
    let guest = (n.guest_ns > 0)
        .then(|| (n.guest_ns.saturating_sub(o.guest_ns)).min(vcpu.unwrap_or(total)));
    // Steal: the same vCPU threads' schedstat both times, averaged over the threads.
    let threads = n.vcpu_threads;
    let wait = (threads > 0
        && threads == o.vcpu_threads
        && n.waited_threads == threads
        && o.waited_threads == threads)
        .then(|| n.vcpu_wait_ns.checked_sub(o.vcpu_wait_ns))
        .flatten();
    // vhost workers: the same ones both times, like the vCPU threads. Those inside the
    // process (Linux 6.4 on) are VMM threads no more; the kernel threads add to the total.
    let (ov, nv) = (&o.vhost, &n.vhost);
    let same = nv.threads > 0 && nv.threads == ov.threads;
    let vhost = same.then(|| nv.cpu_ns.checked_sub(ov.cpu_ns)).flatten();
    let inside = (vhost.is_some())
        .then(|| n.vhost_in_total_ns.checked_sub(o.vhost_in_total_ns))
        .flatten()
        .unwrap_or(0)
        .min(total - vcpu.unwrap_or(0));
    let outside = vhost.map_or(0, |v| v.saturating_sub(inside));
    let vhost_wait = (same && nv.waited == nv.threads && ov.waited == ov.threads)
        .then(|| nv.wait_ns.checked_sub(ov.wait_ns))
        .flatten();
    Some(HostCpu {
        vcpu_wait_pct: wait.map(|w| pct(w) / f64::from(threads)),
        vcpu_wait_ns: wait,
        total_pct: pct(total),
        guest_pct: guest.map(pct),
        vcpu_pct: vcpu.map(pct),
        vmm_pct: vcpu.map(|v| pct(total - v - inside)),
        total_ns: total,
        guest_ns: guest,
        vcpu_ns: vcpu,
        vhost_pct: vhost.map(pct),
        vhost_wait_pct: vhost_wait.map(|w| pct(w) / f64::from(nv.threads)),
        all_pct: pct(total.saturating_add(outside)),
        vhost_ns: vhost,
        vhost_inside_ns: inside,
        vhost_wait_ns: vhost_wait,
    })
}

/// Each vCPU's host CPU and steal over the span, from its own thread's figures (by vCPU
/// index), where both samples have them and `pid` is the same process in both.
pub(super) fn vcpu_cpu(
    older: &Sample,
    newer: &Sample,
    pid: u32,
    reused: &BTreeSet<u32>,
    vcpus: &mut [VcpuView],
) {
    let both = (older.vm_cpu.get(&pid)).zip(newer.vm_cpu.get(&pid));
    let span = newer.mono_ns.saturating_sub(older.mono_ns);
    let ok = older.mono_ns > 0 && span > 0 && !reused.contains(&pid);
    for v in vcpus {
        let threads = both
            .filter(|_| ok)
            .and_then(|(o, n)| Some((o.vcpus.get(&v.vcpu)?, n.vcpus.get(&v.vcpu)?)));
        // A thread replaced under the same index (its times went backwards) says nothing.
        v.cpu_ns = threads.and_then(|(o, n)| n.cpu_ns.checked_sub(o.cpu_ns));
        v.steal_ns = threads.and_then(|(o, n)| n.wait_ns?.checked_sub(o.wait_ns?));
        let pct = |ns: u64| ns as f64 / span as f64 * 100.0;
        v.cpu_pct = v.cpu_ns.map(pct);
        v.steal_pct = v.steal_ns.map(pct);
    }
}
