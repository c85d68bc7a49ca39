//! Exposition values against the model, monotonicity, cardinality, escaping, the HTTP server.

use std::{
    collections::BTreeMap,
    io::{Read, Write},
    net::TcpStream,
    time::Duration,
};

use profiler_common::ISA_VMX;

use super::*;
use crate::{
    advice::{AdviceItem, AdviceSummary, Severity},
    decode::ExitNames,
    model::compute,
    sample::{Key, ProgStat, Sample, VmInfo},
    source::FakeSource,
};

const SEC: u64 = 1_000_000_000;

pub(super) type Series = BTreeMap<String, f64>;

/// `name{k="v",...} value` lines → "name{k=v,...}" (labels sorted) → value.
pub(super) fn parse(text: &str) -> Series {
    let mut out = Series::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (head, value) = line.rsplit_once(' ').expect("value");
        let (name, labels) = match head.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (head, ""),
        };
        let mut pairs = Vec::new();
        let mut chars = labels.chars().peekable();
        while chars.peek().is_some() {
            let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
            assert_eq!(chars.next(), Some('"'));
            let mut v = String::new();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some('n') => v.push('\n'),
                        Some(c) => v.push(c),
                        None => {}
                    },
                    '"' => break,
                    c => v.push(c),
                }
            }
            if chars.peek() == Some(&',') {
                chars.next();
            }
            pairs.push(format!("{key}={v}"));
        }
        pairs.sort();
        out.insert(
            format!("{name}{{{}}}", pairs.join(",")),
            value.parse().expect("number"),
        );
    }
    out
}

fn key(tgid: u32, vcpu: u32, reason: u32) -> Key {
    Key {
        tgid,
        vcpu,
        isa: ISA_VMX,
        reason,
    }
}

/// Adds `n` exits of `ns` to `k`.
fn bump(s: &mut Sample, k: Key, n: u64, ns: u64) {
    s.stats.entry(k).or_default().record(ns, n);
}

fn vm(s: &mut Sample, pid: u32, name: &str) {
    s.vms.insert(
        pid,
        VmInfo {
            pid,
            name: name.into(),
            ..Default::default()
        },
    );
}

/// Two samples 2 s apart: VM 10 "win11" with 5 reasons on 2 vCPUs, plus probe stats.
pub(super) fn pair() -> (Sample, Sample) {
    let mut a = Sample {
        mono_ns: 100 * SEC,
        wall_ms: 1_700_000_000_000,
        counters: vec![0; 9],
        progs: vec![ProgStat {
            name: "kvm_exit".into(),
            run_cnt: 10,
            run_time_ns: 1_000,
        }],
        ..Default::default()
    };
    vm(&mut a, 10, "win11");
    bump(&mut a, key(10, 0, 30), 5, 3_000);
    let mut b = a.clone();
    b.mono_ns = 102 * SEC;
    b.wall_ms += 2_000;
    bump(&mut b, key(10, 0, 30), 1000, 3_000); // IO_INSTRUCTION
    bump(&mut b, key(10, 1, 30), 500, 20_000);
    bump(&mut b, key(10, 0, 49), 300, 800); // EPT_MISCONFIG
    bump(&mut b, key(10, 1, 10), 20, 70_000); // CPUID
    bump(&mut b, key(10, 0, 12), 10, 2_000_000); // HLT
    bump(&mut b, key(10, 1, 32), 1, 400_000); // MSR_WRITE
    b.progs[0].run_cnt = 2_010;
    b.progs[0].run_time_ns = 201_000;
    b.counters[0] = 3; // orphan_entry
    (a, b)
}

