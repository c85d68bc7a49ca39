//! The heatmap screen: time × exit handling time of one reason (or all exits but HLT) of a VM
//! or vCPU. Rows are latency bands (octaves, longest on top, merged when the screen is short),
//! columns intervals (newest on the right), each cell shaded by its exits on a log scale; a
//! time axis and a legend of the bands' unit and the shades' counts below.

use ratatui::{
    buffer::Buffer,
    layout::{Constraint, Layout, Rect},
    style::{Color, Style, Stylize},
    text::{Line, Span},
    widgets::{Paragraph, Widget},
};

use super::{fmt, heat::HeatTarget, widgets::centered, App};
use crate::{
    heatmap::{band_lower, band_upper, level, level_ranges},
    text::printable,
};

/// Shade of each level (1..=4): a glyph, so it reads without colour too, and a colour.
pub(super) const SHADES: [(&str, Color); 4] = [
    ("░", Color::Blue),
    ("▒", Color::Cyan),
    ("▓", Color::Yellow),
    ("█", Color::Red),
];
/// The band label column: "1.02µs ┤".
const AXIS: u16 = 8;
/// Widest cell per interval, so a short history still reads as a map.
const MAX_CELL: usize = 3;

pub(in crate::tui) fn heatmap_screen(app: &App, t: &HeatTarget, area: Rect, buf: &mut Buffer) {
    let [head, body, axis, legend] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Fill(1),
        Constraint::Length(2),
        Constraint::Length(1),
    ])
    .areas(area);
    let grid = app.heat.grid(t);
    let vm = app.vm(t.pid);
    let vm_name = vm.map_or_else(|| format!("pid {}", t.pid), |v| printable(&v.name).into());
    let who = match t.vcpu {
        Some(v) => format!("{vm_name} › vCPU {v}"),
        None => format!("{vm_name} › all vCPUs"),
    };
    let what = match t.shown() {
        Some((isa, reason)) => vm
            .and_then(|v| {
                v.reasons
                    .iter()
                    .find(|r| r.isa == isa && r.reason == reason)
            })
            .map_or_else(
                || format!("reason {reason:#x}"),
                |r| printable(&r.name).into(),
            ),
        None => "all exits (HLT left out)".into(),
    };
    let switch = if t.reason.is_some() {
        "m: reason ↔ all exits · "
    } else {
        ""
    };
    Paragraph::new(vec![
        Line::from(vec![
            Span::from(format!(" {who} › ")),
            Span::from(what).bold(),
            Span::from(format!(" · heatmap, last {} intervals", grid.len())),
        ]),
        Line::from(format!(
            " rows: handling time (octaves) · columns: intervals, newest right · {switch}Esc: back"
        ))
        .dark_gray(),
    ])
    .render(head, buf);

    let bands = grid
        .iter()
        .flat_map(|(_, _, c)| c.iter().map(|x| x.0 as usize));
    let (lo, hi) = bands.fold((usize::MAX, 0), |(lo, hi), b| (lo.min(b), hi.max(b)));
    if lo > hi || body.height == 0 || body.width <= AXIS {
        let msg = if grid.is_empty() {
            "No interval yet: the heatmap fills as samples arrive (it keeps the last intervals of the VM on screen)"
        } else {
            "No timed exits of this reason in these intervals"
        };
        centered(msg, body, buf);
        return;
    }
    // Bands per row, so every band with exits fits.
    let per = (hi - lo + 1).div_ceil(body.height as usize);
    let rows = (hi - lo + 1).div_ceil(per);
    // Intervals per column, and how wide a column is drawn.
    let width = (body.width - AXIS) as usize;
    let per_col = grid.len().div_ceil(width).max(1);
    let ncols = grid.len().div_ceil(per_col);
    let cell_w = (width / ncols).clamp(1, MAX_CELL);
    let counts: Vec<Vec<u64>> = grid
        .chunks(per_col)
        .map(|ivs| {
            let mut col = vec![0u64; rows];
            for (_, _, cells) in ivs {
                for &(b, n) in cells {
                    col[(b as usize - lo) / per] += n;
                }
            }
            col
        })
        .collect();
    let max = counts.iter().flatten().copied().max().unwrap_or(0);
    let left = body.x + AXIS + (width - ncols * cell_w) as u16;
    for row in 0..rows {
        // Row 0 is the top: the longest band.
        let r = rows - 1 - row;
        let y = body.y + body.height - rows as u16 + row as u16;
        let label = format!("{:>6} ┤", fmt::dur(band_lower(lo + r * per)));
        buf.set_string(body.x, y, label, Style::new().dark_gray());
        for (c, col) in counts.iter().enumerate() {
            let l = level(col[r], max);
            if l == 0 {
                continue;
            }
            let (glyph, color) = SHADES[l as usize - 1];
            let x = left + (c * cell_w) as u16;
            buf.set_string(x, y, glyph.repeat(cell_w), Style::new().fg(color));
        }
    }
    let top = band_upper(lo + rows * per - 1).map_or_else(|| "∞".into(), fmt::dur);
    let origin = app.first.as_ref().map_or(0, |s| s.mono_ns);
    let since = |ns: u64| format!("+{}", fmt::secs(ns.saturating_sub(origin) as f64 / 1e9));
    // The first interval's start under the first column, the last one's end at the right,
    // "time" between them.
    let (start, end) = (since(grid[0].0), since(grid[grid.len() - 1].1));
    let mid = " ─ time ─ ";
    let (w, head) = (
        body.width as usize,
        start.chars().count() + mid.chars().count(),
    );
    // Moved left when the map is too narrow for the labels.
    let first_x = ((left - body.x) as usize).min(w.saturating_sub(head + end.chars().count()));
    let room = w.saturating_sub(first_x + head).max(end.chars().count());
    let ticks = format!("{:first_x$}{start}{mid}{end:>room$}", "");
    Paragraph::new(vec![
        Line::from(format!(
            "{:>AXIS$}{}",
            "└",
            "─".repeat(width),
            AXIS = AXIS as usize
        ))
        .dark_gray(),
        Line::from(ticks),
    ])
    .render(axis, buf);

    let mut spans = vec![Span::from(format!(
        " top row ends at {top} · exits per cell: "
    ))];
    for (l, a, b) in level_ranges(max) {
        let (glyph, color) = SHADES[l as usize - 1];
        spans.push(Span::styled(glyph, Style::new().fg(color)));
        let range = if a == b {
            fmt::count(a)
        } else {
            format!("{}–{}", fmt::count(a), fmt::count(b))
        };
        spans.push(Span::from(format!(" {range}  ")));
    }
    if per_col > 1 {
        spans.push(Span::from(format!("· {per_col} intervals a column")).dark_gray());
    }
    Line::from(spans).render(legend, buf);
}
