//! kvmprof against perf itself on the same real exits. Inside the nested-SVM guest,
//! `perf kvm stat record -a` and `kvmprof record` were both attached before the exerciser
//! started and stopped after it ended (tests/vm/init.sh, perf_run), so each saw the whole life of
//! that VM process. Here, on the host:
//!
//! 1. perf's `perf kvm stat report --stdio --event vmexit --pid <exerciser>` against kvmprof's
//!    classic table of its recording for the same pid, row by row: the same reasons and exactly
//!    the same counts, both equal to the guest kernel's hist trigger on kvm_exit; and the
//!    median and 90th percentile of each reason's handling time, perf's exactly from its own
//!    events (`perf script`), kvmprof's from its histogram, within a stated tolerance (see
//!    `QUANTILE_TOLERANCE`).
//! 2. perf's own text of every `--event` (an empty MMIO table too), imported by kvmprof and
//!    printed again in the classic layout, equals perf's text digit for digit.
//! 3. perf 6.12's report screen of the guest's perf.data (captured on the host by
//!    xtask/src/perf612.rs: `perf612_<event>.screen`) against kvmprof's `--perf-layout 6.4` of
//!    perf 6.1's classic text of the same exits, row by row (`report::perf_screen`).
//!
//! The run itself is `cargo xtask vm-test` (KVMPROF_VM_OUT).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::{bail, ensure, Context, Result};
use kvmprof::{
    model::VmSelector,
    report::{self, Data, Event, PerfLayout, TableOptions},
    session::Session,
};
use kvmprof_tests::{parse_hist, parse_result_line, read_file};

const SVM: u64 = 2;
const HLT: u64 = 0x78;

/// How far kvmprof's quantiles of a reason's handling time may be from perf's, as a fraction of
/// perf's. perf's come exactly from its own events (`perf script` of its recording: each
/// kvm_exit→kvm_entry pair of a thread, as `perf kvm stat` pairs them); kvmprof's from its
/// histogram, whose bucket midpoint is within 1/16 of any value in the bucket. Both read the same
/// clock: perf records with `-k mono` (CLOCK_MONOTONIC, what bpf_ktime_get_ns reads; checked in
/// its header). Its default, sched_clock, counts the TSC at the rate calibrated at boot, and on
/// the 6.1 guest (clocksource hpet) that rate was once 24 % off: every median that far apart in
/// one CI run. Beyond that, the
/// two tools time each hit at different instants: the kernel runs kvmprof's BPF program (which
/// reads the clock first) before it hands the event to perf, which reads its own clock
/// (local_clock) only while writing its sample. So perf's time of an exit is kvmprof's plus
/// (perf's delay after kvmprof's clock read at kvm_entry) minus (the same at kvm_exit): a few µs,
/// emulated by TCG like the exit handling itself (medians 2–6 % apart in the runs before this
/// check). 1/16 + 15 % covers both.
///
/// Quantiles, not means: QEMU's one thread is descheduled now and then on the shared 2-core host
/// (Max Time ~5–10 ms), and a stall that falls between the two tools' clock reads lands in one
/// tool's time only. A handful of those among 2000 exits moves a mean by 30 % (cpuid on 6.1 in
/// a CI run: 42.41 vs 62.17 µs) but not a median or a 90th percentile. Only reasons with at
/// least `MIN_EXITS` exits are compared: the exerciser's own (2000 exits and more each).
const QUANTILE_TOLERANCE: f64 = 1.0 / 16.0 + 0.15;
const QUANTILES: [f64; 2] = [0.5, 0.9];
const MIN_EXITS: usize = 1000;

/// One row of perf's classic table: `name count s% t% min max avg ( +- x% )`.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    count: u64,
    mean_us: f64,
}

