//! Entropy coding of integer residuals: adaptive frequency models, constriction's range coder.
//!
//! A residual goes through a context (`Ctx`) chosen by the caller from what both sides already
//! know (for example the expected growth of a histogram bucket). Rice-style split: the zigzagged
//! value's high part (`zz >> k`, k fixed per context) is a symbol of an adaptive categorical
//! model, with an escape to a bit-length code for large values; the k low bits are uniform.
//! Models adapt as they code and are only ever built from integer counts, so a file decodes the
//! same on every machine. The caller resets them at key frames.

use std::{borrow::Borrow, num::NonZeroU32};

use constriction::stream::{
    model::{DecoderModel, EncoderModel, EntropyModel, UniformModel},
    queue::{DefaultRangeDecoder, DefaultRangeEncoder},
    Decode, Encode,
};

use super::delta::CodecError;

/// Fixed-point precision of every model (the default range coder's).
const PRECISION: usize = 24;
const ONE: u64 = 1 << PRECISION;
/// High parts below this are model symbols; symbol DIRECT escapes to a bit-length code.
const DIRECT: u64 = 32;
/// Count added per coded symbol, and the total at which counts halve (forgets old data).
const INC: u32 = 32;
const LIMIT: u32 = 1 << 16;
/// Rebuild the cumulative table after at most this many updates (it costs O(alphabet)).
const REBUILD: u32 = 16;
/// Widest chunk of raw bits coded as one uniform symbol.
const RAW_CHUNK: u32 = 16;

/// Adaptive categorical model over 0..n: symbol counts, and a cumulative table in fixed point
/// rebuilt from them. Every symbol keeps a nonzero probability.
#[derive(Clone, Debug)]
struct Adaptive {
    freq: Vec<u32>,
    total: u32,
    /// cdf[i] = probability mass of symbols below i; cdf[n] = ONE.
    cdf: Vec<u32>,
    pending: u32,
    every: u32,
}

impl Adaptive {
    fn new(n: usize) -> Adaptive {
        let mut a = Adaptive {
            freq: vec![1; n],
            total: n as u32,
            cdf: vec![0; n + 1],
            pending: 0,
            every: 1,
        };
        a.rebuild();
        a
    }

    /// cdf[i] = i + floor(F_i · (ONE − n) / total) with F_i the count below i: exact total ONE,
    /// and each symbol gets at least 1 — integer arithmetic only.
    fn rebuild(&mut self) {
        let n = self.freq.len() as u64;
        let (avail, total) = (ONE - n, u64::from(self.total));
        let mut below = 0u64;
        for (i, &f) in self.freq.iter().enumerate() {
            self.cdf[i] = (i as u64 + below * avail / total) as u32;
            below += u64::from(f);
        }
        self.cdf[self.freq.len()] = ONE as u32;
        self.pending = 0;
        // Rebuild often while the model is young, then every REBUILD updates.
        self.every = (self.every * 2).min(REBUILD);
    }

    fn update(&mut self, s: usize) {
        self.freq[s] += INC;
        self.total += INC;
        if self.total > LIMIT {
            self.freq.iter_mut().for_each(|f| *f = f.div_ceil(2));
            self.total = self.freq.iter().sum();
        }
        self.pending += 1;
        if self.pending >= self.every {
            self.rebuild();
        }
    }
}

impl EntropyModel<PRECISION> for Adaptive {
    type Symbol = usize;
    type Probability = u32;
}

impl EncoderModel<PRECISION> for Adaptive {
    fn left_cumulative_and_probability(
        &self,
        symbol: impl Borrow<usize>,
    ) -> Option<(u32, NonZeroU32)> {
        let s = *symbol.borrow();
        let (lo, hi) = (*self.cdf.get(s)?, *self.cdf.get(s + 1)?);
        Some((lo, NonZeroU32::new(hi - lo)?))
    }
}

impl DecoderModel<PRECISION> for Adaptive {
    fn quantile_function(&self, quantile: u32) -> (usize, u32, NonZeroU32) {
        // cdf is strictly increasing from 0 to ONE and quantile < ONE: s is in 0..n.
        let s = (self.cdf.partition_point(|&c| c <= quantile) - 1).min(self.freq.len() - 1);
        let (lo, hi) = (self.cdf[s], self.cdf[s + 1]);
        (s, lo, NonZeroU32::new(hi - lo).unwrap_or(NonZeroU32::MIN))
    }
}

