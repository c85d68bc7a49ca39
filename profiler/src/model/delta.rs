//! One key's interval numbers (newer − older), and their sums, with histogram buffers taken
//! from a pool so that a refresh reuses the previous one's memory instead of allocating per row.

use profiler_common::hist;

use crate::sample::{Hist, Stat};

use super::Row;

/// Sparse histogram buckets: (bucket index, count), ascending, no zero counts.
pub(super) type Buckets = Vec<(u16, u64)>;

/// Spare histogram buffers.
#[derive(Default)]
pub(super) struct Pool {
    bufs: Vec<Buckets>,
}

impl Pool {
    /// An empty buffer, with capacity when one is spare.
    pub(super) fn take(&mut self) -> Buckets {
        self.bufs.pop().unwrap_or_default()
    }

    pub(super) fn put(&mut self, mut b: Buckets) {
        if b.capacity() > 0 {
            b.clear();
            self.bufs.push(b);
        }
    }

    /// Gives back every histogram buffer of `rows`.
    pub(super) fn put_rows(&mut self, rows: &mut Vec<Row>) {
        for r in rows.drain(..) {
            self.put(r.hist.buckets);
        }
    }
}

/// Raw interval numbers of one key, or of several keys added together.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct Delta {
    pub count: u64,
    pub in_flight: u64,
    pub timed: u64,
    pub total_ns: u64,
    /// Of `total_ns`: runnable but not running, and asleep (the kernel's scheduler split).
    pub wait_ns: u64,
    pub blocked_ns: u64,
    pub hist: Hist,
    /// (min, max) of the interval's timed exits; None when there were none.
    pub range: Option<(u64, u64)>,
}

/// A [`Delta`] borrowed from wherever it lives (a delta or a row built from one).
#[derive(Clone, Copy)]
pub(super) struct DeltaRef<'a> {
    count: u64,
    in_flight: u64,
    timed: u64,
    total_ns: u64,
    wait_ns: u64,
    blocked_ns: u64,
    hist: &'a [(u16, u64)],
    range: Option<(u64, u64)>,
}

impl<'a> DeltaRef<'a> {
    pub(super) fn of(d: &'a Delta) -> Self {
        DeltaRef {
            count: d.count,
            in_flight: d.in_flight,
            timed: d.timed,
            total_ns: d.total_ns,
            wait_ns: d.wait_ns,
            blocked_ns: d.blocked_ns,
            hist: &d.hist.buckets,
            range: d.range,
        }
    }

    /// The delta a row was built from: its range is known exactly when it has timed exits.
    pub(super) fn of_row(r: &'a Row) -> Self {
        DeltaRef {
            count: r.count,
            in_flight: r.in_flight,
            timed: r.timed,
            total_ns: r.total_ns,
            wait_ns: r.wait_ns,
            blocked_ns: r.blocked_ns,
            hist: &r.hist.buckets,
            range: (r.timed > 0).then_some((r.min_ns, r.max_ns)),
        }
    }
}

impl Delta {
    /// Whether its row would not be [`super::rows::quiet`], given whether it had histogram
    /// buckets (a delta added straight into a sum keeps none of its own).
    pub(super) fn active(&self, hist: bool) -> bool {
        self.count != 0 || self.timed != 0 || self.total_ns != 0 || hist
    }

    /// `self += o`, all but the histogram.
    fn add_scalars(&mut self, o: &DeltaRef) {
        self.count += o.count;
        self.in_flight += o.in_flight;
        self.timed += o.timed;
        self.total_ns += o.total_ns;
        self.wait_ns += o.wait_ns;
        self.blocked_ns += o.blocked_ns;
        self.range = match (self.range, o.range) {
            (Some(a), Some(b)) => Some((a.0.min(b.0), a.1.max(b.1))),
            (a, b) => a.or(b),
        };
    }
}

