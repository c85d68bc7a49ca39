//! Where a recording's bytes come from: a file read piecewise with positioned reads (so opening
//! a multi-GB recording never holds it in memory), or bytes already in memory (tests, fuzzing).

use std::{
    fs::{File, OpenOptions},
    io,
    os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt},
    path::Path,
};

use super::{StoreError, MAGIC};

/// The bytes of one recording, fixed in length when opened.
pub(super) enum Bytes {
    Mem(Vec<u8>),
    File { file: File, len: u64 },
}

impl Bytes {
    pub(super) fn len(&self) -> u64 {
        match self {
            Bytes::Mem(v) => v.len() as u64,
            Bytes::File { len, .. } => *len,
        }
    }

    /// Fill `buf` from offset `at`. A file that shrank since it was opened (another process
    /// truncating it) gives an UnexpectedEof error, never a crash: reads are plain pread.
    pub(super) fn read_at(&self, at: u64, buf: &mut [u8]) -> io::Result<()> {
        match self {
            Bytes::Mem(v) => {
                let src = usize::try_from(at)
                    .ok()
                    .and_then(|a| v.get(a..a.checked_add(buf.len())?))
                    .ok_or(io::ErrorKind::UnexpectedEof)?;
                buf.copy_from_slice(src);
                Ok(())
            }
            Bytes::File { file, .. } => file.read_exact_at(buf, at),
        }
    }

    /// Up to `n` bytes from `at` (fewer at the end of the data).
    pub(super) fn read_upto(&self, at: u64, n: usize) -> io::Result<Vec<u8>> {
        let n = n.min(self.len().saturating_sub(at) as usize);
        let mut buf = vec![0; n];
        self.read_at(at, &mut buf)?;
        Ok(buf)
    }
}

/// Open `path` for reading only if it is a regular file (following symlinks to one). The open
/// is non-blocking so a FIFO cannot stall it, and the type is checked on the opened descriptor
/// (fstat), so the file cannot be swapped between the check and the read. `wanted` ends the
/// message: what the user should give instead.
pub fn open_regular(path: &Path, wanted: &'static str) -> Result<File, StoreError> {
    let io = |action| {
        move |cause| StoreError::Io {
            path: path.to_path_buf(),
            action,
            cause,
        }
    };
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(io("open"))?;
    let t = file.metadata().map_err(io("inspect"))?.file_type();
    if t.is_file() {
        return Ok(file);
    }
    let kind = if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_dir() {
        "a directory"
    } else {
        "not a file"
    };
    Err(StoreError::NotRegular {
        path: path.to_path_buf(),
        kind,
        wanted,
    })
}

/// Whether an opened file should be read as a recording rather than as text: it starts with
/// (a prefix of) the magic, or is named `.kvmprof`, or is binary. So an empty, cut or random
/// file meant as a recording gets the recording reader's error, not a perf-text one.
pub fn is_recording(path: &Path, file: &File) -> io::Result<bool> {
    // Positioned reads: the caller's read position stays at the start.
    let mut head = vec![0; 512];
    let mut got = 0;
    while got < head.len() {
        match file.read_at(&mut head[got..], got as u64)? {
            0 => break,
            n => got += n,
        }
    }
    head.truncate(got);
    let n = head.len().min(MAGIC.len());
    let named = path.extension().is_some_and(|e| e == "kvmprof");
    let binary =
        head.contains(&0) || std::str::from_utf8(&head).is_err_and(|e| e.error_len().is_some());
    Ok(named || (n > 0 && head[..n] == MAGIC[..n]) || binary)
}
