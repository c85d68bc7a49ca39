//! `cargo xtask bench` runs this (as root, release, with the eBPF test object): prints the cost
//! numbers as a Markdown table and, with KVMPROF_BENCH_JSON=path, writes them as JSON
//! (target/bench/host.json). Ratios and medians measured in one run; no absolute asserts.

mod kernel;
mod scale;
mod sched;

use std::{collections::BTreeMap, time::Duration};

use anyhow::{bail, Context, Result};
use kvmprof::probe::{testrun::Event, Probe, ProbeOptions, Programs};

/// The numbers host.json holds, by key.
pub type Json = BTreeMap<&'static str, serde_json::Value>;

pub const REPS: usize = 7;

pub fn reps() -> usize {
    std::env::var("KVMPROF_BENCH_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(REPS)
}

fn main() -> Result<()> {
    if !kvmprof::probe::HAS_TEST_OBJECT {
        bail!("built without the eBPF test object: run through `cargo xtask bench`");
    }
    let mut json = Json::new();
    println!("| measurement | value | note |");
    println!("|---|---|---|");
    if std::env::var_os("KVMPROF_BENCH_SCALE_ONLY").is_some() {
        scale::userspace_scale(&mut json)?;
        return Ok(());
    }
    if std::env::var_os("KVMPROF_BENCH_SMALL_ONLY").is_some() {
        scale::discovery(&mut json);
        return scale::small_host();
    }
    if std::env::var_os("KVMPROF_BENCH_FILL_ONLY").is_some() {
        return kernel::fill(&mut json);
    }
    if std::env::var_os("KVMPROF_BENCH_SCHED_ONLY").is_some() {
        return sched::cost(&mut json);
    }
    // KVMPROF_BENCH_LOOP_ONLY: the cost loop alone (a second or two), for trying a change.
    let loop_only = std::env::var_os("KVMPROF_BENCH_LOOP_ONLY").is_some();
    if !loop_only {
        kernel::cost(&mut json)?;
    }
    kernel::cost_loop(&mut json)?;
    if !loop_only {
        sched::cost(&mut json)?;
    }
    if !loop_only && std::env::var_os("KVMPROF_BENCH_KERNEL_ONLY").is_none() {
        kernel::first_use(&mut json)?;
        kernel::fill(&mut json)?;
        kernel::evidence(&mut json)?;
        scale::small_host()?;
        scale::discovery(&mut json);
        scale::userspace_scale(&mut json)?;
    }
    if let Some(path) = std::env::var_os("KVMPROF_BENCH_JSON") {
        let text = serde_json::to_string_pretty(&json)?;
        std::fs::write(&path, text + "\n").with_context(|| format!("writing {path:?}"))?;
    }
    Ok(())
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

pub fn min_max(v: &[f64]) -> (f64, f64) {
    let min = v.iter().copied().fold(f64::MAX, f64::min);
    let max = v.iter().copied().fold(f64::MIN, f64::max);
    (min, max)
}

/// `key` and its `_min` and `_max` keys, for [`spread`].
#[macro_export]
macro_rules! spread_keys {
    ($key:literal) => {
        [$key, concat!($key, "_min"), concat!($key, "_max")]
    };
}

/// The median of `v`, with its min and max, put in `json` under `keys` (median, min, max:
/// [`spread_keys!`]).
pub fn spread(json: &mut Json, keys: [&'static str; 3], v: Vec<f64>) -> (f64, f64, f64) {
    let (lo, hi) = min_max(&v);
    let m = median(v);
    for (k, x) in keys.into_iter().zip([m, lo, hi]) {
        json.insert(k, r1(x));
    }
    (m, lo, hi)
}

/// Round for JSON (one decimal).
pub fn r1(v: f64) -> serde_json::Value {
    serde_json::json!((v * 10.0).round() / 10.0)
}

pub fn prog_stats(p: &Probe, name: &str) -> Result<(u64, u64)> {
    let info = p
        .ebpf()
        .program(name)
        .with_context(|| format!("{name} missing"))?
        .info()?;
    Ok((info.run_time().as_nanos() as u64, info.run_count()))
}

/// ns per run of each of `progs` over `events`, the programs taking turns every `chunk`
/// events, so that a drift in this machine's speed (the in-kernel figures here move by ±30 %
/// over minutes) hits them alike; from the kernel's BPF run-time statistics.
pub fn ns_per_run_interleaved(
    progs: &[(&Probe, &str)],
    events: &[Event],
    chunk: usize,
) -> Result<Vec<f64>> {
    let before = (progs.iter().map(|(p, n)| prog_stats(p, n))).collect::<Result<Vec<_>>>()?;
    // Who goes first rotates, so that none is always the one after a given other.
    for (i, part) in events.chunks(chunk).enumerate() {
        for j in 0..progs.len() {
            let (p, name) = progs[(i + j) % progs.len()];
            p.test_run_program(name, part)?;
        }
    }
    let mut out = Vec::new();
    for ((p, name), (t0, c0)) in progs.iter().zip(before) {
        let (t1, c1) = prog_stats(p, name)?;
        if c1 == c0 {
            bail!("no runs counted for {name}: BPF statistics are off (kernel < 5.8?)");
        }
        out.push((t1 - t0) as f64 / (c1 - c0) as f64);
    }
    Ok(out)
}

/// ns per run of `name` over `events`, from the kernel's BPF run-time statistics.
pub fn ns_per_run(p: &Probe, name: &str, events: &[Event]) -> Result<f64> {
    Ok(ns_per_run_interleaved(&[(p, name)], events, events.len().max(1))?[0])
}

/// The test-run programs with room for `max_keys` rows.
pub fn test_probe(max_keys: u32) -> Result<Probe> {
    Ok(Probe::load(&ProbeOptions {
        programs: Programs::TestRun,
        max_keys,
        ..Default::default()
    })?)
}

pub fn cpu_ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
