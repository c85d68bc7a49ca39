//! perf ≥ 6.4's table layout (`report --perf-layout 6.4`): the hist-browser columns of
//! tools/perf/builtin-kvm.c, read from Linux 6.12.117's source (Debian's
//! linux-source-6.12 6.12.117-1~deb12u1):
//!
//! - sort_result() registers `ev_name,sample,percent_sample,time,percent_time,max_t,min_t,mean_t`;
//!   their kvm_dimension widths are 40, 12, 12, 12, 12, 14, 14, 14.
//! - A cell is `%*s` (the name; a share as `%.2F%%`) or `%*lu` (a count, a time in ns).
//! - ev_percent_*() return `int`: a share is cut to a whole percent, then printed `63.00%`.
//! - get_event_mean() returns the running mean as `u64`: cut to whole ns.
//! - ui/browsers/hists.c writes two spaces between cells, and after every header cell;
//!   kvm_browser__title() heads the screen `KVM event statistics (N entries)`.
//!
//! ```text
//! KVM event statistics (%lu entries)
//! %40s  %12s  %12s  %12s  %12s  %14s  %14s  %14s  \n               (header)
//! %40s  %12lu  %12s  %12lu  %12s  %14lu  %14lu  %14lu\n            (one per event)
//! ```
//!
//! perf 6.12 prints this only in its TUI (`--stdio` and pipes get print_result, the classic
//! layout); it has no "Analyze events" line and no footer there. kvmprof prints the
//! "Analyze events" line of print_vcpu_info above the title, so a table says whose it is, and
//! its own notes after the rows on lines starting with "# ".

use super::{
    perf_layout::{Event, SortBy, TableOptions, NAME_WIDTH},
    printf::s,
    rows::{notes, table_rows, timed_sorted, Ties},
    sub_times, Data,
};
use crate::model::{View, VmView};
use crate::text::printable;

/// The cells after the name, in column order: header, width.
const COLUMNS: [(&str, usize); 7] = [
    ("Samples", 12),
    ("Sample%", 12),
    ("Time (ns)", 12),
    ("Time%", 12),
    ("Max Time (ns)", 14),
    ("Min Time (ns)", 14),
    ("Mean Time (ns)", 14),
];

/// `KVM event statistics (N entries)` and the header of the columns `cols` (indexes into
/// [`COLUMNS`]).
fn head(out: &mut String, entries: usize, cols: &[usize]) {
    out.push_str(&format!("KVM event statistics ({entries} entries)\n"));
    out.push_str(&s(NAME_WIDTH, "Event name"));
    out.push_str("  ");
    for &c in cols {
        let (h, w) = COLUMNS[c];
        out.push_str(&s(w, h));
        out.push_str("  ");
    }
    out.push('\n');
}

/// perf's `percent()` cut to an `int`, as `%.2F%%`.
fn share(part: u64, total: u64) -> String {
    let p = if total > 0 {
        (100.0 * part as f64 / total as f64) as i64
    } else {
        0
    };
    format!("{p}.00%")
}

pub(crate) fn exit_table(out: &mut String, view: &View, vm: Option<&VmView>, o: &TableOptions) {
    let (_, all) = table_rows(view, vm, o.vcpu);
    let rows = timed_sorted(&all, o.sort, Ties::ByName);
    let total_n: u64 = rows.iter().map(|r| r.timed).sum();
    let total_t: u64 = rows.iter().map(|r| r.total_ns).sum();
    // Counts without times (bcc kvmexit): the two count columns only, no made-up times.
    let untimed = total_t == 0 && !rows.is_empty() && rows.iter().all(|r| r.max_ns == 0);
    // A table read from a perf that printed no Max/Min has none: no made-up zeros. An empty
    // table has every column, as perf's screen shows it ("KVM event statistics (0 entries)").
    let extremes = rows.is_empty() || rows.iter().any(|r| r.max_ns > 0);
    let cols: &[usize] = match (untimed, extremes) {
        (true, _) => &[0, 1],
        (false, true) => &[0, 1, 2, 3, 4, 5, 6],
        (false, false) => &[0, 1, 2, 3, 6],
    };
    head(out, rows.len(), cols);
    if o.percentiles {
        // kvmprof's, after perf's: the header line ends in two spaces like perf's cells.
        out.pop();
        for p in ["p50 (ns)", "p99 (ns)", "p99.9 (ns)"] {
            out.push_str(&format!("{}  ", s(14, p)));
        }
        out.push('\n');
    }
    for r in &rows {
        out.push_str(&s(NAME_WIDTH, &printable(&r.name)));
        out.push_str(&format!(
            "  {:>12}  {:>12}",
            r.timed,
            share(r.timed, total_n)
        ));
        if !untimed {
            out.push_str(&format!(
                "  {:>12}  {:>12}",
                r.total_ns,
                share(r.total_ns, total_t)
            ));
            if extremes {
                out.push_str(&format!("  {:>14}  {:>14}", r.max_ns, r.min_ns));
            }
            out.push_str(&format!("  {:>14}", r.total_ns / r.timed));
        }
        if o.percentiles {
            for v in [r.p50_ns, r.p99_ns, r.p999_ns] {
                let cell = if r.has_percentiles() {
                    v.to_string()
                } else {
                    "n/a".into()
                };
                out.push_str(&format!("  {cell:>14}"));
            }
        }
        out.push('\n');
    }
    out.push('\n');
    if untimed {
        out.push_str(
            "# the input held exit counts without times: no Time (ns)/Time%/Max/Min/Mean here\n",
        );
    }
    notes(out, &all, &rows, false);
}

