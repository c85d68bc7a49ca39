//! The two formats (issue #16): negotiation, the 0.0.4 text against OpenMetrics, and the
//! series per VM that README.md states for each setting.

use std::{
    io::{Read, Write},
    net::TcpStream,
    time::{Duration, Instant},
};

use profiler_common::{ISA_USERSPACE, ISA_VMX};

use super::tests::{pair, parse};
use super::*;
use crate::{
    decode::ExitNames,
    sample::{EvKey, Key, SlowEvent, ThreadCpu, Threads, VmCpu, VmInfo},
    source::FakeSource,
};

/// What Prometheus 2.x sends.
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

#[test]
fn openmetrics_only_when_the_accept_header_asks_for_it() {
    use Format::{OpenMetrics as Om, Prometheus as Text};
    for (accept, want) in [
        (None, Text),
        (Some(""), Text),
        (Some("*/*"), Text),
        (Some("text/plain;version=0.0.4"), Text),
        (Some(PROMETHEUS_ACCEPT), Om),
        (Some("application/openmetrics-text"), Om),
        (Some("Application/OpenMetrics-Text; version=1.0.0"), Om),
        (
            Some("text/plain;q=0.5, application/openmetrics-text;q=0.6"),
            Om,
        ),
        // Asked for, but less than the text format, or not at all, or a version we do not write.
        (
            Some("application/openmetrics-text;q=0.2,text/plain;q=0.5"),
            Text,
        ),
        (Some("application/openmetrics-text;q=0"), Text),
        (Some("application/openmetrics-text;q=bogus"), Text),
        (Some("application/openmetrics-text;version=2.0.0"), Text),
        (Some("application/json"), Text),
    ] {
        assert_eq!(Format::negotiate(accept), want, "{accept:?}");
    }
}

/// The 0.0.4 text names each sample in HELP and TYPE, has no UNIT and no EOF, and holds the
/// same series and values as the OpenMetrics text.
#[test]
fn text_format_has_the_openmetrics_series() {
    let (a, b) = pair();
    let e = Exporter::from_pair(&a, &b, &ExitNames::builtin(), ExportOpts::default());
    let (text, om) = (e.render_text(), e.render());
    for want in [
        "# HELP kvmprof_exits_total VM exits by reason\n# TYPE kvmprof_exits_total counter\n",
        "# TYPE kvmprof_exit_handling_seconds histogram\n",
        "# TYPE kvmprof_exit_busy_seconds_total counter\n",
        "# TYPE kvmprof_vcpus gauge\n",
        "\nkvmprof_samples_total 2\n",
        "le=\"+Inf\"} 1500\n",
    ] {
        assert!(text.contains(want), "{want:?} in\n{text}");
    }
    assert!(
        !text.contains("# EOF") && !text.contains("# UNIT"),
        "{text}"
    );
    assert!(om.ends_with("# EOF\n") && om.contains("# TYPE kvmprof_exits counter"));
    assert_eq!(parse(&text), parse(&om));
}

fn get(addr: std::net::SocketAddr, accept: Option<&str>) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let accept = accept.map_or(String::new(), |a| format!("Accept: {a}\r\n"));
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: x\r\n{accept}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

#[test]
fn the_server_answers_the_format_asked_for() {
    let (a, b) = pair();
    let opts = ServeOpts {
        listen: "127.0.0.1:0".parse().unwrap(),
        interval: Duration::from_millis(20),
        advice_window: None,
        ..Default::default()
    };
    let server = Server::start(Box::new(FakeSource::new(vec![a, b])), opts).expect("start");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !get(server.addr(), None).contains("kvmprof_exits_total{") {
        assert!(Instant::now() < deadline, "no metrics");
        std::thread::sleep(Duration::from_millis(20));
    }
    let text = get(server.addr(), None);
    let (head, body) = text.split_once("\r\n\r\n").expect("response");
    let head = head.to_ascii_lowercase();
    assert!(
        head.contains("content-type: text/plain; version=0.0.4; charset=utf-8"),
        "{head}"
    );
    assert!(head.contains("vary: accept"), "{head}");
    assert!(!body.contains("# EOF"), "{body}");
    let om = get(server.addr(), Some(PROMETHEUS_ACCEPT));
    let (om_head, om_body) = om.split_once("\r\n\r\n").expect("response");
    assert!(
        om_head
            .to_ascii_lowercase()
            .contains("content-type: application/openmetrics-text; version=1.0.0; charset=utf-8"),
        "{om_head}"
    );
    assert!(om_body.ends_with("# EOF\n"), "{om_body}");
    assert_eq!(parse(body), parse(om_body));
    server.stop();
}

const MS: u64 = 1_000_000;

