//! The host CPU each VM costs, from its threads' own accounting in /proc: the whole process
//! (exited threads included) and its vCPU threads, so "the VMM's other threads" (main loop,
//! timers, I/O threads) is their difference.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use profiler_common::ISA_USERSPACE;

use super::procfs::{self, ns};
use super::threads;
use crate::sample::{Sample, VmCpu};

/// (CPU time, guest time) of process `pid`, or of its thread `tid`, ns. None when it is gone
/// (normal: VMs and threads come and go between two reads).
pub fn cpu_ns(proc_root: &Path, pid: u32, tid: Option<u32>) -> Option<(u64, u64)> {
    let mut path = proc_root.join(pid.to_string());
    if let Some(tid) = tid {
        path = path.join("task").join(tid.to_string());
    }
    let text = super::kept::read(&path.join("stat"), false, true)?;
    procfs::parse_cpu_ticks(&text).map(|(run, guest)| (ns(run), ns(guest)))
}

/// One VM's CPU time: the process, and the threads in `vcpu_tids` that are still there
/// (read under the VM's own task directory, so a tid of another process is never counted).
pub fn vm_cpu(proc_root: &Path, pid: u32, vcpu_tids: &BTreeSet<u32>) -> Option<VmCpu> {
    vm_cpu_indexed(proc_root, pid, vcpu_tids, &BTreeMap::new(), None)
}

/// [`vm_cpu`], plus each thread's own figures in `VmCpu::vcpus` under its vCPU index where
/// `index` (tid → vCPU, from the VMM's thread names) knows it. `stat`: the process's
/// `/proc/PID/stat` as just read (by discovery), else it is read here.
pub fn vm_cpu_indexed(
    proc_root: &Path,
    pid: u32,
    vcpu_tids: &BTreeSet<u32>,
    index: &BTreeMap<u32, u32>,
    stat: Option<&str>,
) -> Option<VmCpu> {
    let (total_ns, guest_ns) = match stat.and_then(procfs::parse_cpu_ticks) {
        Some((run, guest)) => (ns(run), ns(guest)),
        None => cpu_ns(proc_root, pid, None)?,
    };
    let mut out = VmCpu {
        total_ns,
        guest_ns,
        ..Default::default()
    };
    let task = proc_root.join(pid.to_string()).join("task");
    for &tid in vcpu_tids {
        if let Some(one) = threads::thread_cpu(&task.join(tid.to_string())) {
            out.vcpu_ns = out.vcpu_ns.saturating_add(one.cpu_ns);
            out.vcpu_threads += 1;
            if let Some(w) = one.wait_ns {
                out.vcpu_wait_ns = out.vcpu_wait_ns.saturating_add(w);
                out.waited_threads += 1;
            }
            if let Some(&n) = index.get(&tid) {
                out.vcpus.insert(n, one);
            }
        }
    }
    Some(out)
}

/// The vCPU threads of each VM in `s`: those the VMM named ("CPU n/KVM") and those that
/// returned from KVM_RUN to it (userspace exit keys carry the thread id), so a QEMU without
/// debug-threads still gets its split once its vCPUs have exited to it.
pub fn vcpu_tids(s: &Sample) -> BTreeMap<u32, BTreeSet<u32>> {
    let mut out: BTreeMap<u32, BTreeSet<u32>> = s
        .vms
        .iter()
        .map(|(pid, vm)| (*pid, vm.vcpu_threads.keys().copied().collect()))
        .collect();
    for k in s.stats.keys().filter(|k| k.isa == ISA_USERSPACE) {
        if let Some(tids) = out.get_mut(&k.tgid) {
            tids.insert(k.vcpu);
        }
    }
    out
}

