//! Appending samples to a recording.

use std::{
    fs::File,
    io::Write,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use super::{
    codec, crc, stats::Models, Header, StoreError, BODY_PREFIX, FORMAT_VERSION, FRAME_PREFIX,
    KIND_DELTA, KIND_END, KIND_KEY, MAGIC, MAX_FRAME,
};
use crate::sample::Sample;

/// How often to write key frames and to fsync.
#[derive(Clone, Debug)]
pub struct RecorderOptions {
    /// A full sample every this many frames (bounds seek cost and damage).
    pub key_every: u32,
    /// fsync after this many frames...
    pub sync_every_frames: u32,
    /// ...or this much time, whichever comes first. Every frame reaches the OS at once
    /// regardless, so only a host crash (not a killed recorder) can lose unsynced frames.
    pub sync_every: Duration,
    /// zstd level.
    pub level: i32,
}

impl Default for RecorderOptions {
    fn default() -> Self {
        RecorderOptions {
            key_every: 300,
            sync_every_frames: 10,
            sync_every: Duration::from_secs(10),
            level: 9,
        }
    }
}

/// Writes a recording: header at create, one frame per `append`, an end marker at `finish`.
pub struct Recorder {
    file: File,
    path: PathBuf,
    opts: RecorderOptions,
    /// Compressor of the current key interval; None until the first frame.
    zstd: Option<zstd::stream::write::Encoder<'static, Vec<u8>>>,
    /// Range coder models of the current key interval.
    models: Models,
    prev: Sample,
    since_key: u32,
    since_sync: u32,
    last_sync: Instant,
    frames: u64,
    bytes: u64,
}

impl Recorder {
    /// Create (or truncate) `path` and write the header.
    pub fn create(path: impl AsRef<Path>, header: &Header) -> Result<Recorder, StoreError> {
        Self::create_with(path, header, RecorderOptions::default())
    }

    pub fn create_with(
        path: impl AsRef<Path>,
        header: &Header,
        opts: RecorderOptions,
    ) -> Result<Recorder, StoreError> {
        let path = path.as_ref().to_path_buf();
        let io = |action| {
            let path = path.clone();
            move |cause| StoreError::Io {
                path,
                action,
                cause,
            }
        };
        let body = postcard::to_stdvec(header).map_err(|e| StoreError::Encode {
            path: path.clone(),
            why: e.to_string(),
        })?;
        let mut out = Vec::with_capacity(20 + body.len());
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(&crc(&body).to_le_bytes());
        out.extend_from_slice(&body);
        let mut file = File::create(&path).map_err(io("create the recording"))?;
        file.write_all(&out).map_err(io("write the header"))?;
        file.sync_data().map_err(io("sync the header"))?;
        Ok(Recorder {
            file,
            path,
            opts,
            zstd: None,
            models: Models::default(),
            prev: Sample::default(),
            since_key: 0,
            since_sync: 0,
            last_sync: Instant::now(),
            frames: 0,
            bytes: out.len() as u64,
        })
    }

    fn io_err(&self, action: &'static str) -> impl FnOnce(std::io::Error) -> StoreError {
        let path = self.path.clone();
        move |cause| StoreError::Io {
            path,
            action,
            cause,
        }
    }

    fn encode_err(&self, why: impl ToString) -> StoreError {
        StoreError::Encode {
            path: self.path.clone(),
            why: why.to_string(),
        }
    }

    /// Append one sample. The frame is handed to the OS before this returns, so a killed
    /// recorder loses at most the sample it was writing.
    pub fn append(&mut self, s: &Sample) -> Result<(), StoreError> {
        let key = self.zstd.is_none() || self.since_key >= self.opts.key_every.max(1);
        let encoded = if key {
            // Fresh compressor and models: the key interval decodes without anything before it.
            let enc = zstd::stream::write::Encoder::new(Vec::new(), self.opts.level)
                .map_err(|e| self.encode_err(e))?;
            self.zstd = Some(enc);
            self.models = Models::default();
            self.since_key = 0;
            codec::encode(&Sample::default(), s, &mut self.models, true)
        } else {
            codec::encode(&self.prev, s, &mut self.models, false)
        };
        // A failed encode leaves the models part-updated: start a new key interval next time.
        let (payload, coded) = match encoded {
            Ok(e) => e,
            Err(e) => {
                self.zstd = None;
                return Err(self.encode_err(e));
            }
        };
        let raw = postcard::to_stdvec(&payload).map_err(|e| self.encode_err(e))?;
        if raw.len() > MAX_FRAME {
            return Err(self.encode_err(format!("sample too large ({} bytes)", raw.len())));
        }
        let Some(z) = self.zstd.as_mut() else {
            return Err(self.encode_err("no compressor"));
        };
        let compressed = z
            .write_all(&raw)
            .and_then(|()| z.flush())
            .map(|()| std::mem::take(z.get_mut()));
        let compressed = compressed.map_err(|e| self.encode_err(e))?;
        let kind = if key { KIND_KEY } else { KIND_DELTA };
        self.write_frame(kind, raw.len() as u32, &compressed, &coded)?;
        self.prev.clone_from(s);
        self.since_key += 1;
        self.frames += 1;
        Ok(())
    }

    fn write_frame(
        &mut self,
        kind: u8,
        raw_len: u32,
        zstd: &[u8],
        coded: &[u8],
    ) -> Result<(), StoreError> {
        let len = BODY_PREFIX + zstd.len() + coded.len();
        if len > MAX_FRAME {
            return Err(self.encode_err(format!("frame too large ({len} bytes)")));
        }
        let mut out = Vec::with_capacity(FRAME_PREFIX + len);
        out.extend_from_slice(&(len as u32).to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        out.push(kind);
        out.extend_from_slice(&raw_len.to_le_bytes());
        out.extend_from_slice(&(zstd.len() as u32).to_le_bytes());
        out.extend_from_slice(zstd);
        out.extend_from_slice(coded);
        let sum = crc(&out[FRAME_PREFIX..]);
        out[4..8].copy_from_slice(&sum.to_le_bytes());
        // One write per frame: a kill leaves whole frames plus at most one partial tail.
        self.file
            .write_all(&out)
            .map_err(self.io_err("append a frame"))?;
        self.bytes += out.len() as u64;
        self.since_sync += 1;
        if self.since_sync >= self.opts.sync_every_frames.max(1)
            || self.last_sync.elapsed() >= self.opts.sync_every
        {
            self.file.sync_data().map_err(self.io_err("sync"))?;
            self.since_sync = 0;
            self.last_sync = Instant::now();
        }
        Ok(())
    }

    /// Samples appended so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Bytes written so far (header and frames).
    pub fn bytes_written(&self) -> u64 {
        self.bytes
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Write the end marker and fsync. Dropping a Recorder without this loses nothing already
    /// appended; the file just reads as not finished.
    pub fn finish(mut self) -> Result<(), StoreError> {
        self.write_frame(KIND_END, 0, &[], &[])?;
        self.file.sync_all().map_err(self.io_err("sync"))
    }
}
