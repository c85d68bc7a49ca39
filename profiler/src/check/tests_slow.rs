//! Thresholds on the slow-exit log: per VM, per reason, dropped events, and a session
//! without the log.

use profiler_common::{counter, ISA_VMX};

use super::tests::{run, t};
use super::*;
use crate::sample::{Sample, SlowEvent};

/// Counts of a 1 s run (the one `run()` views): win11 (pid 10) logged 3 EPT_MISCONFIG exits
/// and 1 MSR_WRITE, pid 20 one exit; `dropped` more were dropped. The first sample's own
/// event came before the span and is not counted.
fn counts(dropped: u64) -> SlowCounts {
    let ev = |tgid, reason| SlowEvent {
        tgid,
        isa: ISA_VMX,
        reason,
        took_ns: 1_000_000,
        ..Default::default()
    };
    let mut a = Sample {
        counters: vec![0; counter::COUNT as usize],
        ..Default::default()
    };
    a.counters[counter::SLOW_DROPPED as usize] = 5;
    a.slow = vec![ev(10, 49)];
    let mut b = a.clone();
    b.counters[counter::SLOW_DROPPED as usize] = 5 + dropped;
    b.slow = vec![ev(10, 49), ev(10, 49), ev(10, 32), ev(20, 49)];
    let mut c = b.clone();
    c.slow = vec![ev(10, 49)];
    SlowCounts::of(&[a, b, c])
}

fn eval(flags: &[&str], slow: Option<&SlowCounts>) -> CheckReport {
    let (v, s) = run();
    evaluate(&v, &s, &t(flags), &[], None, slow)
}

#[test]
fn counts_the_span_per_vm_and_reason() {
    let c = counts(2);
    assert_eq!(c.per_vm[&10][&(ISA_VMX, 49)], 3);
    assert_eq!(c.per_vm[&10][&(ISA_VMX, 32)], 1);
    assert_eq!(c.per_vm[&20][&(ISA_VMX, 49)], 1);
    assert_eq!(c.dropped, 2);
}

#[test]
fn slow_per_s_of_the_vm_and_of_one_reason() {
    let c = counts(0);
    let r = eval(&["max_slow_per_s=3.5"], Some(&c));
    let x = &r.results[0];
    assert_eq!((x.status, x.measured), (Status::Fail, Some(4.0)), "{x:?}");
    assert_eq!(x.worst_reason.as_deref(), Some("EPT_MISCONFIG"));
    assert!(x.detail.contains("4 slow exits in 1.0 s"), "{}", x.detail);
    assert_eq!(
        eval(&["max_slow_per_s=4"], Some(&c)).results[0].status,
        Status::Pass
    );

    let r = eval(&["MSR_WRITE.max_slow_per_s=0.5"], Some(&c));
    assert_eq!(
        (r.results[0].status, r.results[0].measured),
        (Status::Fail, Some(1.0))
    );
    let r = eval(&["ept_misconfig.max_slow_per_s=3"], Some(&c));
    assert_eq!(
        (r.results[0].status, r.results[0].measured),
        (Status::Pass, Some(3.0))
    );
    // A reason never logged slow measures 0, not "not seen".
    let r = eval(&["CPUID.max_slow_per_s=0"], Some(&c));
    assert_eq!(
        (r.results[0].status, r.results[0].measured),
        (Status::Pass, Some(0.0))
    );
}

#[test]
fn any_dropped_event_fails_a_zero_limit() {
    let r = eval(&["max_slow_dropped=0"], Some(&counts(2)));
    let x = &r.results[0];
    assert_eq!((x.status, x.measured), (Status::Fail, Some(2.0)), "{x:?}");
    assert_eq!(x.unit, "events");
    assert_eq!(
        eval(&["max_slow_dropped=0"], Some(&counts(0))).results[0].status,
        Status::Pass
    );
    assert_eq!(
        eval(&["max_slow_dropped=5"], Some(&counts(2))).exit_code(),
        0
    );
    // The rate says what it leaves out.
    let r = eval(&["max_slow_per_s=10"], Some(&counts(2)));
    assert!(
        r.results[0].detail.contains("2 more dropped host-wide"),
        "{:?}",
        r.results[0]
    );
}

#[test]
fn without_a_slow_log_it_cannot_be_measured() {
    for flag in [
        "max_slow_per_s=1",
        "max_slow_dropped=0",
        "EPT_MISCONFIG.max_slow_per_s=1",
    ] {
        let r = eval(&[flag], None);
        let x = &r.results[0];
        assert_eq!(x.status, Status::Error, "{flag}: {x:?}");
        assert!(x.detail.contains("no slow-exit log"), "{}", x.detail);
        assert_eq!(r.exit_code(), 2);
    }
}

#[test]
fn json_and_junit_name_the_slow_thresholds() {
    let r = eval(
        &["max_slow_per_s=1", "max_slow_dropped=0"],
        Some(&counts(1)),
    );
    let json = to_json(&r);
    assert!(json.contains("\"threshold\": \"max_slow_per_s\""), "{json}");
    assert!(
        json.contains("\"threshold\": \"max_slow_dropped\""),
        "{json}"
    );
    let xml = junit(&r, "2026-12-03T00:00:00Z", "host");
    assert!(
        xml.contains("max_slow_per_s") && xml.contains("max_slow_dropped"),
        "{xml}"
    );
    assert_eq!(xml.matches("<failure").count(), 2, "{xml}");
}

#[test]
fn flags_and_toml_take_the_slow_keys() {
    let th = Thresholds::from_toml(
        "max_slow_per_s = 2\nmax_slow_dropped = 0\n[[reason]]\nname = \"npf\"\nmax_slow_per_s = 1\n",
        "t.toml",
    )
    .expect("parses");
    assert_eq!(th.max_slow_per_s, Some(2.0));
    assert_eq!(th.max_slow_dropped, Some(0.0));
    assert_eq!(th.reasons[0].max_slow_per_s, Some(1.0));
    let e = t(&[]).set("max_slow_per_s=-1").unwrap_err().to_string();
    assert!(e.contains("max_slow_per_s") && !e.contains('\n'), "{e}");
    let ex = Thresholds::from_toml(EXAMPLE_TOML, "example.toml").expect("example parses");
    assert!(ex.max_slow_per_s.is_some() && ex.max_slow_dropped.is_some());
    assert!(ex.reasons.iter().any(|r| r.max_slow_per_s.is_some()));
}
