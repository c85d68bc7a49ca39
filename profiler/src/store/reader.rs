//! Reading a recording: validate every frame once at open, then decode on demand.

use std::{
    ops::Range,
    path::{Path, PathBuf},
};

use zstd::stream::raw::{Decoder, InBuffer, Operation, OutBuffer};

use super::{
    codec, crc, scan, stats::Models, u32_at, Header, StoreError, BODY_PREFIX, BODY_PREFIX_V1,
    FORMAT_VERSION, FRAME_PREFIX, KIND_DELTA, KIND_END, KIND_KEY, MAGIC, MAX_FRAME, MAX_HEADER,
};
use crate::sample::Sample;

#[derive(Clone, Debug)]
pub(super) struct FrameRef {
    pub(super) offset: u64,
    pub(super) key: bool,
    raw_len: usize,
    /// Compressed payload within `Recording::data`.
    pub(super) zstd: Range<usize>,
    /// Range-coded stat residuals within `Recording::data` (empty in format 1).
    pub(super) coded: Range<usize>,
}

/// Why a frame could not be parsed at some offset.
pub(super) enum Bad {
    /// The frame runs past the end of the file.
    Incomplete,
    Damaged(String),
}

pub(super) fn parse_frame(
    data: &[u8],
    at: usize,
    version: u32,
) -> Result<(u8, FrameRef, usize), Bad> {
    let prefix = if version == 1 {
        BODY_PREFIX_V1
    } else {
        BODY_PREFIX
    };
    let len = u32_at(data, at).ok_or(Bad::Incomplete)? as usize;
    let want = u32_at(data, at + 4).ok_or(Bad::Incomplete)?;
    if !(prefix..=MAX_FRAME).contains(&len) {
        return Err(Bad::Damaged(format!("impossible frame length {len}")));
    }
    let start = at + FRAME_PREFIX;
    let body = data.get(start..start + len).ok_or(Bad::Incomplete)?;
    if crc(body) != want {
        return Err(Bad::Damaged("checksum mismatch".into()));
    }
    let kind = body[0];
    let raw_len = u32_at(body, 1).unwrap_or(0) as usize;
    if !matches!(kind, KIND_KEY | KIND_DELTA | KIND_END) || raw_len > MAX_FRAME {
        return Err(Bad::Damaged(format!("unknown frame kind {kind}")));
    }
    let (body_end, zstd_start) = (start + len, start + prefix);
    let zstd_end = match version {
        1 => body_end,
        _ => zstd_start.saturating_add(u32_at(body, 5).unwrap_or(0) as usize),
    };
    if zstd_end > body_end {
        return Err(Bad::Damaged("zstd length runs past the frame".into()));
    }
    let f = FrameRef {
        offset: at as u64,
        key: kind == KIND_KEY,
        raw_len,
        zstd: zstd_start..zstd_end,
        coded: zstd_end..body_end,
    };
    Ok((kind, f, start + len))
}

/// Next offset after `from` holding an intact key frame (where replay can resume).
pub(super) fn next_key_frame(data: &[u8], from: usize, version: u32) -> Option<usize> {
    (from..data.len().saturating_sub(FRAME_PREFIX + BODY_PREFIX_V1))
        .filter(|&at| data[at + FRAME_PREFIX] == KIND_KEY)
        .find(|&at| matches!(parse_frame(data, at, version), Ok((KIND_KEY, ..))))
}

/// Decoding state: the sample after frame `next - 1`, and the decompressor and range coder
/// models positioned after it.
#[derive(Default)]
pub struct Cursor {
    next: usize,
    sample: Sample,
    zstd: Option<Decoder<'static>>,
    models: Models,
}

impl Cursor {
    /// Index of the frame the next `advance` decodes.
    pub fn position(&self) -> usize {
        self.next
    }