/// A sub-reason table: counts only (kvmprof does not time these accesses; see evidence.rs).
pub(crate) fn counts_table(
    out: &mut String,
    data: &Data,
    event: Event,
    vm: Option<&VmView>,
    sort: SortBy,
) {
    let keyed = data.evidence.keyed(event, vm.map(|v| v.pid));
    let empty = data.empty_timed(event, &keyed);
    let timed = sub_times::for_table(&data.sub_times, event, vm.map(|v| v.pid), &keyed)
        .or_else(|| empty.map(|_| std::collections::BTreeMap::new()));
    // Read from perf text with its times: all of perf's cells, else the counts' two.
    let rows: Vec<(String, [u64; 5])> = match &timed {
        Some(t) => sub_times::rows_64(t, sort),
        None => {
            let mut rows: Vec<(String, [u64; 5])> = keyed
                .iter()
                .map(|(k, n)| (sub_times::named_key(event, k), [*n, 0, 0, 0, 0]))
                .collect();
            match sort {
                SortBy::Name => rows.sort_by(|a, b| a.0.cmp(&b.0)),
                _ => rows.sort_by(|a, b| b.1[0].cmp(&a.1[0]).then_with(|| a.0.cmp(&b.0))),
            }
            rows
        }
    };
    let total_n: u64 = rows.iter().map(|r| r.1[0]).sum();
    let total_t: u64 = rows.iter().map(|r| r.1[1]).sum();
    let extremes = rows.iter().any(|r| r.1[2] > 0) || (rows.is_empty() && empty == Some(true));
    let cols: &[usize] = match (timed.is_some(), extremes) {
        (false, _) => &[0, 1],
        (true, true) => &[0, 1, 2, 3, 4, 5, 6],
        (true, false) => &[0, 1, 2, 3, 6],
    };
    head(out, rows.len(), cols);
    for (k, [n, t, max, min, mean]) in &rows {
        out.push_str(&format!(
            "{}  {n:>12}  {:>12}",
            s(NAME_WIDTH, k),
            share(*n, total_n)
        ));
        if timed.is_some() {
            out.push_str(&format!("  {t:>12}  {:>12}", share(*t, total_t)));
            if extremes {
                out.push_str(&format!("  {max:>14}  {min:>14}"));
            }
            out.push_str(&format!("  {mean:>14}"));
        }
        out.push('\n');
    }
    out.push('\n');
    let what = if timed.is_some() {
        "times as the perf text printed them (kvmprof itself counts these accesses without timing them)"
    } else {
        "kvmprof counts these accesses without timing them: no Time (ns)/Time%/Max/Min/Mean here"
    };
    out.push_str(&format!("# {} table; {what}\n", event.header()));
    if timed.is_some() {
        out.push_str(&sub_times::names_note(event, keyed.keys()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Python's `'%12s' % ('%.2F%%' % int(100.0 * a / b))`: C's cut to int, then two zeros.
    #[test]
    fn shares_are_cut_to_whole_percents() {
        assert_eq!(share(150_279, 163_746), "91.00%");
        assert_eq!(share(7_682, 163_746), "4.00%");
        assert_eq!(share(1, 163_746), "0.00%");
        assert_eq!(share(5, 5), "100.00%");
        assert_eq!(share(3, 0), "0.00%");
    }
}
