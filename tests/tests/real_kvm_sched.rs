//! The scheduler split on real exits (tests/vm/init.sh, sched_run): inside the nested-SVM guest,
//! the exerciser's vCPU thread shared guest CPU 1 with a busy thread (`--hog-cpu 1`) and its
//! VMM slept 3 ms before completing every 50th port write, while `kvmprof record` ran. Here, on
//! the host, from `kvmprof report -f json` and `report --slow 1ms -f json` of that recording:
//!
//! 1. the time the VM's exits spent runnable but not running (waiting for the CPU the hog
//!    held) is the vCPU thread's own run-queue delay (schedstat, the RESULT line's
//!    `run_delay_ns`) over the run, within `WAIT_TOLERANCE`;
//! 2. every delayed port write slept at least the VMM's delay, and no exit's split is more
//!    than its time;
//! 3. `kvmprof check -t max_wait_pct=1 -t io.max_wait_pct=1` of the recording measures the
//!    report's wait shares (non-HLT, and the port I/O's) and fails exactly when they are over
//!    1 %. (Not HLT: the exerciser's one hlt has no entry, the VM is gone.)
//!
//! The run itself is `cargo xtask vm-test` (KVMPROF_VM_OUT).

use std::path::Path;

use anyhow::{ensure, Context, Result};
use kvmprof_tests::{parse_result_line, read_file};
use serde::Deserialize;

const SVM_IO: u64 = 0x7b;
const DELAY_NS: u64 = 3_000_000;
/// schedstat's window (just before the first KVM_RUN to just after the last) holds the
/// exits' and a little more: a wait before the first exit or after the last entry counts only
/// there, and each wait is timed on the run queue's clock rather than at the tracepoint (µs
/// apart per wait; under TCG a guest tick can stretch). 10 % of the waits plus 20 ms (a few of
/// the guest's 4 ms ticks at the edges).
const WAIT_TOLERANCE: f64 = 0.10;
const WAIT_SLACK_NS: u64 = 20_000_000;
/// A nanosleep of 3 ms sleeps at least 3 ms from the call; the switch-out comes a few µs
/// after it.
const SLEEP_SLACK_NS: u64 = 200_000;
/// Delayed writes that may show less than their sleep, per 40. On 6.12 one of the 40 did in two
/// of three runs (blocked 146 µs, 225 µs; the rest of its 9 ms counted as on a CPU), two in a
/// clean-clone CI run. Debian's 6.12 sources (sched/core.c, time/hrtimer.c) leave one path:
/// the thread stayed on its CPU ~2.8 ms between arming the 3 ms timer and calling schedule(),
/// then slept the rest. Under TCG the L1 guest's vCPU can stall that long (no steal time; port
/// writes of 4-5 ms "on a CPU" are common in these runs), so the split is the kernel's own
/// view. The vCPU thread's own accounting cannot tell those writes apart: tried, its schedstat
/// and thread CPU clock around each sleep put 0 µs asleep for up to half the writes that
/// sched_switch/sched_wakeup showed blocked 3 ms on 6.12 (whose delayed dequeue may keep a
/// sleeper on the run queue), and 3 of 40 on 6.1 (not understood). A broken split shows none
/// of the 40.
const SLEEPS_UNSEEN_PER_40: u64 = 4;

#[derive(Deserialize, Debug)]
struct Report {
    sched_split: bool,
    vms: Vec<Vm>,
}

#[derive(Deserialize, Debug)]
struct Vm {
    name: String,
    reasons: Vec<Row>,
    userspace: Vec<Row>,
}

#[derive(Deserialize, Debug)]
struct Row {
    reason: u64,
    hlt: bool,
    count: u64,
    total_ns: u64,
    wait_ns: u64,
    blocked_ns: u64,
}

#[derive(Deserialize, Debug)]
struct Log {
    exits: Vec<Exit>,
}

#[derive(Deserialize, Debug)]
struct Exit {
    vm_name: String,
    reason: u64,
    took_ns: u64,
    detail: Option<String>,
    wait_ns: Option<u64>,
    blocked_ns: Option<u64>,
}

#[derive(Deserialize, Debug)]
struct Check {
    results: Vec<CheckResult>,
}

#[derive(Deserialize, Debug)]
struct CheckResult {
    threshold: String,
    status: String,
    measured: Option<f64>,
}

#[test]
fn exit_times_split_as_the_vcpu_threads_schedstat_and_the_vmms_sleeps_say() {
    kvmprof_tests::vm_runs::each_kernel("real_kvm_sched", |run| check(&run.dir));
}

