//! What each thread of a VM process is called: a vCPU ("CPU n/KVM", QEMU with
//! debug-threads=on), a vhost task inside the process ("vhost-N", Linux ≥ 6.4), or anything
//! else. Reading every thread's `comm` twice a refresh (for the vCPU index and for the vhost
//! tasks) was a tenth of kvmprof's CPU with one small VM in bench-vm's guest profile, and a VMM
//! has dozens of threads; names are now read once and kept.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use super::{procfs, RECHECK};

/// Threads of the VM processes seen this refresh, by pid, then by tid.
#[derive(Debug, Default)]
pub struct ThreadNames {
    by_pid: HashMap<u32, BTreeMap<u32, Named>>,
    refreshes: u32,
    /// `comm` files read so far (the tests count them).
    pub comm_reads: u64,
}

#[derive(Clone, Copy, Debug, Default)]
struct Named {
    vcpu: Option<u32>,
    vhost: bool,
    looks: u8,
}

impl ThreadNames {
    /// Lists `pid`'s threads (its task directory, kept open: threads that come and go are seen
    /// at once) and returns its vCPU threads, tid → vCPU index. A thread's `comm` is read
    /// when it is new; again at its next sighting if it was neither a vCPU nor a vhost task (a
    /// new thread names itself just after it starts); and once in RECHECK refreshes whatever it
    /// is (its turn by its tid), enough to see a tid reused.
    pub fn scan(&mut self, proc_root: &Path, pid: u32) -> BTreeMap<u32, u32> {
        let phase = self.refreshes % RECHECK;
        let old = self.by_pid.remove(&pid).unwrap_or_default();
        let task = proc_root.join(pid.to_string()).join("task");
        let mut now = BTreeMap::new();
        for tid in super::kept::list(&task, true).unwrap_or_default() {
            let known = old.get(&tid).copied();
            let settled = |n: &Named| n.looks >= 2 || n.vcpu.is_some() || n.vhost;
            let named = match known {
                Some(n) if settled(&n) && tid % RECHECK != phase => n,
                _ => {
                    self.comm_reads += 1;
                    let comm =
                        super::kept::read(&task.join(tid.to_string()).join("comm"), false, false);
                    let comm = comm.unwrap_or_default();
                    Named {
                        vcpu: procfs::vcpu_index(&comm),
                        vhost: procfs::vhost_owner(&comm).is_some(),
                        looks: known.map_or(1, |n| n.looks.saturating_add(1)),
                    }
                }
            };
            now.insert(tid, named);
        }
        let vcpus = now
            .iter()
            .filter_map(|(&tid, n)| Some((tid, n.vcpu?)))
            .collect();
        self.by_pid.insert(pid, now);
        vcpus
    }

    /// The threads of `pid` at its last scan.
    pub fn tids(&self, pid: u32) -> impl Iterator<Item = u32> + '_ {
        self.by_pid
            .get(&pid)
            .into_iter()
            .flat_map(|t| t.keys().copied())
    }

    /// The vhost tasks inside `pid` (named `vhost-N`) at its last scan.
    pub fn vhost_tasks(&self, pid: u32) -> Vec<u32> {
        let threads = self.by_pid.get(&pid).into_iter().flatten();
        threads.filter(|(_, n)| n.vhost).map(|(&t, _)| t).collect()
    }

    /// Ends a refresh: forgets the processes `keep` does not name.
    pub fn end_refresh(&mut self, keep: impl Fn(u32) -> bool) {
        self.by_pid.retain(|&pid, _| keep(pid));
        self.refreshes = self.refreshes.wrapping_add(1);
    }
}
