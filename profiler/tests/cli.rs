//! The binary's user-facing errors: one line, naming what is wrong and how to fix it.

mod common;

use common::{kvmprof, privileged, repo_file, stderr};
use std::process::Command;

#[test]
fn help_lists_the_subcommands() {
    let o = kvmprof(&["--help"]);
    assert!(o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    for sub in ["top", "demo", "report", "completions"] {
        assert!(out.contains(sub), "--help lacks {sub}:\n{out}");
    }
    assert!(
        !out.contains("exercise"),
        "the internal exerciser is hidden"
    );
}

#[test]
fn bad_duration_is_one_clear_line() {
    let o = kvmprof(&["report", "--duration", "soon"]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("`soon` is not a duration"), "{e}");
}

/// --max-keys sizes kernel maps: 0 would load nothing useful, billions would fail to load.
#[test]
fn max_keys_out_of_range_is_one_clear_line() {
    for n in ["0", "4294967295"] {
        let o = kvmprof(&["report", "--duration", "1s", "--max-keys", n]);
        assert_eq!(o.status.code(), Some(2), "--max-keys {n}");
        let e = stderr(&o);
        assert!(
            e.contains("--max-keys") && e.contains("64..=4194304"),
            "{e}"
        );
    }
}

#[test]
fn report_needs_a_length() {
    let o = kvmprof(&["report"]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(
        e.contains("--duration 10s, --once (1 s), or --until-signal"),
        "{e}"
    );
}

/// Dropping root (setpriv) must give the privilege message, not a panic or an EPERM dump.
#[test]
fn unprivileged_run_says_how_to_fix_it() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        let o = kvmprof(&["report", "--duration", "1s"]);
        let e = stderr(&o);
        assert!(
            e.contains("lacks CAP_BPF") && e.contains("CAP_PERFMON"),
            "{e}"
        );
        return;
    }
    let o = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(env!("CARGO_BIN_EXE_kvmprof"))
        .args(["report", "--duration", "1s"])
        .output()
        .expect("setpriv (util-linux) runs");
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert_eq!(e.lines().count(), 1, "{e}");
    // Every missing capability by name (tracefs too: it is root's), and both ways to grant.
    for cap in ["CAP_BPF", "CAP_PERFMON", "CAP_DAC_READ_SEARCH"] {
        assert!(e.contains(cap), "{cap}: {e}");
    }
    assert!(
        e.contains("sudo") && e.contains(&kvmprof::probe::setcap()),
        "{e}"
    );
    assert!(e.contains("AmbientCapabilities="), "{e}");
}

#[test]
fn wrong_tracefs_is_named() {
    if !privileged("wrong_tracefs_is_named") {
        return;
    }
    let o = kvmprof(&[
        "report",
        "--duration",
        "1s",
        "--allow-concurrent",
        "--tracefs",
        "/nonexistent",
    ]);
    let e = stderr(&o);
    // The directory given, not the defaults.
    assert!(e.contains("/nonexistent is not a tracefs mount"), "{e}");
    assert!(e.contains("mount -t tracefs nodev /nonexistent"), "{e}");
    assert!(!e.contains("/sys/kernel/tracing"), "{e}");
}

