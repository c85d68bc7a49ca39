//! The slow-exit log on real exits (tests/vm/init.sh, slow_run): inside the nested-SVM guest,
//! `kvmprof record --slow 1ms` ran while the exerciser's VMM slept 3 ms before completing every
//! 50th port write; the guest kernel's own latency of every kvm_exit→kvm_entry pair of at least
//! 1 ms (a synthetic event from two hist triggers, on the monotonic trace clock) is the oracle.
//! Here, on the host, from `kvmprof report --slow 1ms -f json` of that recording:
//!
//! 1. every delayed port write is in the log, with the exerciser's VM name, vCPU 0, the guest
//!    RIP of its `out` instruction and the port it wrote;
//! 2. nothing else, as far as this harness can tell: the number of exits of at least 1 ms agrees
//!    with the kernel's within `TOTAL_TOLERANCE`, the kernel also saw every delayed write, and the
//!    per-exit pairing is printed (QEMU/TCG on a shared host stalls for whole scheduler ticks, and
//!    a stall between the two measurers' reads of one tracepoint hit lands in one side only);
//! 3. nothing was dropped, and `-f perf-live` printed perf's line for each logged exit.
//!
//! The run itself is `cargo xtask vm-test` (KVMPROF_VM_OUT).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{ensure, Context, Result};
use kvmprof_tests::{parse_hist, parse_result_line, read_file};
use serde::Deserialize;

const SVM_IO: u64 = 0x7b;
const SVM_HLT: u64 = 0x78;
/// The threshold and the VMM's delay of init.sh's run, µs.
const THRESHOLD_US: u64 = 1000;
const DELAY_US: u64 = 3000;
/// How far the kernel oracle's time of an exit may be from kvmprof's, as a fraction of the
/// oracle's. Both read the monotonic clock on the same kvm_exit and kvm_entry hits, but at
/// different instants of each hit (kvmprof's BPF program and the trigger's timestamp), and
/// under TCG on a shared 2-core host QEMU's thread is descheduled now and then: a stall between
/// the two reads lands in one measurer's time only (seen: 1343 µs for the kernel, under 1 ms for
/// kvmprof). The same bound as real_kvm_perf's means, for the same reason, but never less than
/// `SLACK_US`: kvm_exit fires with host interrupts enabled, and a host interrupt handled between
/// the two reads under TCG lasts hundreds of µs (seen: an INTR exit of 1722 µs for kvmprof that
/// the kernel timed under 1 ms). An exit that one side saw over the threshold and the other did
/// not is reported; the totals are compared (`TOTAL_TOLERANCE`).
const TOLERANCE: f64 = 0.25;
const SLACK_US: u64 = 1000;
/// How far kvmprof's number of exits over the threshold (all reasons) may be above the
/// kernel's (exits kvmprof would log that did not happen: what this part guards against).
const TOTAL_TOLERANCE: f64 = 0.25;
/// How far it may be below: the host stalls land on the kernel's side more often, because the
/// hist triggers' work at each tracepoint hit (a map update and a synthetic event) takes far
/// longer than kvmprof's program, so a stall more often falls between the trigger's timestamp
/// and kvmprof's. Seen in a clean-clone CI run on 6.1: kvmprof 72, kernel 98, the difference
/// all kernel-only exits of 4.2–4.8 ms (the host's 4 ms tick) in INTR, IOIO and MSR. Missing
/// slow exits are guarded by part 1 (every delayed write logged) and `dropped == 0`.
const TOTAL_DEFICIT_TOLERANCE: f64 = 0.4;

#[derive(Deserialize, Debug)]
struct Log {
    dropped: u64,
    exits: Vec<Exit>,
}

#[derive(Deserialize, Debug)]
struct Exit {
    vm_name: String,
    vcpu: u32,
    reason: u64,
    took_ns: u64,
    rip: Option<u64>,
    detail: Option<String>,
}

#[test]
fn the_slow_exit_log_holds_exactly_the_slow_exits() {
    kvmprof_tests::vm_runs::each_kernel("real_kvm_slow", |run| check(&run.dir));
}

