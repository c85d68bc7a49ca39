//! Each imported row's total handling time (ns), rebuilt so that printing the table again
//! gives back the digits it was read from.
//!
//! A row's time shows in up to three printed numbers, each rounded: its Avg (times Samples:
//! ±0.005 µs × n), its Time% of the table's total (±0.005 % of it) and the footer's total
//! (±0.005 µs). Avg × Samples alone is ±2.1 ms on a 429 372-exit row, enough to print its
//! Time% 69.99 back as 69.93; its Time% share of the footer's total is ~30× closer. So each
//! row gets the interval where all of its printed numbers hold, its time is its Time% share
//! of the total kept inside that interval, and then the rows are moved within their
//! intervals until they add up to the footer's total (without a footer: the total that the
//! rows' Avg and Time% agree on).
//!
//! perf ≥ 6.4's `Time (ns)` is exact; its `Mean Time (ns)` and shares are cut, not rounded:
//! a mean m stands for [m, m+1) ns, a share p for [p, p+1) %.

use super::{
    perf_layout::PerfLayout,
    perf_rows::{PerfRow, Section},
};

/// A closed range of ns.
#[derive(Clone, Copy, Debug)]
struct Range {
    lo: f64,
    hi: f64,
}

impl Range {
    fn new(lo: f64, hi: f64) -> Range {
        // A value on a bound prints either way: keep 1 ns inside when there is room.
        if hi - lo > 2.0 {
            Range {
                lo: lo + 1.0,
                hi: hi - 1.0,
            }
        } else {
            Range { lo, hi }
        }
    }

    fn meet(self, o: Range) -> Option<Range> {
        let (lo, hi) = (self.lo.max(o.lo), self.hi.min(o.hi));
        (lo <= hi).then_some(Range { lo, hi })
    }

    fn mid(self) -> f64 {
        (self.lo + self.hi) / 2.0
    }
}

/// Where Avg × Samples puts the row's time.
fn from_avg(r: &PerfRow, layout: PerfLayout) -> Option<Range> {
    let n = r.samples as f64;
    let avg_ns = r.avg_us? * 1e3;
    Some(match layout {
        PerfLayout::V6_4 => {
            let m = avg_ns.round();
            Range::new(m * n, (m + 1.0) * n - 1.0)
        }
        PerfLayout::Classic => {
            let h = r.rounding.avg_us.max(0.005) * 1e3;
            Range::new((avg_ns - h).max(0.0) * n, (avg_ns + h) * n)
        }
    })
}

/// The share Time% stands for, in %: [p − ½ digit, p + ½ digit], or [p, p + 1) when cut.
fn share_bounds(r: &PerfRow, layout: PerfLayout) -> Option<(f64, f64)> {
    let p = r.time_pct?;
    Some(match layout {
        PerfLayout::V6_4 => (p, p + 1.0),
        PerfLayout::Classic => {
            let h = r.rounding.pct.max(0.005);
            ((p - h).max(0.0), p + h)
        }
    })
}

/// Where Time% of a total `total` puts it, and the share's centre.
fn from_share(r: &PerfRow, layout: PerfLayout, total: f64) -> Option<(Range, f64)> {
    let (lo, hi) = share_bounds(r, layout)?;
    let at = |q: f64| q / 100.0 * total;
    Some((Range::new(at(lo), at(hi)), at((lo + hi) / 2.0)))
}

/// The table's total time (ns) when it has no footer: what the rows' Avg add up to, moved
/// into the range every row's Time% allows (a row of time t and share [a, b] % says the
/// total lies in [t / b, t / a]).
fn implied_total(sec: &Section, exact: impl Fn(&PerfRow) -> Option<f64>) -> f64 {
    let (mut lo, mut hi, mut sum) = (0.0f64, f64::INFINITY, 0.0);
    for r in sec.rows.iter().filter(|r| r.samples > 0) {
        let t = match exact(r) {
            Some(t) => Range { lo: t, hi: t },
            None => match from_avg(r, sec.layout) {
                Some(a) => a,
                None => continue,
            },
        };
        sum += t.mid();
        if let Some((a, b)) = share_bounds(r, sec.layout) {
            if b > 0.0 {
                lo = lo.max(t.lo / b * 100.0);
            }
            if a > 0.0 {
                hi = hi.min(t.hi / a * 100.0);
            }
        }
    }
    if lo <= hi {
        // Not on a bound: a share on its bound prints either way.
        let m = if hi.is_finite() { (hi - lo) / 4.0 } else { 0.0 };
        sum.clamp(lo + m, hi - m)
    } else {
        sum
    }
}

