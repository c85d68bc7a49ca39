//! Reads the exit table (`ROWS` and its `OCTS` octaves, both mapped) into per-key statistics,
//! decoding only the rows whose sequence counter moved since the last read.

use std::{
    collections::{BTreeMap, HashMap},
    sync::atomic::{fence, Ordering},
};

use profiler_common::{hist, Oct, OverflowKey, Row, LINKS, LINK_OVERFLOW};

use super::mapped::Mapped;
use crate::{
    chunk_map::{Builder, ChunkMap},
    sample::{Changed, Hist, Key, Stat},
};

/// Offset of `Row::gen` (the sequence lock) in a row.
const GEN_OFFSET: usize = std::mem::offset_of!(Row, gen);
/// The key's first word: its tgid (low half, x86 being little-endian) and vCPU.
const KEY_OFFSET: usize = std::mem::offset_of!(Row, key);
/// Tries before a row that is being written on every look is taken as it is.
const TRIES: usize = 16;
/// Rows scanned past the highest one seen in use. The free list is a FIFO filled in index
/// order, so rows are first used in ascending order and the rows in use form a prefix, up to
/// holes left by rows being set up on other CPUs (or given back after losing a race).
const LOOKAHEAD: usize = 1024;

/// A row as last decoded.
#[derive(Clone, Debug)]
pub struct Decoded {
    pub gen: u64,
    pub key: Key,
    /// The row's statistics where `Table::stats` does not hold them: decoded by this refresh
    /// (moved there at its end), or of a key with several rows (the map holds their sum).
    /// None: the key's only row, its statistics are `stats[key]` (one copy per row, not two).
    pub stat: Option<Stat>,
}

pub struct Table {
    rows: Mapped<Row>,
    octs: Mapped<Oct>,
    /// By `ROWS` index: the last decode of each row in use.
    cache: Vec<Option<Decoded>>,
    /// The rows of each key in use (a key may have several: a vCPU served by a new thread).
    rows_of: HashMap<Key, Vec<u32>>,
    /// Per key, its rows summed: shared with every sample taken (a persistent map), updated
    /// only for the keys whose rows moved.
    stats: ChunkMap<Key, Stat>,
    /// The rows in use in key order, while no row came, went or changed key since it was
    /// sorted (when most rows move, `stats` is rebuilt in this order).
    order: Option<Vec<(Key, u32)>>,
    /// Keys to recompute in `stats` at the end of the refresh.
    stale: Vec<Key>,
    /// One past the highest row index seen in use: a refresh scans about this many rows, not
    /// the whole capacity (`--max-keys`).
    hwm: usize,
    /// Keys whose statistics changed, came or went since the last `changes`.
    changed: Vec<Key>,
    /// The last sample's time and exits in flight, to say what the next one changed.
    prev: Option<(u64, BTreeMap<Key, u64>)>,
    /// Rows decoded by the last `refresh` (unchanged ones are reused).
    pub decoded: usize,
    /// Rows that were still being written after every try, taken as read (torn by at most the
    /// exits in flight).
    pub torn: u64,
    /// A row's buckets while it is read (kept for its capacity).
    scratch: Vec<(u16, u64)>,
}

impl Table {
    pub fn new(rows: Mapped<Row>, octs: Mapped<Oct>) -> Table {
        let n = rows.len();
        Table {
            rows,
            octs,
            cache: vec![None; n],
            rows_of: HashMap::new(),
            stats: ChunkMap::new(),
            order: None,
            stale: Vec::new(),
            hwm: 0,
            changed: Vec::new(),
            prev: None,
            decoded: 0,
            torn: 0,
            scratch: Vec::new(),
        }
    }

    pub fn rows(&self) -> &Mapped<Row> {
        &self.rows
    }

    /// The rows in use (as of the last refresh) of the keys of these processes.
    pub fn rows_of_tgids(&self, tgids: &[u32]) -> Vec<u32> {
        let of = self.rows_of.iter().filter(|(k, _)| tgids.contains(&k.tgid));
        let mut rows: Vec<u32> = of.flat_map(|(_, v)| v.iter().copied()).collect();
        rows.sort_unstable();
        rows
    }

