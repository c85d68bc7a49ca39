//! Sessions on a real KVM: two runs of the exerciser under nested AMD SVM were recorded by
//! `kvmprof record` inside the guest (a.kvmprof: N × out/cpuid/rdmsr/wrmsr; b.kvmprof: 2N ×
//! out/cpuid only). Here, on the host: replay A through the same model, report it as perf's
//! table and JSON, and diff A against B. Counts are checked against the guest kernel's own
//! hist triggers for each run. The run itself is `cargo xtask vm-test` (KVMPROF_VM_OUT).

use std::path::Path;

use anyhow::{bail, ensure, Context, Result};
use kvmprof::{
    model::VmSelector,
    report::{self, Data},
    session::Session,
    source::{replay::ReplaySource, Source},
    store::Recording,
};
use kvmprof_tests::{parse_hist, parse_result_line, read_file};

const SVM: u32 = 2;

#[test]
fn recordings_replay_report_and_diff() {
    kvmprof_tests::vm_runs::each_kernel("real_kvm_session", |run| check(&run.dir));
}

/// The named VM's (isa, reason) → count, from a session's whole-span view.
fn counts(d: &Data, vm: &str) -> Result<std::collections::BTreeMap<(u32, u32), u64>> {
    let v = d.view.vms.iter().find(|v| v.name == vm).with_context(|| {
        format!(
            "no VM {vm} in {} (VMs: {:?})",
            d.label,
            d.view.vms.iter().map(|v| &v.name).collect::<Vec<_>>()
        )
    })?;
    Ok(v.reasons
        .iter()
        .map(|r| ((r.isa, r.reason), r.count))
        .collect())
}

fn check(dir: &Path) -> Result<()> {
    println!(
        "{}",
        read_file(dir, "session_status.txt").unwrap_or_default()
    );
    let n: u64 = parse_result_line(&read_file(dir, "exercise.txt")?)?
        .get("iters")
        .and_then(|v| v.parse().ok())
        .context("exercise.txt has no iters")?;
    let (a_path, b_path) = (dir.join("a.kvmprof"), dir.join("b.kvmprof"));

    // Replay: the recording plays back frame by frame through the Source trait.
    let rec = Recording::open(&a_path)?;
    ensure!(
        rec.warnings().is_empty(),
        "A has warnings: {:?}",
        rec.warnings()
    );
    ensure!(rec.len() >= 2, "A holds {} samples", rec.len());
    let mut replay = ReplaySource::open(&a_path)?;
    let mut frames = 0;
    let mut last = None;
    while let Some(s) = replay.sample()? {
        frames += 1;
        last = Some(s);
    }
    ensure!(
        frames == rec.len(),
        "replayed {frames} of {} frames",
        rec.len()
    );
    ensure!(
        last == Some(rec.sample(rec.len() - 1)?),
        "replay's last frame differs"
    );

    // Report: A's counts equal the guest kernel's hist trigger for the same run.
    let a = Session::file(&a_path)?.data()?;
    let b = Session::file(&b_path)?.data()?;
    let a_counts = counts(&a, "kvmprof-exerciser")?;
    let b_counts = counts(&b, "kvmprof-exerciser-b")?;
    for (name, got, hist) in [
        (
            "A",
            &a_counts,
            parse_hist(&read_file(dir, "kvm_exit.hist")?)?,
        ),
        (
            "B",
            &b_counts,
            parse_hist(&read_file(dir, "b_kvm_exit.hist")?)?,
        ),
    ] {
        for (key, want) in &hist.buckets {
            let k = (key[0] as u32, key[1] as u32);
            let have = got.get(&k).copied().unwrap_or(0);
            println!(
                "{name}: isa {} reason {:#x}: recorded {have}, hist trigger {want}",
                k.0, k.1
            );
            ensure!(
                have == *want,
                "{name}: reason {:#x}: recording says {have}, hist trigger {want}",
                k.1
            );
        }
    }
    ensure!(a_counts.get(&(SVM, 0x7c)) == Some(&(2 * n)), "A msr != 2N");
    ensure!(
        b_counts.get(&(SVM, 0x72)) == Some(&(2 * n)),
        "B cpuid != 2N"
    );
    ensure!(!b_counts.contains_key(&(SVM, 0x7c)), "B has msr exits");

    let table = report::perf_table(
        &a,
        &report::TableOptions {
            vm: Some(VmSelector::parse("kvmprof-exerciser").unwrap()),
            ..Default::default()
        },
    )?;
    println!("{table}");
    let io_line = table
        .lines()
        .find(|l| l.trim_start().starts_with("io "))
        .context("no io row in the perf table")?;
    ensure!(
        io_line.split_whitespace().nth(1) == Some(n.to_string().as_str()),
        "io row: {io_line}"
    );
    let json: serde_json::Value = serde_json::from_str(&report::json::render(&a.view)?)?;
    ensure!(
        json["vms"].as_array().is_some_and(|v| !v.is_empty()),
        "JSON has no VMs"
    );

    // Diff: B has no MSR exits and twice the port writes and cpuids.
    let d = report::diff_with(
        &[&a, &b],
        &report::DiffOptions {
            vms: vec![
                Some(VmSelector::parse("kvmprof-exerciser").unwrap()),
                Some(VmSelector::parse("kvmprof-exerciser-b").unwrap()),
            ],
        },
    )?;
    println!("{}", report::diff_table::render_table(&d));
    let row = |name: &str| d.reasons.iter().find(|r| r.name == name);
    let counts = |name: &str| -> anyhow::Result<Vec<u64>> {
        let r = row(name).with_context(|| format!("no {name} row in the diff"))?;
        Ok(r.sessions.iter().map(|c| c.count).collect())
    };
    let msr = counts("msr")?;
    ensure!(msr == [2 * n, 0], "msr: {msr:?}");
    let io = counts("io")?;
    ensure!(io == [n, 2 * n], "io: {io:?}");
    if d.reasons.first().map(|r| r.name.as_str()).is_none() {
        bail!("empty diff");
    }
    Ok(())
}
