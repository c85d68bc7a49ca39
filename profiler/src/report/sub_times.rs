//! Handling times of MSR / IO port / MMIO accesses, as perf text printed them.
//!
//! kvmprof counts these accesses in kernel without timing them (their time is in the VM-EXIT
//! rows), so a recording has none; perf's `--event msr|ioport|mmio` tables do. An import keeps
//! them beside the counts, so those tables print back with their times.

use std::collections::{BTreeMap, HashMap};

use profiler_common::ev;

use super::{
    perf_layout::{classic_row, footer, header, ClassicRow, Event, SortBy},
    printf::alt_hex,
    rows::pct,
};
use crate::sample::EvKey;

/// Times per evidence key.
pub type SubTimes = HashMap<EvKey, SubTime>;

/// One key's accesses: how many were timed and their total, extremes and perf's `( +- x% )`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SubTime {
    pub count: u64,
    pub total_ns: u64,
    pub min_ns: u64,
    pub max_ns: u64,
    /// As printed, when one printed row made the key.
    pub rel_err: Option<f64>,
    /// The perf text line of its first row: rows that tie on the sort key print in perf's
    /// order (its hash-table order, not by name), so a table prints back as perf printed it.
    pub line: usize,
}

impl SubTime {
    /// Adds another row of the same key (another interval of `perf kvm stat live`, ...).
    pub(crate) fn merge(&mut self, o: &SubTime) {
        self.count = self.count.saturating_add(o.count);
        self.total_ns = self.total_ns.saturating_add(o.total_ns);
        self.min_ns = self.min_ns.min(o.min_ns);
        self.max_ns = self.max_ns.max(o.max_ns);
        self.rel_err = None;
        self.line = self.line.min(o.line);
    }
}

/// The times of a table's rows (perf key → time) for VM `pid` (None: all VMs), when every
/// row of `counts` has times covering exactly its count; None otherwise (counts only).
pub(crate) fn for_table(
    times: &SubTimes,
    event: Event,
    pid: Option<u32>,
    counts: &BTreeMap<String, u64>,
) -> Option<BTreeMap<String, SubTime>> {
    let mut out: BTreeMap<String, SubTime> = BTreeMap::new();
    for (k, t) in times {
        if pid.is_some_and(|p| p != k.tgid) {
            continue;
        }
        let Some(name) = perf_key(event, k) else {
            continue;
        };
        match out.get_mut(&name) {
            Some(m) => m.merge(t),
            None => {
                out.insert(name, *t);
            }
        }
    }
    let covered = !counts.is_empty()
        && counts
            .iter()
            .all(|(k, n)| out.get(k).is_some_and(|t| t.count == *n));
    covered.then_some(out)
}

/// Rows in `sort` order; ties in the perf text's order (`by_line`: old perf's hash-table
/// order, which its classic table shows), else by name.
fn ordered(
    rows: &BTreeMap<String, SubTime>,
    sort: SortBy,
    by_line: bool,
) -> Vec<(&String, &SubTime)> {
    let mean = |t: &SubTime| t.total_ns as f64 / t.count.max(1) as f64;
    let mut v: Vec<(&String, &SubTime)> = rows.iter().collect();
    v.sort_by(|(an, a), (bn, b)| {
        let o = match sort {
            SortBy::Sample | SortBy::P99 => b.count.cmp(&a.count),
            SortBy::Time => b.total_ns.cmp(&a.total_ns),
            SortBy::MaxT => b.max_ns.cmp(&a.max_ns),
            SortBy::MinT => b.min_ns.cmp(&a.min_ns),
            SortBy::MeanT => mean(b).total_cmp(&mean(a)),
            SortBy::Name => return an.cmp(bn),
        };
        let line = if by_line {
            a.line.cmp(&b.line)
        } else {
            std::cmp::Ordering::Equal
        };
        o.then(line).then_with(|| an.cmp(bn))
    });
    v
}

