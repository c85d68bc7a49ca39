//! Filling the free lists at load: every row, octave, reason-table and RIP-slot index, in
//! ascending order (the sampler's scan relies on rows being used in that order). The kernel's
//! `kvmprof_fill` pushes FILL_CHUNK indexes per BPF_PROG_TEST_RUN; where it cannot run (no
//! test run of raw tracepoint programs before Linux 5.10), each index is pushed by a syscall.

use std::{
    os::fd::{AsFd, AsRawFd},
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use aya::{programs::RawTracePoint, Ebpf};
use profiler_common::{ev::RIP_SLOTS, FILL_CHUNK, FILL_OCTS, FILL_RIPS, FILL_ROWS, FILL_VCTX};

use super::{forget::queue, testrun::run_raw_tp};

/// The program, run at load and unloaded; in the release object beside the attached ones.
pub const PROGRAM: &str = "kvmprof_fill";

const LISTS: [(&str, u64); 4] = [
    ("FREE_ROWS", FILL_ROWS),
    ("FREE_OCTS", FILL_OCTS),
    ("FREE_VCTX", FILL_VCTX),
    ("FREE_RIPS", FILL_RIPS),
];

/// How the free lists were filled.
#[derive(Clone, Copy, Debug, Default)]
pub struct Filled {
    /// All by the kernel's program (else some or all by push syscalls).
    pub in_kernel: bool,
    pub took: Duration,
}

/// Fills the free lists named in `sizes` (map name, entries).
pub fn fill(ebpf: &mut Ebpf, sizes: &[(&str, u32)]) -> anyhow::Result<Filled> {
    let t0 = Instant::now();
    // RIPS keeps its compiled size; the exit table's lists are sized by --max-keys.
    let sizes = sizes.iter().copied().chain([("FREE_RIPS", RIP_SLOTS)]);
    let sizes: Vec<(&str, u32)> = sizes.collect();
    let want: Vec<u32> = (LISTS.iter())
        .map(|(name, _)| sizes.iter().find(|(m, _)| m == name).map_or(0, |(_, n)| *n))
        .collect();
    let mut done = [0u32; LISTS.len()];
    let in_kernel = in_kernel(ebpf, &want, &mut done).is_ok();
    // What the kernel did not push (all of it, if its program could not run).
    for (i, (name, _)) in LISTS.iter().enumerate() {
        let mut q = queue(ebpf, name)?;
        for idx in done[i]..want[i] {
            q.push(idx, 0).with_context(|| format!("filling {name}"))?;
        }
    }
    Ok(Filled {
        in_kernel,
        took: t0.elapsed(),
    })
}

/// Runs `kvmprof_fill` until the lists hold `want`; `done` counts what it pushed, also when
/// it fails part way.
fn in_kernel(ebpf: &mut Ebpf, want: &[u32], done: &mut [u32]) -> anyhow::Result<()> {
    let prog: &mut RawTracePoint = ebpf
        .program_mut(PROGRAM)
        .with_context(|| format!("{PROGRAM} missing from the object"))?
        .try_into()?;
    prog.load()?;
    let fd = prog.fd()?.as_fd().as_raw_fd();
    let mut run = || -> anyhow::Result<()> {
        for (i, (name, list)) in LISTS.iter().enumerate() {
            while done[i] < want[i] {
                let n = (want[i] - done[i]).min(FILL_CHUNK);
                let pushed = run_raw_tp(fd, &[*list, u64::from(done[i]), u64::from(n)])?;
                done[i] += pushed.min(n);
                if pushed != n {
                    bail!("kvmprof_fill pushed {pushed} of {n} onto {name}");
                }
            }
        }
        Ok(())
    };
    let r = run();
    // Needed once: not kept loaded.
    let _ = prog.unload();
    r
}
