//! A VM's vhost workers: vhost-net, -scsi and -vsock run its virtqueues in a worker named
//! `vhost-<tid>` after the VMM thread that set the device up. Before Linux 6.4 that is a kernel
//! thread (a child of kthreadd, outside the VM's process, so its CPU time is in no figure of
//! the process); since then a task of the VM's process itself (in its total, where it would
//! otherwise pass for a VMM thread). Both are counted, and the second kept apart.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;

pub use super::procfs::vhost_owner;
use super::{kept, procfs};
use crate::sample::{ThreadCpu, VmCpu};

/// kthreadd's pid: the parent of every kernel thread.
const KTHREADD: u32 = 2;

/// One thread's CPU time and run-queue wait, from the directory that holds its `stat` and
/// `schedstat`. None when it is gone.
pub fn thread_cpu(dir: &Path) -> Option<ThreadCpu> {
    let stat = kept::read(&dir.join("stat"), false, true)?;
    let (run, _) = procfs::parse_cpu_ticks(&stat)?;
    let wait = kept::read(&dir.join("schedstat"), false, true)
        .and_then(|t| procfs::parse_schedstat_wait(&t));
    Some(ThreadCpu {
        cpu_ns: procfs::ns(run),
        wait_ns: wait,
    })
}

/// Kernel threads already found not to be vhost workers: a host has one or more per CPU, and
/// reading each one's stat every refresh cost more than the rest of a quiet refresh. Each is
/// re-read every `RECHECK`² calls (its turn comes by its pid, so the reads spread; as VM
/// discovery re-reads a process found not to be QEMU); a vhost worker, and any kernel thread not
/// in the last call's list, is read every time. So only a pid that leaves kthreadd's children
/// and comes back as a vhost worker between two calls is seen late.
#[derive(Debug, Default)]
pub struct Kthreads {
    not_vhost: HashSet<u32>,
    rotation: super::Rotation<{ super::RECHECK * super::RECHECK }>,
    /// Look once in RECHECK calls, the first included, and give the last look's workers in
    /// between: since Linux 6.4 vhost workers are tasks of the VM process (found by its thread
    /// names), and a kernel thread serving one would be a backport; listing kthreadd's children
    /// (the kernel walks them all) was a tenth of a quiet refresh.
    pub sparse: bool,
    calls: u64,
    last: BTreeMap<u32, Vec<u32>>,
    /// Stat files read so far (the tests count them).
    pub stat_reads: u64,
    /// kthreadd's children listed so far (the tests count them).
    pub listings: u64,
}

impl Kthreads {
    /// Whether [`vhost_kthreads`] has looked at the kernel threads yet.
    pub fn looked(&self) -> bool {
        self.rotation.scans > 0
    }

    /// For the running kernel: sparse from Linux 6.4 on.
    pub fn for_release(release: &str) -> Self {
        let sparse = crate::kernel::parse_release(release).is_some_and(|v| v >= (6, 4));
        Kthreads {
            sparse,
            ..Default::default()
        }
    }
}

/// Kernel threads named `vhost-N`, by N. Candidates are kthreadd's children where the kernel
/// lists them (CONFIG_PROC_CHILDREN: one read), else every process; each must name kthreadd as
/// its parent, so a user process calling itself `vhost-1` is not one.
pub fn vhost_kthreads(proc_root: &Path, cache: &mut Kthreads) -> BTreeMap<u32, Vec<u32>> {
    let turn = cache.calls.is_multiple_of(u64::from(super::RECHECK));
    cache.calls += 1;
    if cache.sparse && !turn {
        return cache.last.clone();
    }
    cache.listings += 1;
    let kids = kept::read(&proc_root.join("2/task/2/children"), true, true);
    let candidates: Vec<u32> = match kids {
        Some(text) => text
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect(),
        None => procfs::pids(proc_root),
    };
    let due = cache.rotation.next();
    let mut out: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for &pid in &candidates {
        if !due(pid) && cache.not_vhost.contains(&pid) {
            continue;
        }
        cache.stat_reads += 1;
        let Some(text) = kept::read(&proc_root.join(pid.to_string()).join("stat"), false, false)
        else {
            continue;
        };
        let Some((comm, ppid)) = procfs::parse_comm_ppid(&text) else {
            continue;
        };
        match vhost_owner(&comm).filter(|_| ppid == KTHREADD) {
            Some(owner) => {
                out.entry(owner).or_default().push(pid);
                cache.not_vhost.remove(&pid);
            }
            None => {
                cache.not_vhost.insert(pid);
            }
        }
    }
    let listed: HashSet<u32> = candidates.into_iter().collect();
    cache.not_vhost.retain(|p| listed.contains(p));
    cache.last.clone_from(&out);
    out
}

/// Adds VM process `pid`'s vhost workers to `c`: the kernel threads of `kthreads` (from
/// [`vhost_kthreads`]) owned by the process or one of its threads, and its own tasks named
/// `vhost-N` (those also go to `vhost_in_total_ns`); its threads as `names` last saw them.
pub fn add_vhost(
    proc_root: &Path,
    pid: u32,
    kthreads: &BTreeMap<u32, Vec<u32>>,
    names: &super::names::ThreadNames,
    c: &mut VmCpu,
) {
    let task = proc_root.join(pid.to_string()).join("task");
    let mut owners: BTreeSet<u32> = names.tids(pid).collect();
    owners.insert(pid);
    let inside = names.vhost_tasks(pid);
    let mut add = |t: ThreadCpu| {
        let v = &mut c.vhost;
        v.cpu_ns = v.cpu_ns.saturating_add(t.cpu_ns);
        v.threads += 1;
        if let Some(w) = t.wait_ns {
            v.wait_ns = v.wait_ns.saturating_add(w);
            v.waited += 1;
        }
    };
    let mut in_total = 0u64;
    for tid in inside {
        if let Some(t) = thread_cpu(&task.join(tid.to_string())) {
            in_total = in_total.saturating_add(t.cpu_ns);
            add(t);
        }
    }
    let outside = owners.iter().filter_map(|o| kthreads.get(o)).flatten();
    for tid in outside {
        if let Some(t) = thread_cpu(&proc_root.join(tid.to_string())) {
            add(t);
        }
    }
    c.vhost_in_total_ns = in_total;
}
