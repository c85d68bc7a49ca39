//! BPF_PROG_TEST_RUN on the raw_tp test entry: drives the exact kernel-verified aggregation
//! code with synthetic exit/entry sequences (classic tracepoints cannot be test-run).

use std::os::fd::{AsFd, AsRawFd};

use anyhow::{bail, Context};
use aya::programs::RawTracePoint;

use super::{sys::sys_bpf, Probe};

pub const OP_EXIT: u64 = 0;
pub const OP_ENTRY: u64 = 1;
pub const OP_UEXIT: u64 = 2;
pub const OP_KVM_RUN: u64 = 3;

/// One synthetic event: [op, tgid, tid, now_ns, vcpu, isa, reason].
pub type Event = [u64; 7];

/// The subset of `union bpf_attr` that BPF_PROG_TEST_RUN reads for raw_tp programs.
#[repr(C)]
#[derive(Default)]
struct TestRunAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
    batch_size: u32,
    _pad: u32,
}

const BPF_PROG_TEST_RUN: libc::c_long = 10;

impl Probe {
    /// Run the test entry once per event; returns the program's return values.
    pub fn test_run(&self, events: &[Event]) -> anyhow::Result<Vec<u32>> {
        self.test_run_program("kvmprof_test", events)
    }

    /// Run `kvmprof_test` or the empty baseline `kvmprof_empty` once per event.
    pub fn test_run_program(&self, name: &str, events: &[Event]) -> anyhow::Result<Vec<u32>> {
        let prog: &RawTracePoint = self
            .ebpf()
            .program(name)
            .with_context(|| {
                format!("{name} not loaded (ProbeOptions::programs = Programs::TestRun)")
            })?
            .try_into()?;
        let fd = prog.fd()?.as_fd().as_raw_fd();
        events.iter().map(|ev| run_raw_tp(fd, ev)).collect()
    }
}

/// Runs the loaded raw tracepoint program `fd` once on the arguments `args`
/// (BPF_PROG_TEST_RUN, on this CPU); its return value.
pub(super) fn run_raw_tp(fd: i32, args: &[u64]) -> anyhow::Result<u32> {
    let mut attr = TestRunAttr {
        prog_fd: fd as u32,
        ctx_size_in: std::mem::size_of_val(args) as u32,
        ctx_in: args.as_ptr() as u64,
        ..Default::default()
    };
    // SAFETY: attr is a valid bpf_attr prefix for BPF_PROG_TEST_RUN; ctx_in points to `args`,
    // which outlives the call; the kernel reads at most ctx_size_in bytes.
    if let Err(e) = unsafe { sys_bpf(BPF_PROG_TEST_RUN, &mut attr) } {
        bail!("BPF_PROG_TEST_RUN failed: {e}");
    }
    Ok(attr.retval)
}
