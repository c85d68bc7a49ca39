//! Outputs of a check: a short human summary, JSON, and JUnit XML (Jenkins/Ant schema: one
//! `<testsuite>` per VM, one `<testcase>` per threshold with classname = VM name).

use std::fmt::Write;

use serde::Serialize;

use super::{CheckReport, CheckResult, Status};
use crate::text::printable;

/// Number with a precision that suits its size, and its unit.
fn num(v: f64, unit: &str) -> String {
    let n = if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    };
    match unit {
        "/s" => format!("{n}/s"),
        "findings" => format!("{n} findings"),
        "" => n,
        u => format!("{n} {u}"),
    }
}

/// "52310/s > 10000/s (+423.1 %)" / "2.10 % ≤ 5.00 %".
fn verdict(r: &CheckResult) -> String {
    let Some(m) = r.measured else {
        return r.detail.clone();
    };
    if r.threshold.starts_with("fail_on") {
        return if r.status == Status::Fail {
            r.detail.clone()
        } else {
            "no findings at that severity".into()
        };
    }
    let cmp = if r.status == Status::Fail { ">" } else { "≤" };
    let mut s = format!("{} {cmp} {}", num(m, &r.unit), num(r.limit, &r.unit));
    if let Some(p) = r.over_pct {
        s.push_str(&format!(" (+{p:.1} %)"));
    }
    if r.status == Status::Fail {
        let mut worst = Vec::new();
        if let Some(v) = r.worst_vcpu {
            worst.push(format!("worst vCPU {v}"));
        }
        if let Some(w) = &r.worst_reason {
            if !r.threshold.starts_with(&format!("{w}.")) {
                worst.push(format!("reason {w}"));
            }
        }
        if !worst.is_empty() {
            s.push_str(&format!(", {}", worst.join(", ")));
        }
    }
    s
}

fn label(s: Status) -> &'static str {
    match s {
        Status::Pass => "ok",
        Status::Fail => "FAIL",
        Status::Skipped => "skip",
        Status::Error => "ERROR",
    }
}

/// The human summary: the verdict line, failures and errors first, then passes, then the top
/// advice findings.
pub fn summary(r: &CheckReport) -> String {
    let mut out = String::new();
    let (f, e) = (r.failed(), r.errors());
    let verdict_line = match r.exit_code() {
        0 => format!("PASSED: {} checks", r.results.len()),
        1 => format!("FAILED: {f} of {} checks failed", r.results.len()),
        _ => format!("COULD NOT MEASURE: {e} of {} checks", r.results.len()),
    };
    let mut vms: Vec<&str> = Vec::new();
    for x in &r.results {
        if !vms.contains(&x.vm.as_str()) {
            vms.push(&x.vm);
        }
    }
    let _ = write!(out, "kvmprof check: {verdict_line}");
    if f > 0 && e > 0 {
        let _ = write!(out, ", {e} could not be measured");
    }
    let _ = writeln!(
        out,
        " ({:.1} s; VMs: {})",
        r.duration_s,
        printable(&vms.join(", "))
    );
    let vm_w = r
        .results
        .iter()
        .map(|x| printable(&x.vm).chars().count())
        .max()
        .unwrap_or(0);
    let th_w = r
        .results
        .iter()
        .map(|x| printable(&x.threshold).chars().count())
        .max()
        .unwrap_or(0);
    let order = [Status::Fail, Status::Error, Status::Pass, Status::Skipped];
    for s in order {
        for x in r.results.iter().filter(|x| x.status == s) {
            let _ = writeln!(
                out,
                "{:<5} {:<vm_w$}  {:<th_w$}  {}",
                label(s),
                printable(&x.vm),
                printable(&x.threshold),
                printable(&verdict(x))
            );
        }
    }
    if !r.advice.is_empty() {
        let _ = writeln!(out, "advice:");
        for a in r.advice.iter().take(3) {
            let _ = writeln!(
                out,
                "  {} {} [{}] {}",
                a.severity.label(),
                a.rule,
                printable(&a.vm),
                printable(&a.title)
            );
        }
    }
    for n in &r.notes {
        let _ = writeln!(out, "note: {}", printable(n));
    }
    out
}

#[derive(Serialize)]
struct JsonOut<'a> {
    status: &'static str,
    exit_code: i32,
    duration_s: f64,
    tests: usize,
    passed: usize,
    failed: usize,
    errors: usize,
    skipped: usize,
    results: &'a [CheckResult],
    advice: &'a [crate::advice::AdviceItem],
    notes: &'a [String],
}