/// One coding context: its Rice parameter and its two adaptive models.
#[derive(Clone, Debug)]
pub(super) struct Ctx {
    k: u32,
    high: Adaptive,
    /// Bit length (0..=64) of an escaped high part minus DIRECT.
    len: Adaptive,
}

impl Ctx {
    pub(super) fn new(k: u32) -> Ctx {
        Ctx {
            k: k.min(63),
            high: Adaptive::new(DIRECT as usize + 1),
            len: Adaptive::new(65),
        }
    }
}

/// Contexts indexed by a class (see `class`); classes past the end share the last context.
#[derive(Clone, Debug)]
pub(super) struct Family(Vec<Ctx>);

impl Family {
    /// `n` contexts, context c with Rice parameter `k(c)`.
    pub(super) fn new(n: usize, k: impl Fn(u32) -> u32) -> Family {
        Family((0..n.max(1)).map(|c| Ctx::new(k(c as u32))).collect())
    }

    pub(super) fn at(&mut self, class: u32) -> &mut Ctx {
        let last = self.0.len() - 1;
        &mut self.0[(class as usize).min(last)]
    }
}

/// About 2·log2(x), in half-octave steps: 0 for 0, 1 for 1, 2 for 2, 3 for 3, 4 for 4..5, ...
pub(super) fn class(x: u128) -> u32 {
    let bits = 128 - x.leading_zeros();
    if bits < 2 {
        return bits;
    }
    2 * bits - 2 + ((x >> (bits - 2)) & 1) as u32
}

fn zigzag(r: i64) -> u64 {
    ((r << 1) ^ (r >> 63)) as u64
}

fn unzigzag(z: u64) -> i64 {
    (z >> 1) as i64 ^ -((z & 1) as i64)
}

fn uniform(bits: u32) -> UniformModel<u32, PRECISION> {
    UniformModel::new(1 << bits)
}

/// One frame's range encoder.
pub(super) struct Encoder(DefaultRangeEncoder);

impl Encoder {
    pub(super) fn new() -> Encoder {
        Encoder(DefaultRangeEncoder::new())
    }

    fn symbol(&mut self, m: &mut Adaptive, s: usize) -> Result<(), CodecError> {
        self.0
            .encode_symbol(s, &*m)
            .map_err(|e| format!("range coder: {e}"))?;
        m.update(s);
        Ok(())
    }

    /// The low `bits` bits of `v`, most significant chunk first.
    fn raw(&mut self, v: u64, mut bits: u32) -> Result<(), CodecError> {
        while bits > 0 {
            let n = bits.min(RAW_CHUNK);
            bits -= n;
            let chunk = ((v >> bits) & ((1 << n) - 1)) as usize;
            self.0
                .encode_symbol(chunk, uniform(n))
                .map_err(|e| format!("range coder: {e}"))?;
        }
        Ok(())
    }

    pub(super) fn put(&mut self, c: &mut Ctx, r: i64) -> Result<(), CodecError> {
        let z = zigzag(r);
        let high = z >> c.k;
        if high < DIRECT {
            self.symbol(&mut c.high, high as usize)?;
        } else {
            self.symbol(&mut c.high, DIRECT as usize)?;
            let e = high - DIRECT;
            let len = 64 - e.leading_zeros();
            self.symbol(&mut c.len, len as usize)?;
            self.raw(e, len.saturating_sub(1))?;
        }
        self.raw(z, c.k)
    }

    /// The coded bytes: complete, so the frame decodes on its own.
    pub(super) fn finish(self) -> Vec<u8> {
        let words = match self.0.into_compressed() {
            Ok(w) => w,
            Err(never) => match never {},
        };
        words.iter().flat_map(|w| w.to_le_bytes()).collect()
    }
}

/// One frame's range decoder.
pub(super) struct Decoder(DefaultRangeDecoder);

impl Decoder {
    pub(super) fn new(bytes: &[u8]) -> Result<Decoder, CodecError> {
        if !bytes.len().is_multiple_of(4) {
            return Err("coded section is not whole words".into());
        }
        let words: Vec<u32> = (bytes.chunks_exact(4))
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        match DefaultRangeDecoder::from_compressed(words) {
            Ok(d) => Ok(Decoder(d)),
            Err(never) => match never {},
        }
    }