    /// Refresh every row in use; then `rows_by_key` gives them. `overflow` looks up an octave a
    /// row keeps in the OVERFLOW hash (rare: rows spanning more than LINKS octaves).
    pub fn refresh(&mut self, overflow: impl Fn(OverflowKey) -> Option<Oct>) {
        self.decoded = 0;
        self.scan(|t, i, gen| t.refresh_row(i, gen, &overflow));
        // (A key is in `stale` once per row that moved: rows are mostly one per key.)
        if self.stale.len() > self.stats.len() / 4 {
            // Most keys moved: building afresh in key order beats copying chunks key by key.
            // With the order kept, no row came, went or changed key since the map was built.
            let same_keys = self.order.is_some();
            let cache = &mut self.cache;
            // Rows at or past `hwm` were never decoded: the scan stops there, not at the
            // table's capacity (16 384 rows of cache by default, for a host's handful).
            let decoded = &cache[..self.hwm.min(cache.len())];
            let order = self.order.get_or_insert_with(|| {
                let mut o: Vec<(Key, u32)> = (decoded.iter().enumerate())
                    .filter_map(|(i, d)| d.as_ref().map(|d| (d.key, i as u32)))
                    .collect();
                o.sort_unstable();
                o
            });
            let mut all = Builder::with_capacity(order.len());
            for (n, &(k, i)) in order.iter().enumerate() {
                let Some(d) = &mut cache[i as usize] else {
                    continue;
                };
                let shared =
                    (n > 0 && order[n - 1].0 == k) || order.get(n + 1).is_some_and(|o| o.0 == k);
                if !shared {
                    // The key's only row: a fresh decode moves into the map, an unchanged one
                    // is copied from the map that holds it.
                    if let Some(st) = d.stat.take().or_else(|| self.stats.get(&k).cloned()) {
                        all.push(k, st);
                    }
                    continue;
                }
                let Some(st) = &d.stat else {
                    continue;
                };
                match all.last_mut() {
                    Some((lk, sum)) if *lk == k => sum.merge(st),
                    _ => all.push(k, st.clone()),
                }
            }
            let all = all.finish();
            // What changed: every key now and every key before (those that went), in order
            // (a superset), merged instead of sorting the moved keys.
            let mut keys = Vec::with_capacity(all.len());
            if same_keys && all.len() == self.stats.len() {
                keys.extend(all.keys());
            } else {
                crate::sample::union_sorted(all.keys(), self.stats.keys(), &mut keys);
            }
            self.stats = all;
            self.stale.clear();
            self.changed.append(&mut keys);
            return;
        }
        self.stale.sort_unstable();
        self.stale.dedup();
        for k in std::mem::take(&mut self.stale) {
            match self.rows_of.get(&k).map_or(&[][..], |v| &v[..]) {
                [] => {
                    self.stats.remove(&k);
                }
                &[i] => {
                    // The key's only row: its fresh decode moves into the map (None: the row
                    // was taken as last read, which the map holds).
                    if let Some(st) = self.cache[i as usize].as_mut().and_then(|d| d.stat.take()) {
                        self.stats.insert(k, st);
                    }
                }
                rows => {
                    let sum = self.sum(rows);
                    self.stats.insert(k, sum);
                }
            }
            self.changed.push(k);
        }
    }

    /// `each(self, row, its gen)` for every row up to LOOKAHEAD past the highest one seen in
    /// use, extending that mark (`hwm`) as rows in use turn up past it.
    fn scan(&mut self, mut each: impl FnMut(&mut Table, usize, u64)) {
        let n = self.rows.len();
        let mut end = (self.hwm + LOOKAHEAD).min(n);
        let mut i = 0;
        while i < end {
            let gen = self.rows.u64_at(i, GEN_OFFSET);
            if gen != 0 && i >= self.hwm {
                self.hwm = i + 1;
                end = (self.hwm + LOOKAHEAD).min(n);
            }
            each(self, i, gen);
            i += 1;
        }
    }

