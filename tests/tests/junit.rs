//! `kvmprof check --junit` read by real consumers: xmllint validates it against a JUnit XSD
//! (written after the Jenkins xunit / Ant junit schema), and Python's junitparser must count the
//! same tests, failures, errors and skipped as the report, with names and classnames intact.
//! `cargo xtask setup` installs both; without them the test fails saying so.

use std::{path::PathBuf, process::Command};

use kvmprof::{
    check::{self, CheckReport, Status, Thresholds},
    decode::ExitNames,
    model::{compute, View},
    sample::{Key, Sample, VmInfo},
};

/// JUnit as Jenkins and Ant read it, restricted to what kvmprof writes: one `<testsuite>` per
/// VM with its counts, `<testcase>` with at most one failure / error / skipped each.
const XSD: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">
  <xs:simpleType name="count"><xs:restriction base="xs:nonNegativeInteger"/></xs:simpleType>
  <xs:simpleType name="seconds">
    <xs:restriction base="xs:decimal"><xs:minInclusive value="0"/></xs:restriction>
  </xs:simpleType>
  <xs:complexType name="outcome" mixed="true">
    <xs:attribute name="message" type="xs:string"/>
    <xs:attribute name="type" type="xs:string"/>
  </xs:complexType>
  <xs:element name="testsuites">
    <xs:complexType>
      <xs:sequence>
        <xs:element ref="testsuite" minOccurs="0" maxOccurs="unbounded"/>
      </xs:sequence>
      <xs:attribute name="name" type="xs:string"/>
      <xs:attribute name="tests" type="count"/>
      <xs:attribute name="failures" type="count"/>
      <xs:attribute name="errors" type="count"/>
      <xs:attribute name="time" type="seconds"/>
    </xs:complexType>
  </xs:element>
  <xs:element name="testsuite">
    <xs:complexType>
      <xs:sequence>
        <xs:element name="properties" minOccurs="0">
          <xs:complexType>
            <xs:sequence>
              <xs:element name="property" minOccurs="0" maxOccurs="unbounded">
                <xs:complexType>
                  <xs:attribute name="name" type="xs:string" use="required"/>
                  <xs:attribute name="value" type="xs:string" use="required"/>
                </xs:complexType>
              </xs:element>
            </xs:sequence>
          </xs:complexType>
        </xs:element>
        <xs:element name="testcase" minOccurs="0" maxOccurs="unbounded">
          <xs:complexType>
            <xs:choice minOccurs="0">
              <xs:element name="failure" type="outcome"/>
              <xs:element name="error" type="outcome"/>
              <xs:element name="skipped" type="outcome"/>
            </xs:choice>
            <xs:attribute name="name" type="xs:string" use="required"/>
            <xs:attribute name="classname" type="xs:string" use="required"/>
            <xs:attribute name="time" type="seconds" use="required"/>
          </xs:complexType>
        </xs:element>
        <xs:element name="system-out" type="xs:string" minOccurs="0"/>
        <xs:element name="system-err" type="xs:string" minOccurs="0"/>
      </xs:sequence>
      <xs:attribute name="name" type="xs:string" use="required"/>
      <xs:attribute name="tests" type="count" use="required"/>
      <xs:attribute name="failures" type="count" use="required"/>
      <xs:attribute name="errors" type="count" use="required"/>
      <xs:attribute name="skipped" type="count"/>
      <xs:attribute name="time" type="seconds"/>
      <xs:attribute name="timestamp" type="xs:dateTime" use="required"/>
      <xs:attribute name="hostname" type="xs:string" use="required"/>
      <xs:attribute name="id" type="xs:string"/>
      <xs:attribute name="package" type="xs:string"/>
    </xs:complexType>
  </xs:element>
</xs:schema>
"#;

/// Reads the file back with junitparser: per-suite attributes and per-case outcomes.
const PARSE_PY: &str = r#"
import json, sys
from junitparser import JUnitXml
xml = JUnitXml.fromfile(sys.argv[1])
out = {"tests": xml.tests, "failures": xml.failures, "errors": xml.errors, "suites": [], "cases": []}
for suite in xml:
    out["suites"].append({"name": suite.name, "tests": suite.tests, "failures": suite.failures,
                          "errors": suite.errors, "skipped": suite.skipped})
    for case in suite:
        out["cases"].append({"classname": case.classname, "name": case.name,
                             "result": [type(r).__name__.lower() for r in case.result],
                             "message": [r.message for r in case.result]})
print(json.dumps(out))
"#;

fn ok(cmd: &mut Command) -> bool {
    cmd.output().is_ok_and(|o| o.status.success())
}

/// Fails the test when a tool it checks the output with is missing, saying how to get it.
fn require(present: bool, what: &str) {
    assert!(
        present,
        "{what} is missing: run `cargo xtask setup` (it installs the tools the tests use)"
    );
}

const MS: u64 = 1_000_000;

fn step(base: &Sample, mono_ms: u64, add: &[(u32, &str, u32, u32, u64, u64)]) -> Sample {
    let mut s = base.clone();
    s.mono_ns = mono_ms * MS;
    for &(pid, name, vcpu, reason, n, ns) in add {
        let k = Key {
            tgid: pid,
            vcpu,
            isa: profiler_common::ISA_VMX,
            reason,
        };
        s.stats.entry(k).or_default().record(ns, n);
        s.vms.insert(
            pid,
            VmInfo {
                pid,
                name: name.into(),
                ..Default::default()
            },
        );
    }
    s
}

