//! Reading text handed to kvmprof (perf text, thresholds files): a regular file, or a pipe
//! (`--from-perf /dev/stdin`).
//! A FIFO without a writer must not hang the command and a device must not be read forever,
//! so the open is non-blocking, devices, sockets and directories are refused, and the text is
//! capped in size.

use std::{
    fs::OpenOptions,
    io::Read,
    os::{fd::AsRawFd, unix::fs::FileTypeExt, unix::fs::OpenOptionsExt},
    path::Path,
};

/// Far above any real `perf kvm stat` output (a day of `live` mode is ~100 MB).
pub const MAX_TEXT: u64 = 512 << 20;

/// Why a text file could not be read; the text is the whole one-line message.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TextFileError(pub String);

/// The text of `path`; bytes that are not UTF-8 become U+FFFD. `what` names the expected
/// content in errors ("perf kvm stat report text").
pub fn read(path: &Path, what: &str) -> Result<String, TextFileError> {
    let shown = path.display().to_string();
    let io = |cause: std::io::Error| TextFileError(format!("{shown}: cannot read: {cause}"));
    let mut file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(io)?;
    let t = file.metadata().map_err(io)?.file_type();
    if t.is_fifo() {
        // A pipe: wait for its writer's data from here on (a FIFO nobody writes to reads as
        // empty at once, since the open did not wait for a writer).
        // SAFETY: F_GETFL/F_SETFL on a descriptor `file` owns; no memory is passed.
        unsafe {
            let fl = libc::fcntl(file.as_raw_fd(), libc::F_GETFL);
            libc::fcntl(file.as_raw_fd(), libc::F_SETFL, fl & !libc::O_NONBLOCK);
        }
    } else if !t.is_file() {
        return Err(TextFileError(format!(
            "{shown} is not a regular file or a pipe: give the path of {what}"
        )));
    }
    let mut bytes = Vec::new();
    (&mut file)
        .take(MAX_TEXT + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_TEXT {
        return Err(TextFileError(format!(
            "{shown} is larger than {} MiB: not {what}",
            MAX_TEXT >> 20
        )));
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}