/// VM "big" at its largest: `v` vCPUs with 12 reasons each, 3 kinds of returns to the VMM, a
/// CPU split then an unsplit span, 12 addresses of each access kind, and a slow exit of each
/// reason in every span; four samples.
fn saturated(v: u32) -> Vec<Sample> {
    let mut s = Sample {
        mono_ns: 10_000 * MS,
        ..Default::default()
    };
    s.vms.insert(
        10,
        VmInfo {
            pid: 10,
            name: "big".into(),
            uuid: Some("6b1f0c7e-1d2a-4a57-9c1e-0a4f3b9d1e22".into()),
            ..Default::default()
        },
    );
    let mut out = vec![s.clone()];
    for step in 1..=3u64 {
        s.mono_ns += 1_000 * MS;
        for vcpu in 0..v {
            for (i, reason) in [0, 1, 7, 10, 12, 28, 30, 31, 32, 48, 49, 54]
                .iter()
                .enumerate()
            {
                let k = Key {
                    tgid: 10,
                    vcpu,
                    isa: ISA_VMX,
                    reason: *reason,
                };
                s.stats
                    .entry(k)
                    .or_default()
                    .record(1_000 << i, 100 - i as u64);
            }
        }
        s.slow = [0, 1, 7, 10, 12, 28, 30, 31, 32, 48, 49, 54]
            .iter()
            .map(|&reason| SlowEvent {
                exit_ns: s.mono_ns - 500 * MS + u64::from(reason),
                took_ns: MS,
                tgid: 10,
                isa: ISA_VMX,
                reason,
                ..Default::default()
            })
            .collect();
        for (tid, reason) in [(11, 2), (11, 6), (12, 5)] {
            let k = Key {
                tgid: 10,
                vcpu: tid,
                isa: ISA_USERSPACE,
                reason,
            };
            s.stats.entry(k).or_default().record(5_000, 10);
        }
        for (kind, _) in access::KINDS {
            for a in 0..12u64 {
                let k = EvKey {
                    tgid: 10,
                    kind,
                    flags: 0,
                    a: 0x100 + a,
                };
                let e = s.evidence.entry(k).or_default();
                e.count += 20 - a;
            }
        }
        // None before the first; split in the second span, not in the third (the vCPU
        // threads changed).
        s.vm_cpu.insert(
            10,
            VmCpu {
                total_ns: 1_000 * step * MS,
                vcpu_ns: 800 * step * MS,
                guest_ns: 500 * step * MS,
                vcpu_threads: if step == 3 { v + 1 } else { v },
                vcpu_wait_ns: 10 * step * MS,
                waited_threads: v,
                vhost: Threads {
                    cpu_ns: 200 * step * MS,
                    wait_ns: 5 * step * MS,
                    threads: 2,
                    waited: 2,
                },
                vhost_in_total_ns: 0,
                vcpus: (0..v)
                    .map(|n| {
                        let t = ThreadCpu {
                            cpu_ns: 200 * step * MS,
                            wait_ns: Some(3 * step * MS),
                        };
                        (n, t)
                    })
                    .collect(),
            },
        );
        out.push(s.clone());
    }
    out
}

fn series_of_big(opts: ExportOpts, v: u32) -> usize {
    let mut e = Exporter::new(ExitNames::builtin(), opts);
    for s in saturated(v) {
        e.observe(s);
    }
    let (text, om) = (e.render_text(), e.render());
    let count = |t: &str| {
        t.lines()
            .filter(|l| !l.starts_with('#') && l.contains("domain=\"big\""))
            .count()
    };
    assert_eq!(count(&text), count(&om), "same series in both formats");
    count(&text)
}

/// README.md's table of series per VM: its formulas and its numbers for N = 10, V = 4, U = 3
/// are what the exporter writes for a VM with more reasons and addresses than named ones.
#[test]
fn series_per_vm_are_as_the_readme_states() {
    let readme = include_str!("../../../README.md");
    let opts = |n: usize, per_vcpu: bool, sub_reasons: bool| ExportOpts {
        top_reasons: n,
        per_vcpu,
        sub_reasons,
        ..Default::default()
    };
    // (README row, formula: N named reasons, V vCPUs, U kinds of returns to the VMM)
    type F = fn(usize, usize, usize) -> usize;
    let rows: [(&str, bool, bool, F); 4] = [
        ("| (default) |", false, false, |n, _, u| {
            26 * (n + 1) + 10 + 2 * u
        }),
        ("| `--per-vcpu` |", true, false, |n, v, u| {
            25 * (n + 1) * v + (n + 1) + 2 * v + 10 + 2 * u
        }),
        ("| `--sub-reasons` |", false, true, |n, _, u| {
            32 * (n + 1) + 10 + 2 * u
        }),
        ("| `--per-vcpu --sub-reasons` |", true, true, |n, v, u| {
            25 * (n + 1) * v + 7 * (n + 1) + 2 * v + 10 + 2 * u
        }),
    ];
    for (row, per_vcpu, sub, formula) in rows {
        let line = readme
            .lines()
            .find(|l| l.starts_with(row))
            .unwrap_or_else(|| panic!("README.md has no row {row}"));
        let stated: usize = line
            .trim_end_matches('|')
            .rsplit('|')
            .next()
            .and_then(|c| c.trim().parse().ok())
            .unwrap_or_else(|| panic!("no count in {line}"));
        let got = series_of_big(opts(10, per_vcpu, sub), 4);
        assert_eq!(got, stated, "{row} (N = 10, V = 4, U = 3)");
        assert_eq!(got, formula(10, 4, 3), "{row}: formula");
        // And the formula holds elsewhere too.
        assert_eq!(
            series_of_big(opts(3, per_vcpu, sub), 2),
            formula(3, 2, 3),
            "{row} N = 3, V = 2"
        );
    }
}
