//! Reading a recording: validate every frame once at open, then decode on demand.

use std::{
    fs::File,
    path::{Path, PathBuf},
};

pub use super::cursor::Cursor;
use super::{
    bytes::{open_regular, Bytes},
    crc,
    frame::FrameRef,
    scan, u32_at, Header, StoreError, FORMAT_VERSION, MAGIC, MAX_HEADER,
};
use crate::sample::Sample;

/// An opened recording: header, index of intact frames, and what was wrong with the file.
pub struct Recording {
    path: PathBuf,
    header: Header,
    /// Format version from the file (payload encodings differ between versions).
    version: u32,
    data: Bytes,
    pub(super) frames: Vec<FrameRef>,
    /// Indices into `frames` of key frames, ascending.
    pub(super) keys: Vec<usize>,
    warnings: Vec<String>,
    finished: bool,
}

impl Recording {
    /// Check a whole recording (regular files only). Damage after the header is not an error:
    /// the intact frames are kept and `warnings` says what was skipped and where. The file is
    /// read piecewise and only the frame index is kept: samples are decoded on demand.
    pub fn open(path: impl AsRef<Path>) -> Result<Recording, StoreError> {
        let path = path.as_ref();
        Self::from_file(
            path,
            open_regular(path, "give the path of a .kvmprof recording")?,
        )
    }

    /// As `open`, for a file already opened (see `open_regular`).
    pub fn from_file(path: impl AsRef<Path>, file: File) -> Result<Recording, StoreError> {
        let path = path.as_ref();
        let len = file
            .metadata()
            .map_err(|cause| StoreError::Io {
                path: path.to_path_buf(),
                action: "inspect",
                cause,
            })?
            .len();
        Self::from_source(path, Bytes::File { file, len })
    }

    /// As `open`, for bytes already in memory; `path` is used in messages.
    pub fn from_bytes(path: impl AsRef<Path>, data: Vec<u8>) -> Result<Recording, StoreError> {
        Self::from_source(path.as_ref(), Bytes::Mem(data))
    }

    fn from_source(path: &Path, data: Bytes) -> Result<Recording, StoreError> {
        let path = path.to_path_buf();
        let (header, start, version) = read_header(&path, &data)?;
        let mut r = Recording {
            path,
            header,
            version,
            data,
            frames: vec![],
            keys: vec![],
            warnings: vec![],
            finished: false,
        };
        r.scan(start);
        Ok(r)
    }

    /// Index every frame from `start`, decoding each once so later reads cannot fail. The
    /// decoding runs first, one key interval per thread (intervals decode independently; a
    /// VM-hour takes ~1.8 s on one core); the walk then replays the exact sequential logic with
    /// each frame's verdict looked up. A key frame the first pass did not see (found by the
    /// resynchronising byte search after damage) is decoded there and then.
    fn scan(&mut self, start: u64) {
        let (data, version) = (&self.data, self.version);
        let all = scan::walk(data, &self.path, version, start, |_| Ok(()));
        let (decoded, failed) =
            scan::decode_intervals(&all.frames, &all.keys, |cur, f| cur.step(data, f, version));
        let mut live: Option<Cursor> = None;
        let w = scan::walk(data, &self.path, version, start, |f| {
            if f.key {
                live = (!decoded.contains(&f.offset)).then(Cursor::default);
            }
            match live.as_mut() {
                Some(cur) => cur.step(data, f, version),
                None => failed.get(&f.offset).map_or(Ok(()), |why| Err(why.clone())),
            }
        });
        let finished = w.finished || scan::ends_with_end_marker(data, version);
        (self.frames, self.keys, self.warnings, self.finished) =
            (w.frames, w.keys, w.warnings, finished);
        if !finished && !w.truncated {
            let secs = self.header.interval_ms as f64 / 1000.0;
            self.warnings.push(format!(
                "{}: unfinished (the recorder did not stop cleanly; the last {secs} s may be \
                 missing)",
                self.path.display()
            ));
        }
    }

    /// The error for a recording without samples, with the warnings that say why.
    pub fn no_samples(&self) -> StoreError {
        let why = if self.warnings.is_empty() {
            "the recorder stopped before its first sample".to_string()
        } else {
            let p = format!("{}: ", self.path.display());
            let w: Vec<&str> = self
                .warnings
                .iter()
                .map(|w| w.trim_start_matches(&p))
                .collect();
            w.join("; ")
        };
        StoreError::NoSamples {
            path: self.path.clone(),
            why,
        }
    }

