//! Row arithmetic shared by the tables, the CSV and the diff: picking a VM, merging the rows of
//! several VMs / vCPUs, and the spread estimate behind perf's "( +- x% )".

use std::collections::BTreeMap;

use profiler_common::hist;

use super::{perf_layout::SortBy, printf::f};
use crate::model::{sort_rows, Row, SortKey, View, VmView};

/// Exit-reason rows of `vms` merged, for vCPU `vcpu` or for all vCPUs.
pub(crate) fn select(vms: &[&VmView], vcpu: Option<u32>) -> Vec<Row> {
    match vcpu {
        None => merge(vms.iter().flat_map(|v| v.reasons.iter())),
        Some(n) => merge(
            vms.iter()
                .flat_map(|v| v.vcpus.iter().filter(move |c| c.vcpu == n))
                .flat_map(|c| c.reasons.iter()),
        ),
    }
}

/// The returns of KVM_RUN to the VMM of `vms` (or of their vCPU `vcpu`), merged as
/// [`select`] merges exits.
pub(crate) fn select_user(vms: &[&VmView], vcpu: Option<u32>) -> Vec<Row> {
    match vcpu {
        None => merge(vms.iter().flat_map(|v| v.userspace.iter())),
        Some(n) => merge(
            vms.iter()
                .flat_map(|v| v.vcpus.iter().filter(move |c| c.vcpu == n))
                .flat_map(|c| c.userspace.iter()),
        ),
    }
}

/// Adds rows of the same (isa, reason): counts and times summed, extremes widened, histograms
/// added, then mean, percentiles and shares recomputed as the model does (HLT kept apart).
pub(crate) fn merge<'a>(rows: impl IntoIterator<Item = &'a Row>) -> Vec<Row> {
    let mut by: BTreeMap<(u32, u32), Row> = BTreeMap::new();
    for r in rows {
        let Some(m) = by.get_mut(&(r.isa, r.reason)) else {
            by.insert((r.isa, r.reason), r.clone());
            continue;
        };
        if r.timed > 0 {
            if m.timed == 0 {
                (m.min_ns, m.max_ns) = (r.min_ns, r.max_ns);
            } else {
                m.min_ns = m.min_ns.min(r.min_ns);
                m.max_ns = m.max_ns.max(r.max_ns);
            }
        }
        m.count += r.count;
        m.in_flight += r.in_flight;
        m.timed += r.timed;
        m.hist_total += r.hist_total;
        m.rate_per_s += r.rate_per_s;
        m.total_ns += r.total_ns;
        m.hist.add(&r.hist);
    }
    let mut out: Vec<Row> = by.into_values().collect();
    for r in &mut out {
        r.mean_ns = if r.timed > 0 {
            r.total_ns as f64 / r.timed as f64
        } else {
            0.0
        };
        let (lo, hi) = (r.min_ns, r.max_ns.max(r.min_ns));
        let q = |p: f64| r.hist.quantile(p).map_or(0, |v| v.clamp(lo, hi));
        (r.p50_ns, r.p99_ns, r.p999_ns) = (q(0.5), q(0.99), q(0.999));
    }
    crate::model::set_shares(&mut out);
    sort_rows(&mut out, SortKey::Count);
    out
}

/// `a / b × 100`, 0 when `b` is 0.
pub(crate) fn pct(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b * 100.0
    } else {
        0.0
    }
}

/// perf's "( +- x% )": the relative standard error of the mean, 100 × (s / √n) / mean with
/// s² = Σ(x − mean)² / (n − 1), and 0 for fewer than two exits (as perf's stddev_stats).
///
/// kvmprof keeps no sum of squares, so s² is estimated from the latency histogram: every exit
/// is placed at its bucket's midpoint, clamped to the row's exact [min, max], around the exact
/// mean. Buckets span 1/8 of their value, so the estimate tracks any spread wider than ~6 %
/// of the mean; identical exits give 0, as in perf. None when there is no histogram (rows
/// imported from perf text).
pub(crate) fn rel_stderr_pct(r: &Row) -> Option<f64> {
    let n = r.hist.total();
    if n == 0 {
        return (r.timed < 2).then_some(0.0);
    }
    if n < 2 || r.mean_ns <= 0.0 {
        return Some(0.0);
    }
    let (lo, hi) = (r.min_ns as f64, r.max_ns.max(r.min_ns) as f64);
    let ss: f64 = r
        .hist
        .buckets
        .iter()
        .map(|&(b, c)| {
            let (l, u) = (hist::lower(b as usize), hist::upper(b as usize));
            let mid = (l as f64 + (u.max(l + 1) - 1) as f64) / 2.0;
            let d = mid.clamp(lo, hi) - r.mean_ns;
            c as f64 * d * d
        })
        .sum();
    let var = ss / (n - 1) as f64;
    Some(100.0 * (var / n as f64).sqrt() / r.mean_ns)
}

