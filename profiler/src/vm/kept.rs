//! Reading /proc files with as few syscalls as possible: in bench-vm's guest (every syscall
//! emulated) kvmprof's refresh was mostly syscalls, and `std::fs::read_to_string` spends nine
//! on a `stat` file (open, statx for a size procfs does not know, five growing reads, close).
//! A read here is open, one read (two for multi-record files) and close; and the files read
//! every refresh (a VM's `stat`, its vCPU threads' `stat` and `schedstat`, kthreadd's
//! children) stay open and are read again with one `pread` at offset 0, which makes procfs
//! generate them anew. A VM's task directory, listed every refresh, stays open too and is
//! listed again from offset 0 with one `getdents64` (`std::fs::read_dir` spent five syscalls).
//!
//! A kept file is tied to the task it was opened for, not to its pid: once that task is gone
//! the read fails (ESRCH, or ENOENT for a directory), the file is dropped and the path is
//! opened again, so a reused pid reads as it would by path. Only files on procfs are kept (a
//! test's fixture files are replaced by new ones that a kept descriptor would not see), at
//! most [`MAX_KEPT`] of them, and those not read since the last [`sweep`] are closed by it.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

/// Files kept open at most (the default soft limit is 1 024 descriptors, and the maps and
/// programs hold ~70).
pub const MAX_KEPT: usize = 384;
/// Bytes asked for per read: a `stat` line is ~300.
const CHUNK: usize = 4096;
const PROC_SUPER_MAGIC: i64 = 0x9fa0;
/// Bytes asked for per `getdents64`: ~1 000 tids.
const DENTS: usize = 32768;
/// The longest directory entry `getdents64` returns: its 19-byte header, a 255-byte name and
/// its NUL, 8-aligned. A listing that left this much room unused is complete.
const MAX_DIRENT: usize = 280;

struct Entry {
    file: File,
    used: u64,
}

type Files = (BTreeMap<PathBuf, Entry>, u64);

/// Files kept open, and the sweeps so far. kvmprof uses one ([`read`], [`sweep`]); the tests
/// make their own, so that other tests' sweeps do not close their files.
pub struct Kept(Mutex<Files>);

impl Kept {
    pub const fn new() -> Self {
        Kept(Mutex::new((BTreeMap::new(), 0)))
    }

    fn lock(&self) -> MutexGuard<'_, Files> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// [`read`] with these kept files.
    pub fn read(&self, path: &Path, records: bool, keep: bool) -> Option<String> {
        let mut buf = Vec::new();
        self.with(
            path,
            keep,
            |p| File::open(p),
            |f, _| read_at0(f, &mut buf, records),
        )?;
        Some(text(buf))
    }