#[test]
fn values_equal_the_model() {
    let (a, b) = pair();
    let names = ExitNames::builtin();
    let e = Exporter::from_pair(&a, &b, &names, ExportOpts::default());
    let text = e.render();
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert!(text.contains("# TYPE kvmprof_exit_handling_seconds histogram"));
    let m = parse(&text);
    // Series without labels carry no empty braces (`kvmprof_samples_total 2`).
    assert!(!text.contains("{}"), "{text}");
    assert!(text.contains("\nkvmprof_samples_total 2\n"), "{text}");
    let view = compute(&a, &b, &names);
    for r in &view.vms[0].reasons {
        let l = format!("domain=win11,isa=vmx,reason={}", r.name);
        assert_eq!(
            m[&format!("kvmprof_exits_total{{{l}}}")],
            r.count as f64,
            "{}",
            r.name
        );
        let count = m[&format!("kvmprof_exit_handling_seconds_count{{{l}}}")];
        assert_eq!(count, r.hist_total as f64);
        let sum = m[&format!("kvmprof_exit_handling_seconds_sum{{{l}}}")];
        assert!((sum - r.total_ns as f64 / 1e9).abs() < 1e-12);
        let l_inf = l.replace(",reason=", ",le=+Inf,reason=");
        let inf = m[&format!("kvmprof_exit_handling_seconds_bucket{{{l_inf}}}")];
        assert_eq!(inf, count);
    }
    // IO: 1000 × 3 µs (≤ 5 µs) and 500 × 20 µs (≤ 25 µs), cumulative.
    let b = |le: &str| {
        m[&format!(
            "kvmprof_exit_handling_seconds_bucket{{domain=win11,isa=vmx,le={le},reason=IO_INSTRUCTION}}"
        )]
    };
    assert_eq!(
        (b("0.0000025"), b("0.000005"), b("0.00001"), b("0.000025")),
        (0.0, 1000.0, 1000.0, 1500.0)
    );
    // Busy = non-HLT time: 3 ms + 10 ms + 0.24 ms + 1.4 ms + 0.4 ms.
    let busy = m["kvmprof_exit_busy_seconds_total{domain=win11}"];
    assert!((busy - 0.01504).abs() < 1e-12, "{busy}");
    assert_eq!(m["kvmprof_vcpus{domain=win11}"], 2.0);
    assert_eq!(m["kvmprof_probe_runs_total{program=kvm_exit}"], 2000.0);
    assert!((m["kvmprof_probe_run_seconds_total{program=kvm_exit}"] - 0.0002).abs() < 1e-12);
    assert_eq!(m["kvmprof_lost_events_total{kind=orphan_entry}"], 3.0);
    assert_eq!(m["kvmprof_samples_total{}"], 2.0);
    assert_eq!(
        m["kvmprof_last_sample_timestamp_seconds{}"],
        1_700_000_002.0
    );
}

