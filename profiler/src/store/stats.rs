//! Format 2 stat entries: count, histogram growth and sum go through the range coder
//! (entropy.rs), each residual in a context picked from what the decoder already knows.
//!
//! Per stats entry, in this order:
//! - count growth minus a prediction: the key's growth in the previous frame, scaled by how
//!   much the keys of the same vCPU coded so far in this frame grew against their previous
//!   growth (a vCPU's load moves all its exit reasons together). Context: size of the prediction.
//! - one residual per bucket of old ∪ added buckets (added ones listed in the zstd columns):
//!   growth minus the expected growth `old_c · grown / total` (fixed point, rounded), context:
//!   size of that expectation in fixed point, so tail buckets with expected growth 1/8 and 1/2
//!   learn different odds. For an empty old histogram (key frames, new keys) the expectation is
//!   `grown / buckets` in a separate family. The old histogram's largest bucket is skipped and
//!   coded last, as its disagreement with count (normally 0).
//! - sum_ns minus Σ growth × bucket midpoint, context: bit length of Σ |growth| · width² / 12,
//!   the variance if handling times are uniform within their buckets.
//!
//! Contexts adapt frame to frame within a key interval; both sides reset them at key frames.

use std::collections::HashMap;

use profiler_common::hist;

use super::delta::{
    canonical, diff, hist_total, largest, midpoint, undiff, union, CodecError, StatColumns,
};
use super::entropy::{class, Ctx, Decoder, Encoder, Family};
use crate::sample::{Key, Stat};

/// Fractional bits of expected bucket growth.
const FRAC: u32 = 8;
/// Pseudo-count that keeps the vCPU load ratio sane while few keys are coded.
const RATIO_PRIOR: u64 = 16;

/// Adaptive coding state of one key interval (writer and cursor each hold one).
#[derive(Clone, Debug)]
pub(crate) struct Models {
    buckets: Family,
    fresh: Family,
    top: Ctx,
    count: Family,
    sum: Family,
    /// Count growth per key in the previous frame (empty after a key frame).
    last: HashMap<Key, u64>,
}

impl Default for Models {
    fn default() -> Self {
        // Rice parameters ≈ log2 of the expected spread minus one, from the class (≈ 2·log2).
        Models {
            // Spread ≈ sqrt(expected growth); class ≈ 2·(log2 growth + FRAC).
            buckets: Family::new(64, |c| (c / 4).saturating_sub(FRAC / 2 + 1)),
            // Bucket counts of a fresh histogram spread about as wide as their mean.
            fresh: Family::new(80, |c| (c / 2).saturating_sub(FRAC + 1)),
            top: Ctx::new(0),
            count: Family::new(64, |c| (c / 4).saturating_sub(1)),
            sum: Family::new(140, |c| (c / 4).saturating_sub(1)),
            last: HashMap::new(),
        }
    }
}

impl Models {
    /// Context and rounded expectation for a bucket holding `old` of the histogram's `total`,
    /// when the key grew by `grown`; `n` = buckets in old ∪ added.
    fn bucket(&mut self, old: u64, grown: u64, total: u64, n: usize) -> (&mut Ctx, u64) {
        let (fam, e) = if total == 0 {
            let e = (u128::from(grown) << FRAC) / n.max(1) as u128;
            (&mut self.fresh, e)
        } else {
            let e = ((u128::from(old) * u128::from(grown)) << FRAC) / u128::from(total);
            (&mut self.buckets, e)
        };
        let rounded = ((e + (1 << (FRAC - 1))) >> FRAC) as u64;
        (fam.at(class(e)), rounded)
    }
}

/// The count prediction of one frame (see the module comment).
struct Predictor {
    next: HashMap<Key, u64>,
    group: Option<(u32, u32)>,
    now: u64,
    before: u64,
}

impl Predictor {
    fn new() -> Predictor {
        Predictor {
            next: HashMap::new(),
            group: None,
            now: 0,
            before: 0,
        }
    }

