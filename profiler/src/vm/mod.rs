//! VM discovery from /proc (QEMU processes, names, uuid, libvirt domain).

pub mod cpu;
pub mod kept;
pub mod libvirt;
pub mod names;
pub mod procfs;
pub mod qemu;
pub mod threads;
pub mod xml;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;

use crate::sample::VmInfo;

#[derive(Debug)]
pub struct Discovery {
    pub proc_root: PathBuf,
    pub libvirt_dir: PathBuf,
    cache: Cache,
    /// `/proc/PID/stat` files read so far (the tests count them).
    pub stat_reads: u64,
    /// Listings of /proc so far (the tests count them).
    pub listings: u64,
    /// Kernel threads known not to be vhost workers (per-VM CPU, `cpu::read_all`).
    pub kthreads: threads::Kthreads,
    /// What each thread of the VMs is called (vCPU index, vhost task).
    pub threads: names::ThreadNames,
    /// Each live VM's `/proc/PID/stat` as the last refresh read it: the per-VM CPU figures
    /// (`cpu::read_all`, right after) take its times from it instead of reading it again.
    pub stat_lines: HashMap<u32, String>,
}

/// Refreshes between two listings of /proc for VMs (and listings between two reads of a process
/// found not to be QEMU), and between two reads of a kernel thread found not to be a vhost
/// worker.
pub const RECHECK: u32 = 8;

/// Which of the pids already found not to be what a scan looks for it re-reads this time:
/// each every PERIOD scans, its turn given by its number so the reads spread out.
#[derive(Debug, Default)]
struct Rotation<const PERIOD: u32> {
    scans: u32,
}

impl<const PERIOD: u32> Rotation<PERIOD> {
    /// Starts a scan: whether a known pid is due for a re-read in it.
    fn next(&mut self) -> impl Fn(u32) -> bool {
        self.next_if(true)
    }

    /// [`Rotation::next`] when `counts`; else no scan is counted and no pid is due.
    fn next_if(&mut self, counts: bool) -> impl Fn(u32) -> bool {
        let phase = self.scans % PERIOD;
        if counts {
            self.scans = self.scans.wrapping_add(1);
        }
        move |pid| counts && pid % PERIOD == phase
    }
}

#[derive(Debug, Default)]
struct Cache {
    /// Processes read so far, by pid; `start_time` tells a reused pid apart.
    vms: HashMap<u32, Entry>,
    /// (pid, start time) of processes already found not to be QEMU: not re-read.
    not_qemu: HashMap<u32, u64>,
    libvirt: libvirt::Domains,
    refreshes: u32,
    rotation: Rotation<RECHECK>,
}

#[derive(Debug)]
struct Entry {
    info: VmInfo,
    /// From the command line; a libvirt name, which can appear later, overrides it.
    cmdline_name: Option<String>,
    cmdline_uuid: Option<String>,
    exited: bool,
}

impl Discovery {
    pub fn new(proc_root: impl Into<PathBuf>, libvirt_dir: impl Into<PathBuf>) -> Self {
        Discovery {
            proc_root: proc_root.into(),
            libvirt_dir: libvirt_dir.into(),
            cache: Cache::default(),
            stat_reads: 0,
            listings: 0,
            kthreads: threads::Kthreads::default(),
            threads: names::ThreadNames::default(),
            stat_lines: HashMap::new(),
        }
    }

    pub fn host() -> Self {
        let mut d = Self::new("/proc", "/run/libvirt/qemu");
        d.kthreads = threads::Kthreads::for_release(&crate::kernel::running_release());
        d
    }