    /// The processes of the rows in use, from the mapped rows' keys alone (no decode): what
    /// `Probe::keep_up` learns VMs from. Extends `hwm` as `refresh` does.
    pub fn tgids(&mut self) -> Vec<u32> {
        let mut out = Vec::new();
        self.scan(|t, i, gen| {
            if gen != 0 {
                // The key is written before the row is published, and never changes after.
                out.push(t.rows.u64_at(i, KEY_OFFSET) as u32);
            }
        });
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The rows of a key that has several summed (each keeps its own statistics).
    fn sum(&self, rows: &[u32]) -> Stat {
        let mut sum: Option<Stat> = None;
        for &i in rows {
            let Some(st) = self.cache[i as usize]
                .as_ref()
                .and_then(|d| d.stat.as_ref())
            else {
                continue;
            };
            match &mut sum {
                None => sum = Some(st.clone()),
                Some(s) => s.merge(st),
            }
        }
        sum.unwrap_or_default()
    }

    /// What changed since the last sample (taken at the last call): rows the table decoded,
    /// came or went, and exits in flight (a short list: one per halted or busy vCPU). None for
    /// the first sample.
    pub fn changes(&mut self, mono_ns: u64, in_flight: &BTreeMap<Key, u64>) -> Option<Changed> {
        let mut keys = std::mem::take(&mut self.changed);
        // One refresh leaves it ascending; several since the last sample may not.
        if !keys.windows(2).all(|w| w[0] < w[1]) {
            keys.sort_unstable();
            keys.dedup();
        }
        let prev = self.prev.replace((mono_ns, in_flight.clone()));
        let (since_ns, old_inf) = prev?;
        // Exits in flight that moved: a few keys, merged in so the list stays sorted (the
        // model walks a sorted list without sorting it).
        let mut inf: Vec<Key> = (in_flight.iter())
            .filter(|(k, v)| old_inf.get(k) != Some(v))
            .map(|(k, _)| *k)
            .chain(
                old_inf
                    .keys()
                    .filter(|k| !in_flight.contains_key(k))
                    .copied(),
            )
            .collect();
        if !inf.is_empty() {
            inf.sort_unstable();
            let mut out = Vec::with_capacity(keys.len() + inf.len());
            crate::sample::union_sorted(keys.iter(), inf.iter(), &mut out);
            keys = out;
        }
        Some(Changed { since_ns, keys })
    }

    /// Per key, as of the last refresh (an O(1) copy that shares storage).
    pub fn stats(&self) -> ChunkMap<Key, Stat> {
        self.stats.clone()
    }

    /// Row `i` now holds `key` (None: no longer in use), where it held `old`.
    fn rekey(&mut self, i: usize, old: Option<Key>, key: Option<Key>) {
        if old == key {
            return;
        }
        self.order = None;
        if let Some(o) = old {
            if let Some(v) = self.rows_of.get_mut(&o) {
                v.retain(|&r| r as usize != i);
                if v.is_empty() {
                    self.rows_of.remove(&o);
                }
            }
            self.stale.push(o);
        }
        if let Some(k) = key {
            let rows = self.rows_of.entry(k).or_default();
            if let &[j] = &rows[..] {
                // A second row of the key: the first keeps its own statistics from now on,
                // which the map holds unless it was decoded since.
                if let Some(d) = self.cache[j as usize].as_mut() {
                    if d.stat.is_none() {
                        d.stat = self.stats.get(&k).cloned();
                    }
                }
            }
            rows.push(i as u32);
        }
    }

    fn refresh_row(&mut self, i: usize, gen: u64, overflow: &impl Fn(OverflowKey) -> Option<Oct>) {
        if gen == 0 {
            // Free, or claimed and not yet counted in.
            if let Some(old) = self.cache[i].take() {
                self.rekey(i, Some(old.key), None);
            }
            return;
        }
        if self.cache[i].as_ref().is_some_and(|d| d.gen == gen) {
            return;
        }
        let old = self.cache[i].take();
        let old_key = old.as_ref().map(|o| o.key);
        match self.decode(i, overflow, old) {
            Some(d) => {
                let key = d.key;
                self.cache[i] = Some(d);
                self.rekey(i, old_key, Some(key));
                self.stale.push(key);
                self.decoded += 1;
            }
            None => self.rekey(i, old_key, None),
        }
    }

    /// The row `i` forgotten (freed by userspace): its next user starts from scratch.
    pub fn invalidate(&mut self, i: usize) {
        if let Some(old) = self.cache.get_mut(i).and_then(Option::take) {
            self.rekey(i, Some(old.key), None);
        }
    }

    /// One consistent copy of row `i` and its linked octaves (sequence lock: retried while the
    /// writer is inside, or moved on meanwhile). `old` is the last copy, kept if the row is
    /// written on every look. A fresh copy's histogram is a new buffer: it moves into the
    /// map that samples share, which is cheaper than reusing the old one and copying.
    fn decode(
        &mut self,
        i: usize,
        overflow: &impl Fn(OverflowKey) -> Option<Oct>,
        old: Option<Decoded>,
    ) -> Option<Decoded> {
        for _ in 0..TRIES {
            let g1 = self.rows.u64_at(i, GEN_OFFSET);
            fence(Ordering::Acquire);
            if !g1.is_multiple_of(2) {
                std::hint::spin_loop();
                continue;
            }
            let row = self.rows.get(i)?;
            // Buckets straight from the mapped octaves (no copy of them first); the overflow
            // hash is a syscall, so a row with an octave there takes the path below.
            self.scratch.clear();
            let mut spills = false;
            for (o, l) in row.links() {
                if l == LINK_OVERFLOW {
                    spills = true;
                    break;
                }
                let l = l as usize;
                if l > LINKS {
                    continue;
                }
                let oct = self.octs.get(row.oct[l - 1] as usize).unwrap_or_default();
                push_octave(&mut self.scratch, o, &oct);
            }
            if !spills {
                fence(Ordering::Acquire);
                if self.rows.u64_at(i, GEN_OFFSET) == g1 {
                    return Some(Decoded {
                        gen: g1,
                        key: Key::from(row.key),
                        stat: Some(stat_from(&row, self.scratch.clone())),
                    });
                }
                continue;
            }
            let (row, octs) = self.copy(i)?;
            fence(Ordering::Acquire);
            if self.rows.u64_at(i, GEN_OFFSET) == g1 {
                return Some(decoded_of(i, g1, &row, &octs, overflow));
            }
        }
        // Written on every look: keep the last consistent copy, or take this one as it is.
        self.torn += 1;
        if old.is_some() {
            return old;
        }
        let (row, octs) = self.copy(i)?;
        Some(decoded_of(i, row.gen, &row, &octs, overflow))
    }

    fn copy(&self, i: usize) -> Option<(Row, [Oct; LINKS])> {
        let row = self.rows.get(i)?;
        let mut octs = [Oct::default(); LINKS];
        for (o, &idx) in octs.iter_mut().zip(&row.oct).take(row.nlinks as usize) {
            *o = self.octs.get(idx as usize).unwrap_or_default();
        }
        Some((row, octs))
    }
}

fn decoded_of(
    i: usize,
    gen: u64,
    row: &Row,
    octs: &[Oct; LINKS],
    overflow: &impl Fn(OverflowKey) -> Option<Oct>,
) -> Decoded {
    Decoded {
        gen,
        key: Key::from(row.key),
        stat: Some(stat_of(i as u32, row, octs, overflow, Vec::new())),
    }
}

/// A row's statistics and histogram (its linked octaves, then any in the overflow hash).
pub fn stat_of(
    idx: u32,
    row: &Row,
    octs: &[Oct; LINKS],
    overflow: &impl Fn(OverflowKey) -> Option<Oct>,
    mut buckets: Vec<(u16, u64)>,
) -> Stat {
    buckets.clear();
    // Octaves with counts, lowest first: each is linked or in the overflow hash, not both.
    for (o, l) in row.links() {
        let oct = match l {
            LINK_OVERFLOW => match overflow(OverflowKey {
                row: idx,
                oct: o as u32,
            }) {
                Some(x) => x,
                None => continue,
            },
            l if (l as usize) <= LINKS => octs[l as usize - 1],
            _ => continue,
        };
        push_octave(&mut buckets, o, &oct);
    }
    stat_from(row, buckets)
}

/// Octave `o`'s nonzero counts, appended as (bucket, count).
fn push_octave(buckets: &mut Vec<(u16, u64)>, o: usize, oct: &Oct) {
    let sub = hist::SUB as usize;
    for (j, &c) in oct.n.iter().enumerate() {
        let b = o * sub + j;
        if c != 0 && b < hist::BUCKETS {
            buckets.push((b as u16, c));
        }
    }
}

fn stat_from(row: &Row, buckets: Vec<(u16, u64)>) -> Stat {
    Stat {
        count: row.count,
        sum_ns: row.sum_ns,
        min_ns: if row.count == 0 { 0 } else { row.min_ns },
        max_ns: row.max_ns,
        wait_ns: row.wait_ns,
        blocked_ns: row.blocked_ns,
        hist: Hist { buckets },
    }
}
