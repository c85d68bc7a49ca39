//! A program's statistics in one BPF_OBJ_GET_INFO_BY_FD: run count and run time
//! (kernel.bpf_stats_enabled) and recursion misses, runs the kernel skipped because a BPF
//! program, or a BPF map syscall preempted mid-way, already held that CPU (kernel ≥ 5.12; older
//! ones say 0). aya does not expose the last, and its own info call plus ours made two
//! syscalls a program each refresh (19 programs: a fifth of a quiet refresh's syscalls).

use std::os::fd::{AsRawFd, BorrowedFd};

use aya_obj::generated::bpf_prog_info;

use super::sys::sys_bpf;

const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;

/// The `info` member of `union bpf_attr`.
#[repr(C)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// What one program's info says of its runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProgRuns {
    pub run_cnt: u64,
    pub run_time_ns: u64,
    pub recursion_misses: u64,
}

/// None when the kernel refuses the call (the program is gone).
pub fn prog_runs(prog: BorrowedFd<'_>) -> Option<ProgRuns> {
    // SAFETY: bpf_prog_info is a plain-integer C struct; all zeroes is a valid value.
    let mut info: bpf_prog_info = unsafe { std::mem::zeroed() };
    let mut attr = InfoAttr {
        bpf_fd: prog.as_raw_fd() as u32,
        info_len: std::mem::size_of::<bpf_prog_info>() as u32,
        info: &mut info as *mut bpf_prog_info as u64,
    };
    // SAFETY: attr is a valid bpf_attr prefix for this command; the kernel writes at most
    // info_len bytes into `info`, which outlives the call.
    unsafe { sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr) }.ok()?;
    Some(ProgRuns {
        run_cnt: info.run_cnt,
        run_time_ns: info.run_time_ns,
        recursion_misses: info.recursion_misses,
    })
}
