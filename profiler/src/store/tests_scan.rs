//! Opening decodes key intervals in parallel: a frame whose checksum is right but whose
//! content does not decode must still cost exactly the rest of its key interval, with the same
//! warning a one-by-one reader gives.

use super::tests::{frame_starts, read_all, small_file};
use super::*;

#[test]
fn undecodable_frames_skip_to_the_next_key_frame() {
    let dir = tempfile::tempdir().unwrap();
    let (data, samples, ends) = small_file(dir.path());
    let starts = frame_starts(&data, &ends);
    for (k, &at) in starts.iter().enumerate().take(samples.len()) {
        // Claim one more uncompressed byte than the frame holds, and re-seal the checksum:
        // the frame parses, and only decoding finds the damage.
        let mut bad = data.clone();
        let len = u32_at(&bad, at).unwrap() as usize;
        let body = at + FRAME_PREFIX;
        let raw_len = u32_at(&bad, body + 1).unwrap() + 1;
        bad[body + 1..body + 5].copy_from_slice(&raw_len.to_le_bytes());
        let sum = crc(&bad[body..body + len]);
        bad[at + 4..at + 8].copy_from_slice(&sum.to_le_bytes());
        let rec = Recording::from_bytes("bad.kvmprof", bad).unwrap();
        let got = read_all(&rec);
        let resume = ((k / 4 + 1) * 4).min(samples.len());
        assert_eq!(got[..k], samples[..k], "frame {k}");
        assert_eq!(got[k..], samples[resume..], "frame {k}");
        assert_eq!(rec.warnings().len(), 1, "{:?}", rec.warnings());
        let w = &rec.warnings()[0];
        assert!(
            w.contains(&format!("frame at byte {at} is damaged (compressed data")),
            "{w}"
        );
        if resume < samples.len() {
            assert!(
                w.contains(&format!(
                    "skipped to the next key frame at byte {}",
                    starts[resume]
                )),
                "{w}"
            );
        } else {
            assert!(
                w.contains(&format!("replaying the {k} samples before it")),
                "{w}"
            );
        }
    }
}

/// Found by the fuzzer: after damage the byte search resynchronises on a key frame the framing
/// pass never saw (it sat inside another frame), so no verdict exists for its interval; it must
/// be decoded on the spot, and every frame the reader keeps must decode.
#[test]
fn key_frames_found_by_resynchronising_are_decoded_too() {
    let bytes = include_bytes!("fixtures/resync-hidden-key-frame.bin").to_vec();
    let rec = Recording::from_bytes("fuzz.kvmprof", bytes).unwrap();
    for (i, s) in rec.samples().enumerate() {
        s.unwrap_or_else(|e| panic!("sample {i} of {}: {e}", rec.len()));
    }
}