/// `--format json`: `{status, exit_code, duration_s, tests, passed, failed, errors, skipped,
/// results: [CheckResult], advice: [AdviceItem], notes}`.
pub fn to_json(r: &CheckReport) -> String {
    let code = r.exit_code();
    let out = JsonOut {
        status: match code {
            0 => "pass",
            1 => "fail",
            _ => "error",
        },
        exit_code: code,
        duration_s: r.duration_s,
        tests: r.results.len(),
        passed: r.count(Status::Pass),
        failed: r.failed(),
        errors: r.errors(),
        skipped: r.count(Status::Skipped),
        results: &r.results,
        advice: &r.advice,
        notes: &r.notes,
    };
    // Non-finite numbers serialize as null; nothing here can fail to encode.
    serde_json::to_string_pretty(&out).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

/// XML text/attribute escaping; characters XML 1.0 forbids are dropped.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

/// JUnit XML (valid against the Jenkins junit-10 / Ant schema; `<testsuites>` carries no
/// `skipped` count there, each `<testsuite>` does). `timestamp` is ISO 8601 without zone (e.g. "2026-05-01T12:00:00"), `hostname`
/// the machine's name: both are required by the Ant schema.
pub fn junit(r: &CheckReport, timestamp: &str, hostname: &str) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let n = |s: Status| r.count(s);
    let _ = writeln!(
        out,
        "<testsuites name=\"kvmprof check\" tests=\"{}\" failures=\"{}\" errors=\"{}\" time=\"{:.3}\">",
        r.results.len(),
        n(Status::Fail),
        n(Status::Error),
        r.duration_s
    );
    let mut vms: Vec<&str> = Vec::new();
    for x in &r.results {
        if !vms.contains(&x.vm.as_str()) {
            vms.push(&x.vm);
        }
    }
    for (id, vm) in vms.iter().enumerate() {
        let cases: Vec<&CheckResult> = r.results.iter().filter(|x| x.vm == *vm).collect();
        let c = |s: Status| cases.iter().filter(|x| x.status == s).count();
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" package=\"kvmprof\" id=\"{id}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{:.3}\" timestamp=\"{}\" hostname=\"{}\">",
            esc(vm),
            cases.len(),
            c(Status::Fail),
            c(Status::Error),
            c(Status::Skipped),
            r.duration_s,
            esc(timestamp),
            esc(hostname)
        );
        out.push_str("    <properties>\n");
        if let Some(pid) = cases.iter().find_map(|x| x.pid) {
            let _ = writeln!(out, "      <property name=\"pid\" value=\"{pid}\"/>");
        }
        let _ = writeln!(
            out,
            "      <property name=\"duration_s\" value=\"{:.3}\"/>",
            r.duration_s
        );
        out.push_str("    </properties>\n");
        for x in cases {
            let _ = write!(
                out,
                "    <testcase classname=\"{}\" name=\"{}\" time=\"0\"",
                esc(&x.vm),
                esc(&x.threshold)
            );
            let body = esc(&format!("{}; {}", verdict(x), x.detail));
            match x.status {
                Status::Pass => out.push_str("/>\n"),
                Status::Fail => {
                    let _ = writeln!(
                        out,
                        ">\n      <failure message=\"{}\" type=\"threshold\">{body}</failure>\n    </testcase>",
                        esc(&verdict(x))
                    );
                }
                Status::Skipped => {
                    let _ = writeln!(
                        out,
                        ">\n      <skipped message=\"{}\"/>\n    </testcase>",
                        esc(&x.detail)
                    );
                }
                Status::Error => {
                    let _ = writeln!(
                        out,
                        ">\n      <error message=\"{}\" type=\"could-not-measure\">{}</error>\n    </testcase>",
                        esc(&x.detail),
                        esc(&x.detail)
                    );
                }
            }
        }
        out.push_str("    <system-out/>\n    <system-err/>\n  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

/// `YYYY-MM-DDTHH:MM:SS` (UTC) of a wall-clock time, for [`junit`]'s `timestamp` (the epoch
/// for a time jiff cannot hold: before 1970 or past 9999).
pub fn timestamp_utc(t: std::time::SystemTime) -> String {
    jiff::Timestamp::try_from(t)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .strftime("%Y-%m-%dT%H:%M:%S")
        .to_string()
}