/// The time of each row of `sec`, in row order (0 where the table printed none).
pub(crate) fn row_times(sec: &Section) -> Vec<u64> {
    solve(sec).into_iter().map(|(t, _)| t).collect()
}

/// Each row's time and the range (ns) it may move in while its printed numbers still hold
/// (None: fixed, as perf ≥ 6.4's `Time (ns)`).
pub(crate) fn row_ranges(sec: &Section) -> Vec<(u64, Option<(f64, f64)>)> {
    solve(sec)
        .into_iter()
        .map(|(t, r)| (t, r.map(|r| (r.lo, r.hi))))
        .collect()
}

fn solve(sec: &Section) -> Vec<(u64, Option<Range>)> {
    let exact = |r: &PerfRow| r.total_us.map(|t| (t * 1e3).round());
    let mut total = match sec.total_time_us {
        Some(t) => (t * 1e3).round(),
        None => implied_total(sec, exact).round(),
    };
    let mut out = Vec::new();
    let mut ranges = Vec::new();
    // When the rows cannot add up to that total (they leave it behind in their ranges), the
    // total they do add up to is the next try: the shares move less each round.
    for _ in 0..8 {
        let picks: Vec<(f64, Option<Range>)> = sec
            .rows
            .iter()
            .map(|r| pick(r, sec.layout, total, exact(r)))
            .collect();
        out = picks.iter().map(|(v, _)| v.round() as u64).collect();
        settle(&mut out, &picks, total as u64);
        ranges = picks.into_iter().map(|(_, r)| r).collect();
        let sum = saturating_sum(&out);
        if sum == total as u64 {
            break;
        }
        total = sum as f64;
    }
    out.into_iter().zip(ranges).collect()
}

/// A row's time and the range it may move in (None: fixed).
fn pick(r: &PerfRow, layout: PerfLayout, total: f64, exact: Option<f64>) -> (f64, Option<Range>) {
    if let Some(t) = exact {
        return (t, None);
    }
    if r.samples == 0 {
        return (0.0, None);
    }
    let avg = from_avg(r, layout);
    let share = (total > 0.0)
        .then(|| from_share(r, layout, total))
        .flatten();
    match (avg, share) {
        (Some(a), Some((s, centre))) => {
            let room = a.meet(s).unwrap_or(a);
            (centre.clamp(room.lo, room.hi), Some(room))
        }
        (Some(a), None) => (a.mid(), Some(a)),
        (None, Some((s, centre))) => (centre, Some(s)),
        (None, None) => (0.0, None),
    }
}

/// Hostile text can print times near u64::MAX: their sum stops there (the import's budget
/// refuses it afterwards) rather than overflow.
fn saturating_sum(v: &[u64]) -> u64 {
    v.iter().fold(0, |a, b| a.saturating_add(*b))
}

/// Moves rows within their ranges, the roomiest first, until they add up to `want`.
fn settle(out: &mut [u64], picks: &[(f64, Option<Range>)], want: u64) {
    let sum = saturating_sum(out);
    let up = want > sum;
    let mut left = want.abs_diff(sum);
    let rooms: Vec<u64> = (0..out.len())
        .map(|i| {
            let Some(r) = picks[i].1 else { return 0 };
            let v = out[i] as f64;
            let room = if up {
                r.hi.floor() - v
            } else {
                v - r.lo.ceil()
            };
            room.max(0.0) as u64
        })
        .collect();
    let mut order: Vec<usize> = (0..out.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(rooms[i]));
    for i in order {
        if left == 0 {
            break;
        }
        let step = rooms[i].min(left);
        out[i] = if up {
            out[i].saturating_add(step)
        } else {
            out[i].saturating_sub(step)
        };
        left -= step;
    }
}

