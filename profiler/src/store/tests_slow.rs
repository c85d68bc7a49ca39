//! Format 4's slow exits through whole recordings, and format 3 files still reading.

use std::path::Path;

use super::tests::{gen_samples, read_all, record, without_sched};
use super::*;
use crate::sample::{Sample, SlowEvent};

/// `samples` where some intervals logged slow exits (none in others), with fields at their
/// extremes in one.
fn with_slow(mut samples: Vec<Sample>) -> Vec<Sample> {
    for (i, s) in samples.iter_mut().enumerate() {
        let i = i as u64;
        for j in 0..(i * 7 % 5) {
            s.slow.push(SlowEvent {
                exit_ns: s.mono_ns - 900_000_000 + j * 1_000_003,
                took_ns: 500_000 + i * 1000 + j,
                tgid: 1000 + (j % 2) as u32,
                tid: 2000 + j as u32,
                vcpu: j as u32,
                isa: 2,
                reason: 0x7b,
                rip: 0xffff_f800_0000_1000 + j,
                exit_cpu: (j % 3) as u32,
                entry_cpu: (j % 2) as u32,
                detail_kind: profiler_common::ev::PIO_OUT,
                detail_flags: 1,
                detail_a: 0x70,
                wait_ns: (j % 3) * 40_000,
                blocked_ns: if j % 2 == 0 { 3_000_000 } else { 0 },
            });
        }
    }
    samples[9].slow.push(SlowEvent {
        exit_ns: u64::MAX,
        took_ns: u64::MAX,
        tgid: u32::MAX,
        tid: 0,
        vcpu: u32::MAX,
        isa: u32::MAX,
        reason: u32::MAX,
        rip: u64::MAX,
        exit_cpu: u32::MAX,
        entry_cpu: 0,
        detail_kind: u16::MAX,
        detail_flags: u16::MAX,
        detail_a: u64::MAX,
        wait_ns: u64::MAX,
        blocked_ns: u64::MAX,
    });
    samples
}

#[test]
fn slow_exits_round_trip_across_key_and_delta_frames() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.kvmprof");
    let samples = with_slow(gen_samples(23, 2, 2, 3));
    assert!(samples[1].slow.len() == 2 && samples[5].slow.is_empty());
    record(&path, &samples, 5, true);
    let rec = Recording::open(&path).unwrap();
    // Each sample holds its own interval's exits, not those of the frame before.
    assert_eq!(read_all(&rec), samples);
    for i in [9, 22, 6, 10, 5] {
        assert_eq!(rec.sample(i).unwrap(), samples[i], "sample {i}");
    }
}

#[test]
fn slow_columns_that_disagree_are_refused() {
    let good = slow::SlowColumns::encode(&with_slow(gen_samples(10, 1, 1, 1))[1].slow);
    let mut bytes = postcard::to_allocvec(&good).unwrap();
    // The first column's length prefix (one varint byte here) one short: every column after
    // it shifts, and the lengths no longer agree (or the bytes run out).
    bytes[0] -= 1;
    let bad: Result<slow::SlowColumns, _> = postcard::from_bytes(&bytes);
    if let Ok(bad) = bad {
        assert!(bad.decode(&mut Vec::new()).is_err());
    }
}

/// A format-3 recording (per-VM CPU times, no slow exits; written by kvmprof at d70cd76 from
/// `with_cpu(gen_samples(12, 1, 2, 3))`, key frames every 5) still replays sample for sample.
#[test]
fn format_3_recordings_still_read() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/store/fixtures/v3.kvmprof");
    let data = std::fs::read(&path).unwrap();
    assert_eq!(u32::from_le_bytes(data[8..12].try_into().unwrap()), 3);
    let r = Recording::open(&path).unwrap();
    assert!(r.warnings().is_empty(), "{:?}", r.warnings());
    let want = without_sched(super::tests_cpu::with_cpu(gen_samples(12, 1, 2, 3)));
    assert!(want.iter().any(|s| !s.vm_cpu.is_empty()));
    assert_eq!(read_all(&r), want);
}

/// A format-4 recording (per-VM CPU times and slow exits, no scheduler split; written by
/// kvmprof at 431e53d from `with_slow(with_cpu(gen_samples(12, 1, 2, 3)))`, key frames every
/// 5) still replays sample for sample.
#[test]
fn format_4_recordings_still_read() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/store/fixtures/v4.kvmprof");
    let data = std::fs::read(&path).unwrap();
    assert_eq!(u32::from_le_bytes(data[8..12].try_into().unwrap()), 4);
    let r = Recording::open(&path).unwrap();
    assert!(r.warnings().is_empty(), "{:?}", r.warnings());
    let want = without_sched(with_slow(super::tests_cpu::with_cpu(gen_samples(
        12, 1, 2, 3,
    ))));
    assert!(want.iter().any(|s| !s.slow.is_empty()));
    assert_eq!(read_all(&r), want);
}

/// Format 5 keeps the scheduler split of stats and slow exits exactly.
#[test]
fn the_scheduler_split_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("split.kvmprof");
    let samples = with_slow(gen_samples(30, 2, 3, 4));
    assert!(samples.iter().any(|s| s
        .stats
        .values()
        .any(|st| st.wait_ns != 0 && st.blocked_ns != 0)));
    assert!(samples
        .iter()
        .any(|s| s.slow.iter().any(|e| e.wait_ns != 0)));
    record(&path, &samples, 7, true);
    assert_eq!(read_all(&Recording::open(&path).unwrap()), samples);
}
