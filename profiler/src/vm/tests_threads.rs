//! Per-vCPU CPU and steal for real (a child process that names its threads as QEMU does), and
//! vhost worker discovery on a fake /proc tree and on the real one.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use super::cpu::{vm_cpu, vm_cpu_indexed};
use super::names::ThreadNames;
use super::procfs;
use super::procfs::ticks_per_s;
use super::threads::{add_vhost, vhost_kthreads, vhost_owner, Kthreads};
use crate::sample::{Threads, VmCpu};

const CHILD_ENV: &str = "KVMPROF_TEST_FAKE_VMM";

/// A stat line: pid, comm, parent, utime and stime in ticks.
fn stat(pid: u32, comm: &str, ppid: u32, u: u64, s: u64) -> String {
    let mid = "0 0 20 0 3 0 5 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0"; // fields 16..=42
    format!("{pid} ({comm}) S {ppid} 2 3 4 5 6 7 8 9 10 {u} {s} {mid} 0 0\n")
}

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// VM 77 (threads 77, vCPU 78, and 79, a Linux ≥ 6.4 vhost task inside it); kernel threads
/// vhost-77 (300) and vhost-78 (301, owned by a thread that is not the main one) are its,
/// vhost-99 (302) another VM's; process 400 only calls itself vhost-77.
fn fake_proc(root: &Path) {
    write(root, "2/stat", &stat(2, "kthreadd", 0, 0, 0));
    write(root, "77/stat", &stat(77, "qemu", 1, 500, 100));
    for (tid, comm, u) in [
        (77, "qemu", 100),
        (78, "CPU 0/KVM", 300),
        (79, "vhost-77", 70),
    ] {
        write(
            root,
            &format!("77/task/{tid}/stat"),
            &stat(tid, comm, 1, u, 0),
        );
        write(root, &format!("77/task/{tid}/comm"), &format!("{comm}\n"));
        write(
            root,
            &format!("77/task/{tid}/schedstat"),
            &format!("1 {tid}000 3\n"),
        );
    }
    for (pid, comm, ppid, s) in [
        (300, "vhost-77", 2, 11),
        (301, "vhost-78", 2, 13),
        (302, "vhost-99", 2, 17),
        (400, "vhost-77", 1, 19),
    ] {
        write(root, &format!("{pid}/stat"), &stat(pid, comm, ppid, 0, s));
        write(
            root,
            &format!("{pid}/schedstat"),
            &format!("1 {pid}000 3\n"),
        );
    }
}

#[test]
fn vhost_workers_of_a_vm_on_a_fake_proc() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fake_proc(root);
    let tick = 1_000_000_000 / ticks_per_s();
    let want = Threads {
        cpu_ns: (70 + 11 + 13) * tick,
        wait_ns: 79_000 + 300_000 + 301_000,
        threads: 3,
        waited: 3,
    };
    // With kthreadd's children list, and without it (every process is looked at, and the
    // impostor 400 told apart by its parent).
    for children in [Some("300 301 302 "), None] {
        let list = root.join("2/task/2/children");
        match children {
            Some(c) => write(root, "2/task/2/children", c),
            None => std::fs::remove_file(&list).unwrap(),
        }
        let k = vhost_kthreads(root, &mut Kthreads::default());
        let found = BTreeMap::from([(77, vec![300]), (78, vec![301]), (99, vec![302])]);
        assert_eq!(k, found, "children list {children:?}");
        let mut c = vm_cpu(root, 77, &BTreeSet::from([78])).unwrap();
        let mut names = ThreadNames::default();
        assert_eq!(names.scan(root, 77), BTreeMap::from([(78, 0)]));
        add_vhost(root, 77, &k, &names, &mut c);
        assert_eq!(c.vhost, want);
        assert_eq!(c.vhost_in_total_ns, 70 * tick);
    }
    // A VM whose process has no such thread and owns no such kernel thread has none.
    let mut c = VmCpu::default();
    add_vhost(
        root,
        99_999,
        &vhost_kthreads(root, &mut Kthreads::default()),
        &ThreadNames::default(),
        &mut c,
    );
    assert_eq!(c.vhost, Threads::default());
    assert_eq!(vhost_owner("vhost-12\n"), Some(12));
    assert_eq!(vhost_owner("vhost-x"), None);
    assert_eq!(vhost_owner("CPU 0/KVM"), None);
}