/// kvmprof's lines after perf's footer.
pub(crate) fn notes(out: &mut String, all: &[Row], rows: &[&Row], missing_hist: bool) {
    let (n, t): (u64, u64) = rows
        .iter()
        .fold((0, 0), |(n, t), r| (n + r.timed, t + r.total_ns));
    let (hn, ht): (u64, u64) = rows
        .iter()
        .filter(|r| r.hlt)
        .fold((0, 0), |(n, t), r| (n + r.timed, t + r.total_ns));
    if hn > 0 {
        out.push_str(&format!(
            "# HLT: {}% of samples, {}% of time (mostly guest idle); without HLT: Total Samples:{}, Total events handled time:{}us.\n",
            f(0, 2, pct(hn as f64, n as f64)),
            f(0, 2, pct(ht as f64, t as f64)),
            n - hn,
            f(0, 2, (t - ht) as f64 / 1e3),
        ));
    }
    let pending: u64 = all.iter().map(|r| r.count.saturating_sub(r.timed)).sum();
    if pending > 0 {
        out.push_str(&format!(
            "# {pending} exits had not re-entered the guest when the span ended (e.g. halted vCPUs): not in this table\n"
        ));
    }
    if missing_hist {
        out.push_str(
            "# n/a: no latency histogram (imported from perf text): no percentiles, and no ± error but perf's own\n",
        );
    }
}

/// The VMs one exit table covers (`vm`, or all of `view`'s) and their rows for `vcpu` merged.
pub(crate) fn table_rows<'a>(
    view: &'a View,
    vm: Option<&'a VmView>,
    vcpu: Option<u32>,
) -> (Vec<&'a VmView>, Vec<Row>) {
    let vms: Vec<&VmView> = match vm {
        Some(v) => vec![v],
        None => view.vms.iter().collect(),
    };
    let all = select(&vms, vcpu);
    (vms, all)
}

/// The rows perf's tables list (those with a handling time), in `key` order.
pub(crate) fn timed_sorted(all: &[Row], key: SortBy, ties: Ties) -> Vec<&Row> {
    let mut rows: Vec<&Row> = all.iter().filter(|r| r.timed > 0).collect();
    sort(&mut rows, key, ties);
    rows
}

/// How rows that tie on the sort key are ordered: as the perf whose table is printed does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ties {
    /// perf ≥ 6.4 (both layouts): its hists keep entries by name (strcmp) and sort stably.
    ByName,
    /// perf before 6.4 (its `%20s` classic table): events in a hash table indexed by
    /// `exit code & 4095`, walked in bucket order into a tree where ties go right, so ties
    /// print by exit code.
    ByCode,
}

/// Orders rows by `key`; ties as `ties` says (by name then code, or by code then name).
pub(crate) fn sort(rows: &mut [&Row], key: SortBy, ties: Ties) {
    use std::cmp::Ordering;
    rows.sort_by(|a, b| {
        let o = match key {
            SortBy::Sample => b.timed.cmp(&a.timed),
            SortBy::Time => b.total_ns.cmp(&a.total_ns),
            SortBy::MaxT => b.max_ns.cmp(&a.max_ns),
            SortBy::MinT => b.min_ns.cmp(&a.min_ns),
            SortBy::MeanT => b.mean_ns.total_cmp(&a.mean_ns),
            SortBy::P99 => b.p99_ns.cmp(&a.p99_ns),
            SortBy::Name => Ordering::Equal,
        };
        let (name, code) = (
            a.name.cmp(&b.name),
            (a.isa, a.reason).cmp(&(b.isa, b.reason)),
        );
        match ties {
            Ties::ByName => o.then(name).then(code),
            Ties::ByCode => o.then(code).then(name),
        }
    });
}
