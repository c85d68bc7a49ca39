//! Format 2 stat coding through whole frames: adversarial values, corrupted coded bytes.

use super::super::codec::{apply, encode, Payload};
use super::*;
use crate::sample::{Hist, Sample};

fn key(vcpu: u32, reason: u32) -> Key {
    Key {
        tgid: 7,
        vcpu,
        isa: 1,
        reason,
    }
}

fn stat(count: u64, sum_ns: u64, buckets: Vec<(u16, u64)>) -> Stat {
    Stat {
        count,
        sum_ns,
        min_ns: 1,
        max_ns: u64::MAX,
        hist: Hist { buckets },
        ..Default::default()
    }
}

/// Empty frames, u64 extremes, counters going backwards, huge growth, the last bucket.
fn adversarial() -> Vec<Sample> {
    let mut out = vec![Sample::default()];
    let mut s = Sample::default();
    let top = (hist::BUCKETS - 1) as u16;
    s.stats
        .insert(key(0, 1), stat(u64::MAX, u64::MAX, vec![(0, u64::MAX)]));
    s.stats
        .insert(key(0, 2), stat(9, 3, vec![(5, 4), (top, 5)]));
    out.push(s.clone());
    out.push(s.clone()); // nothing changed
    s.stats.insert(key(0, 1), stat(0, 0, vec![(0, 1)])); // backwards
    s.stats.insert(
        key(1, 1),
        stat(1 << 63, 5, vec![(3, 1 << 62), (200, 1 << 62)]),
    );
    out.push(s.clone());
    for i in 1..6u64 {
        for r in 0..8 {
            let st = s.stats.entry(key(2, r)).or_default();
            st.count += 100 * i * (r as u64 + 1);
            st.sum_ns = st
                .sum_ns
                .wrapping_add(i.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            st.hist.buckets = vec![(40, st.count / 2), (41, st.count - st.count / 2)];
        }
        out.push(s.clone());
    }
    out.push(Sample::default());
    out
}

fn record(samples: &[Sample], key_every: usize) -> Vec<(Payload, Vec<u8>, bool)> {
    let mut m = Models::default();
    let mut prev = Sample::default();
    let mut out = vec![];
    for (i, s) in samples.iter().enumerate() {
        let key = i % key_every == 0;
        if key {
            (m, prev) = (Models::default(), Sample::default());
        }
        out.push((encode(&prev, s, &mut m, key).unwrap(), key));
        prev = s.clone();
    }
    out.into_iter().map(|((p, c), k)| (p, c, k)).collect()
}

fn replay(frames: &[(Payload, Vec<u8>, bool)]) -> Result<Vec<Sample>, CodecError> {
    let (mut m, mut s) = (Models::default(), Sample::default());
    let mut out = vec![];
    for (p, coded, key) in frames {
        if *key {
            (m, s) = (Models::default(), Sample::default());
        }
        apply(&mut s, p, coded, 2, &mut m, *key)?;
        out.push(s.clone());
    }
    Ok(out)
}

#[test]
fn adversarial_samples_round_trip_with_models_carried_over() {
    let samples = adversarial();
    for key_every in [1, 3, 100] {
        assert_eq!(replay(&record(&samples, key_every)).unwrap(), samples);
    }
}

#[test]
fn corrupted_coded_bytes_give_an_error_not_a_panic() {
    let samples = adversarial();
    let frames = record(&samples, 100);
    let last = frames.len() - 2; // a delta with several keys
    let mut bad = frames.clone();
    bad[last].1.pop();
    assert!(replay(&bad).is_err(), "not whole words");
    let mut bad = frames.clone();
    bad[last].1.extend([0xab; 8]);
    assert!(replay(&bad).is_err(), "trailing words");
    for at in 0..frames[last].1.len() * 8 {
        let mut bad = frames.clone();
        bad[last].1[at / 8] ^= 1 << (at % 8);
        // A range coder cannot tell every flip (the frame CRC does); it must not panic.
        if let Ok(got) = replay(&bad) {
            assert_ne!(got, samples, "flip {at}");
        }
    }
}