    fn symbol(&mut self, m: &mut Adaptive) -> Result<usize, CodecError> {
        let s = (self.0)
            .decode_symbol(&*m)
            .map_err(|e| format!("range coder: {e}"))?;
        m.update(s);
        Ok(s)
    }

    fn raw(&mut self, mut bits: u32) -> Result<u64, CodecError> {
        let mut v = 0u64;
        while bits > 0 {
            let n = bits.min(RAW_CHUNK);
            bits -= n;
            let chunk = (self.0)
                .decode_symbol(uniform(n))
                .map_err(|e| format!("range coder: {e}"))?;
            v = (v << n) | chunk as u64;
        }
        Ok(v)
    }

    pub(super) fn get(&mut self, c: &mut Ctx) -> Result<i64, CodecError> {
        let mut high = self.symbol(&mut c.high)? as u64;
        if high == DIRECT {
            let len = self.symbol(&mut c.len)? as u32;
            let e = match len {
                0 => 0,
                _ => (1u64 << (len - 1)) | self.raw(len - 1)?,
            };
            high = DIRECT.wrapping_add(e);
        }
        // Garbage may overflow the shift; bits drop, nothing panics.
        let z = (high << c.k) | self.raw(c.k)?;
        Ok(unzigzag(z))
    }

    /// After the frame's last value: the coded bytes must hold nothing more.
    pub(super) fn finish(&self) -> Result<(), CodecError> {
        if !self.0.maybe_exhausted() {
            return Err("coded section longer than its values".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> Vec<i64> {
        let mut v = vec![
            0,
            1,
            -1,
            2,
            31,
            32,
            33,
            -33,
            1000,
            -1000,
            i64::MAX,
            i64::MIN,
        ];
        v.extend([
            i64::MIN + 1,
            i64::MAX - 1,
            1 << 40,
            -(1 << 40),
            65535,
            65536,
        ]);
        let mut x = 7u64;
        for _ in 0..2000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let shift = (x >> 58) as u32;
            v.push((x as i64) >> shift);
        }
        v
    }

    fn round_trip(k: u32, vals: &[i64]) {
        let (mut ce, mut cd) = (Ctx::new(k), Ctx::new(k));
        let mut enc = Encoder::new();
        for &r in vals {
            enc.put(&mut ce, r).unwrap();
        }
        let bytes = enc.finish();
        let mut dec = Decoder::new(&bytes).unwrap();
        for &r in vals {
            assert_eq!(dec.get(&mut cd).unwrap(), r, "k={k}");
        }
    }

    #[test]
    fn residuals_round_trip_at_every_rice_parameter() {
        let vals = values();
        for k in [0, 1, 5, 17, 40, 63] {
            round_trip(k, &vals);
        }
        round_trip(3, &[]);
        round_trip(0, &vec![0; 100_000]);
    }

    #[test]
    fn models_always_sum_to_one_and_stay_nonzero() {
        let mut a = Adaptive::new(33);
        for i in 0..200_000usize {
            a.update(if i % 97 == 0 { i % 33 } else { 0 });
            assert_eq!(a.cdf[33], ONE as u32);
            assert!(a.cdf.windows(2).all(|w| w[0] < w[1]));
        }
        for q in [0, 1, ONE as u32 / 2, ONE as u32 - 1] {
            let (s, lo, p) = a.quantile_function(q);
            assert!(lo <= q && q < lo + p.get() && s < 33);
        }
    }

    #[test]
    fn class_is_monotonic() {
        assert_eq!((0..6).map(class).collect::<Vec<_>>(), [0, 1, 2, 3, 4, 4]);
        assert!((1..5000u128).all(|x| class(x) <= class(x + 1)));
        assert_eq!(class(u128::MAX), 255);
    }

    #[test]
    fn garbage_decodes_to_values_or_errors_without_panicking() {
        let mut x = 99u64;
        for len in [0usize, 4, 8, 64, 400] {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                    (x >> 56) as u8
                })
                .collect();
            let mut dec = Decoder::new(&bytes).unwrap();
            let mut c = Ctx::new(3);
            for _ in 0..1000 {
                if dec.get(&mut c).is_err() {
                    break;
                }
            }
        }
        assert!(Decoder::new(&[1, 2, 3]).is_err());
    }
}