fn check(dir: &Path) -> Result<()> {
    let status = read_file(dir, "slow_status.txt")?;
    ensure!(
        status.trim() == "ok",
        "the slow-exit run failed in the guest: {}\ntrigger errors:\n{}\nrecord:\n{}\nreport:\n{}",
        status.trim(),
        read_file(dir, "slow_trigger_errors.txt").unwrap_or_default(),
        read_file(dir, "slow_record.stderr").unwrap_or_default(),
        read_file(dir, "slow_report.stderr").unwrap_or_default()
    );
    let ex = parse_result_line(&read_file(dir, "slow_exercise.txt")?)?;
    let num = |k: &str| -> Result<u64> {
        let v = ex
            .get(k)
            .with_context(|| format!("no {k}= in the RESULT line"))?;
        Ok(match v.strip_prefix("0x") {
            Some(h) => u64::from_str_radix(h, 16)?,
            None => v.parse()?,
        })
    };
    let (delayed, out_rip) = (num("delayed")?, num("out_rip")?);
    ensure!(delayed >= 10 && out_rip == 0x1000, "RESULT: {ex:?}");
    let log: Log =
        serde_json::from_str(&read_file(dir, "slow_report.json")?).context("slow_report.json")?;
    ensure!(log.dropped == 0, "{} slow exits dropped", log.dropped);

    // 1. Every delayed write, where and what it was.
    let io: Vec<&Exit> = log.exits.iter().filter(|e| e.reason == SVM_IO).collect();
    for e in &io {
        ensure!(
            e.vm_name == "kvmprof-exerciser-slow" && e.vcpu == 0 && e.rip == Some(out_rip),
            "slow io exit not the exerciser's out: {e:?}"
        );
        let d = e.detail.as_deref().unwrap_or("");
        ensure!(
            d.starts_with("out port 0x10 "),
            "slow io exit's detail: {e:?}"
        );
    }
    let over_delay = io.iter().filter(|e| e.took_ns >= DELAY_US * 1000).count() as u64;
    ensure!(
        over_delay >= delayed,
        "{over_delay} logged io exits of at least 3 ms, {delayed} delayed writes"
    );

    // 2. Nothing else: per reason, the kernel's oracle.
    let hist = parse_hist(&read_file(dir, "slow_lat.hist")?)?;
    ensure!(
        hist.keys == ["reason", "lat"],
        "oracle keys: {:?}",
        hist.keys
    );
    let mut oracle_over_delay = 0;
    for (k, n) in &hist.buckets {
        let (reason, lat) = (k[0], k[1]);
        ensure!(
            lat >= THRESHOLD_US,
            "the oracle's filter let {lat} µs through"
        );
        if reason == SVM_HLT {
            continue;
        }
        if reason == SVM_IO && lat + 1 >= DELAY_US {
            oracle_over_delay += n;
        }
    }
    let mut logged: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for e in &log.exits {
        ensure!(
            e.reason != SVM_HLT,
            "a HLT in the log without --slow-hlt: {e:?}"
        );
        logged.entry(e.reason).or_default().push(e.took_ns / 1000);
    }
    let mut kernel: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for (k, n) in &hist.buckets {
        if k[0] != SVM_HLT {
            kernel
                .entry(k[0])
                .or_default()
                .extend((0..*n).map(|_| k[1]));
        }
    }
    let mut matched = 0;
    let (mut ours_total, mut theirs_total) = (0, 0);
    let reasons: std::collections::BTreeSet<&u64> = kernel.keys().chain(logged.keys()).collect();
    for r in reasons {
        let none = Vec::new();
        let (ours, theirs) = (
            logged.get(r).unwrap_or(&none),
            kernel.get(r).unwrap_or(&none),
        );
        let (m, only_ours, only_theirs) = pair_up(ours, theirs);
        matched += m;
        println!(
            "reason {r:#x}: {m} paired; over 1 ms for kvmprof only {only_ours:?}, for the kernel only {only_theirs:?}"
        );
    }
    for v in logged.values() {
        ours_total += v.len();
    }
    for v in kernel.values() {
        theirs_total += v.len();
    }
    // Host stalls of QEMU's thread (the host's 4 ms tick: the clusters at 4.0–4.8 ms) land in
    // the gap between the two measurers' reads of one tracepoint hit often enough that single
    // exits near the threshold cannot be paired (see TOLERANCE); their totals must agree.
    let tolerance = if ours_total > theirs_total {
        TOTAL_TOLERANCE
    } else {
        TOTAL_DEFICIT_TOLERANCE
    };
    ensure!(
        ours_total.abs_diff(theirs_total) as f64 <= tolerance * theirs_total.max(1) as f64,
        "exits of at least 1 ms: kvmprof {ours_total}, kernel {theirs_total} \
         (kvmprof {logged:?}, kernel {kernel:?})"
    );
    ensure!(
        oracle_over_delay >= delayed,
        "io exits of at least 3 ms: kvmprof {over_delay}, kernel {oracle_over_delay}"
    );

    // 3. perf's line for each.
    let perf = read_file(dir, "slow_perf_live.txt")?;
    let lines: Vec<&str> = perf.lines().collect();
    ensure!(
        lines.len() == log.exits.len(),
        "{} perf lines for {} exits",
        lines.len(),
        log.exits.len()
    );
    for l in lines {
        let (_, rest) = l.split_once(" VM ").context(l.to_string())?;
        ensure!(
            rest.contains(", vcpu 0: ") && rest.ends_with("usec"),
            "not perf's line: {l:?}"
        );
    }
    println!(
        "slow exits: {} logged, {matched} paired with the kernel's; {delayed} delayed writes, {over_delay} io ≥ 3 ms",
        log.exits.len()
    );
    Ok(())
}

/// Pairs kvmprof's times with the kernel's (µs, one reason), nearest first within
/// `TOLERANCE` of the kernel's: (pairs, kvmprof's unpaired, the kernel's unpaired).
fn pair_up(ours: &[u64], theirs: &[u64]) -> (usize, Vec<u64>, Vec<u64>) {
    let (mut a, mut b) = (ours.to_vec(), theirs.to_vec());
    a.sort_unstable();
    b.sort_unstable();
    let (mut i, mut j, mut pairs) = (0, 0, 0);
    let (mut only_a, mut only_b) = (Vec::new(), Vec::new());
    while i < a.len() && j < b.len() {
        let tol = ((TOLERANCE * b[j] as f64) as u64).max(SLACK_US);
        if a[i].abs_diff(b[j]) <= tol {
            pairs += 1;
            i += 1;
            j += 1;
        } else if a[i] < b[j] {
            only_a.push(a[i]);
            i += 1;
        } else {
            only_b.push(b[j]);
            j += 1;
        }
    }
    only_a.extend_from_slice(&a[i..]);
    only_b.extend_from_slice(&b[j..]);
    (pairs, only_a, only_b)
}

#[test]
fn pairing_takes_the_nearest_within_the_tolerance() {
    let (p, a, b) = pair_up(&[1003, 1569, 3520, 9000], &[1001, 1534, 3504, 20000]);
    assert_eq!((p, a, b), (3, vec![9000], vec![20000]));
}
