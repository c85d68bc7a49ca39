//! Reads the exit table (`ROWS` and its `OCTS` octaves, both mapped) into per-key statistics,
//! decoding only the rows whose sequence counter moved since the last read.

use std::sync::atomic::{fence, Ordering};

use profiler_common::{hist, Oct, OverflowKey, Row, LINKS};

use super::mapped::Mapped;
use crate::sample::{Hist, Key, Stat};

/// Offset of `Row::gen` (the sequence lock) in a row.
const GEN_OFFSET: usize = std::mem::offset_of!(Row, gen);
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
    pub stat: Stat,
}

pub struct Table {
    rows: Mapped<Row>,
    octs: Mapped<Oct>,
    /// By `ROWS` index: the last decode of each row in use.
    cache: Vec<Option<Decoded>>,
    /// Indexes of the rows in use, sorted by key (rebuilt only when rows come or go), so the
    /// sample's map is built from sorted input.
    order: Vec<u32>,
    order_stale: bool,
    /// One past the highest row index seen in use: a refresh scans about this many rows, not
    /// the whole capacity (`--max-keys`).
    hwm: usize,
    /// Keys of the rows decoded or gone since the caller last took this list.
    pub changed: Vec<Key>,
    /// Rows decoded by the last `refresh` (unchanged ones are reused).
    pub decoded: usize,
    /// Rows that were still being written after every try, taken as read (torn by at most the
    /// exits in flight).
    pub torn: u64,
}

impl Table {
    pub fn new(rows: Mapped<Row>, octs: Mapped<Oct>) -> Table {
        let n = rows.len();
        Table {
            rows,
            octs,
            cache: vec![None; n],
            order: Vec::new(),
            order_stale: false,
            hwm: 0,
            changed: Vec::new(),
            decoded: 0,
            torn: 0,
        }
    }

    pub fn rows(&self) -> &Mapped<Row> {
        &self.rows
    }

    /// Refresh every row in use; then `rows_by_key` gives them. `overflow` looks up an octave a
    /// row keeps in the OVERFLOW hash (rare: rows spanning more than LINKS octaves).
    pub fn refresh(&mut self, overflow: impl Fn(OverflowKey) -> Option<Oct>) {
        self.decoded = 0;
        let n = self.rows.len();
        let mut end = (self.hwm + LOOKAHEAD).min(n);
        let mut i = 0;
        while i < end {
            let gen = self.rows.u64_at(i, GEN_OFFSET);
            if gen != 0 && i >= self.hwm {
                self.hwm = i + 1;
                end = (self.hwm + LOOKAHEAD).min(n);
            }
            self.refresh_row(i, gen, &overflow);
            i += 1;
        }
        if self.order_stale {
            self.order = (0..self.hwm.min(self.cache.len()) as u32)
                .filter(|&i| self.cache[i as usize].is_some())
                .collect();
            let cache = &self.cache;
            self.order
                .sort_by_key(|&i| cache[i as usize].as_ref().map(|d| d.key));
            self.order_stale = false;
        }
    }

    fn refresh_row(&mut self, i: usize, gen: u64, overflow: &impl Fn(OverflowKey) -> Option<Oct>) {
        if gen == 0 {
            // Free, or claimed and not yet counted in.
            if let Some(old) = self.cache[i].take() {
                self.changed.push(old.key);
                self.order_stale = true;
            }
            return;
        }
        if self.cache[i].as_ref().is_some_and(|d| d.gen == gen) {
            return;
        }
        if let Some(d) = self.decode(i, overflow) {
            if self.cache[i].as_ref().is_none_or(|old| old.key != d.key) {
                self.order_stale = true;
                if let Some(old) = &self.cache[i] {
                    self.changed.push(old.key);
                }
            }
            self.changed.push(d.key);
            self.cache[i] = Some(d);
            self.decoded += 1;
        }
    }

