//! kvmprof's perf ≥ 6.4 layout against perf's own report screen of the same exits.
//!
//! perf 6.12 shows the `Event name … Mean Time (ns)` layout only on its report screen; the
//! tests capture that screen (tmux, `xtask/src/perf612.rs`) for a `perf.data` whose classic
//! table perf 6.1 printed, import that classic text, print it with `--perf-layout 6.4` and
//! compare the two row by row here: the real-KVM test on every run, and
//! `report::tests_perf612` on the committed fixtures (profiler/tests/perf-real).
//!
//! The classic text holds what the screen does, but rounded: times in µs with two decimals,
//! shares with two. So names, their order, Samples, Sample% and the screen's title and header
//! must be equal; Time (ns), Max, Min, Mean and Time% (a whole-percent cut of the time) within
//! what the classic digits leave open (see `Slack`). kvmprof's own recording of the same run is
//! not used for them: its clock is not perf's.

use super::{perf_import::import, perf_rows::Section, Data, Event, PerfLayout, TableOptions};

/// One row of a 6.4-layout table: name and its seven cells, as printed.
pub type Row64 = (String, Vec<String>);

/// The title (`KVM event statistics (N entries)`), the header and the rows of the first
/// 6.4-layout table in `text` (a screen capture or kvmprof's output), read by splitting on
/// blanks, not by kvmprof's importer: the last seven cells are numbers, the rest is the name.
pub fn table64(text: &str) -> (Option<String>, Option<String>, Vec<Row64>) {
    let mut lines = text.lines().map(str::trim_end);
    let title = text
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("KVM event statistics"))
        .map(str::to_string);
    let header = lines
        .by_ref()
        .find(|l| l.trim_start().starts_with("Event name"))
        .map(str::to_string);
    let rows = lines
        .map_while(|l| {
            let t: Vec<&str> = l.split_whitespace().collect();
            (t.len() >= 8).then(|| {
                let (name, cells) = t.split_at(t.len() - 7);
                (
                    name.join(" "),
                    cells.iter().map(|c| c.to_string()).collect(),
                )
            })
        })
        .collect();
    (title, header, rows)
}

/// How far a time on perf's screen may be from the one kvmprof rebuilt from the classic
/// text's digits, in ns. The classic text prints Min, Max and Avg to 0.01 µs: the true value
/// is within ±5 ns of the printed one, and kvmprof's Min and Max are the printed value. A row's
/// total is known only to an interval (its count × Avg, ±5 ns each, or its Time%, ±0.005 %,
/// of the footer's total, ±5 ns): both kvmprof's rebuilt total and perf's true one lie in it,
/// so they may be its whole width apart. A mean follows from its total; perf's screen cuts
/// its running mean to whole ns (1 more). (A run of real exits found the half-width too
/// little: interrupt, 50 exits, Avg 162.70us: perf 8135173 ns, kvmprof 8134751.)
struct Slack {
    extreme: f64,
    total: f64,
    mean: f64,
}

fn slack(sec: &Section, samples: u64) -> Slack {
    let n = samples as f64;
    let by_avg = n * 5.0;
    let by_share = sec
        .total_time_us
        .map_or(f64::INFINITY, |t| t * 1e3 * 0.005 / 100.0 + 5.0);
    let total = 2.0 * by_avg.min(by_share);
    Slack {
        extreme: 5.0,
        total,
        mean: 1.0 + total / n.max(1.0),
    }
}

/// The differences between perf's `screen` and kvmprof's 6.4 layout of `classic` (perf's
/// classic text of the same exits, one `event` table), one line each; empty when they agree.
pub fn screen_differences(
    screen: &str,
    classic: &str,
    event: Event,
) -> Result<Vec<String>, String> {
    let imp = import(classic).map_err(|e| e.to_string())?;
    let sec = imp
        .sections
        .iter()
        .find(|s| s.event == event)
        .ok_or_else(|| format!("no {} table in the classic text", event.header()))?;
    let d = Data::from_import(&imp, "classic");
    let o = TableOptions {
        event,
        layout: PerfLayout::V6_4,
        ..Default::default()
    };
    let ours = super::perf_table(&d, &o).map_err(|e| e.to_string())?;
    let (their_title, their_header, theirs) = table64(screen);
    let (our_title, our_header, mine) = table64(&ours);
    let mut out = Vec::new();
    if their_title.is_none() || their_header.is_none() {
        return Err(format!("no 6.4-layout table on perf's screen:\n{screen}"));
    }
    if their_title != our_title {
        out.push(format!(
            "title: perf {their_title:?}, kvmprof {our_title:?}"
        ));
    }
    if their_header != our_header {
        out.push(format!(
            "header: perf {their_header:?}, kvmprof {our_header:?}"
        ));
    }
    let names = |rows: &[Row64]| rows.iter().map(|r| r.0.clone()).collect::<Vec<_>>();
    if names(&theirs) != names(&mine) {
        out.push(format!(
            "rows: perf {:?}, kvmprof {:?}",
            names(&theirs),
            names(&mine)
        ));
    }
    const COLS: [&str; 7] = [
        "Samples",
        "Sample%",
        "Time (ns)",
        "Time%",
        "Max",
        "Min",
        "Mean",
    ];
    let num = |c: &str| c.trim_end_matches('%').parse::<f64>().unwrap_or(f64::NAN);
    let slacks: Vec<Slack> = mine
        .iter()
        .map(|(_, k)| slack(sec, num(&k[0]) as u64))
        .collect();
    // The table's time as kvmprof rebuilt it, and how far the true one can be.
    let all: f64 = mine.iter().map(|(_, k)| num(&k[2])).sum();
    let all_slack: f64 = slacks.iter().map(|s| s.total).sum();
    for (((name, p), (ours, k)), s) in theirs.iter().zip(&mine).zip(&slacks) {
        if name != ours {
            continue;
        }
        for (i, col) in COLS.iter().enumerate() {
            let allowed = match i {
                2 => s.total,
                4 | 5 => s.extreme,
                6 => s.mean,
                _ => 0.0,
            };
            let (a, b) = (num(&p[i]), num(&k[i]));
            let same = match i {
                // perf cuts the share to a whole percent: any cut the row's time (± its
                // slack) of the table's time (± all rows' slack) can give is perf's.
                3 => {
                    let t = num(&k[2]);
                    let lo = (100.0 * (t - s.total).max(0.0) / (all + all_slack)).floor();
                    let hi = (100.0 * (t + s.total) / (all - all_slack).max(1.0)).floor();
                    p[i] == k[i] || (lo..=hi).contains(&a)
                }
                _ if allowed > 0.0 => (a - b).abs() <= allowed,
                _ => p[i] == k[i],
            };
            if !same {
                out.push(format!(
                    "{name} {col}: perf {}, kvmprof {} (allowed ±{allowed:.0})",
                    p[i], k[i]
                ));
            }
        }
    }
    Ok(out)
}