/// CPU time of every live VM in `s`, per vCPU and with its vhost workers; exited ones and
/// those whose process vanished are left out.
pub fn read_all(
    proc_root: &Path,
    cache: &mut threads::Kthreads,
    names: &super::names::ThreadNames,
    stat_lines: &HashMap<u32, String>,
    s: &Sample,
) -> BTreeMap<u32, VmCpu> {
    let live = |pid: &u32| s.vms.get(pid).filter(|vm| !vm.exited);
    // The kernel threads are listed once per sample, and only when there is a VM to own one;
    // and at the first sample whatever runs, so that the first look (every kernel thread's
    // stat) is paid as kvmprof starts, not in the refresh where the first VM appears.
    let any_vm = s.vms.keys().any(|p| live(p).is_some());
    let kthreads = match any_vm || !cache.looked() {
        true => threads::vhost_kthreads(proc_root, cache),
        false => BTreeMap::new(),
    };
    vcpu_tids(s)
        .into_iter()
        .filter_map(|(pid, tids)| {
            let vm = live(&pid)?;
            let stat = stat_lines.get(&pid).map(String::as_str);
            let mut c = vm_cpu_indexed(proc_root, pid, &tids, &vm.vcpu_threads, stat)?;
            threads::add_vhost(proc_root, pid, &kthreads, names, &mut c);
            Some((pid, c))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::{Key, Stat, VmInfo};

    fn gettid() -> u32 {
        // SAFETY: gettid has no arguments and cannot fail.
        unsafe { libc::gettid() as u32 }
    }

    /// Our own process read through the same code: a thread that spins for a while shows up
    /// in the total and, named as a vCPU thread, in the vCPU part; an idle thread does not.
    /// Bounds are ratios of the thread's own measured CPU time, not wall-clock thresholds.
    #[test]
    fn a_spinning_thread_is_counted() {
        let proc_root = Path::new("/proc");
        let pid = std::process::id();
        let (tx, rx) = std::sync::mpsc::channel();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let spinner = std::thread::spawn(move || {
            let tid = gettid();
            tx.send(tid).unwrap();
            go_rx.recv().unwrap();
            // Spin until this thread itself has used >= 300 ms of CPU (however loaded the box).
            let own = || {
                cpu_ns(Path::new("/proc"), std::process::id(), Some(tid))
                    .unwrap()
                    .0
            };
            let start = own();
            let mut x = 0u64;
            while own() - start < 300_000_000 {
                for i in 0..100_000u64 {
                    x = x.wrapping_mul(31).wrapping_add(i);
                }
                std::hint::black_box(x);
            }
            tx.send(0).unwrap();
            go_rx.recv().unwrap(); // stay alive until read
        });
        let tid = rx.recv().unwrap();
        let tids = BTreeSet::from([tid, u32::MAX]); // a tid that is not ours is skipped
        let before = vm_cpu(proc_root, pid, &tids).expect("our own /proc entry");
        assert_eq!(before.vcpu_threads, 1);
        go_tx.send(()).unwrap();
        rx.recv().unwrap();
        let after = vm_cpu(proc_root, pid, &tids).unwrap();
        assert_eq!(after.vcpu_threads, 1);
        go_tx.send(()).unwrap();
        spinner.join().unwrap();
        let (dt, dv) = (
            after.total_ns - before.total_ns,
            after.vcpu_ns - before.vcpu_ns,
        );
        // The spinner stops itself after 300 ms of its own CPU; /proc rounds to ticks (10 ms).
        assert!(
            (280_000_000..400_000_000).contains(&dv),
            "vCPU thread grew {dv} ns"
        );
        // The process holds the thread (other test threads may add to it, never take away).
        assert!(dt + 20_000_000 >= dv, "process {dt} < thread {dv}");
        // Once the exited thread is reaped (a moment after join), it is no longer read, and its
        // time stays in the process total.
        let mut gone = vm_cpu(proc_root, pid, &tids).unwrap();
        for _ in 0..10_000 {
            if gone.vcpu_threads == 0 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
            gone = vm_cpu(proc_root, pid, &tids).unwrap();
        }
        assert_eq!(gone.vcpu_threads, 0);
        assert!(gone.total_ns + 20_000_000 >= before.total_ns + dv);
    }

    /// Pins this thread to one CPU.
    /// Steal, for real: a "vCPU" thread sharing one host CPU with a busy thread waits on the
    /// run queue for about as long as it runs; schedstat shows it and we read it.
    #[test]
    fn a_vcpu_sharing_its_cpu_waits_for_it() {
        let pid = std::process::id();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let hog_stop = stop.clone();
        let hog = std::thread::spawn(move || {
            crate::exerciser::pin_to(0).expect("pin to a CPU");
            let mut x = 0u64;
            while !hog_stop.load(std::sync::atomic::Ordering::Relaxed) {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(1));
            }
        });
        let (tx, rx) = std::sync::mpsc::channel();
        let vcpu = std::thread::spawn(move || {
            crate::exerciser::pin_to(0).expect("pin to a CPU");
            let tid = gettid();
            let before = vm_cpu(Path::new("/proc"), pid, &BTreeSet::from([tid])).unwrap();
            let own = || cpu_ns(Path::new("/proc"), pid, Some(tid)).unwrap().0;
            let start = own();
            let mut x = 0u64;
            while own() - start < 200_000_000 {
                for i in 0..100_000u64 {
                    x = x.wrapping_mul(31).wrapping_add(i);
                }
                std::hint::black_box(x);
            }
            let after = vm_cpu(Path::new("/proc"), pid, &BTreeSet::from([tid])).unwrap();
            tx.send((before, after)).unwrap();
        });
        let (before, after) = rx.recv().unwrap();
        vcpu.join().unwrap();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        hog.join().unwrap();
        assert_eq!((before.waited_threads, after.waited_threads), (1, 1));
        let (ran, waited) = (
            after.vcpu_ns - before.vcpu_ns,
            after.vcpu_wait_ns - before.vcpu_wait_ns,
        );
        // Two runnable threads on one CPU take turns: the wait is about the run time (more
        // on a busy machine, never far less).
        assert!(
            waited * 4 >= ran,
            "ran {ran} ns on a shared CPU but waited only {waited} ns"
        );
    }

    #[test]
    fn gone_processes_are_left_out() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(vm_cpu(dir.path(), 77, &BTreeSet::from([78])), None);
        let task = dir.path().join("77/task/78");
        std::fs::create_dir_all(&task).unwrap();
        let line = |u, s, g| {
            let mid = "0 0 20 0 3 0 5 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0"; // fields 16..=42
            format!("77 (qemu) S 1 2 3 4 5 6 7 8 9 10 {u} {s} {mid} {g} 0\n")
        };
        std::fs::write(dir.path().join("77/stat"), line(300, 100, 120)).unwrap();
        std::fs::write(task.join("stat"), line(250, 50, 120)).unwrap();
        std::fs::write(task.join("schedstat"), "2500000000 777000 9\n").unwrap();
        let hz = procfs::ticks_per_s();
        let got = vm_cpu(dir.path(), 77, &BTreeSet::from([78, 79])).unwrap();
        assert_eq!(
            got,
            VmCpu {
                total_ns: 400 * 1_000_000_000 / hz,
                vcpu_ns: 300 * 1_000_000_000 / hz,
                guest_ns: 120 * 1_000_000_000 / hz,
                vcpu_threads: 1,
                vcpu_wait_ns: 777_000,
                waited_threads: 1,
                ..Default::default()
            }
        );
    }

    #[test]
    fn vcpu_threads_from_names_and_userspace_exits() {
        let mut s = Sample::default();
        let mut vm = VmInfo {
            pid: 10,
            ..Default::default()
        };
        vm.vcpu_threads.insert(11, 0);
        s.vms.insert(10, vm);
        s.vms.insert(
            20,
            VmInfo {
                pid: 20,
                ..Default::default()
            },
        );
        for (tgid, vcpu, isa) in [(10, 12, ISA_USERSPACE), (20, 21, ISA_USERSPACE), (20, 3, 1)] {
            let k = Key {
                tgid,
                vcpu,
                isa,
                reason: 2,
            };
            s.stats.insert(k, Stat::default());
        }
        // A userspace key of a pid discovery does not know is not read.
        s.stats.insert(
            Key {
                tgid: 30,
                vcpu: 31,
                isa: ISA_USERSPACE,
                reason: 2,
            },
            Stat::default(),
        );
        let t = vcpu_tids(&s);
        assert_eq!(t.len(), 2);
        assert_eq!(t[&10], BTreeSet::from([11, 12]));
        assert_eq!(t[&20], BTreeSet::from([21]));
    }
}
