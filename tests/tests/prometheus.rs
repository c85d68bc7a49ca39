//! The exporter scraped by a real Prometheus server (Debian's `prometheus`, which
//! `cargo xtask setup` installs; without it the tests fail saying so). Everything stays on loopback: the exporter listens on 127.0.0.1 (free port), and
//! Prometheus on 127.0.0.1 scrapes it every second; the test queries Prometheus's HTTP API and
//! compares with what the model (and so `kvmprof report`) computes for the same samples.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use kvmprof::{
    decode::ExitNames,
    export::{ExportOpts, ServeOpts, Server},
    model::compute,
    sample::{Key, ProgStat, Sample, SlowEvent, VmCpu, VmInfo},
    source::FakeSource,
};

const TOP: usize = 3;

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Debian's prometheus; a missing one fails the test with how to install it.
fn prometheus_bin() -> PathBuf {
    ["/usr/bin/prometheus", "/usr/local/bin/prometheus"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("prometheus is not installed: run `cargo xtask setup` (it installs Debian's prometheus)")
}

/// Kills Prometheus and removes its directory however the test ends.
struct Guard {
    child: Child,
    dir: PathBuf,
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Minimal HTTP/1.0 GET on loopback (no chunking: the server closes after the body).
fn get(addr: SocketAddr, path: &str) -> Option<String> {
    assert!(addr.ip().is_loopback(), "only loopback is ever queried");
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
}

/// What Prometheus 2.x asks for (and so gets: OpenMetrics).
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// GET /metrics with an optional Accept header → (headers, body).
fn scrape(addr: SocketAddr, accept: Option<&str>) -> (String, String) {
    assert!(addr.ip().is_loopback(), "only loopback is ever queried");
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let accept = accept.map_or(String::new(), |a| format!("Accept: {a}\r\n"));
    write!(s, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n{accept}\r\n").expect("request");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("response");
    let (head, body) = out.split_once("\r\n\r\n").expect("headers");
    (head.to_ascii_lowercase(), body.to_string())
}

/// promtool from Debian's prometheus package; a missing one fails the test (in CI too).
fn promtool() -> PathBuf {
    let p = prometheus_bin().with_file_name("promtool");
    assert!(
        p.exists(),
        "{} is missing: run `cargo xtask setup` (Debian's prometheus package has it)",
        p.display()
    );
    p
}

/// What `promtool check metrics` says of `text` (names, units, suffixes, help), line by line.
fn promtool_says(text: &str) -> Vec<String> {
    let mut lint = Command::new(promtool())
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start promtool");
    lint.stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let out = lint.wait_with_output().expect("promtool");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<String> = said
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(String::from)
        .collect();
    assert!(
        out.status.success() || !lines.is_empty(),
        "promtool failed without a word"
    );
    lines
}

/// Both formats of the exporter at `addr` through `promtool check metrics`: the text format
/// (what a scraper without an Accept header gets) without a single complaint; OpenMetrics
/// (what Prometheus asks for) with none but this: promtool 2.42 reads only the text format,
/// where HELP names the sample, so each counter whose OpenMetrics family has its HELP is
/// "no help text" there. Prometheus itself parses the OpenMetrics (the scrape tests' `up`).
fn promtool_passes_both_formats(addr: SocketAddr) {
    let (head, text) = scrape(addr, None);
    assert!(
        head.contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    assert!(
        text.contains("# TYPE kvmprof_samples_total counter"),
        "{text}"
    );
    let said = promtool_says(&text);
    assert!(
        said.is_empty(),
        "promtool check metrics (text 0.0.4): {said:?}\n{text}"
    );

    let (head, om) = scrape(addr, Some(PROMETHEUS_ACCEPT));
    assert!(
        head.contains("content-type: application/openmetrics-text; version=1.0.0"),
        "{head}"
    );
    assert!(om.ends_with("# EOF\n"), "{om}");
    let problems: Vec<String> = promtool_says(&om)
        .into_iter()
        .filter(|l| {
            let family = l
                .strip_suffix(" no help text")
                .and_then(|n| n.strip_suffix("_total"));
            !family.is_some_and(|f| om.contains(&format!("# HELP {f} ")))
        })
        .collect();
    assert!(
        problems.is_empty(),
        "promtool check metrics (OpenMetrics): {problems:?}"
    );
}

fn urlencode(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Instant query → [(labels, value)].
fn query(prom: SocketAddr, q: &str) -> Vec<(serde_json::Value, f64)> {
    let Some(body) = get(prom, &format!("/api/v1/query?query={}", urlencode(q))) else {
        return Vec::new();
    };
    let Ok(j) = serde_json::from_str::<serde_json::Value>(&body) else {
        return Vec::new();
    };
    j["data"]["result"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| {
                    let v = r["value"][1].as_str()?.parse().ok()?;
                    Some((r["metric"].clone(), v))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn key(tgid: u32, vcpu: u32, reason: u32) -> Key {
    Key {
        tgid,
        vcpu,
        isa: profiler_common::ISA_VMX,
        reason,
    }
}

fn bump(s: &mut Sample, k: Key, n: u64, ns: u64) {
    s.stats.entry(k).or_default().record(ns, n);
}

/// Three samples 1 s apart: VM "win11" with 5 reasons (IO spread over 1–9 µs for the quantile
/// check) and 340 ms of host CPU a second, 300 of them on its 2 vCPU threads (120 in the
/// guest); VM "db" with one reason and 1.21 s of CPU a second, its vCPU threads unknown.
fn samples() -> Vec<Sample> {
    let mut s = Sample {
        mono_ns: 50_000_000_000,
        wall_ms: 1_700_000_000_000,
        counters: vec![0; 9],
        progs: vec![ProgStat {
            name: "kvm_exit".into(),
            run_cnt: 0,
            run_time_ns: 0,
        }],
        ..Default::default()
    };
    for (pid, name) in [(10, "win11"), (20, "db")] {
        s.vms.insert(
            pid,
            VmInfo {
                pid,
                name: name.into(),
                ..Default::default()
            },
        );
    }
    bump(&mut s, key(10, 0, 30), 1, 1_000);
    let mut out = vec![s.clone()];
    for step in 1..=2u64 {
        s.mono_ns += 1_000_000_000;
        s.wall_ms += 1_000;
        for i in 0..1000u64 {
            bump(&mut s, key(10, i as u32 % 2, 30), 1, 1_000 + i * 8); // IO_INSTRUCTION
        }
        bump(&mut s, key(10, 0, 49), 400 * step, 800); // EPT_MISCONFIG
        bump(&mut s, key(10, 1, 10), 30, 60_000); // CPUID
        bump(&mut s, key(10, 1, 32), 7, 300_000); // MSR_WRITE
        bump(&mut s, key(10, 0, 12), 20, 3_000_000); // HLT
        bump(&mut s, key(20, 0, 30), 77, 4_000);
        s.progs[0].run_cnt += 5_000;
        s.progs[0].run_time_ns += 400_000;
        s.counters[1] += 2; // unpaired_exit
                            // A slow port write of win11 in each span: kvmprof_slow_exits_total is linted too.
        s.slow = vec![SlowEvent {
            exit_ns: s.mono_ns - 500_000_000,
            took_ns: 2_000_000,
            tgid: 10,
            isa: 1,
            reason: 30,
            ..Default::default()
        }];
        let ms = 1_000_000;
        s.vm_cpu.insert(
            10,
            VmCpu {
                total_ns: (9_000 + 340 * step) * ms,
                vcpu_ns: (7_000 + 300 * step) * ms,
                guest_ns: (5_000 + 120 * step) * ms,
                vcpu_threads: 2,
                vcpu_wait_ns: (2_000 + 50 * step) * ms,
                waited_threads: 2,
                ..Default::default()
            },
        );
        s.vm_cpu.insert(
            20,
            VmCpu {
                total_ns: (1_000 + 1_210 * step) * ms,
                ..Default::default()
            },
        );
        out.push(s.clone());
    }
    out
}

/// Prometheus on a free loopback port scraping `target` every second; killed by the guard.
fn start_prometheus(bin: &std::path::Path, target: SocketAddr, tag: &str) -> (Guard, SocketAddr) {
    let dir = std::env::temp_dir().join(format!("kvmprof-prom-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("data")).expect("temp dir");
    let cfg = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: kvmprof\n    scrape_interval: 1s\n    static_configs:\n      - targets: ['{target}']\n"
    );
    std::fs::write(dir.join("prometheus.yml"), cfg).expect("config");
    let prom: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let child = Command::new(bin)
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address={prom}"))
        .arg("--log.level=warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start prometheus");
    (Guard { child, dir }, prom)
}

#[test]
fn prometheus_scrapes_the_model_numbers() {
    let bin = prometheus_bin();
    let samples = samples();
    let names = ExitNames::builtin();
    let view = compute(&samples[0], &samples[2], &names);

    let opts = ServeOpts {
        listen: "127.0.0.1:0".parse().expect("addr"),
        interval: Duration::from_millis(50),
        export: ExportOpts {
            top_reasons: TOP,
            ..Default::default()
        },
        advice_window: None,
        ready_file: None,
        http: Default::default(),
    };
    let server = Server::start(Box::new(FakeSource::new(samples.clone())), opts).expect("exporter");
    let exporter = server.addr();

    let (_guard, prom) = start_prometheus(&bin, exporter, "model");

    // Up and scraped with the final values, within 60 s.
    let want_io = view.vms[0]
        .reasons
        .iter()
        .find(|r| r.name == "IO_INSTRUCTION")
        .expect("IO row")
        .count as f64;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let up = query(prom, "up{job=\"kvmprof\"}");
        let io = query(
            prom,
            "kvmprof_exits_total{domain=\"win11\",reason=\"IO_INSTRUCTION\"}",
        );
        if up.first().is_some_and(|u| u.1 == 1.0) && io.first().is_some_and(|v| v.1 == want_io) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus on {prom} did not scrape {exporter} within 60 s (up: {up:?}, io: {io:?})"
        );
        std::thread::sleep(Duration::from_millis(250));
    }

    // Every VM's counters equal the model's; beyond the top 3, reasons sum into "other".
    for vm in &view.vms {
        let got = query(
            prom,
            &format!("kvmprof_exits_total{{domain=\"{}\"}}", vm.name),
        );
        assert!(
            got.len() <= TOP + 1,
            "{}: {} series: {got:?}",
            vm.name,
            got.len()
        );
        let mut ranked: Vec<_> = vm.reasons.iter().filter(|r| r.count > 0).collect();
        ranked.sort_by(|a, b| b.count.cmp(&a.count).then(a.reason.cmp(&b.reason)));
        let (top, rest) = ranked.split_at(ranked.len().min(TOP));
        for r in top {
            let v = got.iter().find(|(l, _)| l["reason"] == r.name.as_str());
            assert_eq!(
                v.map(|x| x.1),
                Some(r.count as f64),
                "{} {}",
                vm.name,
                r.name
            );
            // No pid in the series (issue #16): it is in kvmprof_vm_info only.
            assert_eq!(v.map(|x| x.0.get("pid").is_none()), Some(true));
        }
        let other: u64 = rest.iter().map(|r| r.count).sum();
        let v = got
            .iter()
            .find(|(l, _)| l["reason"] == "other")
            .map(|x| x.1);
        assert_eq!(v.unwrap_or(0.0), other as f64, "{} other", vm.name);
        let total: f64 = got.iter().map(|x| x.1).sum();
        assert_eq!(total, vm.exits as f64, "{} total", vm.name);
        let info = query(prom, &format!("kvmprof_vm_info{{domain=\"{}\"}}", vm.name));
        assert_eq!(
            info.iter()
                .map(|(l, _)| l["pid"].as_str().unwrap_or("").to_string())
                .collect::<Vec<_>>(),
            [vm.pid.to_string()],
            "{}",
            vm.name
        );
    }

    // Cardinality: buckets = exit series × (21 bounds + +Inf); nothing unbounded.
    let exit_series = query(prom, "count(kvmprof_exits_total)")[0].1;
    let buckets = query(prom, "count(kvmprof_exit_handling_seconds_bucket)")[0].1;
    assert_eq!(buckets, exit_series * 22.0);
    let all = query(prom, "count({job=\"kvmprof\",__name__=~\"kvmprof_.*\"})")[0].1;
    // Per VM a fixed few more: info, busy time, vCPUs, host CPU by thread kind, guest time.
    let per_vm = 9.0 * view.vms.len() as f64;
    assert!(all <= exit_series * 25.0 + 20.0 + per_vm, "{all} series");

    // p99 from the re-bucketed histogram vs the model's (IO: 1–9 µs, p99 ≈ 9 µs): same 5–10 µs
    // bucket, within 25 %.
    let io = view.vms[0]
        .reasons
        .iter()
        .find(|r| r.name == "IO_INSTRUCTION")
        .expect("IO row");
    let q = query(
        prom,
        "histogram_quantile(0.99, kvmprof_exit_handling_seconds_bucket{domain=\"win11\",reason=\"IO_INSTRUCTION\"})",
    );
    let prom_p99 = q.first().map(|x| x.1).expect("quantile");
    let ours = io.p99_ns as f64 / 1e9;
    assert!((5e-6..=10e-6).contains(&prom_p99) && (5e-6..=10e-6).contains(&ours));
    assert!(
        (prom_p99 - ours).abs() / ours < 0.25,
        "prometheus {prom_p99} vs model {ours}"
    );

    // Host CPU per VM: the first step has no times before it, the second is split (win11) or
    // not (db); summed over `threads` it is the VM's total.
    let cpu = |vm: &str| {
        let mut v: Vec<(String, f64)> = query(
            prom,
            &format!("kvmprof_vm_cpu_seconds_total{{domain=\"{vm}\"}}"),
        )
        .into_iter()
        .map(|(l, v)| (l["threads"].as_str().unwrap_or("").to_string(), v))
        .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    let near = |got: &[(String, f64)], want: &[(&str, f64)]| {
        got.len() == want.len()
            && got
                .iter()
                .zip(want)
                .all(|((t, v), (wt, wv))| t == wt && (v - wv).abs() < 1e-9)
    };
    let win = cpu("win11");
    assert!(
        near(&win, &[("other", 0.04), ("vcpu", 0.3)]),
        "win11: {win:?}"
    );
    let db = cpu("db");
    assert!(
        near(&db, &[("other", 0.0), ("unknown", 1.21), ("vcpu", 0.0)]),
        "db: {db:?}"
    );
    let pct = query(
        prom,
        "sum by (domain) (kvmprof_vm_cpu_seconds_total{domain=\"win11\"})",
    );
    let guest = query(prom, "kvmprof_vm_guest_seconds_total{domain=\"win11\"}");
    assert!(
        guest.len() == 1 && (guest[0].1 - 0.12).abs() < 1e-9,
        "{guest:?}"
    );
    // vCPU run-queue wait: 50 ms a step over the one span with times on both sides.
    let wait = query(prom, "kvmprof_vm_vcpu_wait_seconds_total{domain=\"win11\"}");
    assert!(
        wait.len() == 1 && (wait[0].1 - 0.05).abs() < 1e-9,
        "{wait:?}"
    );
    // The model over the one span with times on both sides (1 s): % of a core = seconds × 100.
    let last = compute(&samples[1], &samples[2], &names);
    let model = last.vms[0].host_cpu.expect("model host CPU").total_pct;
    assert!(
        (pct[0].1 * 100.0 - model).abs() < 1e-6,
        "prometheus {pct:?} vs model {model}"
    );

    // promtool's own lint of both formats (names, units, suffixes, help).
    let (_, text) = scrape(exporter, None);
    assert!(text.contains("kvmprof_vm_cpu_seconds_total{"), "{text}");
    promtool_passes_both_formats(exporter);

    // Probe cost and drops.
    let runs = query(prom, "kvmprof_probe_runs_total{program=\"kvm_exit\"}");
    assert_eq!(runs.first().map(|x| x.1), Some(10_000.0));
    let lost = query(prom, "kvmprof_lost_events_total{kind=\"unpaired_exit\"}");
    assert_eq!(lost.first().map(|x| x.1), Some(4.0));
    println!(
        "prometheus: {exit_series} exit series, {all} kvmprof series; IO p99 prometheus {:.2} µs vs model {:.2} µs",
        prom_p99 * 1e6,
        ours * 1e6
    );
    server.stop();
}

/// Kills a child process however the test ends.
struct Kill(Child);

/// A child's stderr into `path`, for the message of a test that waited for it in vain.
fn err_file(path: &std::path::Path) -> Stdio {
    std::fs::File::create(path).map_or_else(|_| Stdio::null(), Stdio::from)
}

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The real `kvmprof serve` binary on the live host, scraped by Prometheus, while the built-in
/// guest makes a known number of port writes; `kvmprof report` runs alongside, and Prometheus's
/// counter must equal both the guest's count and report's. (This host's KVM returns every port
/// write to the VMM, so the count shows as userspace exits.)
#[test]
fn prometheus_scrapes_kvmprof_serve_and_agrees_with_report() {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    // The workspace test run builds every binary next to this test's own executable.
    let kvmprof = std::env::current_exe()
        .ok()
        .and_then(|p| Some(p.parent()?.parent()?.join("kvmprof")))
        .filter(|p| p.exists());
    let why = if !root || !kvmprof::probe::HAS_OBJECT {
        Some("needs root and the eBPF object (cargo xtask test)")
    } else if kvmprof.is_none() {
        Some("the kvmprof binary was not built next to this test (run the workspace tests)")
    } else {
        None
    };
    let (Some(kvmprof), None) = (kvmprof, why) else {
        let why = why.unwrap_or("the kvmprof binary is missing");
        assert!(
            !ci(),
            "CI=true and the live Prometheus test cannot run: {why}"
        );
        eprintln!("prometheus (live): not run: {why}");
        return;
    };
    let bin = prometheus_bin();
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("kvmprof-serve-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let ready = |n: &str| dir.join(n);
    let mut serve = Kill(
        Command::new(&kvmprof)
            .args([
                "serve",
                "--allow-concurrent",
                "-i",
                "100ms",
                "--no-advice",
                "--listen",
            ])
            .arg(format!("127.0.0.1:{port}"))
            .arg("--ready-file")
            .arg(ready("serve"))
            .stdout(Stdio::null())
            .stderr(err_file(&ready("serve.err")))
            .spawn()
            .expect("start kvmprof serve"),
    );
    let mut report = Command::new(&kvmprof)
        .args([
            "report",
            "--allow-concurrent",
            "-i",
            "100ms",
            "--until-signal",
            "--format",
            "json",
        ])
        .arg("--ready-file")
        .arg(ready("report"))
        .stdout(Stdio::piped())
        .stderr(err_file(&ready("report.err")))
        .spawn()
        .expect("start kvmprof report");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !(ready("serve").exists() && ready("report").exists()) {
        let ended = [serve.0.try_wait(), report.try_wait()].map(|r| r.ok().flatten());
        assert!(
            Instant::now() < deadline && ended == [None, None],
            "{kvmprof:?} serve/report not ready in 60 s or ended ({ended:?}); their stderr: {:?}, {:?}",
            std::fs::read_to_string(ready("serve.err")).unwrap_or_default(),
            std::fs::read_to_string(ready("report.err")).unwrap_or_default(),
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let exporter: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let (_guard, prom) = start_prometheus(&bin, exporter, "live");

    // Long enough (~1–2 s here) for discovery, sampling every 100 ms, to see it alive.
    let iters = 40_000u64;
    let ex = Command::new(&kvmprof)
        .args(["exercise", "--iters", &iters.to_string(), "--ops", "o"])
        .args(["--", "-name", "guest=prom-live-vm"])
        .output()
        .expect("run the exerciser");
    assert!(
        ex.status.success(),
        "exerciser: {}",
        String::from_utf8_lossy(&ex.stderr)
    );
    // SAFETY: kill(2) on our own child's pid; SIGINT makes report print and exit.
    unsafe { libc::kill(report.id() as i32, libc::SIGINT) };
    let out = report.wait_with_output().expect("report output");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("report JSON");
    let vm = json["vms"]
        .as_array()
        .and_then(|v| v.iter().find(|v| v["name"] == "prom-live-vm"))
        .unwrap_or_else(|| panic!("report has no prom-live-vm: {json}"));
    let report_io = vm["userspace"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["name"] == "KVM_EXIT_IO"))
        .and_then(|r| r["count"].as_u64())
        .unwrap_or(0);
    assert_eq!(report_io, iters, "report: KVM_EXIT_IO of the guest");

    let q = "sum(kvmprof_userspace_exits_total{domain=\"prom-live-vm\",reason=\"KVM_EXIT_IO\"})";
    let deadline = Instant::now() + Duration::from_secs(60);
    let got = loop {
        let v = query(prom, q).first().map(|x| x.1);
        if v == Some(iters as f64) {
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus never saw {iters} KVM_EXIT_IO for prom-live-vm (last: {v:?})"
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    println!("prometheus (live): {got:?} KVM_EXIT_IO = report {report_io} = guest {iters}");
    // One vCPU, whether this host's KVM emits kvm_exit or not (then its vCPU is the thread
    // returning to the VMM; issue #16 found `kvmprof_vcpus 0` there).
    let vcpus = query(prom, "kvmprof_vcpus{domain=\"prom-live-vm\"}");
    assert_eq!(vcpus.first().map(|x| x.1), Some(1.0), "{vcpus:?}");
    // The real `kvmprof serve`'s output, as it is on this host, through promtool.
    promtool_passes_both_formats(exporter);
    let _ = std::fs::remove_dir_all(&dir);
}