fn check(dir: &Path) -> Result<()> {
    let status = read_file(dir, "sched_status.txt")?;
    ensure!(
        status.trim() == "ok",
        "the scheduler-split run failed in the guest: {}\nexercise:\n{}\nrecord:\n{}\nreport:\n{}",
        status.trim(),
        read_file(dir, "sched_exercise.txt").unwrap_or_default(),
        read_file(dir, "sched_record.stderr").unwrap_or_default(),
        read_file(dir, "sched_report.stderr").unwrap_or_default()
    );
    let ex = parse_result_line(&read_file(dir, "sched_exercise.txt")?)?;
    let num = |k: &str| -> Result<u64> {
        ex.get(k)
            .with_context(|| format!("no {k}= in the RESULT line: {ex:?}"))?
            .parse()
            .with_context(|| format!("{k} in {ex:?}"))
    };
    let (delayed, run_delay) = (num("delayed")?, num("run_delay_ns")?);
    ensure!(delayed >= 10, "RESULT: {ex:?}");
    let report: Report =
        serde_json::from_str(&read_file(dir, "sched_report.json")?).context("sched_report.json")?;
    ensure!(
        report.sched_split,
        "the recording says the time was not split"
    );
    let vm = report
        .vms
        .iter()
        .find(|v| v.name == "kvmprof-exerciser-sched")
        .with_context(|| {
            let names: Vec<&str> = report.vms.iter().map(|v| v.name.as_str()).collect();
            format!("no exerciser VM in the report: {names:?}")
        })?;

    // 1. Waiting for the CPU: ours against the thread's own schedstat.
    let waited: u64 = vm.reasons.iter().map(|r| r.wait_ns).sum();
    for r in vm.reasons.iter().chain(&vm.userspace) {
        ensure!(
            r.wait_ns + r.blocked_ns <= r.total_ns,
            "reason {:#x}: split {} + {} ns of {} ns",
            r.reason,
            r.wait_ns,
            r.blocked_ns,
            r.total_ns
        );
        println!(
            "reason {:#x}: {} exits, {} µs, waiting {} µs, asleep {} µs",
            r.reason,
            r.count,
            r.total_ns / 1000,
            r.wait_ns / 1000,
            r.blocked_ns / 1000
        );
    }
    println!(
        "waiting for the CPU: kvmprof {} µs, schedstat {} µs",
        waited / 1000,
        run_delay / 1000
    );
    ensure!(
        run_delay >= 10_000_000,
        "the hog hardly delayed the vCPU thread ({run_delay} ns): the test shows nothing"
    );
    ensure!(
        waited.abs_diff(run_delay) as f64
            <= WAIT_TOLERANCE * run_delay as f64 + WAIT_SLACK_NS as f64,
        "waiting for the CPU: kvmprof {waited} ns, the vCPU thread's schedstat {run_delay} ns"
    );

    // 2. The VMM's sleeps.
    let io: u64 = vm
        .reasons
        .iter()
        .filter(|r| r.reason == SVM_IO)
        .map(|r| r.blocked_ns)
        .sum();
    let unseen = SLEEPS_UNSEEN_PER_40 * delayed.div_ceil(40);
    ensure!(
        io >= delayed.saturating_sub(unseen) * (DELAY_NS - SLEEP_SLACK_NS),
        "io exits asleep {io} ns in all, for {delayed} sleeps of 3 ms"
    );
    let log: Log =
        serde_json::from_str(&read_file(dir, "sched_slow.json")?).context("sched_slow.json")?;
    let mut slept = 0;
    for e in log
        .exits
        .iter()
        .filter(|e| e.vm_name == "kvmprof-exerciser-sched")
    {
        let (Some(w), Some(b)) = (e.wait_ns, e.blocked_ns) else {
            anyhow::bail!("a slow exit without its split: {e:?}");
        };
        ensure!(w + b <= e.took_ns, "split over the exit's time: {e:?}");
        let delayed_write = e.reason == SVM_IO
            && e.detail
                .as_deref()
                .is_some_and(|d| d.starts_with("out port 0x10 "))
            && b >= DELAY_NS - SLEEP_SLACK_NS;
        slept += u64::from(delayed_write);
    }
    ensure!(
        slept + unseen >= delayed,
        "{slept} logged port writes slept 3 ms, {delayed} were delayed"
    );
    println!("{delayed} delayed writes, {slept} logged asleep ≥ 3 ms");

    // 3. The check's wait shares are the report's.
    let check: Check =
        serde_json::from_str(&read_file(dir, "sched_check.json")?).context("sched_check.json")?;
    for (key, io) in [("max_wait_pct", false), ("io.max_wait_pct", true)] {
        let rows = vm
            .reasons
            .iter()
            .filter(|r| if io { r.reason == SVM_IO } else { !r.hlt });
        let (w, t) = rows.fold((0, 0), |(w, t), r| (w + r.wait_ns, t + r.total_ns));
        let want = w as f64 * 100.0 / t.max(1) as f64;
        let got = check
            .results
            .iter()
            .find(|r| r.threshold == key)
            .with_context(|| format!("no {key} in the check: {check:?}"))?;
        let m = got
            .measured
            .with_context(|| format!("{key} not measured: {got:?}"))?;
        println!("check {key}: {m:.3} % ({}), report {want:.3} %", got.status);
        ensure!(
            (m - want).abs() <= 1e-6 * want.max(1.0),
            "{key}: check measured {m} %, the report's rows give {want} %"
        );
        let want_status = if m > 1.0 { "fail" } else { "pass" };
        ensure!(got.status == want_status, "{key}: {got:?}");
    }
    Ok(())
}
