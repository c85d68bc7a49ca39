//! How the binary meets careless surroundings: no terminal, a reader that closes the pipe, a
//! parent killed with -9 (least privilege: capabilities.rs).

mod common;

use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{privileged, repo_file, stderr};

/// Runs kvmprof with stdout a pipe whose reader is already gone (`kvmprof … | head -0`).
fn with_closed_stdout(args: &[&str]) -> Output {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid array of two ints for pipe(2) to fill.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: pipe(2) just returned these two descriptors; each is owned exactly once here.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(read);
    Command::new(env!("CARGO_BIN_EXE_kvmprof"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(write))
        .stderr(Stdio::piped())
        .output()
        .expect("running kvmprof")
}

#[test]
fn closed_stdout_ends_quietly_with_status_0() {
    let svm = repo_file("profiler/src/report/golden/perf_svm.txt");
    let vmx = repo_file("profiler/src/report/golden/perf_new_vmx.txt");
    let cases: [&[&str]; 6] = [
        &["completions", "bash"],
        &["diff", &svm, &vmx, "-f", "json"],
        &["diff", &svm, &vmx],
        &["advise", "--from-perf", &svm, "-f", "json"],
        &["report", "--from-perf", &svm],
        &["check", "--example"],
    ];
    for args in cases {
        let o = with_closed_stdout(args);
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {e}");
        assert!(!e.contains("panicked") && e.is_empty(), "{args:?}: {e}");
    }
}

/// From cron, systemd or `> file`: one line saying what to run instead, and no escape codes.
#[test]
fn interactive_commands_refuse_without_a_terminal() {
    let rec = repo_file("profiler/src/store/fixtures/v1.kvmprof");
    let cases: [(&[&str], &str); 3] = [
        (&["replay", &rec], "kvmprof report"),
        (&["top"], "kvmprof record -o FILE"),
        (&["demo"], "kvmprof report --duration"),
    ];
    for (args, instead) in cases {
        let o = Command::new(env!("CARGO_BIN_EXE_kvmprof"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("running kvmprof");
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {e}");
        assert_eq!(e.lines().count(), 1, "{args:?}: {e}");
        assert!(e.contains("needs a terminal") && e.contains(instead), "{e}");
        assert!(o.stdout.is_empty(), "{args:?} wrote to stdout");
    }
}

fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(p) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
        // ppid is the second field after the parenthesised comm.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u32>().ok());
        if ppid == Some(pid) {
            out.push(p);
        }
    }
    out
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(')')
            .is_some_and(|(_, r)| !r.trim_start().starts_with('Z'))
    })
}

fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let t0 = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "timed out: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `kill -9` of `kvmprof demo` must not leave its guest spinning, reparented to init.
#[test]
fn demo_guest_dies_with_kvmprof() {
    if !privileged("demo_guest_dies_with_kvmprof") || !std::path::Path::new("/dev/kvm").exists() {
        assert!(
            std::env::var("CI").is_err(),
            "CI needs /dev/kvm for this test"
        );
        return;
    }
    // The demo is interactive: give it a terminal of its own (a detached tmux pane).
    let sock = format!("kvmprof-test-{}", std::process::id());
    let tmux = |args: &[&str]| {
        Command::new("tmux")
            .args(["-L", &sock])
            .args(args)
            .output()
            .expect("tmux runs")
    };
    let cmd = format!(
        "exec {} demo --allow-concurrent",
        env!("CARGO_BIN_EXE_kvmprof")
    );
    let o = tmux(&["new-session", "-d", "-x", "120", "-y", "40", &cmd]);
    assert!(o.status.success(), "{}", stderr(&o));
    let pane = tmux(&["list-panes", "-F", "#{pane_pid}"]);
    let demo: u32 = String::from_utf8_lossy(&pane.stdout)
        .trim()
        .parse()
        .unwrap();
    let guest = wait_for("the demo guest to start", || {
        children_of(demo).into_iter().find(|c| {
            std::fs::read(format!("/proc/{c}/cmdline"))
                .is_ok_and(|a| String::from_utf8_lossy(&a).contains("exercise"))
        })
    });
    // Whatever happens below, no guest is left spinning.
    struct Reap(u32);
    impl Drop for Reap {
        fn drop(&mut self) {
            // SAFETY: kill(2) has no memory preconditions; the pid is the guest we found.
            unsafe { libc::kill(self.0 as i32, libc::SIGKILL) };
        }
    }
    let _reap = Reap(guest);
    // SAFETY: kill(2) on a pid we just found as our tmux pane's process.
    unsafe { libc::kill(demo as i32, libc::SIGKILL) };
    wait_for("the demo guest to die with its parent", || {
        (!alive(guest)).then_some(())
    });
    let _ = tmux(&["kill-server"]);
}