    /// Info for every pid in `pids` (the tgids seen in the stats map) plus every QEMU process
    /// on the host (found by listing /proc every RECHECK refreshes), sorted by pid. Cached by
    /// (pid, start time) so a reused pid is re-read.
    pub fn refresh(&mut self, pids: &[u32]) -> Vec<VmInfo> {
        kept::sweep();
        let domains = self.cache.libvirt.scan(&self.libvirt_dir);
        let wanted: HashSet<u32> = pids.iter().copied().collect();
        // Listing /proc and reading every process's stat was most of a quiet host's refresh
        // (and grows with its processes). /proc is listed every RECHECK refreshes, the first
        // included; in between, a refresh reads only the processes it knows to be VMs and the
        // pids the stats name: a running VM exits, so a new one is named at once, and one
        // without exits (paused) waits for the next listing. A listed process already found
        // not to be QEMU is re-read in one listing of RECHECK (its turn given by its pid, so
        // the reads spread), enough to see its pid reused by a VM that has not exited yet.
        let listing = self.cache.refreshes.is_multiple_of(RECHECK);
        self.cache.refreshes = self.cache.refreshes.wrapping_add(1);
        let candidates: Vec<u32> = if listing {
            self.listings += 1;
            procfs::pids(&self.proc_root)
        } else {
            let known = self.cache.vms.iter().filter(|(_, e)| !e.exited);
            known.map(|(&pid, _)| pid).collect()
        };
        let due = self.cache.rotation.next_if(listing);
        let mut live = HashMap::new();
        let mut lines = std::mem::take(&mut self.stat_lines);
        lines.clear();
        let mut read = |pid: u32, keep: bool| {
            let line = procfs::stat_line(&self.proc_root, pid, keep)?;
            let stat = procfs::parse_stat(&line)?;
            lines.insert(pid, line);
            Some(stat)
        };
        for pid in candidates {
            if !due(pid) && !wanted.contains(&pid) {
                if let Some(&start) = self.cache.not_qemu.get(&pid) {
                    live.insert(pid, (String::new(), start));
                    continue;
                }
            }
            self.stat_reads += 1;
            let keep = self.cache.vms.contains_key(&pid);
            if let Some(stat) = read(pid, keep) {
                live.insert(pid, stat);
            }
        }
        // Requested pids missing from the listing still get a direct look (e.g. a proc_root
        // that hides other pid namespaces' entries from readdir).
        for &pid in &wanted {
            if let std::collections::hash_map::Entry::Vacant(slot) = live.entry(pid) {
                self.stat_reads += 1;
                if let Some(stat) = read(pid, true) {
                    slot.insert(stat);
                }
            }
        }

        let mut out = BTreeMap::new();
        for (&pid, (comm, start_time)) in &live {
            let cached = self.cache.vms.get(&pid);
            let same = cached.is_some_and(|e| !e.exited && e.info.start_time == *start_time);
            if !same {
                if !wanted.contains(&pid) && self.cache.not_qemu.get(&pid) == Some(start_time) {
                    continue;
                }
                let argv = procfs::cmdline(&self.proc_root, pid);
                if !qemu::is_qemu(&argv) && !wanted.contains(&pid) {
                    self.cache.not_qemu.insert(pid, *start_time);
                    self.cache.vms.remove(&pid);
                    continue;
                }
                self.cache.not_qemu.remove(&pid);
                self.cache
                    .vms
                    .insert(pid, Entry::new(pid, comm, *start_time, argv));
            }
            let Some(entry) = self.cache.vms.get_mut(&pid) else {
                continue;
            };
            // Threads come and go (vCPU hotplug), and libvirt writes its status file after
            // QEMU starts: both are looked at on every refresh (`names` keeps what a thread
            // is called).
            entry.info.vcpu_threads = self.threads.scan(&self.proc_root, pid);
            entry.name(domains.get(&pid), comm);
            out.insert(pid, entry.info.clone());
        }

        // Gone processes: forgotten, unless the stats still name them (those not QEMU are
        // only known gone when /proc is listed).
        if listing {
            self.cache.not_qemu.retain(|pid, _| live.contains_key(pid));
        }
        self.cache
            .vms
            .retain(|pid, _| live.contains_key(pid) || wanted.contains(pid));
        for &pid in &wanted {
            if live.contains_key(&pid) {
                continue;
            }
            let entry = self.cache.vms.entry(pid).or_insert_with(|| Entry {
                info: VmInfo {
                    pid,
                    name: format!("pid {pid}"),
                    ..Default::default()
                },
                cmdline_name: None,
                cmdline_uuid: None,
                exited: false,
            });
            // The name stays the VM's name (reports and thresholds match on it); the flag
            // lets the UI say it is gone.
            entry.exited = true;
            entry.info.exited = true;
            out.insert(pid, entry.info.clone());
        }
        self.threads
            .end_refresh(|pid| out.get(&pid).is_some_and(|v| !v.exited));
        lines.retain(|pid, _| out.get(pid).is_some_and(|v| !v.exited));
        self.stat_lines = lines;
        out.into_values().collect()
    }
}

impl Discovery {
    /// What a consumer that needs only the first and the last sample asks in between
    /// (`Source::keep_up`): the VMs among `pids` (KVM users the kernel saw), each read once, when
    /// first seen, and not again (nor its threads), so that a VM that exits before the last
    /// sample keeps its name. A VM known already costs nothing.
    pub fn learn(&mut self, pids: &[u32]) -> Vec<VmInfo> {
        let mut domains = None;
        let mut out = Vec::new();
        for &pid in pids {
            if !self.cache.vms.contains_key(&pid) {
                self.stat_reads += 1;
                let line = procfs::stat_line(&self.proc_root, pid, false);
                let Some((comm, start)) = line.as_deref().and_then(procfs::parse_stat) else {
                    continue;
                };
                let argv = procfs::cmdline(&self.proc_root, pid);
                let mut entry = Entry::new(pid, &comm, start, argv);
                let scan = || self.cache.libvirt.scan(&self.libvirt_dir);
                entry.name(domains.get_or_insert_with(scan).get(&pid), &comm);
                self.cache.not_qemu.remove(&pid);
                self.cache.vms.insert(pid, entry);
            }
            out.extend(self.cache.vms.get(&pid).map(|e| e.info.clone()));
        }
        out
    }
}

impl Entry {
    /// A process seen for the first time (or again with another start time: a new process).
    fn new(pid: u32, comm: &str, start_time: u64, argv: Vec<String>) -> Entry {
        let id = qemu::identity(&argv);
        Entry {
            info: VmInfo {
                pid,
                comm: comm.to_string(),
                is_qemu: qemu::is_qemu(&argv),
                cmdline: argv,
                start_time,
                ..Default::default()
            },
            cmdline_name: id.name,
            cmdline_uuid: id.uuid,
            exited: false,
        }
    }

    /// The VM's name and UUID: libvirt's (`dom`), else its command line's, else `comm[pid]`.
    fn name(&mut self, dom: Option<&libvirt::Domain>, comm: &str) {
        let pid = self.info.pid;
        self.info.name = dom
            .map(|d| d.name.clone())
            .or_else(|| self.cmdline_name.clone())
            .unwrap_or_else(|| format!("{comm}[{pid}]"));
        self.info.uuid = dom
            .and_then(|d| d.uuid.clone())
            .or_else(|| self.cmdline_uuid.clone());
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_threads;