/// `new − old` bucket by bucket, each nonzero difference to `out` in ascending order
/// (saturating: a reset map never yields negatives); the first and last bucket given.
fn since_each(
    new: &[(u16, u64)],
    old: &[(u16, u64)],
    mut out: impl FnMut(u16, u64),
) -> Option<(u16, u16)> {
    let mut span: Option<(u16, u16)> = None;
    let mut j = 0;
    for &(b, c) in new {
        while j < old.len() && old[j].0 < b {
            j += 1;
        }
        let o = match old.get(j) {
            Some(&(ob, oc)) if ob == b => oc,
            _ => 0,
        };
        let d = c.saturating_sub(o);
        if d != 0 {
            out(b, d);
            span = Some((span.map_or(b, |s| s.0), b));
        }
    }
    span
}

/// One key's interval numbers from its newer and older stats and in-flight counts.
pub(super) fn delta(
    new: Option<&Stat>,
    old: Option<&Stat>,
    inf: (u64, u64),
    reused: bool,
    pool: &mut Pool,
) -> Delta {
    let mut buckets = Vec::new();
    // A buffer only for a histogram that moved (most keys of a quiet host do not).
    let (mut d, _) = delta_with(new, old, inf, reused, |b, c| {
        if buckets.capacity() == 0 {
            buckets = pool.take();
        }
        buckets.push((b, c));
    });
    d.hist = Hist { buckets };
    d
}

/// [`delta`] with its histogram given to `hist` bucket by bucket, ascending, instead (the
/// delta's own stays empty); also whether any bucket was given.
pub(super) fn delta_with(
    new: Option<&Stat>,
    old: Option<&Stat>,
    (inf_new, inf_old): (u64, u64),
    reused: bool,
    hist: impl FnMut(u16, u64),
) -> (Delta, bool) {
    let empty = Stat::default();
    let new = new.unwrap_or(&empty);
    // A count that went down means the key was recreated (LRU eviction, pid reuse): start over.
    let reset = reused || old.is_some_and(|o| o.count > new.count);
    let old = old.filter(|_| !reset).unwrap_or(&empty);
    let inf_old = if reset { 0 } else { inf_old };
    let timed = new.count - old.count;
    let span = match timed > 0 || new.hist.buckets != old.hist.buckets {
        true => since_each(&new.hist.buckets, &old.hist.buckets, hist),
        false => None,
    };
    let range = (timed > 0).then(|| {
        if old.count == 0 {
            // Nothing before: the cumulative extremes are this interval's exactly.
            (new.min_ns, new.max_ns)
        } else {
            let bounds = span.map(|(a, b)| Hist::span(a.into(), b.into()));
            let (lo, hi) = bounds.unwrap_or((new.min_ns, new.max_ns));
            // A moved extreme is exact; otherwise bucket bounds, kept inside the known range.
            let lo = if new.min_ns < old.min_ns {
                new.min_ns
            } else {
                lo
            };
            let hi = if new.max_ns > old.max_ns {
                new.max_ns
            } else {
                hi
            };
            let clamp = |v: u64| v.clamp(new.min_ns, new.max_ns.max(new.min_ns));
            (clamp(lo), clamp(hi))
        }
    });
    let d = Delta {
        count: (timed + inf_new).saturating_sub(inf_old),
        in_flight: inf_new,
        timed,
        total_ns: new.sum_ns.saturating_sub(old.sum_ns),
        wait_ns: new.wait_ns.saturating_sub(old.wait_ns),
        blocked_ns: new.blocked_ns.saturating_sub(old.blocked_ns),
        hist: Hist::default(),
        range,
    };
    (d, span.is_some())
}

