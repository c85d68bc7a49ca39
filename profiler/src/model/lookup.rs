//! Finding the keys a refresh in place recomputes, and their values in the two samples.

use super::{
    compute::{Ctx, Seek, Span},
    delta::{delta, Agg, Delta},
};
use crate::sample::{Key, KeyMap, Stat};

/// A value by key from a sorted map: a cursor when most keys are asked for (in ascending
/// order), a lookup when few are.
pub(super) enum Find<'a, V> {
    Walk(Seek<'a, V>),
    Get(&'a dyn KeyMap<V>),
}

impl<'a, V: 'a> Find<'a, V> {
    fn new(map: &'a dyn KeyMap<V>, dense: bool) -> Self {
        if dense {
            Find::Walk(Seek::new(map))
        } else {
            Find::Get(map)
        }
    }

    fn get(&mut self, k: &Key) -> Option<&'a V> {
        match self {
            Find::Walk(s) => s.seek(k),
            Find::Get(m) => m.find(k),
        }
    }
}

/// The lookups of one refresh.
pub(super) struct Finds<'a> {
    new_stats: Find<'a, Stat>,
    old_stats: Find<'a, Stat>,
    new_inf: Find<'a, u64>,
    old_inf: Find<'a, u64>,
}

impl<'a> Finds<'a> {
    pub(super) fn new(sp: &Span<'a>, dense: bool) -> Self {
        Finds {
            new_stats: Find::new(&sp.newer.stats, dense),
            old_stats: Find::new(&sp.older.stats, dense),
            new_inf: Find::new(&sp.newer.in_flight, dense),
            old_inf: Find::new(&sp.older.in_flight, dense),
        }
    }

    pub(super) fn lookups(sp: &Span<'a>) -> Self {
        Finds::new(sp, false)
    }

    /// `k`'s delta; None when `newer` does not have the key (it vanished).
    pub(super) fn delta(&mut self, k: &Key, ctx: &mut Ctx) -> Option<Delta> {
        let new = self.new_stats.get(k);
        let inf_new = self.new_inf.get(k);
        if new.is_none() && inf_new.is_none() {
            return None;
        }
        let inf = (
            inf_new.copied().unwrap_or(0),
            self.old_inf.get(k).copied().unwrap_or(0),
        );
        Some(delta(new, self.old_stats.get(k), inf, false, &mut ctx.pool))
    }

    /// `k`'s delta added straight into the sum of its (isa, reason) in `agg` (no histogram
    /// buffer of its own: [`Agg::add_delta`]), whether it had buckets, and the older sample's
    /// exits in flight of `k`; None when `newer` does not have the key (it vanished).
    pub(super) fn fold(&mut self, k: &Key, agg: &mut Agg) -> Option<(Delta, bool, u64)> {
        let new = self.new_stats.get(k);
        let inf_new = self.new_inf.get(k);
        if new.is_none() && inf_new.is_none() {
            return None;
        }
        let inf_old = self.old_inf.get(k).copied().unwrap_or(0);
        let inf = (inf_new.copied().unwrap_or(0), inf_old);
        let stats = (new, self.old_stats.get(k));
        let (d, hist) = agg.add_delta((k.isa, k.reason), stats, inf, false);
        Some((d, hist, inf_old))
    }
}
