//! Time × latency heatmaps: per interval (two consecutive samples), how many exits of a
//! (VM, reason) took how long, in latency bands. A band is one row of the kernel's histogram
//! layout (profiler_common::hist: an octave, 8 linear buckets), so a band's count is exact:
//! the sum of its buckets' interval deltas, and no new kernel data is needed.
//!
//! The TUI (tui/heat.rs), `report --heatmap` CSV ([`csv`]) and the HTML report draw from here.

pub mod csv;
mod series;
#[cfg(test)]
mod tests_csv;

pub use series::{collect, Filter, Interval, Row, RowKey, Series, SeriesError};

use profiler_common::hist;

use crate::sample::Hist;

/// Bands: one per octave of the histogram layout (band 0: 0–7 ns; band b ≥ 1: 2^(b+2) ns up
/// to 2^(b+3) ns; the last band is open-ended).
pub const BANDS: usize = hist::ROWS;

/// Exits per band, ascending by band, no zero counts.
pub type Cells = Vec<(u8, u64)>;

/// The band of a histogram bucket.
pub fn band(bucket: u16) -> usize {
    (bucket as usize / hist::SUB as usize).min(BANDS - 1)
}

/// A band's inclusive lower bound, ns.
pub fn band_lower(b: usize) -> u64 {
    if b == 0 {
        0
    } else {
        1u64 << (b + 2)
    }
}

/// A band's exclusive upper bound, ns; None for the last band, which also holds every longer
/// exit.
pub fn band_upper(b: usize) -> Option<u64> {
    (b + 1 < BANDS).then(|| band_lower(b + 1))
}

/// A histogram's exits per band.
pub fn cells(h: &Hist) -> Cells {
    let mut out: Cells = Vec::new();
    for &(bucket, n) in &h.buckets {
        let b = band(bucket) as u8;
        match out.last_mut() {
            Some((last, c)) if *last == b => *c += n,
            _ => out.push((b, n)),
        }
    }
    out
}

/// `a += b`, both ascending by band.
pub fn add_cells(a: &mut Cells, b: &[(u8, u64)]) {
    for &(band, n) in b {
        match a.binary_search_by_key(&band, |c| c.0) {
            Ok(i) => a[i].1 += n,
            Err(i) => a.insert(i, (band, n)),
        }
    }
}

/// Shade levels of a cell with `n` exits when the fullest cell has `max`: 0 for none, else
/// 1..=[`LEVELS`] on a log scale (one exit in a busy map still shows, the fullest is darkest).
pub const LEVELS: u8 = 4;

pub fn level(n: u64, max: u64) -> u8 {
    if n == 0 || max == 0 {
        return 0;
    }
    let f = (1.0 + n as f64).ln() / (1.0 + max.max(n) as f64).ln();
    ((f * LEVELS as f64).ceil() as u8).clamp(1, LEVELS)
}

/// The count range of each level for the legend: (level, lowest, highest), levels no count
/// falls in left out.
pub fn level_ranges(max: u64) -> Vec<(u8, u64, u64)> {
    let mut out = Vec::new();
    if max == 0 {
        return out;
    }
    let mut lo: u64 = 1;
    for l in 1..=LEVELS {
        // The highest count at this level: from the float guess, corrected to `level`'s own
        // answer so the legend and the cells never disagree.
        let guess = (1.0 + max as f64).powf(l as f64 / LEVELS as f64) - 1.0;
        let mut hi = (guess.floor() as u64).clamp(lo.saturating_sub(1), max);
        while hi < max && level(hi + 1, max) <= l {
            hi += 1;
        }
        while hi >= lo && level(hi, max) > l {
            hi -= 1;
        }
        if hi >= lo {
            out.push((l, lo, hi));
            lo = hi + 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bands are the histogram layout's octaves: every bucket's bounds fall inside its band.
    #[test]
    fn bands_are_the_layouts_octaves() {
        for b in 0..hist::BUCKETS {
            let band = band(b as u16);
            assert!(hist::lower(b) >= band_lower(band), "bucket {b}");
            if let Some(up) = band_upper(band) {
                assert!(hist::upper(b) <= up, "bucket {b}");
            }
            if b % hist::SUB as usize == 0 {
                assert_eq!(hist::lower(b), band_lower(band), "bucket {b}");
            }
        }
        assert_eq!((band_lower(1), band_upper(1)), (8, Some(16)));
        assert_eq!(band(hist::bucket(1_500) as u16), 8); // 1024..2048 ns
        assert_eq!(band_upper(BANDS - 1), None);
        let mut h = Hist::default();
        h.record(1_100, 3);
        h.record(1_900, 4);
        h.record(5_000, 2);
        assert_eq!(cells(&h), vec![(8, 7), (10, 2)]);
    }

    /// Levels grow with the count, the fullest cell is the darkest, and the legend's ranges
    /// cover 1..=max without a gap and agree with `level` at every count.
    #[test]
    fn levels_and_their_legend_agree() {
        for max in [1u64, 2, 3, 7, 10, 999, 123_456] {
            assert_eq!(level(max, max), LEVELS);
            assert_eq!(level(0, max), 0);
            let ranges = level_ranges(max);
            assert_eq!(ranges.first().map(|r| r.1), Some(1));
            assert_eq!(ranges.last().map(|r| r.2), Some(max));
            for w in ranges.windows(2) {
                assert_eq!(w[0].2 + 1, w[1].1, "max {max}: {ranges:?}");
            }
            for &(l, lo, hi) in &ranges {
                for n in [lo, hi, (lo + hi) / 2] {
                    assert_eq!(level(n, max), l, "max {max} n {n}");
                }
            }
        }
        assert!(level(1, 1000) < level(100, 1000));
    }
}