/// Two VMs (one with a name that needs escaping), ten 100 ms intervals, and thresholds that
/// pass, fail, skip and cannot be measured.
fn report() -> CheckReport {
    let odd = "win<11> & \"co\" 'x'";
    let names = ExitNames::builtin();
    let mut samples = vec![step(
        &Sample::default(),
        1_000,
        &[(10, odd, 0, 49, 1, 1_000), (20, "db", 0, 30, 1, 1_000)],
    )];
    for i in 1..=10u64 {
        let prev = samples.last().unwrap_or(&samples[0]).clone();
        let burst = if i == 4 { 2_000 } else { 100 };
        samples.push(step(
            &prev,
            1_000 + i * 100,
            &[
                (10, odd, 0, 49, burst, 2_000),
                (10, odd, 1, 30, 50, 30_000),
                (20, "db", 0, 30, 20, 5_000),
            ],
        ));
        // The burst's slow exits: the slow-exit thresholds are in the file too.
        if i == 4 {
            let s = samples.last_mut().expect("pushed");
            s.slow = (0..3)
                .map(|n| kvmprof::sample::SlowEvent {
                    exit_ns: s.mono_ns - 50_000_000 + n,
                    took_ns: 2_000_000,
                    tgid: 10,
                    isa: 1,
                    reason: 49,
                    ..Default::default()
                })
                .collect();
        }
    }
    let series: Vec<View> = samples
        .windows(2)
        .map(|w| compute(&w[0], &w[1], &names))
        .collect();
    let view = compute(&samples[0], &samples[10], &names);
    let mut t = Thresholds::default();
    for f in [
        "max_overhead_pct=5",
        "max_storm_exits_per_s=10000",
        "EPT_MISCONFIG.max_per_s=5000",
        "CPUID.max_p99_us=10",
        "fail_on=critical",
        "max_slow_per_s=2",
        "max_slow_dropped=0",
    ] {
        t.set(f).expect("valid flag");
    }
    let vms =
        [odd, "db", "missing-vm"].map(|v| kvmprof::model::VmSelector::parse(v).expect("selector"));
    let slow = check::SlowCounts::of(&samples);
    check::evaluate(&view, &series, &t, &vms, None, Some(&slow))
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kvmprof-junit-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&d);
    d.join(name)
}

#[test]
fn junit_is_valid_and_counts_match_a_real_parser() {
    let r = report();
    // Every outcome kind is present, so every JUnit element is exercised.
    for s in [Status::Pass, Status::Fail, Status::Skipped, Status::Error] {
        assert!(r.count(s) > 0, "fixture lacks {s:?}: {r:#?}");
    }
    let xml = check::junit(&r, "2026-01-02T03:04:05", "host<1>");
    let (xml_path, xsd_path) = (tmp("report.xml"), tmp("junit.xsd"));
    std::fs::write(&xml_path, &xml).expect("write xml");
    std::fs::write(&xsd_path, XSD).expect("write xsd");

    require(
        ok(Command::new("xmllint").arg("--version")),
        "xmllint (Debian's libxml2-utils)",
    );
    let out = Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(&xsd_path)
        .arg(&xml_path)
        .output()
        .expect("run xmllint");
    assert!(
        out.status.success(),
        "xmllint rejected the JUnit file: {}\n{xml}",
        String::from_utf8_lossy(&out.stderr)
    );

    require(
        ok(Command::new("python3").args(["-c", "import junitparser"])),
        "python3 with junitparser",
    );
    let out = Command::new("python3")
        .args(["-c", PARSE_PY])
        .arg(&xml_path)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "junitparser failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let n = |v: &serde_json::Value| v.as_u64().unwrap_or(u64::MAX) as usize;
    assert_eq!(n(&j["tests"]), r.results.len());
    assert_eq!(n(&j["failures"]), r.count(Status::Fail));
    assert_eq!(n(&j["errors"]), r.count(Status::Error));
    let suites = j["suites"].as_array().expect("suites");
    assert_eq!(suites.len(), 3, "one suite per VM: {suites:?}");
    let skipped: usize = suites.iter().map(|s| n(&s["skipped"])).sum();
    assert_eq!(skipped, r.count(Status::Skipped));

    let cases = j["cases"].as_array().expect("cases");
    assert_eq!(cases.len(), r.results.len());
    for (c, x) in cases.iter().zip(&r.results) {
        assert_eq!(
            c["classname"],
            x.vm.as_str(),
            "classname is the VM name, unescaped"
        );
        assert_eq!(c["name"], x.threshold.as_str());
        let want: Vec<&str> = match x.status {
            Status::Pass => vec![],
            Status::Fail => vec!["failure"],
            Status::Error => vec!["error"],
            Status::Skipped => vec!["skipped"],
        };
        let got: Vec<&str> = c["result"]
            .as_array()
            .expect("result")
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        assert_eq!(got, want, "{} / {}", x.vm, x.threshold);
    }
    println!("{xml}");
    let _ = std::fs::remove_dir_all(xml_path.parent().unwrap_or(&xml_path));
}
