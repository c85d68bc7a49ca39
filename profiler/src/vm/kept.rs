//! Reading /proc files with as few syscalls as possible: in bench-vm's guest (every syscall
//! emulated) kvmprof's refresh was mostly syscalls, and `std::fs::read_to_string` spends nine
//! on a `stat` file (open, statx for a size procfs does not know, five growing reads, close).
//! A read here is open, one read (two for multi-record files) and close; and the files read
//! every refresh (a VM's `stat`, its vCPU threads' `stat` and `schedstat`, kthreadd's
//! children) stay open and are read again with one `pread` at offset 0, which makes procfs
//! generate them anew.
//!
//! A kept file is tied to the task it was opened for, not to its pid: once that task is gone
//! the read fails (ESRCH), the file is dropped and the path is opened again, so a reused pid
//! reads as it would by path. Only files on procfs are kept (a test's fixture files are
//! replaced by new ones that a kept descriptor would not see), at most [`MAX_KEPT`] of them,
//! and those not read since the last [`sweep`] are closed by it.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Files kept open at most (the default soft limit is 1 024 descriptors, and the maps and
/// programs hold ~70).
pub const MAX_KEPT: usize = 384;
/// Bytes asked for per read: a `stat` line is ~300.
const CHUNK: usize = 4096;
const PROC_SUPER_MAGIC: i64 = 0x9fa0;

struct Entry {
    file: File,
    used: u64,
}

/// Files kept open, and the sweeps so far. kvmprof uses one ([`read`], [`sweep`]); the tests
/// make their own, so that other tests' sweeps do not close their files.
pub struct Kept(Mutex<(BTreeMap<PathBuf, Entry>, u64)>);

impl Kept {
    pub const fn new() -> Self {
        Kept(Mutex::new((BTreeMap::new(), 0)))
    }

    /// [`read`] with these kept files.
    pub fn read(&self, path: &Path, records: bool, keep: bool) -> Option<String> {
        let mut buf = Vec::new();
        let mut kept = keep.then(|| self.0.lock().unwrap_or_else(|e| e.into_inner()));
        if let Some((files, now)) = kept.as_deref_mut() {
            if let Some(e) = files.get_mut(path) {
                e.used = *now;
                if read_at0(&e.file, &mut buf, records).is_ok() {
                    return Some(text(buf));
                }
                files.remove(path);
            }
        }
        let file = File::open(path).ok()?;
        read_at0(&file, &mut buf, records).ok()?;
        if let Some((files, now)) = kept.as_deref_mut() {
            if files.len() < MAX_KEPT && on_procfs(&file) {
                let used = *now;
                files.insert(path.to_path_buf(), Entry { file, used });
            }
        }
        Some(text(buf))
    }

    /// [`sweep`] of these kept files.
    pub fn sweep(&self) {
        let mut guard = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let (files, sweeps) = &mut *guard;
        let last = *sweeps;
        files.retain(|_, e| e.used == last);
        *sweeps += 1;
    }

    /// Whether `path` is kept open now.
    pub fn is_kept(&self, path: &Path) -> bool {
        let guard = self.0.lock().unwrap_or_else(|e| e.into_inner());
        guard.0.contains_key(path)
    }
}

impl Default for Kept {
    fn default() -> Self {
        Kept::new()
    }
}

static KEPT: Kept = Kept::new();

/// What the file says now. `records`: the file may hold more than one record (e.g. a list
/// of pids); a single-record file (`stat`, `schedstat`, `comm`) is whole after a short read,
/// where a multi-record one needs a read that returns nothing. `keep`: the file is read
/// every refresh, so keep it open. None when it cannot be read (the task is gone). Invalid
/// UTF-8 (a thread may name itself anything) is replaced, not refused.
pub fn read(path: &Path, records: bool, keep: bool) -> Option<String> {
    KEPT.read(path, records, keep)
}

/// Closes the kept files not read since the last sweep (threads and VMs gone, or no longer
/// watched); called once a refresh.
pub fn sweep() {
    KEPT.sweep()
}