/// Kernel threads that are not vhost workers are re-read once every RECHECK² calls, not on
/// every one; vhost workers every time; a kernel thread new since the last call (a vhost
/// device set up meanwhile) is found at once, and one whose pid is reused within RECHECK².
#[test]
fn kernel_threads_not_vhost_are_reread_every_few_calls() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fake_proc(root);
    let mut kids: Vec<u32> = (1000..1100).collect();
    for &pid in &kids {
        write(
            root,
            &format!("{pid}/stat"),
            &stat(pid, "kworker/0:1", 2, 0, 1),
        );
    }
    kids.extend([300, 301, 302]);
    let list = |k: &[u32]| k.iter().map(|p| format!("{p} ")).collect::<String>();
    write(root, "2/task/2/children", &list(&kids));
    let mut cache = Kthreads::default();
    let first = vhost_kthreads(root, &mut cache);
    assert_eq!(first.len(), 3);
    assert_eq!(cache.stat_reads, 103);
    let n = u64::from(super::RECHECK * super::RECHECK);
    for _ in 0..n {
        assert_eq!(vhost_kthreads(root, &mut cache), first);
    }
    assert_eq!(
        cache.stat_reads,
        103 + 100 + 3 * n,
        "each kworker re-read once"
    );
    // A new vhost worker is seen at the next call; a reused kworker pid within RECHECK².
    write(root, "1200/stat", &stat(1200, "vhost-55", 2, 0, 1));
    write(root, "1003/stat", &stat(1003, "vhost-56", 2, 0, 1));
    kids.push(1200);
    write(root, "2/task/2/children", &list(&kids));
    assert_eq!(vhost_kthreads(root, &mut cache).get(&55), Some(&vec![1200]));
    let reused = (0..n).any(|_| vhost_kthreads(root, &mut cache).contains_key(&56));
    assert!(reused, "a reused pid is seen within RECHECK² calls");
}

/// Since Linux 6.4 (vhost workers are the VM's own tasks) kthreadd's children are listed once
/// in RECHECK calls, the first included, and the last look's workers are given in between;
/// before, at every call.
#[test]
fn kernel_threads_are_listed_sparsely_from_linux_6_4() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fake_proc(root);
    write(root, "2/task/2/children", "300 301 302 ");
    for (release, sparse) in [
        ("6.1.0-27-amd64", false),
        ("6.4.0", true),
        ("6.12.118", true),
    ] {
        let mut cache = Kthreads::for_release(release);
        assert_eq!(cache.sparse, sparse, "{release}");
        let first = vhost_kthreads(root, &mut cache);
        assert_eq!(first.len(), 3);
        let n = u64::from(super::RECHECK);
        for _ in 1..n {
            assert_eq!(vhost_kthreads(root, &mut cache), first);
        }
        assert_eq!(cache.listings, if sparse { 1 } else { n }, "{release}");
        vhost_kthreads(root, &mut cache);
        assert_eq!(cache.listings, if sparse { 2 } else { n + 1 }, "{release}");
    }
}

/// The real /proc: every vhost kernel thread found is a child of kthreadd, and none belongs
/// to this test process (which set up no vhost device).
#[test]
fn no_vhost_workers_for_an_unrelated_process() {
    let proc_root = Path::new("/proc");
    let k = vhost_kthreads(proc_root, &mut Kthreads::default());
    for tid in k.values().flatten() {
        let text = std::fs::read_to_string(format!("/proc/{tid}/stat")).unwrap_or_default();
        if let Some((comm, ppid)) = procfs::parse_comm_ppid(&text) {
            assert_eq!(ppid, 2, "{tid} {comm}");
        }
    }
    let pid = std::process::id();
    let mut c = vm_cpu(proc_root, pid, &BTreeSet::new()).unwrap();
    let mut names = ThreadNames::default();
    names.scan(proc_root, pid);
    add_vhost(proc_root, pid, &k, &names, &mut c);
    assert_eq!((c.vhost, c.vhost_in_total_ns), (Threads::default(), 0));
}