/// The rows of the first classic table in `text` (an independent reading, not kvmprof's
/// importer: name, Samples, Samples%, Time%, Min, Max, Avg).
fn rows(text: &str) -> Result<BTreeMap<String, Row>> {
    let mut lines = text.lines().skip_while(|l| !l.contains("Samples%"));
    ensure!(
        lines.next().is_some(),
        "no table header (Samples%) in:\n{text}"
    );
    let mut out = BTreeMap::new();
    for line in lines {
        if line.starts_with("Total Samples") {
            break;
        }
        let t: Vec<&str> = line.split_whitespace().collect();
        if t.is_empty() {
            continue;
        }
        ensure!(t.len() >= 7, "not a table row: {line:?}");
        let count = t[1]
            .parse()
            .with_context(|| format!("Samples in {line:?}"))?;
        let mean_us = t[6]
            .strip_suffix("us")
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("Avg time in {line:?}"))?;
        ensure!(
            out.insert(t[0].to_string(), Row { count, mean_us })
                .is_none(),
            "{} twice",
            t[0]
        );
    }
    Ok(out)
}

/// perf's handling time of each exit in µs, by reason name, sorted: `perf script --ns -F
/// tid,time,event,trace` lines, each kvm_exit paired with the next kvm_entry of its thread (as
/// `perf kvm stat` pairs them; an exit never re-entered, the last hlt, has no time).
fn perf_times(script: &str) -> Result<BTreeMap<String, Vec<f64>>> {
    let mut open: HashMap<&str, (f64, &str)> = HashMap::new();
    let mut out: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for line in script.lines() {
        let t: Vec<&str> = line.split_whitespace().collect();
        let (Some(tid), Some(time), Some(event)) = (t.first(), t.get(1), t.get(2)) else {
            continue;
        };
        let at = || -> Result<f64> {
            time.trim_end_matches(':')
                .parse()
                .with_context(|| format!("time in {line:?}"))
        };
        match *event {
            "kvm:kvm_exit:" => {
                let i = t.iter().position(|w| *w == "reason");
                let reason = i.and_then(|i| t.get(i + 1));
                let reason = reason.with_context(|| format!("no reason in {line:?}"))?;
                open.insert(tid, (at()?, reason));
            }
            "kvm:kvm_entry:" => {
                if let Some((start, reason)) = open.remove(tid) {
                    let us = (at()? - start) * 1e6;
                    out.entry(reason.to_string()).or_default().push(us);
                }
            }
            _ => {}
        }
    }
    for v in out.values_mut() {
        v.sort_by(f64::total_cmp);
    }
    Ok(out)
}

/// perf's header (`perf report --header-only`) shows kvm_exit and kvm_entry stamped with
/// CLOCK_MONOTONIC (`use_clockid = 1`, `clockid = 1`), the clock kvmprof reads.
fn ensure_monotonic(header: &str) -> Result<()> {
    for event in ["kvm:kvm_exit", "kvm:kvm_entry"] {
        let line = header
            .lines()
            .find(|l| l.starts_with(&format!("# event : name = {event},")))
            .with_context(|| format!("no {event} event in perf's header:\n{header}"))?;
        let fields: Vec<&str> = line.split(", ").map(str::trim).collect();
        ensure!(
            fields.contains(&"use_clockid = 1") && fields.contains(&"clockid = 1"),
            "perf did not stamp {event} with CLOCK_MONOTONIC (perf record -k mono): {line}"
        );
    }
    Ok(())
}

/// The value of rank ⌈q·n⌉ in `sorted` (as kvmprof's `Hist::quantiles` ranks).
fn exact_quantile(sorted: &[f64], q: f64) -> f64 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).max(1);
    sorted[rank.min(sorted.len()) - 1]
}

/// kvmprof's classic table without its own additions after perf's footer (lines "# ...").
fn perf_part(table: &str) -> &str {
    match table.find("\n# ") {
        Some(i) => &table[..i + 1],
        None => table,
    }
}

#[test]
fn kvmprof_matches_perf_kvm_stat_on_the_same_exits() {
    kvmprof_tests::vm_runs::each_kernel("real_kvm_perf", |run| check(&run.dir));
}