fn text(buf: Vec<u8>) -> String {
    String::from_utf8(buf).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

fn read_at0(file: &File, buf: &mut Vec<u8>, records: bool) -> io::Result<()> {
    buf.clear();
    loop {
        let off = buf.len();
        buf.resize(off + CHUNK, 0);
        let n = file.read_at(&mut buf[off..], off as u64)?;
        buf.truncate(off + n);
        if n == 0 || (!records && n < CHUNK) {
            return Ok(());
        }
    }
}

fn on_procfs(file: &File) -> bool {
    // SAFETY: statfs is a plain C struct; all zeroes is a valid value.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: the descriptor is open for the call's duration; fstatfs writes only `st`.
    let ok = unsafe { libc::fstatfs(file.as_raw_fd(), &mut st) } == 0;
    ok && st.f_type as i64 == PROC_SUPER_MAGIC
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set_name(name: &str) {
        let c = std::ffi::CString::new(name).unwrap();
        // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes.
        assert_eq!(unsafe { libc::prctl(libc::PR_SET_NAME, c.as_ptr()) }, 0);
    }

    /// A kept file is generated anew at each read (a thread renames itself between two reads
    /// of its kept `comm`), and once its thread is gone it reads None, not the last content,
    /// and is no longer kept.
    #[test]
    fn kept_files_read_anew_and_a_gone_thread_reads_none() {
        let k = Kept::new();
        let (tx, rx) = std::sync::mpsc::channel();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || {
            set_name("kept-one");
            // SAFETY: gettid has no arguments and cannot fail.
            tx.send(unsafe { libc::gettid() }).unwrap();
            go_rx.recv().unwrap();
            set_name("kept-two");
            tx.send(0).unwrap();
            go_rx.recv().unwrap();
        });
        let tid = rx.recv().unwrap();
        let comm = PathBuf::from(format!("/proc/self/task/{tid}/comm"));
        assert_eq!(k.read(&comm, false, true).as_deref(), Some("kept-one\n"));
        assert!(k.is_kept(&comm));
        go_tx.send(()).unwrap();
        rx.recv().unwrap();
        assert_eq!(k.read(&comm, false, true).as_deref(), Some("kept-two\n"));
        go_tx.send(()).unwrap();
        t.join().unwrap();
        // Joined means exited; the task is reaped a moment later.
        let gone = (0..10_000).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(1));
            k.read(&comm, false, true).is_none()
        });
        assert!(gone, "{comm:?} still read after its thread exited");
        assert!(!k.is_kept(&comm));
    }

    /// Files outside procfs (test fixtures) are read by path every time: a replaced file
    /// reads its new content. A multi-record read goes past the first chunk.
    #[test]
    fn files_outside_procfs_are_not_kept() {
        let k = Kept::new();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("stat");
        std::fs::write(&p, "one").unwrap();
        assert_eq!(k.read(&p, false, true).as_deref(), Some("one"));
        assert!(!k.is_kept(&p));
        std::fs::remove_file(&p).unwrap();
        let long = "7 ".repeat(3 * CHUNK);
        std::fs::write(&p, &long).unwrap();
        assert_eq!(k.read(&p, true, true), Some(long));
        std::fs::remove_file(&p).unwrap();
        assert_eq!(k.read(&p, false, true), None);
    }

    /// A kept file read since the last sweep stays open; one not read since is closed.
    #[test]
    fn sweeps_close_files_no_longer_read() {
        let k = Kept::new();
        let stat = PathBuf::from(format!("/proc/{}/stat", std::process::id()));
        assert!(k.read(&stat, false, true).is_some_and(|t| t.contains(") ")));
        assert!(k.is_kept(&stat));
        k.sweep();
        assert!(k.is_kept(&stat));
        k.sweep();
        assert!(!k.is_kept(&stat));
        // Not kept when the caller says it is not read every refresh.
        let statm = PathBuf::from(format!("/proc/{}/statm", std::process::id()));
        assert!(k.read(&statm, false, false).is_some());
        assert!(!k.is_kept(&statm));
    }
}
