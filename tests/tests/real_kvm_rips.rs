//! Sampled guest RIPs on real exits (the nested-SVM run of `cargo xtask vm-test`): the
//! exerciser's guest makes each kind of exit from one instruction and says where its `out`
//! is (RESULT `out_rip`). In `kvmprof report -f json` of that run:
//! - the port writes' RIPs are that one address (low: "user" by the upper-half rule);
//! - each reason was sampled about one exit in 64: within a binomial band of its count.

use anyhow::{ensure, Context, Result};
use kvmprof_tests::{parse_result_line, read_file};
use serde_json::Value;

const VM_NAME: &str = "kvmprof-exerciser";
const SVM: u64 = 2;
const IO: u64 = 0x7b;

#[test]
fn each_exit_kind_comes_from_its_instruction() {
    kvmprof_tests::vm_runs::each_kernel("real_kvm_rips", |run| check(&run.dir));
}

fn check(dir: &std::path::Path) -> Result<()> {
    let result = parse_result_line(&read_file(dir, "exercise.txt")?)?;
    let out_rip = result
        .get("out_rip")
        .and_then(|v| u64::from_str_radix(v.trim_start_matches("0x"), 16).ok())
        .context("RESULT line has no out_rip=0x...")?;
    let report: Value = serde_json::from_str(&read_file(dir, "kvmprof.json")?)?;
    let vm = report["vms"]
        .as_array()
        .and_then(|v| v.iter().find(|m| m["name"] == VM_NAME))
        .context("no exerciser VM in kvmprof.json")?;
    let rips = vm["guest_rips"]
        .as_array()
        .context("the exerciser VM has no guest_rips")?;
    let count = |reason: u64| -> u64 {
        vm["reasons"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["isa"] == SVM && r["reason"] == reason)
            .filter_map(|r| r["count"].as_u64())
            .sum()
    };
    for g in rips {
        let (reason, samples, every) = (
            g["reason"].as_u64().unwrap_or(0),
            g["samples"].as_u64().unwrap_or(0),
            g["sample_every"].as_u64().unwrap_or(0),
        );
        let n = count(reason);
        println!(
            "{} ({reason:#x}): {n} exits, {samples} sampled, top {}",
            g["name"], g["top"]
        );
        // Binomial(n, 1/every): mean n/every, within 5 standard deviations (+ 3 for tiny n).
        let mean = n as f64 / every.max(1) as f64;
        let band = 5.0 * mean.sqrt() + 3.0;
        ensure!(
            (samples as f64 - mean).abs() <= band,
            "{}: {samples} sampled of {n} exits, expected {mean:.1} ± {band:.1}",
            g["name"]
        );
    }
    let io = rips
        .iter()
        .find(|g| g["isa"] == SVM && g["reason"] == IO)
        .context("no sampled port writes")?;
    let top = io["top"].as_array().context("io has no top RIPs")?;
    ensure!(
        top.len() == 1 && top[0]["rip"] == out_rip && top[0]["mode"] == "user",
        "the port writes' RIPs {top:?}, the exerciser's out is at {out_rip:#x} (user)"
    );
    ensure!(io["kernel_pct"] == 0.0, "io: {io}");
    Ok(())
}
