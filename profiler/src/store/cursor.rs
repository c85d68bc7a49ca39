//! Decoding state of a recording, one frame at a time: used by reader.rs (seek, advance) and
//! scan.rs (the parallel decode at open), below both so neither imports the other back.

use zstd::stream::raw::{Decoder, InBuffer, Operation, OutBuffer};

use super::{
    bytes::Bytes,
    codec, crc,
    frame::{body_prefix, FrameRef},
    stats::Models,
};
use crate::sample::Sample;

/// Decoding state: the sample after frame `next - 1`, and the decompressor and range coder
/// models positioned after it.
#[derive(Default)]
pub struct Cursor {
    pub(super) next: usize,
    pub(super) sample: Sample,
    pub(super) zstd: Option<Decoder<'static>>,
    pub(super) models: Models,
}

impl Cursor {
    /// Index of the frame the next `advance` decodes.
    pub fn position(&self) -> usize {
        self.next
    }

    /// Decode one frame that directly follows the state's frame (or is a key frame).
    pub(super) fn step(&mut self, src: &Bytes, f: &FrameRef, version: u32) -> Result<(), String> {
        // One frame in memory at a time, checked again: the file may have changed since the
        // open checked it.
        let mut body = vec![0u8; (f.body.end - f.body.start) as usize];
        src.read_at(f.body.start, &mut body)
            .map_err(|e| format!("cannot read it: {e}"))?;
        if crc(&body) != f.crc {
            return Err("it changed since the recording was opened".into());
        }
        let zstd_end = body_prefix(version) + f.zstd_len;
        let (input, coded) = (&body[body_prefix(version)..zstd_end], &body[zstd_end..]);
        if f.key {
            self.zstd = Some(Decoder::new().map_err(|e| e.to_string())?);
            self.sample = Sample::default();
            self.models = Models::default();
        }
        let z = self
            .zstd
            .as_mut()
            .ok_or("delta frame without a key frame")?;
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
        let payload = codec::Payload::decode(&raw, version)?;
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