/// Sums of deltas by a sorted pair key (an (isa, reason), or a (vCPU, reason)): a VM row is the
/// sum of 16 vCPU rows or more. Histograms are summed into dense arrays (an add is one pass over
/// the added buckets, no merge into a new list), made sparse once, when taken.
#[derive(Default)]
pub(super) struct Agg {
    /// The keys, ascending, packed into one u64 each: a lookup is a binary search over a few
    /// cache lines (searching the accumulators themselves cost more than adding).
    keys: Vec<u64>,
    /// The sum of each key, in `keys` order.
    accs: Vec<Acc>,
    /// Zeroed accumulators, kept for their arrays.
    spare: Vec<Acc>,
    /// The position after the last key found: rows come in key order, so a vCPU's reasons
    /// are asked for in `keys` order and the next key is usually there (or at 0, the next
    /// vCPU's first reason).
    next: usize,
}

/// One sum: its numbers (`d.hist` stays empty) and its histogram, dense.
struct Acc {
    d: Delta,
    dense: Box<[u64; hist::BUCKETS]>,
    /// Octaves (bit = bucket / SUB) of `dense` that may hold counts: the rest are zero.
    octs: u64,
}

impl Acc {
    fn add(&mut self, o: &DeltaRef) {
        self.d.add_scalars(o);
        for &(b, c) in o.hist {
            self.add_bucket(b, c);
        }
    }

    fn add_bucket(&mut self, b: u16, c: u64) {
        // Indexes past the layout (only a corrupt recording has them) go to the last bucket,
        // where the kernel puts what is too long for the others.
        let b = usize::from(b).min(hist::BUCKETS - 1);
        self.dense[b] += c;
        self.octs |= 1 << (b / SUB);
    }

    /// The sum, its histogram sparse in a buffer from `pool`; leaves `self` zero.
    fn take(&mut self, pool: &mut Pool) -> Delta {
        let mut d = std::mem::take(&mut self.d);
        let mut buckets = pool.take();
        while self.octs != 0 {
            let o = self.octs.trailing_zeros() as usize;
            self.octs &= self.octs - 1;
            let lo = o * SUB;
            for (j, c) in self.dense[lo..(lo + SUB).min(hist::BUCKETS)]
                .iter_mut()
                .enumerate()
            {
                if *c != 0 {
                    buckets.push(((lo + j) as u16, std::mem::take(c)));
                }
            }
        }
        d.hist = Hist { buckets };
        d
    }
}

const SUB: usize = hist::SUB as usize;

/// A pair key as one u64, in the same order.
pub(super) fn pack((a, b): (u32, u32)) -> u64 {
    (u64::from(a) << 32) | u64::from(b)
}

impl Agg {
    /// `self[k] += d`.
    pub(super) fn add(&mut self, k: (u32, u32), d: DeltaRef) {
        let i = self.index(k);
        self.accs[i].add(&d);
    }

    /// `self[k] +=` the [`delta`] of these stats, its histogram added bucket by bucket (no
    /// buffer of its own); returns the delta (its histogram empty) and whether it had buckets.
    pub(super) fn add_delta(
        &mut self,
        k: (u32, u32),
        (new, old): (Option<&Stat>, Option<&Stat>),
        inf: (u64, u64),
        reused: bool,
    ) -> (Delta, bool) {
        let i = self.index(k);
        let acc = &mut self.accs[i];
        let (d, hist) = delta_with(new, old, inf, reused, |b, c| acc.add_bucket(b, c));
        acc.d.add_scalars(&DeltaRef::of(&d));
        (d, hist)
    }

