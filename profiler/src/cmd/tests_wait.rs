//! `check`'s wait thresholds end to end: a recording with the scheduler split, one without
//! (format 4: cannot be measured, never "0 %"), and a live check with the split turned off.

use std::path::Path;

use super::tests::{check_run, env, host, parse};
use super::*;
use crate::{
    cli::Command,
    decode::ExitNames,
    sample::ProgStat,
    store::{Header, Recorder},
};

/// The fake host's samples with the split: win's IO_INSTRUCTION exits (2000/s × 3 µs) waited
/// 10 % of their time for a host CPU.
fn recording(dir: &Path) -> String {
    let path = dir.join("split.kvmprof");
    let header = Header {
        names: ExitNames::builtin(),
        interval_ms: 1000,
        ..Default::default()
    };
    let mut r = Recorder::create(&path, &header).expect("create");
    for mut s in host() {
        s.progs.push(ProgStat {
            name: "sched_switch".into(),
            ..Default::default()
        });
        let win: Vec<_> = s.stats.keys().copied().filter(|k| k.tgid == 100).collect();
        for k in win {
            let st = s.stats.get_mut(&k).unwrap();
            st.wait_ns = st.sum_ns / 10;
        }
        r.append(&s).expect("append");
    }
    r.finish().expect("finish");
    path.to_str().unwrap().to_string()
}

#[test]
fn check_measures_a_recordings_wait_share() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = recording(dir.path());
    let (code, text) = check_run(&[&a, "-t", "max_wait_pct=5", "--vm", "win"]);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("max_wait_pct") && text.contains("10.0"),
        "{text}"
    );
    let (code, text) = check_run(&[&a, "-t", "IO_INSTRUCTION.max_wait_pct=10", "--vm", "win"]);
    assert_eq!(code, 0, "{text}");

    let v4 = format!(
        "{}/src/store/fixtures/v4.kvmprof",
        env!("CARGO_MANIFEST_DIR")
    );
    let (code, text) = check_run(&[&v4, "-t", "max_wait_pct=5"]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("no scheduler split"), "{text}");
}

#[test]
fn a_live_check_needs_the_split_on() {
    let cli = parse(&[
        "check",
        "-d",
        "60ms",
        "--no-sched-split",
        "-t",
        "max_wait_pct=5",
    ]);
    let Some(Command::Check(a)) = &cli.command else {
        panic!()
    };
    let e = check::run(&mut env(&cli), a).unwrap_err().to_string();
    assert!(
        e.contains("drop --no-sched-split") && !e.contains('\n'),
        "{e}"
    );
}
