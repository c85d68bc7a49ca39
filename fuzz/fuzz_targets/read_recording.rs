//! Arbitrary bytes into the recording reader: it must return an error or a recording, never
//! panic, and every sample it indexed must decode.
#![no_main]

use kvmprof::store::Recording;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(rec) = Recording::from_bytes("fuzz.kvmprof", data.to_vec()) {
        for s in rec.samples() {
            s.expect("indexed frames decode");
        }
        let _ = rec.sample(rec.len() / 2);
        let _ = rec.warnings();
    }
});
