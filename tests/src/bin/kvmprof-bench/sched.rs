//! What the scheduler split adds to every context switch of the host: two threads pinned to
//! one CPU pass a byte back and forth over pipes (each pass is a context switch), without
//! kvmprof, with its sched programs attached and no vCPU thread (a host with no VM: every
//! switch is another thread's), and with one of the two holding an exit in flight (what a
//! vCPU thread's switches cost). Alternating runs; medians with their spread.

use std::{
    io::{Read, Write},
    os::unix::net::UnixStream,
};

use anyhow::{Context, Result};
use kvmprof::probe::{testrun::OP_EXIT, Probe, ProbeOptions, Programs};
use profiler_common::ISA_VMX;

use crate::{median, min_max, prog_stats, r1, reps, spread, Json};

const PASSES: usize = 20_000;

/// CPU time of the calling thread, ns.
fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes a valid timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// CPU time (both threads', so other processes on the busy machine do not count) per context
/// switch of a ping-pong on CPU 0; `with_tid` gets the partner thread's tid before the first
/// pass (to open an exit for it).
fn ping_pong(with_tid: impl FnOnce(u32) -> Result<()>) -> Result<f64> {
    let (mut a, mut b) = UnixStream::pair()?;
    let (tx, rx) = std::sync::mpsc::channel();
    let partner = std::thread::spawn(move || -> std::io::Result<u64> {
        kvmprof::exerciser::pin_to(0).map_err(std::io::Error::other)?;
        // SAFETY: gettid has no preconditions.
        tx.send(unsafe { libc::gettid() } as u32).ok();
        let mut byte = [0u8];
        let t0 = thread_cpu_ns();
        for _ in 0..PASSES {
            b.read_exact(&mut byte)?;
            b.write_all(&byte)?;
        }
        Ok(thread_cpu_ns() - t0)
    });
    kvmprof::exerciser::pin_to(0)?;
    with_tid(rx.recv().context("partner thread")?)?;
    let mut byte = [1u8];
    let t0 = thread_cpu_ns();
    for _ in 0..PASSES {
        a.write_all(&byte)?;
        a.read_exact(&mut byte)?;
    }
    let mine = thread_cpu_ns() - t0;
    let theirs = partner.join().expect("partner")?;
    Ok((mine + theirs) as f64 / (2 * PASSES) as f64)
}

fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes a valid timespec; CLOCK_MONOTONIC is bpf_ktime_get_ns's.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

pub fn cost(json: &mut Json) -> Result<()> {
    let none = |_: u32| Ok(());
    let (mut idle, mut vcpu, mut prog_idle, mut prog_vcpu) = (vec![], vec![], vec![], vec![]);
    let mut base = vec![];
    for _ in 0..reps() {
        // Without kvmprof, then with its programs loaded and attached for the next two.
        let b = ping_pong(none)?;
        let p = Probe::load(&ProbeOptions {
            programs: Programs::TestRunSched,
            max_keys: 1024,
            ..Default::default()
        })?;
        let (t0, c0) = prog_stats(&p, "sched_switch")?;
        let i = ping_pong(none)?;
        let (t1, c1) = prog_stats(&p, "sched_switch")?;
        let v = ping_pong(|tid| {
            let t = mono_ns();
            p.test_run(&[[OP_EXIT, 1, tid as u64, t, 0, ISA_VMX as u64, 30]])?;
            Ok(())
        })?;
        let (t2, c2) = prog_stats(&p, "sched_switch")?;
        base.push(b);
        idle.push(i - b);
        vcpu.push(v - b);
        prog_idle.push((t1 - t0) as f64 / (c1 - c0).max(1) as f64);
        prog_vcpu.push((t2 - t1) as f64 / (c2 - c1).max(1) as f64);
    }
    let (i, ilo, ihi) = spread(
        json,
        crate::spread_keys!("sched_switch_ns_added_no_vm"),
        idle,
    );
    let (vlo, vhi) = min_max(&vcpu);
    let (b, v) = (median(base), median(vcpu));
    let (pi, pv) = (median(prog_idle), median(prog_vcpu));
    println!("| context switch added by the scheduler split, no vCPU thread involved | {i:.1} ns | ping-pong on one CPU (the two threads' CPU time), {b:.0} ns a pass without kvmprof; median of {} alternating runs (min {ilo:.1}, max {ihi:.1}); sched_switch's own BPF run time {pi:.1} ns |", reps());
    println!("| context switch added, a vCPU thread with an exit in flight | {v:.1} ns | min {vlo:.1}, max {vhi:.1}; sched_switch's own BPF run time {pv:.1} ns (it reads the clock and writes the thread's slot) |");
    json.insert("sched_switch_ns_added_vcpu", r1(v));
    json.insert("sched_switch_prog_ns_no_vm", r1(pi));
    json.insert("sched_switch_prog_ns_vcpu", r1(pv));
    json.insert("context_switch_ns_without", r1(b));
    Ok(())
}