    /// The file's format version (4 and later hold the slow-exit log).
    pub fn version(&self) -> u32 {
        self.version
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Number of samples that can be replayed.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Damage found while opening (truncated tail, corrupt frames with byte offsets).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// True when the recorder closed the file with `finish` (false after a kill or crash).
    pub fn finished(&self) -> bool {
        self.finished
    }

    /// Byte offset of sample `i`'s frame (for messages and tools).
    pub fn offset(&self, i: usize) -> Option<u64> {
        self.frames.get(i).map(|f| f.offset)
    }

    /// Sample `i`, decoded from the nearest key frame at or before it.
    pub fn sample(&self, i: usize) -> Result<Sample, StoreError> {
        let mut cur = Cursor::default();
        self.seek(&mut cur, i)?;
        self.advance(&mut cur)?.ok_or_else(|| self.out_of_range(i))
    }

    /// Position `cur` so that the next `advance` yields sample `i` (i == len is the end).
    /// Moving forward within a key interval reuses the cursor's state.
    pub fn seek(&self, cur: &mut Cursor, i: usize) -> Result<(), StoreError> {
        if i > self.len() {
            return Err(self.out_of_range(i));
        }
        let key = self.keys.partition_point(|&k| k <= i).saturating_sub(1);
        let key_frame = self.keys.get(key).copied().unwrap_or(0);
        if !(cur.zstd.is_some() && cur.next > key_frame && cur.next <= i) {
            *cur = Cursor {
                next: key_frame,
                ..Cursor::default()
            };
        }
        while cur.next < i {
            self.advance(cur)?;
        }
        Ok(())
    }

    /// The sample at the cursor, moving it on; None at the end.
    pub fn advance(&self, cur: &mut Cursor) -> Result<Option<Sample>, StoreError> {
        let Some(f) = self.frames.get(cur.next) else {
            return Ok(None);
        };
        if let Err(why) = cur.step(&self.data, f, self.version) {
            // The state is half-updated: force the next seek to start from a key frame.
            cur.zstd = None;
            return Err(StoreError::Corrupt {
                path: self.path.clone(),
                offset: f.offset,
                why,
            });
        }
        cur.next += 1;
        Ok(Some(cur.sample.clone()))
    }

    /// All samples in order.
    pub fn samples(&self) -> impl Iterator<Item = Result<Sample, StoreError>> + '_ {
        let mut cur = Cursor::default();
        std::iter::from_fn(move || self.advance(&mut cur).transpose())
    }

    fn out_of_range(&self, index: usize) -> StoreError {
        StoreError::OutOfRange {
            path: self.path.clone(),
            index,
            len: self.len(),
        }
    }
}

fn read_header(path: &Path, src: &Bytes) -> Result<(Header, u64, u32), StoreError> {
    let not = |why: &str| StoreError::NotARecording {
        path: path.to_path_buf(),
        why: why.into(),
    };
    let bad = |why: String| StoreError::BadHeader {
        path: path.to_path_buf(),
        why,
    };
    let io = |cause| StoreError::Io {
        path: path.to_path_buf(),
        action: "read the header of",
        cause,
    };
    let fixed = MAGIC.len() + 12;
    let data = src.read_upto(0, fixed).map_err(io)?;
    if data.is_empty() {
        return Err(not("the file is empty"));
    }
    let magic_len = data.len().min(MAGIC.len());
    if data[..magic_len] != MAGIC[..magic_len] {
        return Err(not(
            "bad magic: it does not start with the kvmprof magic bytes",
        ));
    }
    if data.len() < fixed {
        return Err(bad(format!(
            "file ends at byte {} inside the header",
            data.len()
        )));
    }
    let version = u32_at(&data, 8).unwrap_or(0);
    if version > FORMAT_VERSION {
        return Err(StoreError::NewerVersion {
            path: path.to_path_buf(),
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    if version == 0 {
        return Err(bad("format version 0 does not exist".into()));
    }
    let len = u32_at(&data, 12).unwrap_or(0) as usize;
    let want = u32_at(&data, 16).unwrap_or(0);
    if len > MAX_HEADER {
        return Err(bad(format!("impossible header length {len}")));
    }
    let body = src.read_upto(fixed as u64, len).map_err(io)?;
    if body.len() < len {
        return Err(bad(format!(
            "file ends at byte {} inside the header",
            src.len()
        )));
    }
    if crc(&body) != want {
        return Err(bad("header checksum mismatch".into()));
    }
    let header = postcard::from_bytes(&body).map_err(|e| bad(format!("header: {e}")))?;
    Ok((header, (fixed + len) as u64, version))
}