/// This thread's own CPU time, ns (exact, unlike /proc's ticks).
fn thread_cpu_now() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec the call writes into.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0);
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Spins until this thread has used `ns` of CPU, however loaded the box.
fn spin_for(ns: u64) {
    let start = thread_cpu_now();
    let mut x = 0u64;
    while thread_cpu_now() - start < ns {
        for i in 0..10_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
    }
}

/// Pins the calling thread to `cpu`.
/// The first CPU this process may run on.
fn first_cpu() -> usize {
    // SAFETY: as in pin_to; sched_getaffinity fills the set for this thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        let rc = libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set);
        assert_eq!(rc, 0, "sched_getaffinity");
        (0..libc::CPU_SETSIZE as usize)
            .find(|&c| libc::CPU_ISSET(c, &set))
            .unwrap()
    }
}

/// The fake VMM (run as a child process by `per_vcpu_cpu_and_steal_match_schedstat`): vCPU
/// threads named as QEMU names them, "CPU 0/KVM" busy for 300 ms of its own CPU, "CPU 1/KVM"
/// busy for 200 ms on a CPU it shares with a hog, "CPU 2/KVM" idle. It prints the tids, waits
/// for "go", runs, then prints "done" and keeps every thread (blocked) until stdin closes.
#[test]
fn fake_vmm_child() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return; // only a helper of the test below
    }
    let cpu = first_cpu();
    let (tid_tx, tid_rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let (mut gos, mut keep) = (Vec::new(), Vec::new());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for (name, work, pinned) in [
        ("CPU 0/KVM", 300_000_000, false),
        ("CPU 1/KVM", 200_000_000, true),
        ("CPU 2/KVM", 0, false),
        ("hog", u64::MAX, true),
    ] {
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        // The idle vCPU is never woken: it stays blocked from before the window to after.
        match work {
            0 => keep.push(go_tx),
            _ => gos.push(go_tx),
        }
        let (tid_tx, done_tx, stop) = (tid_tx.clone(), done_tx.clone(), stop.clone());
        let t = std::thread::Builder::new().name(name.into());
        t.spawn(move || {
            // SAFETY: gettid has no arguments and cannot fail.
            tid_tx.send((name, unsafe { libc::gettid() })).unwrap();
            if pinned {
                crate::exerciser::pin_to(cpu).expect("pin to a CPU");
            }
            if go_rx.recv().is_err() {
                return; // the idle vCPU, at the end
            }
            if work == u64::MAX {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    spin_for(1_000_000);
                }
            } else {
                spin_for(work);
                done_tx.send(()).unwrap();
            }
            let _ = go_rx.recv(); // blocked until the process ends
        })
        .unwrap();
    }
    let mut tids: Vec<(&str, i32)> = (0..4).map(|_| tid_rx.recv().unwrap()).collect();
    tids.sort();
    let line: Vec<String> = tids.iter().map(|(n, t)| format!("{n}={t}")).collect();
    println!("tids {}", line.join(","));
    let mut stdin = std::io::stdin().lock();
    let mut go = String::new();
    stdin.read_line(&mut go).unwrap();
    for g in &gos {
        g.send(()).unwrap();
    }
    for _ in 0..2 {
        done_rx.recv().unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    println!("done");
    let mut rest = Vec::new();
    let _ = stdin.read_to_end(&mut rest);
    drop(keep);
}