#[test]
fn missing_kvm_tracepoints_say_load_kvm() {
    if !privileged("missing_kvm_tracepoints_say_load_kvm") {
        return;
    }
    // A tracefs-shaped directory without events/kvm: what a host without kvm.ko looks like.
    let dir = std::env::temp_dir().join(format!("kvmprof-notkvm-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("events/sched")).unwrap();
    let o = kvmprof(&[
        "report",
        "--duration",
        "1s",
        "--allow-concurrent",
        "--tracefs",
        dir.to_str().unwrap(),
    ]);
    let e = stderr(&o);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(e.contains("modprobe kvm_intel"), "{e}");
    assert_eq!(e.lines().count(), 1, "{e}");
}

/// A recording with one VM making 1000 EPT_MISCONFIG exits per second for 3 s.
fn write_recording(path: &std::path::Path) {
    use kvmprof::sample::{Key, Sample, Stat, VmInfo};
    let mut r = kvmprof::store::Recorder::create(
        path,
        &kvmprof::store::Header {
            host: "h".into(),
            kernel: "6.18".into(),
            cpus: 2,
            names: kvmprof::decode::ExitNames::builtin(),
            start_wall_ms: 1_700_000_000_000,
            interval_ms: 1000,
            written_by: "test".into(),
        },
    )
    .unwrap();
    for i in 0..4u64 {
        let mut s = Sample {
            mono_ns: (i + 1) * 1_000_000_000,
            wall_ms: 1_700_000_000_000 + i * 1000,
            counters: vec![0; profiler_common::counter::COUNT as usize],
            ..Default::default()
        };
        s.vms.insert(
            10,
            VmInfo {
                pid: 10,
                name: "game".into(),
                ..Default::default()
            },
        );
        let mut st = Stat {
            count: 1000 * i,
            sum_ns: 2_000_000 * i,
            min_ns: 2000,
            max_ns: 2000,
            ..Default::default()
        };
        st.hist.record(2000, 1000 * i);
        s.stats.insert(
            Key {
                tgid: 10,
                vcpu: 0,
                isa: 1,
                reason: 49,
            },
            st,
        );
        r.append(&s).unwrap();
    }
    r.finish().unwrap();
}

/// `check` is a load-test gate: its exit code and JUnit file are what CI scripts act on.
#[test]
fn check_exit_codes_and_junit_on_a_recording() {
    let dir = std::env::temp_dir().join(format!("kvmprof-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rec = dir.join("run.kvmprof");
    write_recording(&rec);
    let rec_s = rec.to_str().unwrap();
    let junit = dir.join("out.xml");
    let fail = kvmprof(&[
        "check",
        rec_s,
        "--vm",
        "game",
        "-t",
        "EPT_MISCONFIG.max_per_s=500",
        "--junit",
        junit.to_str().unwrap(),
    ]);
    let out = String::from_utf8_lossy(&fail.stdout);
    assert_eq!(fail.status.code(), Some(1), "{out}{}", stderr(&fail));
    assert!(
        out.contains("FAIL") && out.contains("EPT_MISCONFIG"),
        "{out}"
    );
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.contains("<failure") && xml.contains("classname=\"game\""),
        "{xml}"
    );
    let pass = kvmprof(&[
        "check",
        rec_s,
        "--vm",
        "game",
        "-t",
        "EPT_MISCONFIG.max_per_s=5000",
    ]);
    assert_eq!(
        pass.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&pass.stdout)
    );
    let missing = kvmprof(&["check", rec_s, "--vm", "nope", "-t", "max_exits_per_s=10"]);
    assert_eq!(
        missing.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&missing.stdout)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `advise` works on a recording and takes TOML thresholds like `check` does.
#[test]
fn advise_on_a_recording_with_toml_thresholds() {
    let dir = std::env::temp_dir().join(format!("kvmprof-advise-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rec = dir.join("run.kvmprof");
    write_recording(&rec);
    let t = dir.join("t.toml");
    std::fs::write(&t, "dominant_pct = 10.0\nmin_exits = 1\n").unwrap();
    let o = kvmprof(&[
        "advise",
        rec.to_str().unwrap(),
        "--thresholds",
        t.to_str().unwrap(),
        "--format",
        "json",
    ]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&out).expect("advise --format json is JSON");
    assert!(v["findings"].is_array(), "{out}");
    std::fs::write(&t, "dominant_pct = \"lots\"\n").unwrap();
    let bad = kvmprof(&[
        "advise",
        rec.to_str().unwrap(),
        "--thresholds",
        t.to_str().unwrap(),
    ]);
    let e = stderr(&bad);
    assert_eq!(bad.status.code(), Some(2), "{e}");
    assert!(e.contains("t.toml") && e.lines().count() == 1, "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// perf text for the import tests, in a directory of its own.
fn perf_file(name: &str, rows: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    let text = format!(
        "Analyze events for all VMs, all VCPUs:\n\n\
         VM-EXIT Samples Samples% Time% Min Time Max Time Avg time\n\n{rows}\n"
    );
    std::fs::write(&path, text).unwrap();
    (dir, path.to_str().unwrap().to_string())
}

/// perf text that cannot be true is refused by every command that imports it: status 2 and
/// one line naming the file, the line, and the fix.
#[test]
fn contradictory_perf_text_is_refused_in_one_line() {
    let (_dir, bad) = perf_file("bad.txt", "HLT 10 100.00% 100.00% 1.00us 3.00us 9.00us");
    let b = bad.as_str();
    for args in [
        vec!["report", "--from-perf", b],
        vec!["report", b],
        vec!["advise", "--from-perf", b],
        vec!["check", "--from-perf", b],
        vec!["diff", b, b],
    ] {
        let o = kvmprof(&args);
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {e}");
        assert_eq!(e.lines().count(), 1, "{args:?}: {e}");
        let want = format!(
            "kvmprof: error: {b}: line 5: Avg time 9us of 'HLT' is above its Max Time 3us; fix: "
        );
        assert!(e.starts_with(&want), "{args:?}: {e}");
    }
}

/// Rows after a junk line inside a table are read, and the commands say which line was skipped.
#[test]
fn a_junk_line_in_perf_text_is_a_warning_not_lost_rows() {
    let (_dir, junk) = perf_file(
        "junk.txt",
        "HLT 10 50.00% 50.00% 1.00us 3.00us 2.00us\njunk\nCPUID 10 50.00% 50.00% 1.00us 3.00us 2.00us",
    );
    let j = junk.as_str();
    let warning = format!("kvmprof: warning: {j}: line 6: inside the VM-EXIT table of line 3");
    for args in [
        vec!["report", "--from-perf", j],
        vec!["advise", "--from-perf", j],
        vec!["check", "--from-perf", j, "-t", "HLT.max_us=100"],
        vec!["diff", j, j],
    ] {
        let o = kvmprof(&args);
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {e}");
        assert!(e.lines().any(|l| l.starts_with(&warning)), "{args:?}: {e}");
    }
    let o = kvmprof(&["report", "--from-perf", j]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("CPUID") && out.contains("HLT"), "{out}");
}

/// A table of perf >= 6.4's report screen (tests/perf64, printed with the formats of Linux
/// 6.12's builtin-kvm.c) is read, and `--perf-layout 6.4` prints its title, header and every
/// row back byte for byte; without the flag the classic layout is printed.
#[test]
fn perf_6_4_tables_print_back_byte_for_byte() {
    for name in ["perf64-vmx-vmexit.txt", "perf64-svm-vmexit.txt"] {
        let src = repo_file(&format!("profiler/tests/perf64/{name}"));
        let text = std::fs::read_to_string(&src).unwrap();
        let o = kvmprof(&["report", "--from-perf", &src, "--perf-layout", "6.4"]);
        assert_eq!(o.status.code(), Some(0), "{name}: {}", stderr(&o));
        let out = String::from_utf8_lossy(&o.stdout);
        let table = text
            .lines()
            .filter(|l| !l.starts_with("## ") && !l.is_empty());
        for line in table {
            assert!(
                out.lines().any(|l| l == line),
                "{name}: {line:?} not in\n{out}"
            );
        }
        let o = kvmprof(&["report", "--from-perf", &src]);
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(out.contains("    VM-EXIT    Samples  Samples%"), "{out}");
        assert!(!out.contains("Mean Time (ns)"), "{out}");
    }
}

/// A file with no table says so once, in one line.
#[test]
fn no_table_is_said_once() {
    let (_dir, none) = perf_file("none.txt", "");
    std::fs::write(&none, "hello\n").unwrap();
    let o = kvmprof(&["report", "--from-perf", &none]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert_eq!(e.lines().count(), 1, "{e}");
    assert_eq!(e.matches("no perf kvm stat table found").count(), 1, "{e}");
}

/// A table that cannot hold what was asked for is an error naming what there is, not an empty
/// or arbitrary table with exit 0.
#[test]
fn report_refuses_a_vcpu_or_sort_the_session_does_not_have() {
    let perf = repo_file("profiler/tests/corpus/04-win-3dgame-no-hyperv-baseline.txt");
    let o = kvmprof(&["report", &perf, "--vcpu", "7"]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    let last = e.lines().last().unwrap_or("");
    assert!(
        last.contains("no vCPU 7") && last.contains("vCPUs are 0"),
        "{e}"
    );
    let o = kvmprof(&["report", &perf, "-k", "p99"]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(
        e.contains("no percentiles to sort by") && e.contains("-k sample"),
        "{e}"
    );
    // What is there still works.
    let o = kvmprof(&["report", &perf, "--vcpu", "0", "-k", "time"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

/// Advice on perf text of all VMs has no VM to name, and says so instead of "(pid 0)".
#[test]
fn advice_on_perf_text_of_all_vms_names_no_pid_0() {
    let perf = repo_file("profiler/tests/corpus/04-win-3dgame-no-hyperv-baseline.txt");
    let o = kvmprof(&["advise", "--from-perf", &perf]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(!out.contains("(pid 0)"), "{out}");
    assert!(out.contains("all VMs (the input names no VM)"), "{out}");
}

/// `--version` names the commit built (KVMPROF_COMMIT from `cargo xtask`, else "unknown") and
/// the embedded eBPF object by the first 12 hex digits of its SHA-256, or says there is none.
#[test]
fn version_names_the_commit_and_the_ebpf_object() {
    let o = kvmprof(&["--version"]);
    assert!(o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    let rest = out
        .trim()
        .strip_prefix(&format!("kvmprof {} (commit ", env!("CARGO_PKG_VERSION")))
        .unwrap_or_else(|| panic!("--version: {out}"));
    let (commit, object) = rest
        .strip_suffix(')')
        .and_then(|r| r.split_once("; eBPF object "))
        .unwrap_or_else(|| panic!("--version: {out}"));
    assert!(!commit.is_empty() && !commit.contains(' '), "{out}");
    if kvmprof::probe::HAS_OBJECT {
        let hex = object.strip_prefix("sha256:").unwrap_or(object);
        assert!(
            hex.len() == 12 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
            "{out}"
        );
    } else {
        assert_eq!(object, "none, built without the ebpf feature", "{out}");
    }
}

/// One man page for kvmprof and one per subcommand `--help` lists, none for hidden ones;
/// each titled with its own name and listing its own options.
#[test]
fn man_pages_one_per_visible_subcommand() {
    let dir = tempfile::tempdir().expect("temp dir");
    let o = kvmprof(&["man-pages", dir.path().to_str().expect("utf-8")]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .expect("reading the pages")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let want = [
        "kvmprof-advise.1",
        "kvmprof-check.1",
        "kvmprof-completions.1",
        "kvmprof-demo.1",
        "kvmprof-diff.1",
        "kvmprof-record.1",
        "kvmprof-replay.1",
        "kvmprof-report.1",
        "kvmprof-serve.1",
        "kvmprof-top.1",
        "kvmprof.1",
    ];
    assert_eq!(names, want);
    let serve = std::fs::read_to_string(dir.path().join("kvmprof-serve.1")).expect("serve page");
    assert!(serve.contains(".TH kvmprof-serve 1"), "{serve}");
    assert!(
        serve.contains("listen"),
        "serve's page lacks --listen:\n{serve}"
    );
    let main = std::fs::read_to_string(dir.path().join("kvmprof.1")).expect("main page");
    assert!(
        main.contains("kvmprof\\-serve(1)") || main.contains("serve"),
        "{main}"
    );
    assert!(
        !main.contains("exercise") && !main.contains("man\\-pages"),
        "{main}"
    );
}
