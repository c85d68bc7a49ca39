//! Latency histogram layout: log2 buckets split into 2^SUB_BITS linear sub-buckets (HDR style).
//!
//! With 8 sub-buckets, a bucket spans 1/8 of its lower bound; reporting the bucket midpoint keeps
//! any percentile within 1/16 (6.25 %) of the true value. Values below 8 ns are exact; values at
//! or above 2^MAX_EXP ns (~137 s) land in the last bucket.

pub const SUB_BITS: u32 = 3;
pub const SUB: u64 = 1 << SUB_BITS;
/// Exponent (log2) above which everything saturates into the last bucket.
pub const MAX_EXP: u32 = 37;
pub const BUCKETS: usize = (SUB as usize) * (MAX_EXP - SUB_BITS + 1) as usize;
/// Rows of SUB buckets (one octave each above the first): `BUCKETS / SUB`.
pub const ROWS: usize = BUCKETS / SUB as usize;

/// Bucket index for a value in nanoseconds. Branch-light and panic-free for the verifier.
#[inline(always)]
pub fn bucket(v: u64) -> usize {
    if v < SUB {
        return v as usize;
    }
    let exp = log2(v);
    if exp >= MAX_EXP {
        return BUCKETS - 1;
    }
    let sub = (v >> (exp - SUB_BITS)) & (SUB - 1);
    ((exp - SUB_BITS + 1) as usize) * SUB as usize + sub as usize
}

/// The sub-bucket `v` falls in if it is in octave `o` (≥ 1) below the saturated range — then
/// `bucket(v)` is `o * SUB + sub` — else None: one shift and compare instead of the log2, for
/// a value whose octave is guessed (the exit path's row keeps its last exit's).
#[inline(always)]
pub fn in_octave(v: u64, o: u32) -> Option<usize> {
    if !(1..ROWS as u32).contains(&o) {
        return None;
    }
    // Octave o ≥ 1 holds [2^e, 2^(e + 1)), e = o + SUB_BITS - 1 < MAX_EXP (see `bucket`).
    let e = o + SUB_BITS - 1;
    (v.wrapping_shr(e) == 1).then(|| (v.wrapping_shr(e - SUB_BITS) & (SUB - 1)) as usize)
}

/// Inclusive lower bound of a bucket, in nanoseconds.
pub fn lower(b: usize) -> u64 {
    if b < SUB as usize {
        return b as u64;
    }
    let exp = (b / SUB as usize) as u32 + SUB_BITS - 1;
    let sub = (b % SUB as usize) as u64;
    (1u64 << exp) + (sub << (exp - SUB_BITS))
}

/// Exclusive upper bound of a bucket (the last bucket is open-ended: its lower bound × 2).
pub fn upper(b: usize) -> u64 {
    if b + 1 < BUCKETS {
        lower(b + 1)
    } else {
        lower(b) * 2
    }
}

/// floor(log2(b)) of each byte b (0 for 0 and 1).
static LOG2_BYTE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 2;
    while i < 256 {
        t[i] = t[i / 2] + 1;
        i += 1;
    }
    t
};

/// floor(log2(v)) for v > 0: a binary search down to the low byte, then a table. BPF has no
/// count-leading-zeros, and `leading_zeros` lowers to a table lookup indexed in a way the
/// verifier rejects; the byte table halves the search's compare-and-shift steps (six to three)
/// on the exit path.
#[inline(always)]
pub fn log2(mut v: u64) -> u32 {
    let mut r = 0;
    for shift in [32u32, 16, 8] {
        if v >> shift != 0 {
            v >>= shift;
            r += shift;
        }
    }
    r + LOG2_BYTE[(v & 0xff) as usize] as u32
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec::Vec;

    use super::*;

    #[test]
    fn in_octave_is_buckets_answer_for_its_octave_only() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut values: Vec<u64> = (0..2048).collect();
        for e in 0..64 {
            let p = 1u64 << e;
            values.extend([p, p - 1, p + 1, p | (p >> 1)]);
        }
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            values.push(x >> (x % 64));
        }
        for v in values {
            let b = bucket(v);
            for o in (0..ROWS as u32 + 2).chain([u32::MAX, u32::MAX - 1]) {
                let want = (o >= 1 && b / SUB as usize == o as usize && v < 1 << MAX_EXP)
                    .then_some(b % SUB as usize);
                assert_eq!(in_octave(v, o), want, "v {v} o {o} bucket {b}");
            }
        }
    }

    #[test]
    fn log2_is_the_index_of_the_highest_bit() {
        let check = |v: u64| {
            if v > 0 {
                assert_eq!(log2(v), 63 - v.leading_zeros(), "log2({v})");
            }
        };
        (1..=4096).for_each(check);
        for e in 0..64 {
            let p = 1u64 << e;
            [p, p - 1, p + 1, p | (p >> 1), p.wrapping_mul(3)]
                .into_iter()
                .for_each(check);
        }
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            check(x >> (x % 64));
        }
    }
}
