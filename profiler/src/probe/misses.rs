//! A program's recursion misses: runs the kernel skipped because a BPF program, or a BPF map
//! syscall preempted mid-way, already held that CPU (kernel ≥ 5.12; older ones say 0). aya
//! does not expose the field, so this asks BPF_OBJ_GET_INFO_BY_FD itself.

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

pub fn recursion_misses(prog: BorrowedFd<'_>) -> u64 {
    // SAFETY: bpf_prog_info is a plain-integer C struct; all zeroes is a valid value.
    let mut info: bpf_prog_info = unsafe { std::mem::zeroed() };
    let mut attr = InfoAttr {
        bpf_fd: prog.as_raw_fd() as u32,
        info_len: std::mem::size_of::<bpf_prog_info>() as u32,
        info: &mut info as *mut bpf_prog_info as u64,
    };
    // SAFETY: attr is a valid bpf_attr prefix for this command; the kernel writes at most
    // info_len bytes into `info`, which outlives the call.
    match unsafe { sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr) } {
        Ok(()) => info.recursion_misses,
        Err(_) => 0,
    }
}
