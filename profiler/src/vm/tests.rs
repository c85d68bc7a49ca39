//! Discovery against a fake /proc and libvirt run directory.

use std::fs;
use std::path::Path;

use super::*;

struct Fake {
    proc: tempfile::TempDir,
    libvirt: tempfile::TempDir,
}

impl Fake {
    fn new() -> Self {
        Fake {
            proc: tempfile::tempdir().unwrap(),
            libvirt: tempfile::tempdir().unwrap(),
        }
    }

    fn discovery(&self) -> Discovery {
        Discovery::new(self.proc.path(), self.libvirt.path())
    }

    /// A process with `argv`, `comm`, `start` time and threads (tid, comm).
    fn process(&self, pid: u32, comm: &str, start: u64, argv: &[&str], threads: &[(u32, &str)]) {
        let dir = self.proc.path().join(pid.to_string());
        fs::create_dir_all(dir.join("task")).unwrap();
        let stat = format!("{pid} ({comm}) S 1 {pid} {pid} 0 -1 4194560 1 0 0 0 5 3 0 0 20 0 4 0 {start} 1000 100 18446744073709551615");
        fs::write(dir.join("stat"), stat).unwrap();
        let mut cmdline = argv.join("\0");
        if !cmdline.is_empty() {
            cmdline.push('\0');
        }
        fs::write(dir.join("cmdline"), cmdline).unwrap();
        fs::write(dir.join("comm"), format!("{comm}\n")).unwrap();
        for (tid, tcomm) in threads {
            let t = dir.join("task").join(tid.to_string());
            fs::create_dir_all(&t).unwrap();
            fs::write(t.join("comm"), format!("{tcomm}\n")).unwrap();
        }
    }

    fn exit(&self, pid: u32) {
        fs::remove_dir_all(self.proc.path().join(pid.to_string())).unwrap();
    }

    fn libvirt_status(&self, name: &str, pid: u32, uuid: &str) {
        let xml = format!(
            "<domstatus state='running' reason='booted' pid='{pid}'>\n  <domain type='kvm' id='1'>\n    <name>{name}</name>\n    <uuid>{uuid}</uuid>\n  </domain>\n</domstatus>\n"
        );
        fs::write(self.libvirt.path().join(format!("{name}.xml")), xml).unwrap();
    }
}

fn by_pid(v: &[VmInfo], pid: u32) -> &VmInfo {
    v.iter().find(|i| i.pid == pid).unwrap()
}

const QEMU: &str = "/usr/bin/qemu-system-x86_64";

#[test]
fn qemu_with_name_and_vcpu_threads() {
    let f = Fake::new();
    let argv = [
        QEMU,
        "-name",
        "guest=win11-gaming,debug-threads=on",
        "-uuid",
        "u-1",
        "-m",
        "8G",
    ];
    let threads = [
        (100, "qemu-system-x86"),
        (101, "CPU 0/KVM"),
        (102, "CPU 1/KVM"),
        (103, "IO mon_iothread"),
    ];
    f.process(100, "qemu-system-x86", 5000, &argv, &threads);
    f.process(200, "bash", 10, &["bash"], &[(200, "bash")]);
    let vms = f.discovery().refresh(&[]);
    assert_eq!(vms.len(), 1, "{vms:?}");
    let vm = &vms[0];
    assert_eq!(
        (vm.pid, vm.name.as_str(), vm.comm.as_str()),
        (100, "win11-gaming", "qemu-system-x86")
    );
    assert_eq!(vm.uuid.as_deref(), Some("u-1"));
    assert_eq!(vm.cmdline, argv);
    assert_eq!(vm.start_time, 5000);
    assert!(vm.is_qemu);
    assert_eq!(vm.vcpu_threads, BTreeMap::from([(101, 0), (102, 1)]));
}

#[test]
fn name_with_escaped_comma() {
    let f = Fake::new();
    f.process(
        300,
        "qemu-kvm",
        1,
        &["qemu-kvm", "-name", "lab,,east,process=x"],
        &[],
    );
    assert_eq!(f.discovery().refresh(&[])[0].name, "lab,east");
}

