//! Least privilege, run for real: each command of `kvmprof::caps::COMMANDS` as a throwaway user
//! holding exactly its capabilities (setpriv's ambient set), against a VM that root started
//! (the built-in guest, `kvmprof exercise`, named as QEMU's `-name` names it); then each live
//! command once per capability removed, which must name that capability and the lines that
//! grant it. Here rather than in tests/ because cargo builds the binary under test for this
//! crate's tests (CARGO_BIN_EXE_kvmprof).

mod common;
mod privs;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{privileged, stderr};
use kvmprof::caps::{self, Cap};
use privs::{Kill, Tmux, User};

/// The VM the live commands must see, by the name in its (root-owned) /proc/PID/cmdline.
const VM: &str = "caps-vm";
/// Its name in a libvirt status file.
const LIBVIRT_VM: &str = "caps-libvirt-domain";

fn until<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let t0 = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "timed out: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The capabilities COMMANDS gives the command whose row starts with `row`.
fn documented(row: &str) -> &'static [Cap] {
    caps::COMMANDS
        .iter()
        .find(|(c, _, _)| c.starts_with(row))
        .unwrap_or_else(|| panic!("caps::COMMANDS has no row {row}"))
        .1
}

/// The headless live commands, each as its COMMANDS row and the arguments that run it briefly.
fn headless(dir: &str) -> Vec<(&'static str, Vec<String>)> {
    let s = |v: &[&str]| v.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    let common = ["--allow-concurrent", "-i", "200ms"];
    vec![
        (
            "kvmprof report --duration",
            s(&[&["report", "--duration", "2s", "-f", "json"][..], &common].concat()),
        ),
        (
            "kvmprof advise --duration",
            s(&[&["advise", "--duration", "2s", "-f", "json"][..], &common].concat()),
        ),
        (
            "kvmprof check --duration",
            s(&[
                &[
                    "check",
                    "--vm",
                    VM,
                    "--duration",
                    "2s",
                    "--fail-on",
                    "critical",
                ][..],
                &common,
            ]
            .concat()),
        ),
        (
            "kvmprof record",
            s(&[
                &[
                    "record",
                    "--duration",
                    "2s",
                    "-o",
                    &format!("{dir}/s.kvmprof"),
                ][..],
                &common,
            ]
            .concat()),
        ),
    ]
}