/// perf's classic `--event msr|ioport|mmio` table with its times (print_result's formats).
pub(crate) fn classic_table(
    out: &mut String,
    event: Event,
    rows: &BTreeMap<String, SubTime>,
    sort: SortBy,
    width: usize,
    min_max_if_empty: bool,
) {
    let rows = ordered(rows, sort, true);
    let extremes = rows.iter().any(|(_, t)| t.max_ns > 0) || (rows.is_empty() && min_max_if_empty);
    let (n, total): (u64, u64) = rows
        .iter()
        .fold((0, 0), |(n, s), (_, t)| (n + t.count, s + t.total_ns));
    out.push_str(&header(event.header(), width, true, extremes));
    out.push_str("\n\n");
    for (name, t) in &rows {
        out.push_str(&classic_row(&ClassicRow {
            name,
            width,
            count: t.count,
            count_pct: pct(t.count as f64, n as f64),
            time_pct: pct(t.total_ns as f64, total as f64),
            extremes: extremes.then_some((t.min_ns, t.max_ns)),
            mean_ns: t.total_ns as f64 / t.count as f64,
            rel_err: t.rel_err,
        }));
        out.push('\n');
    }
    out.push_str(&footer(n, Some(total)));
}

/// The same table in perf ≥ 6.4's layout (see perf_table64.rs): the times' cells after the
/// counts' (`Time (ns)`, `Time%`, `Max Time (ns)`, `Min Time (ns)`, `Mean Time (ns)`). Ties
/// by name, as perf ≥ 6.4 sorts: its hists keep entries by `ev_name` (strcmp) and the sort by
/// `-k` is stable (builtin-kvm.c kvm_hists__init, util/hist.c output_resort).
pub(crate) fn rows_64(rows: &BTreeMap<String, SubTime>, sort: SortBy) -> Vec<(String, [u64; 5])> {
    ordered(rows, sort, false)
        .into_iter()
        .map(|(k, t)| {
            let v = [
                t.count,
                t.total_ns,
                t.max_ns,
                t.min_ns,
                t.total_ns / t.count.max(1),
            ];
            (k.clone(), v)
        })
        .collect()
}

/// A perf key as kvmprof's own tables print it: an MSR kvmprof knows gets its name between
/// the index and the direction (`0x6e0 IA32_TSC_DEADLINE:W`; the import reads the index and
/// the direction back and skips the name); every other key as perf prints it.
pub(crate) fn named_key(event: Event, key: &str) -> String {
    let name = (event == Event::Msr)
        .then(|| key.rsplit_once(':'))
        .flatten()
        .and_then(|(idx, dir)| {
            let i = u64::from_str_radix(idx.strip_prefix("0x")?, 16).ok()?;
            Some(format!(
                "{idx} {}:{dir}",
                crate::advice::names::msr_name(i)?
            ))
        });
    name.unwrap_or_else(|| key.to_string())
}

/// Under a table that keeps perf's keys (perf text printed back to the byte), a `# ` line
/// naming its MSRs: `# MSR names: 0x10 IA32_TSC, 0x6e0 IA32_TSC_DEADLINE`.
pub(crate) fn names_note<'k>(event: Event, keys: impl Iterator<Item = &'k String>) -> String {
    let mut named: Vec<String> = keys
        .filter_map(|k| {
            let full = named_key(event, k);
            let (idx, _) = k.rsplit_once(':')?;
            let name = full
                .strip_prefix(idx)?
                .rsplit_once(':')?
                .0
                .trim()
                .to_string();
            (!name.is_empty()).then(|| format!("{idx} {name}"))
        })
        .collect();
    named.sort();
    named.dedup();
    if named.is_empty() {
        return String::new();
    }
    format!("# MSR names: {}\n", named.join(", "))
}

/// perf's decode_key of a kvmprof evidence key, when it belongs to `event`'s table.
pub(crate) fn perf_key(event: Event, k: &EvKey) -> Option<String> {
    let suffix = match (event, k.kind) {
        (Event::Msr, ev::MSR_READ) => "R",
        (Event::Msr, ev::MSR_WRITE) => "W",
        (Event::Ioport, ev::PIO_IN) => "PIN",
        (Event::Ioport, ev::PIO_OUT) => "POUT",
        (Event::Mmio, ev::MMIO_READ) => "R",
        (Event::Mmio, ev::MMIO_WRITE) => "W",
        _ => return None,
    };
    Some(format!("{}:{suffix}", alt_hex(k.a)))
}
