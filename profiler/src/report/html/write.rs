//! Where a report goes with `-o`: a file, created or overwritten like `record -o` does, but
//! never a device, FIFO, socket or directory (a root process writing a page into /dev/sda
//! because of a typo is not an option); `-o -` is stdout.

use std::{
    fs::{File, Metadata, OpenOptions},
    io::Write,
    os::unix::fs::{FileTypeExt, OpenOptionsExt},
    path::{Path, PathBuf},
};

use super::HtmlError;

/// The `-o` argument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    Stdout,
    File(PathBuf),
}

impl Output {
    /// `-o -` is stdout; no `-o` is an error for a format that needs one.
    pub fn of(arg: Option<&Path>) -> Result<Output, HtmlError> {
        match arg {
            None => Err(HtmlError::NoOutput),
            Some(p) if p.as_os_str() == "-" => Ok(Output::Stdout),
            Some(p) => Ok(Output::File(p.to_path_buf())),
        }
    }
}

/// What a non-regular file is, for the error.
fn kind(m: &Metadata) -> Option<&'static str> {
    let t = m.file_type();
    if t.is_file() {
        None
    } else if t.is_dir() {
        Some("a directory")
    } else if t.is_fifo() {
        Some("a FIFO")
    } else if t.is_socket() {
        Some("a socket")
    } else if t.is_char_device() {
        Some("a character device")
    } else if t.is_block_device() {
        Some("a block device")
    } else {
        Some("not a file")
    }
}

/// Writes `text` to `path` (created, or truncated when it is a regular file; symlinks are
/// followed, as `record -o` follows them).
pub fn write(path: &Path, text: &str) -> Result<(), HtmlError> {
    let shown = path.display().to_string();
    let not_regular = |kind| HtmlError::NotRegular {
        path: shown.clone(),
        kind,
    };
    let io = |action| {
        let path = shown.clone();
        move |cause| HtmlError::Io {
            path,
            action,
            cause,
        }
    };
    // Refuse a known non-file before opening it: opening a FIFO or a device has effects.
    if let Some(k) = std::fs::metadata(path).ok().as_ref().and_then(kind) {
        return Err(not_regular(k));
    }
    // Not truncated at open, and never blocking (a FIFO put there meanwhile): checked again
    // on the open file, then truncated.
    let mut file: File = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(io("create the file"))?;
    if let Some(k) = file.metadata().ok().as_ref().and_then(kind) {
        return Err(not_regular(k));
    }
    file.set_len(0).map_err(io("truncate the file"))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.flush())
        .map_err(io("write the file"))
}