#[test]
fn top_reasons_bound_cardinality_and_keep_totals() {
    let (a, b) = pair();
    let opts = ExportOpts {
        top_reasons: 2,
        ..Default::default()
    };
    let m = parse(&Exporter::from_pair(&a, &b, &ExitNames::builtin(), opts).render());
    let exits: Vec<(&String, &f64)> = m
        .iter()
        .filter(|(k, _)| k.starts_with("kvmprof_exits_total"))
        .collect();
    assert_eq!(exits.len(), 3, "{exits:?}");
    assert_eq!(exits.iter().map(|(_, v)| **v).sum::<f64>(), 1831.0);
    assert_eq!(
        m["kvmprof_exits_total{domain=win11,isa=vmx,reason=other}"],
        31.0
    );
    assert_eq!(
        m["kvmprof_exits_total{domain=win11,isa=vmx,reason=EPT_MISCONFIG}"],
        300.0
    );
    // Per vCPU: vcpu label added, same totals.
    let opts = ExportOpts {
        top_reasons: 2,
        per_vcpu: true,
        ..Default::default()
    };
    let m = parse(&Exporter::from_pair(&a, &b, &ExitNames::builtin(), opts).render());
    assert_eq!(
        m["kvmprof_exits_total{domain=win11,isa=vmx,reason=IO_INSTRUCTION,vcpu=1}"],
        500.0
    );
    let total: f64 = m
        .iter()
        .filter(|(k, _)| k.starts_with("kvmprof_exits_total"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(total, 1831.0);
}

#[test]
fn counters_stay_monotonic_when_keys_reset_and_vms_leave() {
    let names = ExitNames::builtin();
    let opts = ExportOpts {
        keep_exited: Duration::from_secs(5),
        ..Default::default()
    };
    let mut e = Exporter::new(names, opts);
    let mut s = Sample {
        mono_ns: 100 * SEC,
        ..Default::default()
    };
    vm(&mut s, 10, "a");
    vm(&mut s, 20, "b");
    bump(&mut s, key(10, 0, 30), 10, 1_000);
    bump(&mut s, key(20, 0, 30), 10, 1_000);
    e.observe(s.clone());
    let mut last = Series::new();
    let mut check = |e: &Exporter, step: &str| {
        let m = parse(&e.render());
        for (k, v) in &last {
            if k.contains("_total") || k.contains("_bucket") || k.contains("_count") {
                if let Some(now) = m.get(k) {
                    assert!(now >= v, "{step}: {k} went {v} → {now}");
                }
            }
        }
        last = m.clone();
        m
    };
    let a = "kvmprof_exits_total{domain=a,isa=vmx,reason=IO_INSTRUCTION}";
    let b = "kvmprof_exits_total{domain=b,isa=vmx,reason=IO_INSTRUCTION}";
    // t=101: +5 each.
    s.mono_ns += SEC;
    bump(&mut s, key(10, 0, 30), 5, 1_000);
    bump(&mut s, key(20, 0, 30), 5, 1_000);
    e.observe(s.clone());
    let m = check(&e, "grow");
    assert_eq!((m[a], m[b]), (5.0, 5.0));
    // t=102: VM a's key was evicted and recreated with 2 exits; VM b pruned from the maps.
    s.mono_ns += SEC;
    s.stats.remove(&key(10, 0, 30));
    bump(&mut s, key(10, 0, 30), 2, 1_000);
    s.stats.remove(&key(20, 0, 30));
    s.vms.remove(&20);
    e.observe(s.clone());
    let m = check(&e, "reset+prune");
    assert_eq!((m[a], m[b]), (7.0, 5.0));
    // VM b stays exported with its last values until keep_exited (5 s) passes.
    for _ in 0..4 {
        s.mono_ns += SEC;
        e.observe(s.clone());
        assert_eq!(check(&e, "kept")[b], 5.0);
    }
    s.mono_ns += 2 * SEC;
    e.observe(s.clone());
    let m = check(&e, "expired");
    assert!(!m.contains_key(b) && m.contains_key(a));
}

#[test]
fn labels_are_escaped_and_advice_is_a_gauge() {
    let (mut a, mut b) = pair();
    let name = "we\"ird\\vm\nx";
    vm(&mut a, 10, name);
    vm(&mut b, 10, name);
    let mut e = Exporter::from_pair(&a, &b, &ExitNames::builtin(), ExportOpts::default());
    e.set_advice(&AdviceSummary {
        findings: vec![AdviceItem {
            pid: 10,
            vm: name.into(),
            rule: "R07".into(),
            severity: Severity::Critical,
            title: "t".into(),
        }],
    });
    let text = e.render();
    assert!(text.contains("domain=\"we\\\"ird\\\\vm\\nx\""), "{text}");
    let m = parse(&text);
    assert_eq!(
        m[&format!("kvmprof_advice_findings{{domain={name},rule=R07,severity=critical}}")],
        1.0
    );
}

#[test]
fn rebucketing_uses_bucket_midpoints() {
    let mut h = crate::sample::Hist::default();
    h.record(100, 1); // exact below 8 ns..: 100 ns → ≤ 250 ns
    h.record(1_000, 2); // ≤ 1 µs (midpoint 992)
    h.record(2_000_000_000, 1); // > 1 s → +Inf
    let b = rebucket(&h);
    assert_eq!(b.len(), LE_NS.len() + 1);
    assert_eq!((b[0].1, b[2].1, b[LE_NS.len()].1), (1, 2, 1));
    assert_eq!(b[LE_NS.len()].0, f64::MAX);
    assert_eq!(b.iter().map(|x| x.1).sum::<u64>(), 4);
}

fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

#[test]
fn server_serves_metrics_on_loopback_and_stops() {
    let (a, b) = pair();
    let src = FakeSource::new(vec![a, b]);
    let opts = ServeOpts {
        listen: "127.0.0.1:0".parse().unwrap(),
        interval: Duration::from_millis(20),
        advice_window: None,
        ..Default::default()
    };
    let server = Server::start(Box::new(src), opts).expect("start");
    let addr = server.addr();
    assert!(addr.ip().is_loopback());
    let mut body = String::new();
    for _ in 0..100 {
        body = http_get(addr, "/metrics");
        if body.contains("kvmprof_exits_total{") {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(body.contains("text/plain; version=0.0.4"), "{body}");
    assert!(body.contains("reason=\"IO_INSTRUCTION\"} 1500"), "{body}");
    assert!(http_get(addr, "/nope").starts_with("HTTP/1.1 404"));
    server.stop();
    // Stopped: nothing answers any more.
    let answered = TcpStream::connect(addr).is_ok_and(|mut s| {
        s.set_read_timeout(Some(Duration::from_secs(2))).ok();
        let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        let mut buf = [0u8; 16];
        s.read(&mut buf).is_ok_and(|n| n > 0)
    });
    assert!(!answered);
}

#[test]
fn a_taken_port_is_a_one_line_error() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let opts = ServeOpts {
        listen: l.local_addr().unwrap(),
        ..Default::default()
    };
    let e = Server::start(Box::new(FakeSource::new(vec![])), opts)
        .err()
        .expect("bind fails")
        .to_string();
    assert!(
        e.contains("cannot listen on 127.0.0.1:") && e.contains("--listen"),
        "{e}"
    );
    assert!(!e.contains('\n'));
}

/// Where the kernel split exit times, each reason's wait for a CPU and sleep are counters;
/// where it did not, the families are absent (unknown, not 0).
#[test]
fn the_time_split_is_exported_only_where_measured() {
    let (a, mut b) = pair();
    let names = ExitNames::builtin();
    let m = parse(&Exporter::from_pair(&a, &b, &names, ExportOpts::default()).render());
    assert!(
        !m.keys().any(|k| k.starts_with("kvmprof_exit_wait")),
        "{m:?}"
    );
    let hlt = b.stats.get_mut(&key(10, 0, 12)).unwrap();
    (hlt.wait_ns, hlt.blocked_ns) = (1_500_000, 16_000_000);
    let a = {
        let mut a = a;
        a.progs.push(ProgStat {
            name: "sched_switch".into(),
            ..Default::default()
        });
        a
    };
    b.progs.push(ProgStat {
        name: "sched_switch".into(),
        run_cnt: 5,
        run_time_ns: 100,
    });
    let text = Exporter::from_pair(&a, &b, &names, ExportOpts::default()).render();
    assert!(
        text.contains("# TYPE kvmprof_exit_wait_seconds counter"),
        "{text}"
    );
    let m = parse(&text);
    assert_eq!(
        m["kvmprof_exit_wait_seconds_total{domain=win11,isa=vmx,reason=HLT}"],
        0.0015
    );
    assert_eq!(
        m["kvmprof_exit_asleep_seconds_total{domain=win11,isa=vmx,reason=HLT}"],
        0.016
    );
    assert_eq!(
        m["kvmprof_exit_wait_seconds_total{domain=win11,isa=vmx,reason=IO_INSTRUCTION}"],
        0.0
    );
}
