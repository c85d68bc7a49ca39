//! `kvmprof_vcpus`: a VM process's vCPUs are those the kernel reports exits of, or, on a KVM
//! that emits no kvm_exit (issue #16), its threads that return from KVM_RUN to the VMM.

use std::collections::{BTreeMap, BTreeSet};

use crate::sample::Sample;

/// vCPUs of one VM process.
#[derive(Clone, Debug, Default)]
pub(super) struct Vcpus {
    /// With kvm_exit exits.
    pub(super) kernel: BTreeSet<u32>,
    /// Threads (tids) returning from KVM_RUN to the VMM.
    pub(super) threads: BTreeSet<u32>,
}

impl Vcpus {
    /// The kernel's vCPUs where it reports exits; else (a KVM without kvm_exit) the threads.
    pub(super) fn count(&self) -> usize {
        match self.kernel.is_empty() {
            true => self.threads.len(),
            false => self.kernel.len(),
        }
    }
}

/// Per pid, the thread ids that returned from KVM_RUN to the VMM between the two samples. Tids,
/// not vCPU indexes: the VMM's thread names (`CPU 0/KVM`) may be read only after a thread's
/// first returns, and one thread counted under both would be two vCPUs.
pub(super) fn vmm_threads(older: &Sample, newer: &Sample) -> BTreeMap<u32, BTreeSet<u32>> {
    let reused = newer.reused_pids(older);
    let mut out: BTreeMap<u32, BTreeSet<u32>> = BTreeMap::new();
    for (k, st) in newer.stats.iter() {
        if k.isa != profiler_common::ISA_USERSPACE {
            continue;
        }
        let before = match reused.contains(&k.tgid) {
            true => None,
            false => older.stats.get(k).map(|o| o.count),
        };
        // A key recreated since (fewer exits than before) counts from zero, as in the model.
        let grew = before.map_or(st.count > 0, |b| st.count != b);
        if grew {
            // For these keys `vcpu` is the thread id (profiler_common::ISA_USERSPACE).
            out.entry(k.tgid).or_default().insert(k.vcpu);
        }
    }
    out
}