    /// (previous growth, predicted growth) of `k`.
    fn predict(&mut self, m: &Models, k: &Key) -> (u64, u64) {
        if self.group != Some((k.tgid, k.vcpu)) {
            self.group = Some((k.tgid, k.vcpu));
            (self.now, self.before) = (0, 0);
        }
        let last = m.last.get(k).copied().unwrap_or(0);
        let p = u128::from(last) * u128::from(self.now.saturating_add(RATIO_PRIOR))
            / u128::from(self.before.saturating_add(RATIO_PRIOR));
        (last, p.min(u128::from(u64::MAX)) as u64)
    }

    fn observe(&mut self, k: Key, last: u64, grown: u64) {
        if last > 0 {
            self.now = self.now.saturating_add(grown);
            self.before = self.before.saturating_add(last);
        }
        self.next.insert(k, grown);
    }

    /// Hand this frame's growths to the next frame (not a key frame's: those are totals).
    fn finish(self, m: &mut Models, key: bool) {
        m.last = if key { HashMap::new() } else { self.next };
    }
}

/// Σ |growth| · width² / 12 over changed buckets, saturating.
fn variance(changes: &[(u16, u64)]) -> u128 {
    let v = changes.iter().fold(0u128, |acc, &(b, d)| {
        let b = b as usize;
        let w = if b < hist::BUCKETS {
            u128::from(hist::upper(b) - hist::lower(b))
        } else {
            0
        };
        let mag = u128::from((d as i64).unsigned_abs());
        acc.saturating_add(mag.saturating_mul(w * w))
    });
    v / 12
}

fn predicted_sum(changes: &[(u16, u64)]) -> u64 {
    (changes.iter()).fold(0u64, |acc, &(b, d)| {
        acc.wrapping_add(d.wrapping_mul(midpoint(b)))
    })
}

/// Encodes one frame's stat entries: columns for the zstd payload, residuals to the coder.
pub(super) struct StatEncoder<'a> {
    m: &'a mut Models,
    enc: Encoder,
    pred: Predictor,
    changes: Vec<(u16, u64)>,
}

impl<'a> StatEncoder<'a> {
    pub(super) fn new(m: &'a mut Models) -> Self {
        StatEncoder {
            m,
            enc: Encoder::new(),
            pred: Predictor::new(),
            changes: vec![],
        }
    }

    pub(super) fn stat(
        &mut self,
        c: &mut StatColumns,
        entry: u32,
        key: Key,
        old: &Stat,
        new: &Stat,
    ) -> Result<(), CodecError> {
        let grown = new.count.wrapping_sub(old.count);
        let (last, p) = self.pred.predict(self.m, &key);
        self.enc
            .put(self.m.count.at(class(p.into())), diff(grown, p))?;
        self.pred.observe(key, last, grown);
        self.changes.clear();
        if canonical(&old.hist) && canonical(&new.hist) {
            let (old_b, new_b) = (&old.hist.buckets, &new.hist.buckets);
            let total = hist_total(old_b);
            let n = if total == 0 {
                union(old_b, new_b).count()
            } else {
                0
            };
            let omit = largest(old_b);
            let (mut added, mut last_gap) = (0u32, None::<u16>);
            let (mut rest, mut top) = (grown, None);
            for (b, oc, nc) in union(old_b, new_b) {
                if oc == 0 {
                    c.hist_gap.push(last_gap.map_or(b, |l| b - l - 1));
                    last_gap = Some(b);
                    added += 1;
                }
                let d = nc.wrapping_sub(oc);
                self.changes.push((b, d));
                if Some(b) == omit {
                    top = Some(d);
                    continue;
                }
                rest = rest.wrapping_sub(d);
                let (ctx, e) = self.m.bucket(oc, grown, total, n);
                self.enc.put(ctx, diff(d, e))?;
            }
            if let Some(d) = top {
                self.enc.put(&mut self.m.top, diff(d, rest))?;
            }
            c.hist_len.push(added);
        } else {
            c.hist_len.push(0);
            c.hist_raw.push((entry, new.hist.clone()));
        }
        let expected = old.sum_ns.wrapping_add(predicted_sum(&self.changes));
        let ctx = self.m.sum.at(class(variance(&self.changes)));
        self.enc.put(ctx, diff(new.sum_ns, expected))?;
        c.min.push(diff(new.min_ns, old.min_ns));
        c.max.push(diff(new.max_ns, old.max_ns));
        Ok(())
    }