    /// [`list`] with these kept files.
    pub fn list(&self, path: &Path, keep: bool) -> Option<Vec<u32>> {
        let mut out = Vec::new();
        let open = |p: &Path| {
            let mut o = OpenOptions::new();
            o.read(true)
                .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC);
            o.open(p)
        };
        self.with(path, keep, open, |f, kept| list_at0(f, &mut out, kept))?;
        Some(out)
    }

    /// `op` on the kept file of `path` (when `keep` and it is kept; `op`'s flag says so), else
    /// on `path` opened anew, which is kept if `keep` and on procfs. A kept file whose `op`
    /// fails (its task is gone) is dropped and the path opened again.
    fn with(
        &self,
        path: &Path,
        keep: bool,
        open: impl Fn(&Path) -> io::Result<File>,
        mut op: impl FnMut(&File, bool) -> io::Result<()>,
    ) -> Option<()> {
        let mut kept = keep.then(|| self.lock());
        if let Some((files, now)) = kept.as_deref_mut() {
            if let Some(e) = files.get_mut(path) {
                e.used = *now;
                if op(&e.file, true).is_ok() {
                    return Some(());
                }
                files.remove(path);
            }
        }
        let file = open(path).ok()?;
        op(&file, false).ok()?;
        if let Some((files, now)) = kept.as_deref_mut() {
            if files.len() < MAX_KEPT && on_procfs(&file) {
                let used = *now;
                files.insert(path.to_path_buf(), Entry { file, used });
            }
        }
        Some(())
    }

    /// [`sweep`] of these kept files.
    pub fn sweep(&self) {
        let mut guard = self.lock();
        let (files, sweeps) = &mut *guard;
        let last = *sweeps;
        files.retain(|_, e| e.used == last);
        *sweeps += 1;
    }

    /// Whether `path` is kept open now.
    pub fn is_kept(&self, path: &Path) -> bool {
        self.lock().0.contains_key(path)
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

/// The numeric entries (pids, tids) of directory `path`, as now. `keep`: it is listed every
/// refresh (a VM's task directory), so keep it open. None when it cannot be listed.
pub fn list(path: &Path, keep: bool) -> Option<Vec<u32>> {
    KEPT.list(path, keep)
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

/// The numeric names in directory `dir`, listed from its start: `lseek` to 0, then
/// `getdents64` until a call returns nothing, or, on a kept (procfs) directory, leaves room
/// for another entry: procfs fills the buffer while entries fit, so that call was the last.
fn list_at0(dir: &File, out: &mut Vec<u32>, procfs: bool) -> io::Result<()> {
    out.clear();
    let fd = dir.as_raw_fd();
    // SAFETY: lseek on a descriptor we own; it only moves the directory's position.
    if unsafe { libc::lseek(fd, 0, libc::SEEK_SET) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut buf = vec![0u8; DENTS];
    loop {
        // SAFETY: the kernel writes at most `buf.len()` bytes of dirents into `buf`, which we
        // own and do not touch during the call.
        let n = unsafe { libc::syscall(libc::SYS_getdents64, fd, buf.as_mut_ptr(), buf.len()) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = n as usize;
        out.extend(
            dirents(&buf[..n])
                .filter_map(|name| std::str::from_utf8(name).ok()?.parse::<u32>().ok()),
        );
        if n == 0 || (procfs && n + MAX_DIRENT <= buf.len()) {
            return Ok(());
        }
    }
}

/// The names in a `getdents64` buffer: each `linux_dirent64` is d_ino (8 bytes), d_off (8),
/// d_reclen (2), d_type (1), then the NUL-terminated name.
fn dirents(buf: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut at = 0;
    std::iter::from_fn(move || {
        let rec = buf.get(at..)?;
        let len = usize::from(u16::from_ne_bytes([*rec.get(16)?, *rec.get(17)?]));
        let name = rec.get(19..len.min(rec.len()))?;
        at += len.max(1);
        let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
        Some(&name[..end])
    })
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

    /// A kept task directory lists anew each time (a thread that starts is there, one that
    /// ended is not), and a process that is gone lists None and is no longer kept.
    #[test]
    fn kept_directories_list_anew_and_a_gone_process_lists_none() {
        let k = Kept::new();
        let task = PathBuf::from(format!("/proc/{}/task", std::process::id()));
        let first = k.list(&task, true).unwrap();
        assert!(first.contains(&std::process::id()), "{first:?}");
        assert!(k.is_kept(&task));
        let (tx, rx) = std::sync::mpsc::channel();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || {
            // SAFETY: gettid has no arguments and cannot fail.
            tx.send(unsafe { libc::gettid() } as u32).unwrap();
            go_rx.recv().unwrap();
        });
        let tid = rx.recv().unwrap();
        assert!(k.list(&task, true).unwrap().contains(&tid));
        go_tx.send(()).unwrap();
        t.join().unwrap();
        let gone = (0..10_000).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(1));
            !k.list(&task, true).unwrap().contains(&tid)
        });
        assert!(gone, "thread {tid} still listed after it exited");
        assert!(k.is_kept(&task));

        let mut child = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap();
        let ctask = PathBuf::from(format!("/proc/{}/task", child.id()));
        assert_eq!(k.list(&ctask, true), Some(vec![child.id()]));
        assert!(k.is_kept(&ctask));
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(k.list(&ctask, true), None);
        assert!(!k.is_kept(&ctask));
    }

    /// A directory too big for one `getdents64` is listed whole (non-numeric names skipped);
    /// outside procfs it is not kept.
    #[test]
    fn big_directories_list_whole() {
        let k = Kept::new();
        let dir = tempfile::tempdir().unwrap();
        let want: Vec<u32> = (100_000..103_000).collect();
        for n in &want {
            std::fs::write(dir.path().join(n.to_string()), "").unwrap();
        }
        std::fs::write(dir.path().join("comm"), "").unwrap();
        std::fs::write(dir.path().join("x".repeat(255)), "").unwrap();
        let mut got = k.list(dir.path(), true).unwrap();
        got.sort_unstable();
        assert_eq!(got, want);
        assert!(!k.is_kept(dir.path()));
        assert_eq!(k.list(&dir.path().join("missing"), true), None);
    }
}
