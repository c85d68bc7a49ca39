//! Benchmark baseline for `cargo xtask bench-vm` (tests/vm/bench.sh, tool `kvmprof-empty`):
//! attaches the test object's field-reading empty programs to kvm_exit / kvm_entry, writes the
//! ready file, runs until SIGINT or SIGTERM, then prints their BPF run time in the shape of
//! `kvmprof report --format json` (`counters.exits`, `probe_cost[].name/events/ns_per_event`).
//!
//! Usage: kvmprof-empty READY_FILE

use anyhow::{bail, Context, Result};
use kvmprof::probe::{Probe, ProbeOptions, Programs};

const PROGRAMS: [&str; 2] = ["kvmprof_empty_exit", "kvmprof_empty_entry"];

/// Field order as in kvmprof's JSON (bench.sh reads it line by line).
#[derive(serde::Serialize)]
struct Report {
    counters: Counters,
    probe_cost: Vec<Cost>,
}

#[derive(serde::Serialize)]
struct Counters {
    exits: u64,
}

#[derive(serde::Serialize)]
struct Cost {
    name: &'static str,
    events: u64,
    ns_per_event: f64,
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [ready] = args.as_slice() else {
        bail!("usage: kvmprof-empty READY_FILE");
    };
    if !kvmprof::probe::HAS_TEST_OBJECT {
        bail!("built without the eBPF test object: build it with `--features kvmprof/ebpf-test`");
    }
    let signals = block_stop_signals()?;
    let probe = Probe::load(&ProbeOptions {
        programs: Programs::EmptyBaseline,
        ..Default::default()
    })?;
    std::fs::write(ready, b"ready\n").with_context(|| format!("writing {ready}"))?;
    wait_for(&signals)?;
    let mut probe_cost = Vec::new();
    for name in PROGRAMS {
        let info = probe
            .ebpf()
            .program(name)
            .with_context(|| format!("{name} missing"))?
            .info()?;
        let (events, ns) = (info.run_count(), info.run_time().as_nanos() as u64);
        let ns_per_event = if events > 0 {
            ns as f64 / events as f64
        } else {
            0.0
        };
        probe_cost.push(Cost {
            name,
            events,
            ns_per_event,
        });
    }
    let out = Report {
        counters: Counters {
            exits: probe_cost[0].events,
        },
        probe_cost,
    };
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

/// SIGINT and SIGTERM blocked (so they queue for `wait_for` instead of killing us).
fn block_stop_signals() -> Result<libc::sigset_t> {
    // SAFETY: sigset_t is plain data; sigemptyset initialises it before any other use.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t; these calls only write to it and to this thread's
    // signal mask (no other threads exist yet, so the mask is inherited by all).
    let rc = unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut())
    };
    if rc != 0 {
        bail!("blocking SIGINT/SIGTERM: error {rc}");
    }
    Ok(set)
}

fn wait_for(set: &libc::sigset_t) -> Result<()> {
    let mut sig = 0;
    // SAFETY: `set` is an initialised sigset_t and `sig` a valid out-pointer.
    let rc = unsafe { libc::sigwait(set, &mut sig) };
    if rc != 0 {
        bail!("waiting for SIGINT/SIGTERM: error {rc}");
    }
    Ok(())
}