fn check(dir: &Path) -> Result<()> {
    let status = read_file(dir, "perf_status.txt")?;
    if status.trim() != "ok" {
        let mut why = format!("the perf run in the guest: {}", status.trim());
        for f in [
            "perf_record.stderr",
            "perf_kvmprof.stderr",
            "perf_exercise.txt",
        ] {
            why += &format!("\n--- {f}:\n{}", read_file(dir, f).unwrap_or_default());
        }
        bail!(why);
    }
    println!("{}", read_file(dir, "perf_version.txt")?.trim());
    let record_err = read_file(dir, "perf_record.stderr").unwrap_or_default();
    println!("perf record: {}", record_err.trim());
    // A full ring buffer drops events (perf says "lost N chunks"): its counts would be short.
    ensure!(
        !record_err.to_ascii_lowercase().contains("lost"),
        "perf lost events, its counts cannot be compared: {record_err}"
    );
    ensure_monotonic(&read_file(dir, "perf612_header.txt")?)?;
    let pid: u32 = read_file(dir, "perf_pid.txt")?.trim().parse()?;
    let result = parse_result_line(&read_file(dir, "perf_exercise.txt")?)?;
    ensure!(
        result.get("hlt").map(String::as_str) == Some("1"),
        "the exerciser did not end with one hlt: {result:?}"
    );
    let oracle = parse_hist(&read_file(dir, "perf_kvm_exit.hist")?)?;
    ensure!(oracle.dropped.unwrap_or(0) == 0, "the hist trigger dropped");

    let perf_text = read_file(dir, "perf_vmexit.txt")?;
    let data = Session::file(&dir.join("p.kvmprof"))?.data()?;
    let ours = report::perf_table(
        &data,
        &TableOptions {
            vm: Some(VmSelector::parse(&pid.to_string()).map_err(anyhow::Error::msg)?),
            layout: PerfLayout::Classic,
            ..Default::default()
        },
    )?;
    println!("--- perf kvm stat report --event vmexit --pid {pid}:\n{perf_text}");
    println!("--- kvmprof report p.kvmprof --vm {pid} --perf-layout classic:\n{ours}");
    let theirs = rows(&perf_text).context("perf's table")?;
    let mine = rows(&ours).context("kvmprof's table")?;

    let mut errors = Vec::new();
    // The same reasons, exactly the same counts: both count every exit→entry pair of the
    // process. The oracle counts kvm_exit hits; the VM's last exit, its hlt, is never followed
    // by a kvm_entry (the VMM stops on KVM_EXIT_HLT), so neither table times it: each reason's
    // count is the oracle's, less that one hlt.
    let names: Vec<&String> = theirs.keys().chain(mine.keys()).collect();
    for name in names {
        let (p, k) = (theirs.get(name), mine.get(name));
        if p.map(|r| r.count) != k.map(|r| r.count) {
            errors.push(format!(
                "{name}: perf {:?}, kvmprof {:?}",
                p.map(|r| r.count),
                k.map(|r| r.count)
            ));
        }
    }
    let names = data.view.vms.iter().find(|v| v.pid == pid);
    let vm = names.with_context(|| format!("no VM with pid {pid} in the recording"))?;
    for (key, hits) in &oracle.buckets {
        let (isa, reason) = (key[0], key[1]);
        ensure!(isa == SVM, "isa {isa} in the hist trigger");
        let want = hits - u64::from(reason == HLT);
        let name = vm
            .reasons
            .iter()
            .find(|r| u64::from(r.reason) == reason)
            .map(|r| r.name.to_string());
        let got = name
            .as_ref()
            .and_then(|n| theirs.get(n))
            .map_or(0, |r| r.count);
        if got != want {
            errors.push(format!(
                "reason {reason:#x} ({name:?}): perf {got}, hist trigger {hits} (want {want})"
            ));
        }
    }
    // perf's time of every exit, from its own events: the same exits as its table, and the
    // quantiles of kvmprof's histogram against them.
    let times = perf_times(&read_file(dir, "perf612_script.txt")?)?;
    println!(
        "{:<10} {:>6} {:>10} {:>10} {:>9} {:>9} {:>7} {:>9} {:>9} {:>7}",
        "reason",
        "count",
        "perf mean",
        "kvm mean",
        "perf p50",
        "kvm p50",
        "diff%",
        "perf p90",
        "kvm p90",
        "diff%"
    );
    for (name, p) in &theirs {
        let t = times.get(name).map_or(&[][..], Vec::as_slice);
        if t.len() as u64 != p.count {
            errors.push(format!(
                "{name}: perf script pairs {} exits, perf's table {}",
                t.len(),
                p.count
            ));
            continue;
        }
        let (Some(k), Some(row)) = (
            mine.get(name),
            vm.reasons.iter().find(|r| r.name.as_ref() == name.as_str()),
        ) else {
            continue;
        };
        let theirs_q = QUANTILES.map(|q| exact_quantile(t, q));
        let mine_q = row
            .hist
            .quantiles(QUANTILES)
            .map(|v| v.unwrap_or(0) as f64 / 1e3);
        let rel: Vec<f64> = theirs_q
            .iter()
            .zip(&mine_q)
            .map(|(p, k)| (k - p) / p)
            .collect();
        println!(
            "{name:<10} {:>6} {:>10.2} {:>10.2} {:>9.2} {:>9.2} {:>7.2} {:>9.2} {:>9.2} {:>7.2}",
            p.count,
            p.mean_us,
            k.mean_us,
            theirs_q[0],
            mine_q[0],
            rel[0] * 100.0,
            theirs_q[1],
            mine_q[1],
            rel[1] * 100.0
        );
        if t.len() < MIN_EXITS {
            continue;
        }
        for ((q, r), (p, k)) in QUANTILES.iter().zip(&rel).zip(theirs_q.iter().zip(&mine_q)) {
            if r.abs() > QUANTILE_TOLERANCE {
                errors.push(format!(
                    "{name}: {:.0}th percentile {p:.2}us (perf) vs {k:.2}us (kvmprof): {:.1}% \
                     apart, more than {:.1}%",
                    q * 100.0,
                    r * 100.0,
                    QUANTILE_TOLERANCE * 100.0
                ));
            }
        }
    }

    // perf's own text, read and printed again: every digit back.
    let mut tables = 0;
    for ev in [Event::Vmexit, Event::Ioport, Event::Msr, Event::Mmio] {
        let file = format!("perf_{}.txt", ev.arg());
        let text = read_file(dir, &file)?;
        ensure!(
            text.contains("Samples%"),
            "{file} holds no perf table:\n{text}"
        );
        tables += 1;
        let d = Data::from_perf_text(&text, &file)?;
        let again = report::perf_table(
            &d,
            &TableOptions {
                event: ev,
                layout: PerfLayout::Classic,
                ..Default::default()
            },
        )?;
        if perf_part(&again).trim_end() != text.trim_end() {
            errors.push(format!(
                "{file} does not print back as perf printed it\n--- perf:\n{text}\n--- kvmprof:\n{again}"
            ));
        }
    }
    ensure!(tables == 4, "perf printed {tables} tables, not 4");
    // perf 6.12's screen of the same perf.data: the 6.4 layout of the same exits.
    for ev in [Event::Vmexit, Event::Ioport, Event::Msr, Event::Mmio] {
        let screen = read_file(dir, &format!("perf612_{}.screen", ev.arg()))?;
        let classic = read_file(dir, &format!("perf_{}.txt", ev.arg()))?;
        println!(
            "--- perf 6.12's screen, --event {}:\n{}",
            ev.arg(),
            screen.trim_end()
        );
        let diff = report::perf_screen::screen_differences(&screen, &classic, ev)
            .map_err(anyhow::Error::msg)?;
        errors.extend(
            diff.into_iter()
                .map(|d| format!("{} (6.4 layout): {d}", ev.arg())),
        );
    }
    if !errors.is_empty() {
        bail!("{} mismatch(es):\n  {}", errors.len(), errors.join("\n  "));
    }
    println!(
        "real-KVM perf check: kvmprof and perf agree; {tables} perf tables print back; perf \
         6.12's screens equal kvmprof's 6.4 layout"
    );
    Ok(())
}