#[cfg(test)]
mod tests {
    use super::super::{import, perf_table, Data, TableOptions};

    /// The case: a 429 372-exit row whose Avg (1.63us) leaves its time ±2.1 ms open;
    /// Avg × Samples printed its Time% back as 70.14, its share of the footer's total gives
    /// the source's 70.20.
    #[test]
    fn time_share_of_the_footer_beats_avg_times_samples() {
        let src = "VM-EXIT Samples Samples% Time% Min Time Max Time Avg time
MSR_WRITE 429372 99.77% 70.20% 0.50us 90.00us 1.63us ( +- 0.10% )
HLT 1000 0.23% 29.80% 1.00us 9000.00us 298.02us ( +- 3.00% )

Total Samples:430372, Total events handled time:1000000.00us.
";
        let d = Data::from_perf_text(src, "t").unwrap();
        let t = perf_table(&d, &TableOptions::default()).unwrap();
        let row = |name: &str| {
            let l = t
                .lines()
                .find(|l| l.trim_start().starts_with(name))
                .unwrap();
            l.split_whitespace().map(str::to_string).collect::<Vec<_>>()
        };
        assert_eq!(
            row("MSR_WRITE")[2..7],
            ["99.77%", "70.20%", "0.50us", "90.00us", "1.63us"]
        );
        assert_eq!(
            row("HLT")[2..7],
            ["0.23%", "29.80%", "1.00us", "9000.00us", "298.02us"]
        );
        assert!(t.contains("Total events handled time:1000000.00us."), "{t}");
    }

    /// Times near u64::MAX are refused by the import's budget, not an overflow.
    #[test]
    fn huge_times_do_not_overflow() {
        let src = "VM-EXIT Samples Samples% Time% Min Time Max Time Avg time
HLT 1000000 50.00% 50.00% 1.00us 9e18us 9e15us
CPUID 1000000 50.00% 50.00% 1.00us 9e18us 9e15us
";
        let e = import(src).unwrap_err().to_string();
        assert!(e.contains("more than kvmprof can hold"), "{e}");
        // A footer far beyond u64 ns: no overflow; the rows keep what their Avg says.
        let footer = "VM-EXIT Samples Samples% Time% Min Time Max Time Avg time
HLT 1 50.00% 50.00% 1.00us 1.00us 1.00us
CPUID 1 50.00% 50.00% 1.00us 1.00us 1.00us

Total Samples:2, Total events handled time:100000000000000000000000000.00us.
";
        let imp = import(footer).unwrap();
        for st in imp.newer.stats.values() {
            assert!((995..=1_005).contains(&st.sum_ns), "{}", st.sum_ns);
        }
    }

    /// perf ≥ 6.4's five columns (no Time (ns), no footer): shares cut to whole percents and
    /// means cut to whole ns still print back.
    #[test]
    fn cut_shares_and_means_without_a_total() {
        let src = "Event name Samples Sample% Time% Mean Time (ns)
IO_INSTRUCTION 6747 63.00% 0.00% 11081
HLT 3750 35.00% 99.00% 3945206
EXTERNAL_INTERRUPT 45 0.00% 0.00% 10419
";
        let imp = import(src).unwrap();
        let times = super::row_times(&imp.sections[0]);
        let total: u64 = times.iter().sum();
        for (r, t) in imp.sections[0].rows.iter().zip(&times) {
            assert_eq!(
                t / r.samples,
                (r.avg_us.unwrap() * 1e3).round() as u64,
                "{}",
                r.name
            );
            let share = (100.0 * *t as f64 / total as f64) as u64;
            assert_eq!(share as f64, r.time_pct.unwrap(), "{}", r.name);
        }
    }
}