/// Waits until every thread in `tids` of `pid` sleeps (state S): blocked, so its figures stand
/// still while they are read.
fn wait_blocked(pid: u32, tids: &BTreeMap<String, u32>) {
    for t in tids.values() {
        loop {
            let s = std::fs::read_to_string(format!("/proc/{pid}/task/{t}/stat")).unwrap();
            let state = s[s.rfind(')').unwrap() + 1..].split_whitespace().next();
            if state == Some("S") {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
}

/// (on-CPU ns, run-queue wait ns) from the kernel's schedstat of `pid`'s thread `tid`.
fn schedstat(pid: u32, tid: u32) -> (u64, u64) {
    let t = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/schedstat")).unwrap();
    let mut f = t.split_whitespace().map(|v| v.parse::<u64>().unwrap());
    (f.next().unwrap(), f.next().unwrap())
}

/// Steal and CPU per vCPU, for real: the child's vCPU threads are found by their names, and
/// what kvmprof reads for each vCPU over the window is what the kernel's schedstat says for
/// that thread (the threads are blocked at both reads, so the window is the same): the wait
/// exactly, the CPU time within /proc's tick rounding. The vCPU sharing its CPU with a hog
/// waits; the idle one uses nothing; the hog counts as the VMM's.
#[test]
fn per_vcpu_cpu_and_steal_match_schedstat() {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "vm::tests_threads::fake_vmm_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = |want: &str| loop {
        let l = out.next().expect("child output").unwrap();
        // libtest prints "test NAME ... " on the same line, before the child's first output.
        if let Some((_, rest)) = l.split_once(want) {
            return rest.to_string();
        }
    };
    let tids: BTreeMap<String, u32> = (next("tids ").split(','))
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.to_string(), v.parse().unwrap())
        })
        .collect();
    let tid = |n: &str| tids[n];
    // Discovery's own reader finds the vCPU threads by name.
    let index = ThreadNames::default().scan(Path::new("/proc"), pid);
    let want: BTreeMap<u32, u32> = (0..3).map(|n| (tid(&format!("CPU {n}/KVM")), n)).collect();
    assert_eq!(index, want);
    let set: BTreeSet<u32> = index.keys().copied().collect();
    let read = || {
        let c = vm_cpu_indexed(Path::new("/proc"), pid, &set, &index, None).unwrap();
        let raw: BTreeMap<u32, (u64, u64)> =
            (tids.values()).map(|&t| (t, schedstat(pid, t))).collect();
        (c, raw)
    };
    wait_blocked(pid, &tids);
    let (before, raw0) = read();
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "go").unwrap();
    next("done");
    wait_blocked(pid, &tids);
    let (after, raw1) = read();
    drop(stdin);
    assert!(child.wait().unwrap().success());

    let tick = 1_000_000_000 / ticks_per_s();
    let mut cpu = BTreeMap::new();
    for (n, t) in [
        (0, tid("CPU 0/KVM")),
        (1, tid("CPU 1/KVM")),
        (2, tid("CPU 2/KVM")),
    ] {
        let (b, a) = (before.vcpus[&n], after.vcpus[&n]);
        let ran = a.cpu_ns - b.cpu_ns;
        let (kernel_ran, kernel_waited) = (raw1[&t].0 - raw0[&t].0, raw1[&t].1 - raw0[&t].1);
        assert_eq!(
            a.wait_ns.unwrap() - b.wait_ns.unwrap(),
            kernel_waited,
            "vCPU {n}"
        );
        // /proc's utime + stime is the kernel's run time cut to whole ticks at each read.
        assert!(
            ran.abs_diff(kernel_ran) <= 2 * tick,
            "vCPU {n}: read {ran} ns, schedstat {kernel_ran} ns"
        );
        cpu.insert(n, (kernel_ran, kernel_waited));
    }
    assert!(cpu[&0].0 >= 300_000_000, "{cpu:?}");
    assert!(cpu[&1].0 >= 200_000_000, "{cpu:?}");
    assert_eq!(cpu[&2], (0, 0), "the idle vCPU neither ran nor waited");
    // Two runnable threads on one CPU take turns: the wait is about the run time (more on a
    // busy machine, never far less).
    assert!(cpu[&1].1 * 4 >= cpu[&1].0, "{cpu:?}");
    // The per-vCPU figures are the same reads as the vCPU sum, and the hog is the VMM's.
    let sum: u64 = after.vcpus.values().map(|v| v.cpu_ns).sum();
    assert_eq!(sum, after.vcpu_ns);
    let vmm = (after.total_ns - before.total_ns) - (after.vcpu_ns - before.vcpu_ns);
    let hog = raw1[&tid("hog")].0 - raw0[&tid("hog")].0;
    assert!(vmm + 4 * tick >= hog, "VMM {vmm} ns < hog {hog} ns");
}