#[test]
fn each_live_command_runs_with_exactly_its_capabilities_and_sees_root_s_vm() {
    if !privileged("each_live_command_runs_with_exactly_its_capabilities") {
        return;
    }
    let user = User::create("live");
    let bin = user.bin();
    let vm = Kill::spawn(
        std::process::Command::new(&bin)
            .args(["exercise", "--forever", "--pause", "1ms", "--", "-name"])
            .arg(format!("guest={VM}")),
    );
    for (row, args) in headless(&user.dir()) {
        let o = user.run(documented(row), &args);
        let out = String::from_utf8_lossy(&o.stdout);
        assert_eq!(o.status.code(), Some(0), "{row}: {}", stderr(&o));
        // Without CAP_SYS_ADMIN the probes' cost is not silently 0: a warning says what gives it.
        let stats_on = std::fs::read_to_string("/proc/sys/kernel/bpf_stats_enabled")
            .is_ok_and(|v| v.trim() == "1");
        assert_eq!(
            stderr(&o).contains(caps::NO_COST),
            !stats_on,
            "{row}: {}",
            stderr(&o)
        );
        if row != "kvmprof record" {
            assert!(out.contains(VM), "{row} does not name {VM}: {out}");
        }
    }
    // libvirt's status files, root's (directory 0700, file 0600): the live set reads the
    // domain's name from them. In a mount namespace with a /run of its own: no host file is
    // touched.
    let xml = format!("{}/status.xml", user.dir());
    std::fs::write(
        &xml,
        format!(
            "<domstatus state='running' pid='{}'><domain type='kvm'><name>{LIBVIRT_VM}</name>\
             <uuid>0badcafe-0000-4000-8000-00000000ca95</uuid></domain></domstatus>",
            vm.id()
        ),
    )
    .unwrap();
    let report = user.command_line(
        documented("kvmprof report --duration"),
        &[
            "report",
            "--duration",
            "2s",
            "-f",
            "json",
            "--allow-concurrent",
        ],
    );
    let o = std::process::Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(
            "x=$1; shift; mount -t tmpfs -o mode=0755 tmpfs /run && \
             mkdir -p -m 0700 /run/libvirt/qemu && install -m 0600 \"$x\" /run/libvirt/qemu/d.xml && \
             exec \"$@\"",
        )
        .args(["sh", &xml])
        .args(&report)
        .output()
        .expect("unshare (util-linux) runs");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains(LIBVIRT_VM), "no libvirt name: {out}");

    // The recording holds the VM, and reading it needs no capability at all.
    let rec = format!("{}/s.kvmprof", user.dir());
    let o = user.run(
        documented("kvmprof report FILE"),
        &["report", &rec, "-f", "json"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains(VM));

    // serve: scraped until the VM's series appear, then stopped as systemd stops it.
    let ready = format!("{}/ready", user.dir());
    let mut serve = user.command(documented("kvmprof serve"));
    serve
        .args([
            "serve",
            "--allow-concurrent",
            "-i",
            "200ms",
            "--listen",
            "127.0.0.1:0",
        ])
        .args(["--ready-file", &ready])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let serve = Kill::spawn(&mut serve);
    let addr = until("serve's ready file", || {
        std::fs::read_to_string(&ready).ok()
    });
    until("the VM in /metrics", || {
        privs::get(addr.trim(), "/metrics").filter(|b| b.contains(VM))
    });
    let o = serve.term();
    assert_eq!(o.status.code(), Some(0), "serve: {}", stderr(&o));

    // top: in a terminal of its own, until it lists the VM; q quits with status 0.
    let tmux = Tmux::start(&user.command_line(
        documented("kvmprof / kvmprof top"),
        &["top", "--allow-concurrent"],
    ));
    until("top to list the VM", || {
        tmux.screen().contains(VM).then_some(())
    });
    assert_eq!(tmux.quit(), 0, "{}", tmux.screen());
}

/// The demo starts its own guest, as the user: /dev/kvm access as distributions give it
/// (group `kvm`, mode 0660), lent to the user's group for the test.
#[test]
fn demo_runs_with_its_capabilities_and_dev_kvm_access() {
    if !privileged("demo_runs_with_its_capabilities_and_dev_kvm_access") {
        return;
    }
    let user = User::create("demo");
    let _kvm = user.lend_dev_kvm();
    let line = user.command_line(documented("kvmprof demo"), &["demo", "--allow-concurrent"]);
    let tmux = Tmux::start(&line);
    // The demo's guest, a child of kvmprof and so the user's, listed by its name.
    until("the demo's guest to be listed", || {
        tmux.screen().contains("kvmprof-demo").then_some(())
    });
    assert_eq!(tmux.quit(), 0, "{}", tmux.screen());
}