    /// Decode one frame that directly follows the state's frame (or is a key frame).
    pub(super) fn step(&mut self, data: &[u8], f: &FrameRef, version: u32) -> Result<(), String> {
        if f.key {
            self.zstd = Some(Decoder::new().map_err(|e| e.to_string())?);
            self.sample = Sample::default();
            self.models = Models::default();
        }
        let z = self
            .zstd
            .as_mut()
            .ok_or("delta frame without a key frame")?;
        let input = data.get(f.zstd.clone()).ok_or("frame outside the file")?;
        let mut raw = vec![0u8; f.raw_len];
        let mut inb = InBuffer::around(input);
        let mut outb = OutBuffer::around(&mut raw[..]);
        loop {
            let before = (inb.pos(), outb.pos());
            z.run(&mut inb, &mut outb)
                .map_err(|e| format!("zstd: {e}"))?;
            if (inb.pos(), outb.pos()) == before {
                break;
            }
        }
        if inb.pos() != input.len() || outb.pos() != f.raw_len {
            return Err("compressed data does not match its length".into());
        }
        let payload: codec::Payload =
            postcard::from_bytes(&raw).map_err(|e| format!("payload: {e}"))?;
        let coded = data.get(f.coded.clone()).ok_or("frame outside the file")?;
        codec::apply(
            &mut self.sample,
            &payload,
            coded,
            version,
            &mut self.models,
            f.key,
        )
    }
}

/// An opened recording: header, index of intact frames, and what was wrong with the file.
pub struct Recording {
    path: PathBuf,
    header: Header,
    /// Format version from the file (payload encodings differ between versions).
    version: u32,
    data: Vec<u8>,
    pub(super) frames: Vec<FrameRef>,
    /// Indices into `frames` of key frames, ascending.
    pub(super) keys: Vec<usize>,
    warnings: Vec<String>,
    finished: bool,
}

impl Recording {
    /// Read and check a whole recording. Damage after the header is not an error: the intact
    /// frames are kept and `warnings` says what was skipped and where.
    pub fn open(path: impl AsRef<Path>) -> Result<Recording, StoreError> {
        let path = path.as_ref();
        let data = std::fs::read(path).map_err(|source| StoreError::Io {
            path: path.to_path_buf(),
            action: "read the recording",
            source,
        })?;
        Self::from_bytes(path, data)
    }

    /// As `open`, for bytes already in memory; `path` is used in messages.
    pub fn from_bytes(path: impl AsRef<Path>, data: Vec<u8>) -> Result<Recording, StoreError> {
        let path = path.as_ref().to_path_buf();
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
    fn scan(&mut self, start: usize) {
        let (data, version) = (&self.data[..], self.version);
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
        (self.frames, self.keys, self.warnings, self.finished) =
            (w.frames, w.keys, w.warnings, w.finished);
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

fn read_header(path: &Path, data: &[u8]) -> Result<(Header, usize, u32), StoreError> {
    let not = |why: &str| StoreError::NotARecording {
        path: path.to_path_buf(),
        why: why.into(),
    };
    let bad = |why: String| StoreError::BadHeader {
        path: path.to_path_buf(),
        why,
    };
    if data.is_empty() {
        return Err(not("the file is empty"));
    }
    let magic_len = data.len().min(MAGIC.len());
    if data[..magic_len] != MAGIC[..magic_len] {
        return Err(not("it does not start with the kvmprof magic bytes"));
    }
    let fixed = MAGIC.len() + 12;
    if data.len() < fixed {
        return Err(bad(format!(
            "file ends at byte {} inside the header",
            data.len()
        )));
    }
    let version = u32_at(data, 8).unwrap_or(0);
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
    let len = u32_at(data, 12).unwrap_or(0) as usize;
    let want = u32_at(data, 16).unwrap_or(0);
    if len > MAX_HEADER {
        return Err(bad(format!("impossible header length {len}")));
    }
    let body = data.get(fixed..fixed + len).ok_or_else(|| {
        bad(format!(
            "file ends at byte {} inside the header",
            data.len()
        ))
    })?;
    if crc(body) != want {
        return Err(bad("header checksum mismatch".into()));
    }
    let header = postcard::from_bytes(body).map_err(|e| bad(format!("header: {e}")))?;
    Ok((header, fixed + len, version))
}
