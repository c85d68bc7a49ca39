//! Recordings: raw cumulative samples on disk, replayed through the same model code as live.
//!
//! # File format (version 5; versions 1 to 4 differ in the frame body and the payload, see below)
//! All integers in fixed fields are little-endian.
//!
//! ```text
//! magic      8 bytes  "\x89KVMPRF\n"
//! version    u32      FORMAT_VERSION; a reader refuses versions newer than its own
//! hdr_len    u32      length of the header body
//! hdr_crc    u32      CRC32 of the header body
//! header     postcard(Header)
//! frame*     len u32 | crc u32 | body[len]      (crc = CRC32 of body)
//!   body     kind u8 | raw_len u32 | zstd_len u32 | zstd bytes[zstd_len] | coded bytes
//!   (v1)     kind u8 | raw_len u32 | zstd bytes
//! ```
//! `kind` is KEY (a full sample), DELTA (the change from the previous frame's sample) or END
//! (written by `Recorder::finish`; no payload). Payloads (`codec::Payload`, postcard, raw_len
//! bytes) go through one streaming zstd compressor that is flushed after every frame, so each
//! frame is decodable as soon as it is on disk, and restarted at every key frame, so a key frame
//! and the deltas after it decode without anything before it. The coded bytes (format 2) are the
//! noisy stat residuals, range coded (constriction, u32 words little-endian) with adaptive
//! models that are reset at every key frame and finished per frame for the same two reasons
//! (stats.rs, entropy.rs). That makes seeking cost at most one key interval, and damage costs
//! at most the rest of its key interval: the reader skips to the next key frame.
//! VM metadata travels inside the samples, and a delta carries a VM's entry only when it changed.
//! Format 3 appends per-VM CPU times (`cpu::CpuColumns`, differences like the other counters)
//! to the payload; the fields before them are format 2's, byte for byte (postcard adds no
//! framing around the nested `codec::Core`), so a format 1 or 2 payload decodes as `Core`
//! alone and its samples have no CPU times. Format 4 appends the slow exits logged since the
//! previous sample (`slow::SlowColumns`; not differences from the previous frame's: each frame
//! holds its own), after format 3's fields. Format 5 appends, after those, each vCPU thread's
//! CPU time and run-queue wait and the VM's vhost workers (`threads::ThreadColumns`, columns
//! parallel to format 3's VMs); a format 3 or 4 sample has none.
//!
//! Reading trusts nothing in the file: only regular files are opened (bytes.rs), the file is
//! read piecewise and only the frame index is kept (reader.rs), and finding the next key frame
//! after damage is one linear pass however the bytes are crafted (resync.rs).

mod bytes;
mod codec;
mod cpu;
mod crc_range;
mod cursor;
mod delta;
mod entropy;
mod frame;
mod keys;
mod reader;
mod resync;
mod scan;
mod sched;
mod slow;
mod stats;
mod threads;
mod v1;
mod writer;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_cpu;
#[cfg(test)]
mod tests_hostile;
#[cfg(test)]
mod tests_scan;
#[cfg(test)]
mod tests_slow;
#[cfg(test)]
mod tests_threads;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::decode::ExitNames;

pub use bytes::{is_recording, open_regular};
pub use reader::{Cursor, Recording};
pub use writer::{Recorder, RecorderOptions};

/// First bytes of every recording. The high byte and newline catch text-mode mangling.
pub const MAGIC: [u8; 8] = *b"\x89KVMPRF\n";
/// The format this build writes and the newest it reads.
pub const FORMAT_VERSION: u32 = 5;

const KIND_KEY: u8 = 1;
const KIND_DELTA: u8 = 2;
const KIND_END: u8 = 3;
/// Frame prefix: body length and CRC.
const FRAME_PREFIX: usize = 8;
/// Body before the compressed bytes: kind, uncompressed length, zstd length.
const BODY_PREFIX: usize = 9;
/// Format 1 had no zstd length (the zstd bytes filled the body).
const BODY_PREFIX_V1: usize = 5;
/// Largest frame body or decoded payload accepted: bounds memory on damaged or hostile input.
/// A 64 MiB payload is several hundred thousand keys, far beyond any host.
const MAX_FRAME: usize = 64 << 20;
/// Largest header accepted (the exit-name tables are a few KiB).
const MAX_HEADER: usize = 16 << 20;

/// What a recording says about where and how it was made.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// Host name of the recording machine.
    pub host: String,
    /// Kernel release (`uname -r`) of the recording machine.
    pub kernel: String,
    /// Online CPUs of the recording machine.
    pub cpus: u32,
    /// Exit-name tables in force while recording, so a replay shows the recorder's names.
    pub names: ExitNames,
    /// Wall clock when recording started, ms since the Unix epoch.
    pub start_wall_ms: u64,
    /// Sampling interval, ms.
    pub interval_ms: u64,
    /// kvmprof version that wrote the file (for messages only).
    pub written_by: String,
}

/// Errors from writing or reading a recording; each names the file and what to do. Each
/// message is whole (an I/O cause is part of it, not a chained source), so a printed chain
/// does not repeat it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: cannot {action}: {cause}")]
    Io {
        path: PathBuf,
        action: &'static str,
        cause: std::io::Error,
    },
    #[error("{path} is not a regular file ({kind}): {wanted}")]
    NotRegular {
        path: PathBuf,
        kind: &'static str,
        wanted: &'static str,
    },
    #[error("{path}: the recording holds no samples ({why})")]
    NoSamples { path: PathBuf, why: String },
    #[error("{path}: not a kvmprof recording ({why})")]
    NotARecording { path: PathBuf, why: String },
    #[error(
        "{path}: recorded by a newer kvmprof (format v{found}, this one reads up to v{supported}): upgrade kvmprof"
    )]
    NewerVersion {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error("{path}: damaged recording header ({why}); the file cannot be replayed")]
    BadHeader { path: PathBuf, why: String },
    #[error("{path}: frame at byte {offset} is damaged ({why}); replay stops before it")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        why: String,
    },
    #[error("{path}: cannot encode sample: {why}")]
    Encode { path: PathBuf, why: String },
    #[error("{path}: sample {index} is out of range (the recording has {len})")]
    OutOfRange {
        path: PathBuf,
        index: usize,
        len: usize,
    },
}

fn crc(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

fn u32_at(data: &[u8], at: usize) -> Option<u32> {
    let b = data.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}
