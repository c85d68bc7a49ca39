//! One profiler per host by default: two instances double the probe cost on every exit and
//! each sees only its own maps, which confuses more than it helps.
//!
//! The lock is a listening socket in the abstract Unix namespace: it needs no file that root
//! created and a capability-only user cannot open, and the kernel releases it when the process
//! dies, even on SIGKILL. A second instance learns the holder's pid from SO_PEERCRED.

use std::os::{
    fd::AsRawFd,
    linux::net::SocketAddrExt,
    unix::net::{SocketAddr, UnixListener, UnixStream},
};

use super::ProbeError;

/// The abstract socket name of the host-wide lock.
pub const LOCK_NAME: &str = "kvmprof/probe-lock";

/// Holds the lock while alive.
pub struct InstanceLock {
    _socket: UnixListener,
}

pub fn acquire(name: &str) -> Result<InstanceLock, ProbeError> {
    let addr = SocketAddr::from_abstract_name(name.as_bytes())
        .map_err(|e| ProbeError::other("naming the instance lock", e))?;
    match UnixListener::bind_addr(&addr) {
        Ok(socket) => Ok(InstanceLock { _socket: socket }),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Err(ProbeError::Busy {
            pid: holder(&addr).map_or_else(|| "unknown".into(), |p| p.to_string()),
        }),
        Err(e) => Err(ProbeError::other("taking the instance lock", e)),
    }
}

/// The pid of the process listening on `addr`.
fn holder(addr: &SocketAddr) -> Option<i32> {
    let stream = UnixStream::connect_addr(addr).ok()?;
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `cred`, a live ucred of that size.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    (rc == 0 && cred.pid > 0).then_some(cred.pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_is_refused_with_the_first_pid() {
        let name = format!("kvmprof-test/lock-{}", std::process::id());
        let first = acquire(&name).expect("first lock");
        match acquire(&name) {
            Err(ProbeError::Busy { pid }) => assert_eq!(pid, std::process::id().to_string()),
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("second instance got the lock"),
        }
        drop(first);
        assert!(acquire(&name).is_ok());
    }
}
