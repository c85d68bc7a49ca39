//! The raw bpf(2) syscall, for the commands aya 0.14 does not expose (batch lookups, test
//! runs, program info fields it leaves out).

/// bpf(2) command `cmd` with `attr` as its `union bpf_attr` (a prefix of it, `A`'s size).
///
/// # Safety
/// `attr` must be a valid `union bpf_attr` prefix for `cmd`, and every buffer it points to
/// must be valid, for the call, for what `cmd` reads and writes there.
pub(super) unsafe fn sys_bpf<A>(cmd: libc::c_long, attr: &mut A) -> std::io::Result<()> {
    // SAFETY: the caller's contract; the kernel reads and writes at most size_of::<A>() bytes
    // of `attr`, which outlives the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut A,
            std::mem::size_of::<A>() as u32,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
