//! One key's interval numbers (newer − older), and their sums, with histogram buffers taken
//! from a pool so that a refresh reuses the previous one's memory instead of allocating per row.

use crate::sample::{Hist, Stat};

use super::Row;

/// Sparse histogram buckets: (bucket index, count), ascending, no zero counts.
pub(super) type Buckets = Vec<(u16, u64)>;

/// Spare histogram buffers, and one scratch buffer for merges.
#[derive(Default)]
pub(super) struct Pool {
    bufs: Vec<Buckets>,
    scratch: Buckets,
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
#[derive(Clone, Default)]
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

    /// A copy whose histogram lives in a buffer from `pool`.
    pub(super) fn to_owned(self, pool: &mut Pool) -> Delta {
        let mut buckets = pool.take();
        buckets.extend_from_slice(self.hist);
        Delta {
            count: self.count,
            in_flight: self.in_flight,
            timed: self.timed,
            total_ns: self.total_ns,
            wait_ns: self.wait_ns,
            blocked_ns: self.blocked_ns,
            hist: Hist { buckets },
            range: self.range,
        }
    }
}

impl Delta {
    /// `self += o`.
    pub(super) fn add(&mut self, o: DeltaRef, pool: &mut Pool) {
        self.count += o.count;
        self.in_flight += o.in_flight;
        self.timed += o.timed;
        self.total_ns += o.total_ns;
        self.wait_ns += o.wait_ns;
        self.blocked_ns += o.blocked_ns;
        add_buckets(&mut self.hist.buckets, o.hist, &mut pool.scratch);
        self.range = match (self.range, o.range) {
            (Some(a), Some(b)) => Some((a.0.min(b.0), a.1.max(b.1))),
            (a, b) => a.or(b),
        };
    }
}

/// `a += b`, one merge of two sorted lists through `scratch` (which keeps `a`'s old buffer).
fn add_buckets(a: &mut Buckets, b: &[(u16, u64)], scratch: &mut Buckets) {
    if b.is_empty() {
        return;
    }
    if a.is_empty() {
        a.extend_from_slice(b);
        return;
    }
    scratch.clear();
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        let ((ab, ac), (bb, bc)) = (a[i], b[j]);
        if ab == bb {
            scratch.push((ab, ac + bc));
            i += 1;
            j += 1;
        } else if ab < bb {
            scratch.push((ab, ac));
            i += 1;
        } else {
            scratch.push((bb, bc));
            j += 1;
        }
    }
    scratch.extend_from_slice(&a[i..]);
    scratch.extend_from_slice(&b[j..]);
    std::mem::swap(a, scratch);
}

/// `new − old` bucket by bucket into `out` (saturating: a reset map never yields negatives).
fn since_into(new: &[(u16, u64)], old: &[(u16, u64)], out: &mut Buckets) {
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
            out.push((b, d));
        }
    }
}

/// One key's interval numbers from its newer and older stats and in-flight counts.
pub(super) fn delta(
    new: Option<&Stat>,
    old: Option<&Stat>,
    (inf_new, inf_old): (u64, u64),
    reused: bool,
    pool: &mut Pool,
) -> Delta {
    let empty = Stat::default();
    let new = new.unwrap_or(&empty);
    // A count that went down means the key was recreated (LRU eviction, pid reuse): start over.
    let reset = reused || old.is_some_and(|o| o.count > new.count);
    let old = old.filter(|_| !reset).unwrap_or(&empty);
    let inf_old = if reset { 0 } else { inf_old };
    let timed = new.count - old.count;
    // An unchanged histogram (most keys of a quiet host) takes no buffer.
    let mut buckets = Vec::new();
    if timed > 0 || new.hist.buckets != old.hist.buckets {
        buckets = pool.take();
        since_into(&new.hist.buckets, &old.hist.buckets, &mut buckets);
    }
    let hist = Hist { buckets };
    let range = (timed > 0).then(|| {
        if old.count == 0 {
            // Nothing before: the cumulative extremes are this interval's exactly.
            (new.min_ns, new.max_ns)
        } else {
            let (lo, hi) = hist.bounds().unwrap_or((new.min_ns, new.max_ns));
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
    Delta {
        count: (timed + inf_new).saturating_sub(inf_old),
        in_flight: inf_new,
        timed,
        total_ns: new.sum_ns.saturating_sub(old.sum_ns),
        wait_ns: new.wait_ns.saturating_sub(old.wait_ns),
        blocked_ns: new.blocked_ns.saturating_sub(old.blocked_ns),
        hist,
        range,
    }
}

/// Sums of deltas by a sorted pair key (an (isa, reason), or a (vCPU, reason)).
#[derive(Default)]
pub(super) struct Agg {
    pub items: Vec<((u32, u32), Delta)>,
}

impl Agg {
    /// `self[k] += d`, copying `d` when `k` is new (the same as adding it to a zero Delta).
    pub(super) fn add(&mut self, k: (u32, u32), d: DeltaRef, pool: &mut Pool) {
        match self.items.binary_search_by_key(&k, |(x, _)| *x) {
            Ok(i) => self.items[i].1.add(d, pool),
            Err(i) => self.items.insert(i, (k, d.to_owned(pool))),
        }
    }
}
