//! Screen 3: one reason's latency histogram (this interval, or since start) with p50/p99/p99.9
//! marked, and its rate over the last intervals.

use profiler_common::hist;
use ratatui::{
    buffer::Buffer,
    layout::{Constraint, Layout, Rect},
    style::Stylize,
    text::{Line, Span},
    widgets::{Block, Borders, Paragraph, Sparkline, Widget},
};

use super::{fmt, widgets::centered, App, HistTarget};
use crate::text::printable;

/// Label "1.02µs–1.15µs" + " │" before each bar, count and marks after it.
const LABEL: usize = 15;
const COUNT: usize = 9;
const MARKS: usize = 18;

pub(in crate::tui) fn histogram(app: &App, t: &HistTarget, area: Rect, buf: &mut Buffer) {
    let found = app.vm(t.pid).and_then(|vm| {
        let rows = match t.vcpu {
            Some(v) => &vm.vcpus.iter().find(|c| c.vcpu == v)?.reasons,
            None => &vm.reasons,
        };
        Some((
            vm,
            rows.iter()
                .find(|r| r.isa == t.isa && r.reason == t.reason)?,
        ))
    });
    let Some((vm, row)) = found else {
        centered("This reason is gone (Esc: back)", area, buf);
        return;
    };
    let rips = super::rips::of(vm, row.isa, row.reason);
    // The RIPs take their rows only when the histogram keeps a few of its own.
    let rips_h = rips
        .map(super::rips::height)
        .filter(|h| area.height >= h + 12)
        .unwrap_or(0);
    let [head, spark, body, rips_area] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Length(4),
        Constraint::Fill(1),
        Constraint::Length(rips_h),
    ])
    .areas(area);
    if let (Some(g), true) = (rips, rips_h > 0) {
        super::rips::draw(g, t.vcpu.is_some(), rips_area, buf);
    }

    let who = match t.vcpu {
        Some(v) => format!("{} › vCPU {v}", printable(&vm.name)),
        None => format!("{} › all vCPUs", printable(&vm.name)),
    };
    let d = |ns: u64| {
        if row.timed == 0 {
            "-".into()
        } else {
            fmt::dur(ns)
        }
    };
    Paragraph::new(vec![
        Line::from(vec![
            Span::from(format!(" {who} › ")),
            Span::from(format!(
                "{} ({} {:#x})",
                printable(&row.name),
                printable(&row.isa_name),
                row.reason
            ))
            .bold(),
        ]),
        Line::from(format!(
            " {} exits · {} in flight · {}/s · min {} · avg {} · max {}",
            fmt::count(row.count),
            row.in_flight,
            fmt::rate(row.rate_per_s),
            d(row.min_ns),
            if row.timed == 0 {
                "-".into()
            } else {
                fmt::durf(row.mean_ns)
            },
            d(row.max_ns),
        )),
    ])
    .render(head, buf);

    let rates = app.rate_history(t);
    let peak = rates.iter().copied().fold(0.0, f64::max);
    let title = format!(
        " rate, last {} intervals · now {}/s · peak {}/s ",
        rates.len(),
        fmt::rate(rates.last().copied().unwrap_or(0.0)),
        fmt::rate(peak)
    );
    // Sparkline wants integers: keep two decimals of the rate.
    let data: Vec<u64> = rates.iter().map(|r| (r * 100.0).round() as u64).collect();
    Sparkline::default()
        .data(&data)
        .green()
        .block(Block::new().borders(Borders::TOP).title(title))
        .render(spark, buf);

    let mut title = format!(
        " latency histogram · {} timed exits · p50 {} · p99 {} · p99.9 {} ",
        fmt::count(row.hist_total),
        d(row.p50_ns),
        d(row.p99_ns),
        d(row.p999_ns),
    );
    if let Some(s) = row.split(app.view().sched_split) {
        // For HLT the three are halt polling, the wake-up latency and the idle sleep.
        let (cpu, wait, sleep) = if row.hlt {
            ("polling", "woken, waiting for a CPU", "blocked")
        } else {
            ("on CPU", "waiting for a CPU", "asleep")
        };
        title.push_str(&format!(
            "· {cpu} {}% · {wait} {}% · {sleep} {}% ",
            fmt::pct(s.on_cpu_pct),
            fmt::pct(s.wait_pct),
            fmt::pct(s.sleep_pct)
        ));
    }
    let block = Block::new().borders(Borders::TOP).title(title);
    let inner = block.inner(body);
    block.render(body, buf);
    let lines = bars(row, inner.width as usize, inner.height as usize);
    if lines.is_empty() {
        centered(
            "No timed exits of this reason in this span (t: since start)",
            inner,
            buf,
        );
    } else {
        Paragraph::new(lines).render(inner, buf);
    }
}

/// One line per group of adjacent buckets, as many buckets per line as the height needs.
fn bars(row: &crate::model::Row, width: usize, height: usize) -> Vec<Line<'static>> {
    let (Some(first), Some(last)) = (row.hist.buckets.first(), row.hist.buckets.last()) else {
        return Vec::new();
    };
    if height == 0 {
        return Vec::new();
    }
    let (first, last) = (first.0 as usize, last.0 as usize);
    let span = last - first + 1;
    let per = span.div_ceil(height);
    let groups: Vec<(u64, u64, u64)> = (first..=last)
        .step_by(per)
        .map(|start| {
            let end = (start + per - 1).min(last);
            let n = row
                .hist
                .buckets
                .iter()
                .filter(|(b, _)| (start..=end).contains(&(*b as usize)))
                .map(|(_, c)| c)
                .sum();
            (hist::lower(start), hist::upper(end), n)
        })
        .collect();
    let max = groups.iter().map(|g| g.2).max().unwrap_or(1).max(1);
    let bar_w = width.saturating_sub(LABEL + COUNT + MARKS + 2).max(1);
    groups
        .into_iter()
        .map(|(lo, hi, n)| {
            let marks: Vec<&str> = [
                ("p50", row.p50_ns),
                ("p99", row.p99_ns),
                ("p99.9", row.p999_ns),
            ]
            .into_iter()
            .filter(|(_, v)| (lo..hi).contains(v))
            .map(|(m, _)| m)
            .collect();
            let len = (n as f64 / max as f64 * bar_w as f64).round() as usize;
            let bar = if n > 0 && len == 0 {
                "▏".to_string()
            } else {
                "█".repeat(len)
            };
            let label = format!("{:>6}–{:<6} │", fmt::dur(lo), fmt::dur(hi));
            let mut spans = vec![
                Span::from(format!("{label:<LABEL$}")).dark_gray(),
                Span::from(format!("{bar:<bar_w$}")).cyan(),
                Span::from(format!("{:>COUNT$}", fmt::count(n))),
            ];
            if !marks.is_empty() {
                spans.push(
                    Span::from(format!(" ◀ {}", marks.join(" ")))
                        .yellow()
                        .bold(),
                );
            }
            Line::from(spans)
        })
        .collect()
}
