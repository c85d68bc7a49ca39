//! Threshold parsing (TOML, flags), outputs (summary, JSON, JUnit) and timestamps.

use super::tests::{run, t};
use super::*;

#[test]
fn toml_errors_are_one_line_and_name_the_key() {
    let e = Thresholds::from_toml("max_overhead_pct = 5\nmax_overhed_pct = 3\n", "t.toml")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("t.toml:2: "), "{e}");
    assert!(
        e.contains("max_overhed_pct") && e.contains("kvmprof check --example"),
        "{e}"
    );
    assert!(!e.contains('\n'));
    let e = Thresholds::from_toml("\nmax_p99_us = \"fast\"\n", "t.toml")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("t.toml:2: `max_p99_us`: "), "{e}");
    assert!(!e.contains('\n'));
    let e = Thresholds::from_toml("fail_on = \"sometimes\"\n", "t.toml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("fail_on") && !e.contains('\n'), "{e}");
    let e = Thresholds::from_toml("[[reason]]\nname = \"npf\"\nmax_per_s = -1\n", "t.toml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("npf.max_per_s") && e.contains("≥ 0"), "{e}");
    let e = Thresholds::from_toml("[[reason]]\nmax_per_s = 1\n", "t.toml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("`name` is missing"), "{e}");
    let e = Thresholds::from_toml("[[reason]]\nname = \"npf\"\nmax_rate = 1\n", "t.toml")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("t.toml:3: ") && e.contains("max_rate"), "{e}");
    let e = Thresholds::from_toml("storm_window_ms = 0\n", "t.toml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("storm_window_ms"), "{e}");
    let e = Thresholds::from_toml("max_p99_us = [\n", "t.toml")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("t.toml:") && !e.contains('\n'), "{e}");
    let e = Thresholds::load(std::path::Path::new("/nonexistent/t.toml")).unwrap_err();
    assert!(e.to_string().contains("cannot read"), "{e}");
}

#[test]
fn flags_parse_and_override_the_file() {
    let mut th = Thresholds::default();
    for bad in [
        "max_overhead_pct",
        "max_overhead_pct=x",
        "nope=1",
        "npf.max_rate=1",
        "fail_on=x",
        "frame_hz=a",
    ] {
        let e = th.set(bad).unwrap_err().to_string();
        assert!(e.contains(&format!("`{bad}`")) && !e.contains('\n'), "{e}");
    }
    let file = Thresholds::from_toml(EXAMPLE_TOML, "example.toml").expect("example parses");
    file.validate(&ExitNames::builtin())
        .expect("example validates");
    assert_eq!(file.reasons.len(), 2);
    let flags = t(&["max_overhead_pct=2", "npf.max_p99_us=7", "frame_hz=144"]);
    let m = file.merge(flags);
    assert_eq!(m.max_overhead_pct, Some(2.0));
    assert_eq!(m.max_exits_per_s, Some(200000.0));
    assert_eq!(m.frames_hz(), vec![144.0]);
    let npf = m.reasons.iter().find(|r| r.name == "npf").unwrap();
    assert_eq!((npf.max_per_s, npf.max_p99_us), (Some(10000.0), Some(7.0)));
    assert!(!m.is_empty() && Thresholds::default().is_empty());
}

#[test]
fn outputs_escape_and_count() {
    let (mut v, mut s) = run();
    v.vms[0].name = "win<11> & \"co\"\u{1}".into();
    s[0].vms[0].name = v.vms[0].name.clone();
    let th = t(&[
        "max_overhead_pct=4",
        "max_exits_per_s=1e6",
        "CPUID.max_p99_us=1",
    ]);
    let r = evaluate(&v, &s, &th, &["nope".into()], None, None);
    let r = CheckReport {
        results: [evaluate(&v, &s, &th, &[], None, None).results, r.results].concat(),
        ..r
    };
    let x = junit(&r, "2026-01-01T00:00:00", "host");
    assert!(
        x.contains("classname=\"win&lt;11&gt; &amp; &quot;co&quot;\""),
        "{x}"
    );
    assert!(!x.contains('\u{1}'));
    assert!(
        x.contains("<testsuites name=\"kvmprof check\" tests=\"6\" failures=\"1\" errors=\"3\"")
    );
    assert_eq!(x.matches("<testcase ").count(), 6);
    assert_eq!(x.matches("<failure ").count(), 1);
    assert_eq!(x.matches("<skipped ").count(), 1);
    assert_eq!(x.matches("<error ").count(), 3);
    let j: serde_json::Value = serde_json::from_str(&to_json(&r)).unwrap();
    assert_eq!(
        (
            j["exit_code"].as_i64(),
            j["failed"].as_u64(),
            j["errors"].as_u64()
        ),
        (Some(1), Some(1), Some(3))
    );
    assert_eq!(j["results"][1]["threshold"], "max_overhead_pct");
    assert_eq!(j["results"][1]["status"], "fail");
    let text = summary(&r);
    assert!(!text.contains('\u{1}'));
    assert!(
        text.contains("\"co\"\\x01"),
        "shown as the other outputs show it: {text}"
    );
    println!("{text}\n{}", to_json(&r));
    assert!(
        text.starts_with("kvmprof check: FAILED: 1 of 6 checks failed, 3 could not be measured"),
        "{text}"
    );
    let fail_line = text.lines().nth(1).unwrap();
    assert!(
        fail_line.starts_with("FAIL")
            && fail_line.contains("4.62 % > 4.00 % (+15.5 %), worst vCPU 1, reason EPT_MISCONFIG"),
        "{text}"
    );
}

#[test]
fn junit_timestamps_are_iso_utc() {
    use std::time::{Duration, UNIX_EPOCH};
    assert_eq!(timestamp_utc(UNIX_EPOCH), "1970-01-01T00:00:00");
    let t = UNIX_EPOCH + Duration::from_secs(1_709_210_096); // 2024-02-29 12:34:56 UTC
    assert_eq!(timestamp_utc(t), "2024-02-29T12:34:56");
}

/// `check --example` is what users copy: every flag it names is one `check` takes, and every
/// reason name it lists resolves.
#[test]
fn the_example_names_only_real_flags_and_reasons() {
    use clap::CommandFactory;
    let mut root = crate::cli::Cli::command();
    root.build();
    let check = root.find_subcommand("check").expect("check subcommand");
    let flags: Vec<String> = (check.get_arguments())
        .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
        .collect();
    let mut named = 0;
    for w in EXAMPLE_TOML.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-')) {
        if let Some(flag) = w.strip_prefix("--").filter(|f| !f.is_empty()) {
            assert!(
                flags.contains(&format!("--{flag}")),
                "--{flag} is not a flag of check"
            );
            named += 1;
        }
    }
    assert!(named >= 3, "the example names its flags");
    let names = crate::decode::ExitNames::builtin();
    // Comment lines joined: a list may wrap.
    let text = EXAMPLE_TOML.replace("\n# ", " ");
    let lists = (text.split("names (").skip(1)).map(|l| l.split(')').next().unwrap_or(""));
    let mut listed = 0;
    for list in lists {
        for name in list.split(',').map(str::trim).filter(|n| *n != "...") {
            assert!(
                !resolve_reason(name, &names).is_empty(),
                "`{name}` in the example is not a reason name"
            );
            listed += 1;
        }
    }
    assert!(listed >= 5, "{listed} reason names found in the example");
}
