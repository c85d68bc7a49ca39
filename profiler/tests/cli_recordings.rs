//! Files handed to the binary as recordings: what it refuses and what it says, as a user sees
//! it (one line on stderr, exit status 2 for errors).

mod common;

use std::{
    path::Path,
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use kvmprof::sample::{Key, Sample, Stat};

/// Run kvmprof; a run that blocks (as it used to on a FIFO) is killed and fails the test.
fn kvmprof(args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kvmprof"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running kvmprof");
    let t = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t.elapsed() > Duration::from_secs(20) {
            child.kill().unwrap();
            panic!("kvmprof {args:?} blocked");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// A FIFO at `path`, which nobody writes to.
fn mkfifo(path: &Path) -> std::path::PathBuf {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    path.to_path_buf()
}

/// The error line of a failed run.
fn error_line(args: &[&str]) -> String {
    let o = kvmprof(args);
    let e = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(2), "{args:?}: {e}");
    assert_eq!(e.lines().count(), 1, "{args:?}: {e}");
    e
}

/// `n` samples of one busy vCPU; `finish` writes the end marker (a kill -9 does not).
fn write_recording(path: &Path, n: u64, finish: bool) {
    let mut r = common::recorder(path);
    for i in 0..n {
        let mut s = Sample {
            mono_ns: (i + 1) * 1_000_000_000,
            ..Default::default()
        };
        let st = Stat {
            count: 1000 * i,
            sum_ns: 2_000_000 * i,
            ..Default::default()
        };
        let k = Key {
            tgid: 10,
            vcpu: 0,
            isa: 1,
            reason: 49,
        };
        s.stats.insert(k, st);
        r.append(&s).unwrap();
    }
    if finish {
        r.finish().unwrap();
    }
}

#[test]
fn fifos_and_devices_are_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = mkfifo(&dir.path().join("fifo.kvmprof"));
    let zero = dir.path().join("zero.kvmprof");
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    for (path, kind) in [(&fifo, "a FIFO"), (&zero, "a character device")] {
        let p = path.to_str().unwrap();
        for args in [vec!["report", p], vec!["advise", p], vec!["diff", p, p]] {
            let e = error_line(&args);
            let want = format!("{p} is not a regular file ({kind}): give the path of");
            assert!(e.contains(&want), "{args:?}: {e}");
        }
    }
}

#[test]
fn io_errors_name_their_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("gone.kvmprof");
    let m = missing.to_str().unwrap();
    for args in [vec!["report", m], vec!["advise", m], vec!["diff", m, m]] {
        let e = error_line(&args);
        assert_eq!(e.matches("No such file or directory").count(), 1, "{e}");
    }
}

/// Empty, random or cut files meant as recordings get the recording reader's error, not a
/// complaint about perf text.
#[test]
fn non_recordings_get_a_recording_error() {
    let dir = tempfile::tempdir().unwrap();
    let random: Vec<u8> = (0..300u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8)
        .collect();
    let files: [(&str, &[u8]); 4] = [
        ("empty.kvmprof", b""),
        ("random.kvmprof", &random),
        ("random.bin", &random),
        ("cut.kvmprof", b"\x89KVM"),
    ];
    for (name, bytes) in files {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let e = error_line(&["report", path.to_str().unwrap()]);
        assert!(!e.contains("perf kvm stat"), "{name}: {e}");
        assert!(
            e.contains("not a kvmprof recording") || e.contains("damaged recording header"),
            "{name}: {e}"
        );
    }
}

/// Unclean ends are warned about, and "no samples" says why.
#[test]
fn recording_diagnostics_say_what_happened() {
    let dir = tempfile::tempdir().unwrap();
    let killed = dir.path().join("killed.kvmprof");
    write_recording(&killed, 3, false);
    let o = kvmprof(&["report", killed.to_str().unwrap()]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{e}");
    assert!(
        e.contains("unfinished (the recorder did not stop cleanly; the last 1 s may be missing)"),
        "{e}"
    );

    let damaged = dir.path().join("damaged.kvmprof");
    write_recording(&damaged, 3, true);
    let mut bytes = std::fs::read(&damaged).unwrap();
    let first = 20 + u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
    bytes[first + 20] ^= 0xff;
    std::fs::write(&damaged, bytes).unwrap();
    for sub in ["report", "advise"] {
        let e = error_line(&[sub, damaged.to_str().unwrap()]);
        let want = format!("the recording holds no samples (frame at byte {first} is damaged");
        assert!(e.contains(&want), "{sub}: {e}");
    }
}

/// Text inputs (`--from-perf`, thresholds files) may be pipes, but a FIFO nobody writes to
/// must not hang the command and a device must not be read forever.
#[test]
fn text_inputs_are_files_or_pipes_never_devices() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = mkfifo(&dir.path().join("perf.txt"));
    let f = fifo.to_str().unwrap();
    // No writer: read as empty at once, so the usual "no table" error, not a hang.
    let e = error_line(&["report", "--from-perf", f]);
    assert!(e.contains("no perf kvm stat table found"), "{e}");
    let svm = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src/report/golden/perf_svm.txt"
    );
    for args in [
        vec!["report", "--from-perf", "/dev/zero"],
        vec!["advise", "--from-perf", "/dev/zero"],
        vec!["check", "--from-perf", svm, "--config", "/dev/zero"],
        vec!["advise", "--from-perf", svm, "--thresholds", "/dev/zero"],
    ] {
        let e = error_line(&args);
        assert!(
            e.contains("/dev/zero is not a regular file or a pipe"),
            "{args:?}: {e}"
        );
    }
    // A pipe with a writer is read to its end.
    let text = std::fs::read(svm).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_kvmprof"))
        .args(["report", "--from-perf", "/dev/stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), &text).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("Total Samples"));
}