    /// How many rows are in use.
    pub fn in_use(&self) -> usize {
        self.order.len()
    }

    /// The rows in use, in key order (a key may have several rows).
    pub fn rows_by_key(&self) -> impl Iterator<Item = &Decoded> {
        self.order
            .iter()
            .filter_map(|&i| self.cache[i as usize].as_ref())
    }

    /// The row `i` forgotten (freed by userspace): its next user starts from scratch.
    pub fn invalidate(&mut self, i: usize) {
        if let Some(c) = self.cache.get_mut(i) {
            if let Some(old) = c.take() {
                self.changed.push(old.key);
                self.order_stale = true;
            }
        }
    }

    /// One consistent copy of row `i` and its linked octaves (sequence lock: retried while the
    /// writer is inside, or moved on meanwhile).
    fn decode(
        &mut self,
        i: usize,
        overflow: &impl Fn(OverflowKey) -> Option<Oct>,
    ) -> Option<Decoded> {
        for _ in 0..TRIES {
            let g1 = self.rows.u64_at(i, GEN_OFFSET);
            fence(Ordering::Acquire);
            if !g1.is_multiple_of(2) {
                std::hint::spin_loop();
                continue;
            }
            let (row, octs) = self.copy(i)?;
            fence(Ordering::Acquire);
            if self.rows.u64_at(i, GEN_OFFSET) == g1 {
                return Some(self.decoded_of(i, g1, &row, &octs, overflow));
            }
        }
        // Written on every look: keep the last consistent copy, or take this one as it is.
        self.torn += 1;
        if let Some(old) = &self.cache[i] {
            return Some(old.clone());
        }
        let (row, octs) = self.copy(i)?;
        Some(self.decoded_of(i, row.gen, &row, &octs, overflow))
    }

    fn copy(&self, i: usize) -> Option<(Row, [Oct; LINKS])> {
        let row = self.rows.get(i)?;
        let mut octs = [Oct::default(); LINKS];
        for (o, &idx) in octs.iter_mut().zip(&row.oct).take(row.nlinks as usize) {
            *o = self.octs.get(idx as usize).unwrap_or_default();
        }
        Some((row, octs))
    }

    fn decoded_of(
        &self,
        i: usize,
        gen: u64,
        row: &Row,
        octs: &[Oct; LINKS],
        overflow: &impl Fn(OverflowKey) -> Option<Oct>,
    ) -> Decoded {
        Decoded {
            gen,
            key: Key::from(row.key),
            stat: stat_of(i as u32, row, octs, overflow),
        }
    }
}

/// A row's statistics and histogram (its linked octaves, then any in the overflow hash).
pub fn stat_of(
    idx: u32,
    row: &Row,
    octs: &[Oct; LINKS],
    overflow: &impl Fn(OverflowKey) -> Option<Oct>,
) -> Stat {
    let sub = hist::SUB as usize;
    let mut buckets = Vec::with_capacity(row.nlinks as usize * sub);
    for o in 0..hist::ROWS {
        let l = row.link[o] as usize;
        if l == 0 && row.more & (1 << o) == 0 {
            continue;
        }
        let mut n = [0u64; hist::SUB as usize];
        if l != 0 && l <= LINKS {
            n = octs[l - 1].n;
        }
        if row.more & (1 << o) != 0 {
            if let Some(x) = overflow(OverflowKey {
                row: idx,
                oct: o as u32,
            }) {
                n.iter_mut().zip(x.n).for_each(|(a, b)| *a += b);
            }
        }
        for (j, &c) in n.iter().enumerate() {
            let b = o * sub + j;
            if c != 0 && b < hist::BUCKETS {
                buckets.push((b as u16, c));
            }
        }
    }
    Stat {
        count: row.count,
        sum_ns: row.sum_ns,
        min_ns: if row.count == 0 { 0 } else { row.min_ns },
        max_ns: row.max_ns,
        hist: Hist { buckets },
    }
}