#[test]
fn libvirt_name_overrides_command_line() {
    let f = Fake::new();
    f.process(
        400,
        "qemu-system-x86",
        7,
        &[QEMU, "-name", "guest=cmdline-name"],
        &[],
    );
    let mut d = f.discovery();
    assert_eq!(d.refresh(&[])[0].name, "cmdline-name");
    // libvirt writes its status file after QEMU starts: picked up on the next refresh.
    f.libvirt_status("prod-db", 400, "6b1f0c7e-0000-4a57-9c1e-0a4f3b9d1e22");
    f.libvirt_status("other", 999, "x");
    let vm = &d.refresh(&[])[0];
    assert_eq!(vm.name, "prod-db");
    assert_eq!(
        vm.uuid.as_deref(),
        Some("6b1f0c7e-0000-4a57-9c1e-0a4f3b9d1e22")
    );
}

/// Only regular files in the run directory name a VM: a symlink to a file elsewhere and a FIFO
/// (which would block a plain read) are skipped.
#[test]
fn libvirt_symlinks_and_fifos_are_not_read() {
    let f = Fake::new();
    f.process(
        410,
        "qemu-system-x86",
        7,
        &[QEMU, "-name", "guest=own"],
        &[],
    );
    let outside = tempfile::tempdir().unwrap();
    let planted = outside.path().join("planted.xml");
    fs::write(
        &planted,
        "<domstatus pid='410'><domain><name>forged</name></domain></domstatus>",
    )
    .unwrap();
    std::os::unix::fs::symlink(&planted, f.libvirt.path().join("link.xml")).unwrap();
    let fifo = f.libvirt.path().join("fifo.xml").into_os_string();
    let fifo = std::ffi::CString::new(fifo.into_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path; mkfifo only creates a directory entry.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    assert_eq!(f.discovery().refresh(&[])[0].name, "own");
    // The same file as a regular file in the directory is used.
    fs::copy(&planted, f.libvirt.path().join("real.xml")).unwrap();
    assert_eq!(f.discovery().refresh(&[])[0].name, "forged");
}

#[test]
fn non_qemu_kvm_user_from_pids() {
    let f = Fake::new();
    f.process(500, "vmm", 3, &["/opt/vmm", "--vcpus", "2"], &[]);
    f.process(
        501,
        "kvmprof",
        4,
        &["kvmprof", "exercise", "--", "-name", "guest=demo"],
        &[],
    );
    f.process(502, "bash", 5, &["bash"], &[]);
    let vms = f.discovery().refresh(&[500, 501]);
    assert_eq!(vms.len(), 2, "{vms:?}");
    let vm = by_pid(&vms, 500);
    assert_eq!((vm.name.as_str(), vm.is_qemu), ("vmm[500]", false));
    assert_eq!(by_pid(&vms, 501).name, "demo");
}

#[test]
fn comm_with_spaces_and_parentheses() {
    let f = Fake::new();
    f.process(600, "my (odd) vm)", 42, &["/x"], &[]);
    let vm = &f.discovery().refresh(&[600])[0];
    assert_eq!((vm.comm.as_str(), vm.start_time), ("my (odd) vm)", 42));
    assert_eq!(vm.name, "my (odd) vm)[600]");
}

#[test]
fn pid_reuse_is_reread_and_unchanged_is_cached() {
    let f = Fake::new();
    f.process(
        700,
        "qemu-system-x86",
        10,
        &[QEMU, "-name", "first"],
        &[(701, "CPU 0/KVM")],
    );
    let mut d = f.discovery();
    assert_eq!(d.refresh(&[])[0].name, "first");
    // Same start time: the command line is not re-read, threads are.
    fs::write(
        f.proc.path().join("700/cmdline"),
        format!("{QEMU}\0-name\0changed\0"),
    )
    .unwrap();
    fs::create_dir_all(f.proc.path().join("700/task/702")).unwrap();
    fs::write(f.proc.path().join("700/task/702/comm"), "CPU 1/KVM\n").unwrap();
    let vm = d.refresh(&[]).remove(0);
    assert_eq!(vm.name, "first");
    assert_eq!(vm.vcpu_threads, BTreeMap::from([(701, 0), (702, 1)]));
    // Pid reused by a new process (new start time): read afresh.
    f.exit(700);
    f.process(700, "qemu-system-x86", 20, &[QEMU, "-name", "second"], &[]);
    let vm = d.refresh(&[]).remove(0);
    assert_eq!((vm.name.as_str(), vm.start_time), ("second", 20));
    assert!(vm.vcpu_threads.is_empty());
    // A reused pid that is no longer QEMU disappears.
    f.exit(700);
    f.process(700, "sleep", 30, &["sleep", "9"], &[]);
    assert!(d.refresh(&[]).is_empty());
}

#[test]
fn exited_processes() {
    let f = Fake::new();
    f.process(800, "qemu-system-x86", 1, &[QEMU, "-name", "gone-vm"], &[]);
    f.process(810, "qemu-system-x86", 1, &[QEMU, "-name", "quiet"], &[]);
    let mut d = f.discovery();
    assert_eq!(d.refresh(&[800]).len(), 2);
    f.exit(800);
    f.exit(810);
    // Still in the stats: kept, marked; never seen at all: a placeholder; else dropped.
    let vms = d.refresh(&[800, 900]);
    assert_eq!(vms.len(), 2, "{vms:?}");
    assert_eq!(by_pid(&vms, 800).name, "gone-vm");
    assert!(by_pid(&vms, 800).exited);
    assert_eq!(by_pid(&vms, 900).name, "pid 900");
    assert!(by_pid(&vms, 900).exited);
    let again = d.refresh(&[800]).remove(0);
    assert_eq!((again.name.as_str(), again.exited), ("gone-vm", true));
    assert!(d.refresh(&[]).is_empty());
    assert!(d.cache.vms.is_empty() && d.cache.not_qemu.is_empty());
}

#[test]
fn odd_proc_content_never_panics() {
    let f = Fake::new();
    let dir = f.proc.path().join("1000");
    fs::create_dir_all(dir.join("task/1001")).unwrap();
    fs::write(dir.join("stat"), "1000 (broken").unwrap();
    fs::write(dir.join("cmdline"), [0xff, 0xfe, 0, 0]).unwrap();
    fs::write(dir.join("task/1001/comm"), [0xff]).unwrap();
    let good = f.proc.path().join("1001");
    fs::create_dir_all(&good).unwrap();
    fs::write(
        good.join("stat"),
        "1001 (x) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 99 20",
    )
    .unwrap();
    fs::write(
        good.join("cmdline"),
        [0xff, 0, b'-', b'n', b'a', b'm', b'e', 0, 0xc3],
    )
    .unwrap();
    fs::create_dir_all(f.proc.path().join("self")).unwrap();
    fs::write(f.libvirt.path().join("junk.xml"), "<domstatus pid='1001'>").unwrap();
    let vms = f.discovery().refresh(&[1000, 1001]);
    assert_eq!(by_pid(&vms, 1000).name, "pid 1000");
    assert!(by_pid(&vms, 1000).exited);
    let vm = by_pid(&vms, 1001);
    assert_eq!(vm.name, "\u{fffd}");
    assert_eq!(vm.cmdline.len(), 3);
    let missing = Discovery::new(Path::new("/nonexistent/proc"), "/nonexistent/libvirt");
    assert_eq!(missing.proc_root, Path::new("/nonexistent/proc"));
}

#[test]
fn real_proc_smoke() {
    // This test process is not QEMU, but a requested pid is always described.
    let me = std::process::id();
    let vms = Discovery::host().refresh(&[me]);
    let vm = by_pid(&vms, me);
    assert!(vm.start_time > 0 && !vm.cmdline.is_empty(), "{vm:?}");
    assert!(!vm.is_qemu);
}

/// A process found not to be QEMU costs a stat read once in RECHECK listings of /proc (one
/// listing every RECHECK refreshes), not every refresh (that was most of a quiet host's
/// refresh); its pid reused by a QEMU is still found within RECHECK² refreshes, and a pid the
/// stats name is always read.
#[test]
fn not_qemu_processes_are_reread_every_few_refreshes() {
    let f = Fake::new();
    for pid in 2000..2100 {
        f.process(pid, "bash", 7, &["bash"], &[]);
    }
    let mut d = f.discovery();
    assert!(d.refresh(&[]).is_empty());
    assert_eq!(d.stat_reads, 100);
    for _ in 0..RECHECK * RECHECK {
        assert!(d.refresh(&[]).is_empty());
    }
    assert_eq!(
        d.stat_reads, 200,
        "each process re-read once in {RECHECK} listings"
    );
    let vm = d.refresh(&[2005]).remove(0);
    assert_eq!(
        (vm.pid, vm.comm.as_str(), vm.is_qemu),
        (2005, "bash", false)
    );
    f.exit(2003);
    f.process(2003, "qemu-system-x86", 50, &[QEMU, "-name", "late"], &[]);
    let found = (0..RECHECK * RECHECK).any(|_| d.refresh(&[]).iter().any(|v| v.name == "late"));
    assert!(found, "a reused pid is seen within {RECHECK}² refreshes");
}

/// /proc is listed once in RECHECK refreshes; in between a refresh reads only the VMs it
/// knows and the pids the stats name. A QEMU started between listings is found at once when
/// the stats name it, else at the next listing; one that exits is gone at once.
#[test]
fn proc_is_listed_every_few_refreshes() {
    let f = Fake::new();
    for pid in 2000..2050 {
        f.process(pid, "bash", 7, &["bash"], &[]);
    }
    f.process(3000, "qemu-system-x86", 9, &[QEMU, "-name", "one"], &[]);
    let mut d = f.discovery();
    assert_eq!(d.refresh(&[]).len(), 1);
    assert_eq!(
        (d.listings, d.stat_reads),
        (1, 51),
        "the first listing reads all"
    );
    f.process(3001, "qemu-system-x86", 9, &[QEMU, "-name", "named"], &[]);
    f.process(3002, "qemu-system-x86", 9, &[QEMU, "-name", "paused"], &[]);
    let names = |v: Vec<VmInfo>| v.into_iter().map(|v| v.name).collect::<Vec<_>>();
    assert_eq!(names(d.refresh(&[3001])), ["one", "named"]);
    assert_eq!(
        (d.listings, d.stat_reads),
        (1, 53),
        "no listing: the known VM and the named pid"
    );
    f.exit(3000);
    assert_eq!(
        names(d.refresh(&[3001])),
        ["named"],
        "an exited VM is gone at once"
    );
    let mut refreshes = 3;
    while d.listings == 1 {
        let v = names(d.refresh(&[]));
        refreshes += 1;
        assert_eq!(v.contains(&"paused".to_string()), d.listings == 2, "{v:?}");
    }
    assert_eq!(
        refreshes,
        RECHECK + 1,
        "the second listing is refresh {}",
        RECHECK + 1
    );
}

/// Between a report's first and last sample, a KVM user is read once, when first seen (its
/// name then, libvirt's over its command line's), and not again; gone by the last sample, it
/// keeps that name.
#[test]
fn learned_vms_are_read_once_and_keep_their_names() {
    let f = Fake::new();
    f.process(700, "qemu-system-x86", 1, &[QEMU, "-name", "short"], &[]);
    f.process(
        701,
        "qemu-system-x86",
        2,
        &[QEMU, "-name", "cmdline-name"],
        &[],
    );
    f.libvirt_status("lv-name", 701, "7b9e2a4c-0000-4000-8000-000000000001");
    let mut d = f.discovery();
    let vms = d.learn(&[700, 701, 999]);
    assert_eq!(vms.len(), 2, "{vms:?}");
    assert_eq!(by_pid(&vms, 700).name, "short");
    assert_eq!(by_pid(&vms, 701).name, "lv-name");
    let reads = d.stat_reads;
    assert_eq!(d.learn(&[700, 701]).len(), 2);
    assert_eq!(d.stat_reads, reads, "a known VM was read again");
    f.exit(700);
    let vms = d.refresh(&[700, 701]);
    let gone = by_pid(&vms, 700);
    assert_eq!((gone.name.as_str(), gone.exited), ("short", true));
    assert!(!by_pid(&vms, 701).exited);
}