/// One capability short, every live command names it, with the setcap and systemd lines.
#[test]
fn each_missing_capability_is_named_with_the_lines_that_grant_it() {
    if !privileged("each_missing_capability_is_named") {
        return;
    }
    let user = User::create("miss");
    let grants = [
        caps::setcap_line(caps::LIVE),
        caps::systemd_line(caps::LIVE),
    ];
    let check = |row: &str, cap: Cap, status: i32, e: &str| {
        assert_eq!(status, 2, "{row} without {cap:?}: {e}");
        assert_eq!(e.trim().lines().count(), 1, "{row} without {cap:?}: {e}");
        assert!(
            e.contains(cap.name()),
            "{row} without {cap:?} must name it: {e}"
        );
        for g in &grants {
            assert!(
                e.contains(g.as_str()),
                "{row} without {cap:?}: no `{g}`: {e}"
            );
        }
        // Only the missing one is blamed.
        for other in caps::LIVE.iter().filter(|c| **c != cap) {
            assert!(!e.contains(&format!("lacks {}", other.name())), "{e}");
        }
    };
    let mut rows = headless(&user.dir());
    rows.push((
        "kvmprof serve",
        ["serve", "--allow-concurrent", "--listen", "127.0.0.1:0"]
            .map(String::from)
            .to_vec(),
    ));
    for (row, args) in &rows {
        for cap in documented(row) {
            let fewer: Vec<Cap> = documented(row)
                .iter()
                .copied()
                .filter(|c| c != cap)
                .collect();
            let o = user.run(&fewer, args);
            check(row, *cap, o.status.code().unwrap_or(-1), &stderr(&o));
        }
    }
    for (row, args) in [
        ("kvmprof / kvmprof top", &["top", "--allow-concurrent"][..]),
        ("kvmprof demo", &["demo", "--allow-concurrent"][..]),
    ] {
        for cap in documented(row) {
            let fewer: Vec<Cap> = documented(row)
                .iter()
                .copied()
                .filter(|c| c != cap)
                .collect();
            let tmux = Tmux::start(&user.command_line(&fewer, args));
            let status = tmux.exit_status();
            let screen = tmux.screen();
            let e = screen
                .lines()
                .filter(|l| l.contains("error"))
                .collect::<Vec<_>>()
                .join("\n");
            check(row, *cap, status, &e);
        }
    }
}

/// The commands that read files run with no capability at all.
#[test]
fn file_commands_need_no_capability() {
    if !privileged("file_commands_need_no_capability") {
        return;
    }
    let user = User::create("file");
    let perf = user.copy_in(&common::repo_file(
        "profiler/src/report/golden/perf_svm.txt",
    ));
    let perf2 = user.copy_in(&common::repo_file(
        "profiler/src/report/golden/perf_new_vmx.txt",
    ));
    let rec = user.copy_in(&common::repo_file("profiler/src/store/fixtures/v1.kvmprof"));
    let (perf, perf2, rec) = (perf.as_str(), perf2.as_str(), rec.as_str());
    let cases: [(&str, Vec<&str>); 6] = [
        ("kvmprof report FILE", vec!["report", "--from-perf", perf]),
        ("kvmprof report FILE", vec!["report", rec]),
        ("kvmprof advise FILE", vec!["advise", "--from-perf", perf]),
        (
            "kvmprof check FILE",
            vec!["check", rec, "-t", "max_exits_per_s=1e12"],
        ),
        ("kvmprof diff", vec!["diff", perf, perf2]),
        ("kvmprof completions", vec!["completions", "bash"]),
    ];
    for (row, args) in cases {
        assert!(documented(row).is_empty(), "{row}");
        let o = user.run(&[], &args);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
        assert!(!o.stdout.is_empty(), "{args:?}");
    }
    // replay is interactive: it opens the recording and draws it.
    let tmux = Tmux::start(&user.command_line(documented("kvmprof replay"), &["replay", rec]));
    until("replay to draw", || {
        tmux.screen().contains("kvmprof").then_some(())
    });
    assert_eq!(tmux.quit(), 0, "{}", tmux.screen());
}

/// Below the oldest kernel, one line before anything is loaded (setarch makes uname(2) say
/// 2.6.x to the command).
#[test]
fn kernels_below_the_oldest_are_refused_in_one_line() {
    if !privileged("kernels_below_the_oldest_are_refused_in_one_line") {
        return;
    }
    let o = std::process::Command::new("setarch")
        .args([std::env::consts::ARCH, "--uname-2.6"])
        .arg(env!("CARGO_BIN_EXE_kvmprof"))
        .args(["report", "--allow-concurrent", "--duration", "1s"])
        .output()
        .expect("setarch (util-linux) runs");
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert_eq!(e.lines().count(), 1, "{e}");
    let (major, minor) = kvmprof::kernel::OLDEST;
    assert!(
        e.contains("kernel 2.6.") && e.contains(&format!("needs Linux {major}.{minor}")),
        "{e}"
    );
}