    /// The position of `k`'s sum, made zero if new.
    fn index(&mut self, k: (u32, u32)) -> usize {
        let p = pack(k);
        let hint = match self.keys.get(self.next) {
            Some(&h) if h == p => Some(self.next),
            _ if self.keys.first() == Some(&p) => Some(0),
            _ => None,
        };
        let found = hint.map_or_else(|| self.keys.binary_search(&p), Ok);
        self.next = found.map_or(0, |i| i + 1);
        match found {
            Ok(i) => i,
            Err(i) => {
                let acc = self.spare.pop().unwrap_or_else(|| Acc {
                    d: Delta::default(),
                    dense: Box::new([0; hist::BUCKETS]),
                    octs: 0,
                });
                self.keys.insert(i, p);
                self.accs.insert(i, acc);
                i
            }
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub(super) fn len(&self) -> usize {
        self.keys.len()
    }

    /// The sum of `k`, taken out (a second take gives zero); None when nothing was added to it.
    pub(super) fn take(&mut self, k: (u32, u32), pool: &mut Pool) -> Option<Delta> {
        let i = self.keys.binary_search(&pack(k)).ok()?;
        Some(self.accs[i].take(pool))
    }

    /// Takes out one sum, in no particular order; None when empty.
    pub(super) fn pop(&mut self, pool: &mut Pool) -> Option<((u32, u32), Delta)> {
        let (k, mut acc) = (self.keys.pop()?, self.accs.pop()?);
        let d = acc.take(pool);
        self.spare.push(acc);
        Some((((k >> 32) as u32, k as u32), d))
    }

    /// Empties it (the sums not taken are dropped).
    pub(super) fn clear(&mut self, pool: &mut Pool) {
        while let Some((_, d)) = self.pop(pool) {
            pool.put(d.hist.buckets);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tests_fast::Rng;

    fn random_delta(rng: &mut Rng) -> Delta {
        let mut hist = Hist::default();
        for _ in 0..rng.below(12) {
            let exp = 4 + rng.below(34);
            let n = 1 + rng.below(9);
            hist.record(rng.below(1 << exp), n);
        }
        let timed = hist.total();
        let lo = rng.below(1000);
        Delta {
            count: timed + rng.below(3),
            in_flight: rng.below(2),
            timed,
            total_ns: rng.below(1 << 30),
            wait_ns: rng.below(1 << 20),
            blocked_ns: rng.below(1 << 20),
            hist,
            range: (timed > 0).then(|| (lo, lo + rng.below(1 << 20))),
        }
    }

    /// The dense sums are the sparse ones (`Hist::add`, a merge of sorted lists), also when
    /// accumulators are reused after `pop`, `take` and `clear`, with sums left untaken.
    #[test]
    fn dense_sums_match_sparse_merges() {
        let mut rng = Rng(11);
        let (mut agg, mut pool) = (Agg::default(), Pool::default());
        for round in 0..300 {
            let mut want: Vec<((u32, u32), Delta)> = Vec::new();
            for _ in 0..rng.below(40) {
                let k = (rng.below(3) as u32, rng.below(5) as u32);
                let d = random_delta(&mut rng);
                agg.add(k, DeltaRef::of(&d));
                match want.binary_search_by_key(&k, |(x, _)| *x) {
                    Ok(i) => {
                        let w = &mut want[i].1;
                        w.add_scalars(&DeltaRef::of(&d));
                        w.hist.add(&d.hist);
                    }
                    Err(i) => want.insert(i, (k, d)),
                }
            }
            assert_eq!(agg.len(), want.len());
            let mut got = Vec::new();
            match round % 3 {
                0 => {
                    while let Some(kd) = agg.pop(&mut pool) {
                        got.push(kd);
                    }
                    got.sort_by_key(|(k, _)| *k);
                }
                _ => {
                    // Take all, or half and leave the others to `clear`.
                    if round % 3 == 2 {
                        want.truncate(want.len() / 2);
                    }
                    for (k, _) in &want {
                        let d = agg.take(*k, &mut pool).expect("added");
                        let again = agg.take(*k, &mut pool).expect("added");
                        assert!(again.hist.buckets.is_empty() && again.count == 0);
                        got.push((*k, d));
                    }
                    agg.clear(&mut pool);
                }
            }
            assert!(agg.is_empty());
            assert_eq!(got.len(), want.len());
            for ((gk, g), (wk, w)) in got.iter().zip(&want) {
                assert_eq!(gk, wk);
                assert_eq!(g, w, "round {round}, key {gk:?}");
            }
        }
    }
}
