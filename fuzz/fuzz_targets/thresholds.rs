//! Arbitrary text as a thresholds file (`check --config`, `advise --thresholds`) and as
//! `--threshold KEY=VALUE` flags: an error or a valid setting, never a panic, and whatever is
//! accepted holds only finite, non-negative limits.
#![no_main]

use kvmprof::{advice, check::Thresholds};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(t) = Thresholds::from_toml(&text, "fuzz.toml") {
        let limits = [t.max_exits_per_s, t.max_overhead_pct, t.max_p99_us, t.frame_budget_pct];
        assert!(limits.iter().flatten().all(|v| v.is_finite() && *v >= 0.0));
        let _ = t.frames_hz();
    }
    let mut flags = Thresholds::default();
    for line in text.lines().take(64) {
        let _ = flags.set(line);
    }
    for json in [false, true] {
        if let Ok(a) = advice::Thresholds::parse(&text, "fuzz", json) {
            assert!(a.dominant_pct.is_finite() && (0.0..=100.0).contains(&a.dominant_pct));
        }
    }
});