    pub(super) fn finish(self, key: bool) -> Vec<u8> {
        self.pred.finish(self.m, key);
        self.enc.finish()
    }
}

/// Decodes one frame's stat entries (the mirror of `StatEncoder`).
pub(super) struct StatDecoder<'a> {
    m: &'a mut Models,
    dec: Decoder,
    pred: Predictor,
    c: &'a StatColumns,
    gap_pos: usize,
    raw_pos: usize,
}

impl<'a> StatDecoder<'a> {
    pub(super) fn new(
        m: &'a mut Models,
        c: &'a StatColumns,
        coded: &[u8],
    ) -> Result<Self, CodecError> {
        Ok(StatDecoder {
            m,
            dec: Decoder::new(coded)?,
            pred: Predictor::new(),
            c,
            gap_pos: 0,
            raw_pos: 0,
        })
    }

    pub(super) fn stat(&mut self, entry: usize, key: Key, s: &mut Stat) -> Result<(), CodecError> {
        let c = self.c;
        let short = || "stat columns too short".to_string();
        let get = |v: &[i64]| v.get(entry).copied().ok_or_else(short);
        let n = *c.hist_len.get(entry).ok_or_else(short)? as usize;
        let (last, p) = self.pred.predict(self.m, &key);
        let grown = undiff(p, self.dec.get(self.m.count.at(class(p.into())))?);
        self.pred.observe(key, last, grown);
        s.count = s.count.wrapping_add(grown);
        let mut changes = Vec::new();
        match c.hist_raw.get(self.raw_pos) {
            Some((e, h)) if *e as usize == entry => {
                s.hist = h.clone();
                self.raw_pos += 1;
            }
            _ => {
                let gaps = c.hist_gap.get(self.gap_pos..).unwrap_or(&[]);
                let gaps = gaps.get(..n).ok_or_else(short)?;
                self.gap_pos += n;
                let mut added = Vec::with_capacity(n);
                let mut at = 0u32;
                for &gap in gaps {
                    let b = at + u32::from(gap);
                    added.push((
                        u16::try_from(b).map_err(|_| "bucket index out of range")?,
                        0,
                    ));
                    at = b + 1;
                }
                let old = &s.hist.buckets;
                let total = hist_total(old);
                let n = if total == 0 {
                    union(old, &added).count()
                } else {
                    0
                };
                let omit = largest(old);
                let (mut rest, mut top) = (grown, None);
                for (b, oc, _) in union(old, &added) {
                    if Some(b) == omit {
                        top = Some(changes.len());
                        changes.push((b, 0));
                        continue;
                    }
                    let (ctx, e) = self.m.bucket(oc, grown, total, n);
                    let d = undiff(e, self.dec.get(ctx)?);
                    rest = rest.wrapping_sub(d);
                    changes.push((b, d));
                }
                if let Some(at) = top {
                    changes[at].1 = undiff(rest, self.dec.get(&mut self.m.top)?);
                }
                let signed: Vec<(u16, i64)> = changes.iter().map(|&(b, d)| (b, d as i64)).collect();
                s.hist.buckets = super::delta::merge_hist(old, &signed);
            }
        }
        let expected = s.sum_ns.wrapping_add(predicted_sum(&changes));
        let ctx = self.m.sum.at(class(variance(&changes)));
        s.sum_ns = undiff(expected, self.dec.get(ctx)?);
        s.min_ns = undiff(s.min_ns, get(&c.min)?);
        s.max_ns = undiff(s.max_ns, get(&c.max)?);
        Ok(())
    }

    /// Check that every column value was used, and hand the frame's state on.
    pub(super) fn finish(self, key: bool) -> Result<(), CodecError> {
        if self.gap_pos != self.c.hist_gap.len() || self.raw_pos != self.c.hist_raw.len() {
            return Err("unused histogram data".into());
        }
        self.dec.finish()?;
        self.pred.finish(self.m, key);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
