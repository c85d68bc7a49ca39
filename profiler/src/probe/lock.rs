//! One profiler per host by default: two instances double the probe cost on every exit and
//! each sees only its own maps, which confuses more than it helps.

use std::{
    fs::{File, OpenOptions},
    io::{Read, Seek, Write},
    os::fd::AsRawFd,
    path::Path,
};

use super::ProbeError;

/// Holds the lock while alive (the kernel drops it when the process dies, even on SIGKILL).
pub struct InstanceLock {
    _file: File,
}

pub fn acquire(path: &Path) -> Result<InstanceLock, ProbeError> {
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| ProbeError::other(format!("opening lock file {}", path.display()), e))?;
    // SAFETY: flock on a file descriptor we own; LOCK_NB makes it return instead of waiting.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let mut pid = String::new();
        let _ = file.read_to_string(&mut pid);
        return Err(ProbeError::Busy {
            pid: pid.trim().to_string(),
        });
    }
    let _ = file.set_len(0);
    let _ = file.rewind();
    let _ = write!(file, "{}", std::process::id());
    Ok(InstanceLock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_is_refused_with_the_first_pid() {
        let dir = std::env::temp_dir().join(format!("kvmprof-lock-{}", std::process::id()));
        let path = dir.join("lock");
        let first = acquire(&path).expect("first lock");
        // flock locks belong to the open file description: a second open conflicts.
        match acquire(&path) {
            Err(ProbeError::Busy { pid }) => assert_eq!(pid, std::process::id().to_string()),
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("second instance got the lock"),
        }
        drop(first);
        assert!(acquire(&path).is_ok());
        let _ = std::fs::remove_dir_all(dir);
    }
}
