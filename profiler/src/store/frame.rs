//! One frame's fixed fields: the checks that need no checksum, and the ones after it.

use std::ops::Range;

use super::{
    u32_at, BODY_PREFIX, BODY_PREFIX_V1, FRAME_PREFIX, KIND_DELTA, KIND_END, KIND_KEY, MAX_FRAME,
};

/// Bytes a head needs: frame prefix and body prefix.
pub(super) const HEAD: usize = FRAME_PREFIX + BODY_PREFIX;

/// The zstd frame magic: every key frame's compressed bytes start with it (the compressor is
/// restarted there), so a resynchronising search only weighs offsets that have it in place.
pub(super) const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// Body prefix length of a format version.
pub(super) fn body_prefix(version: u32) -> usize {
    if version == 1 {
        BODY_PREFIX_V1
    } else {
        BODY_PREFIX
    }
}

/// A parsed frame whose checksum was right: where its parts are in the recording.
#[derive(Clone, Debug)]
pub(super) struct FrameRef {
    pub(super) offset: u64,
    pub(super) key: bool,
    pub(super) raw_len: usize,
    /// CRC of the body, checked again whenever the body is read for decoding.
    pub(super) crc: u32,
    /// The body (after length and CRC): body prefix, zstd bytes, coded bytes.
    pub(super) body: Range<u64>,
    pub(super) zstd_len: usize,
}

impl FrameRef {
    /// Offset just after the frame.
    pub(super) fn end(&self) -> u64 {
        self.body.end
    }
}

/// Why a frame could not be parsed at some offset.
#[derive(Clone, Debug)]
pub(super) enum Bad {
    /// Fewer bytes left than a frame prefix.
    Incomplete,
    /// The frame's length (in range) runs past the end of the data.
    PastEnd(usize),
    Damaged(String),
}

/// A frame's fixed fields, read before its checksum is known.
#[derive(Clone, Debug)]
pub(super) struct Head {
    pub(super) at: u64,
    pub(super) len: usize,
    pub(super) want: u32,
    kind: u8,
    raw_len: usize,
    zstd_len: usize,
}

impl Head {
    /// Parse the head of the frame at `at` from `b` (the bytes there, at least `HEAD` of them
    /// unless the data ends sooner); `end` is the length of the data.
    pub(super) fn parse(b: &[u8], at: u64, version: u32, end: u64) -> Result<Head, Bad> {
        let prefix = body_prefix(version);
        let len = u32_at(b, 0).ok_or(Bad::Incomplete)? as usize;
        let want = u32_at(b, 4).ok_or(Bad::Incomplete)?;
        if !(prefix..=MAX_FRAME).contains(&len) {
            return Err(Bad::Damaged(format!("impossible frame length {len}")));
        }
        if at + (FRAME_PREFIX + len) as u64 > end {
            return Err(Bad::PastEnd(len));
        }
        let field = |i| u32_at(b, FRAME_PREFIX + i).ok_or(Bad::Incomplete);
        let zstd_len = match version {
            1 => len - prefix,
            _ => field(5)? as usize,
        };
        Ok(Head {
            at,
            len,
            want,
            kind: *b.get(FRAME_PREFIX).ok_or(Bad::Incomplete)?,
            raw_len: field(1)? as usize,
            zstd_len,
        })
    }

    pub(super) fn body_start(&self) -> u64 {
        self.at + FRAME_PREFIX as u64
    }

    pub(super) fn end(&self) -> u64 {
        self.body_start() + self.len as u64
    }

    /// The checks that follow a matching checksum.
    pub(super) fn frame(&self, version: u32) -> Result<(u8, FrameRef), Bad> {
        let kind = self.kind;
        if !matches!(kind, KIND_KEY | KIND_DELTA | KIND_END) {
            return Err(Bad::Damaged(format!("unknown frame kind {kind}")));
        }
        if self.raw_len > MAX_FRAME {
            return Err(Bad::Damaged(format!(
                "impossible uncompressed length {} (over {} MiB)",
                self.raw_len,
                MAX_FRAME >> 20
            )));
        }
        if body_prefix(version) + self.zstd_len > self.len {
            return Err(Bad::Damaged("zstd length runs past the frame".into()));
        }
        let f = FrameRef {
            offset: self.at,
            key: kind == KIND_KEY,
            raw_len: self.raw_len,
            crc: self.want,
            body: self.body_start()..self.end(),
            zstd_len: self.zstd_len,
        };
        Ok((kind, f))
    }

    /// Whether this could be an intact key frame (all but the checksum); `b` as for `parse`,
    /// with the 4 bytes after the head too.
    pub(super) fn could_be_key(&self, b: &[u8], version: u32) -> bool {
        let z = FRAME_PREFIX + body_prefix(version);
        self.kind == KIND_KEY
            && self.zstd_len >= ZSTD_MAGIC.len()
            && b.get(z..z + 4) == Some(&ZSTD_MAGIC[..])
            && self.frame(version).is_ok()
    }
}