/// The first per-VM CPU read looks at every kernel thread even with no VM yet (kvmprof pays it
/// as it starts, not in the refresh where the first VM appears); later reads without a VM do
/// not look at all.
#[test]
fn kernel_threads_are_first_read_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fake_proc(root);
    write(root, "2/task/2/children", "300 301 302 ");
    let mut cache = Kthreads::default();
    let none = crate::sample::Sample::default();
    let names = ThreadNames::default();
    let lines = Default::default();
    assert!(super::cpu::read_all(root, &mut cache, &names, &lines, &none).is_empty());
    assert_eq!(
        cache.stat_reads, 3,
        "the first read looks at every kernel thread"
    );
    super::cpu::read_all(root, &mut cache, &names, &lines, &none);
    assert_eq!(cache.stat_reads, 3, "no VM: no look after the first");
}

/// A VM's thread names are read once, not every refresh: a vCPU or vhost task is kept as it was
/// named, a thread called anything else is read once more at its next sighting (a new thread
/// names itself just after it starts), and every thread once in RECHECK refreshes; threads that
/// come and go are seen at once.
#[test]
fn thread_names_are_read_once_and_rechecked_every_few_refreshes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fake_proc(root);
    let mut names = ThreadNames::default();
    let refresh = |names: &mut ThreadNames| {
        let v = names.scan(root, 77);
        names.end_refresh(|p| p == 77);
        v
    };
    assert_eq!(refresh(&mut names), BTreeMap::from([(78, 0)]));
    assert_eq!(names.comm_reads, 3);
    assert_eq!(names.vhost_tasks(77), [79]);
    // 77 ("qemu") is read once more; then only each thread's turn in RECHECK refreshes.
    refresh(&mut names);
    let before = names.comm_reads;
    assert!(before <= 3 + 3, "{before}");
    let n = super::RECHECK;
    for _ in 0..n {
        assert_eq!(refresh(&mut names), BTreeMap::from([(78, 0)]));
    }
    assert_eq!(
        names.comm_reads - before,
        3,
        "each thread once in {n} refreshes"
    );
    // A thread that renames itself after its first look, and a new vCPU thread.
    write(root, "77/task/80/comm", "qemu\n");
    refresh(&mut names);
    write(root, "77/task/80/comm", "CPU 1/KVM\n");
    write(root, "77/task/81/comm", "CPU 2/KVM\n");
    assert_eq!(
        refresh(&mut names),
        BTreeMap::from([(78, 0), (80, 1), (81, 2)])
    );
    std::fs::remove_dir_all(root.join("77/task/78")).unwrap();
    assert_eq!(refresh(&mut names), BTreeMap::from([(80, 1), (81, 2)]));
    assert_eq!(names.tids(77).collect::<Vec<_>>(), [77, 79, 80, 81]);
}

/// A VM's process times come from the `stat` line discovery read in the same refresh (one read
/// of it a refresh, not two): a file changed after discovery is not what the figures show.
#[test]
fn vm_cpu_takes_the_process_times_discovery_read() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fake_proc(root);
    let mut d = super::Discovery::new(root, root.join("no-libvirt"));
    let s = crate::sample::Sample {
        vms: d.refresh(&[77]).into_iter().map(|v| (v.pid, v)).collect(),
        ..Default::default()
    };
    assert_eq!(d.stat_lines.keys().collect::<Vec<_>>(), [&77]);
    write(root, "77/stat", &stat(77, "qemu", 1, 900, 100));
    let mut cache = Kthreads::default();
    let ns = |ticks: u64| ticks * 1_000_000_000 / ticks_per_s();
    let read = |lines, cache: &mut Kthreads| {
        super::cpu::read_all(root, cache, &d.threads, lines, &s)[&77].total_ns
    };
    assert_eq!(read(&d.stat_lines, &mut cache), ns(600));
    assert_eq!(read(&Default::default(), &mut cache), ns(1000));
}
