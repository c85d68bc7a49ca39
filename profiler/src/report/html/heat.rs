//! Time × latency heatmaps of the page: per scope, for each of its top reasons, each
//! session's exits per interval and latency band (from `heatmap::Series`, the same cells as
//! `report --heatmap -f csv`), binned to at most [`COLS`] columns, drawn by plotters.

use plotters::{
    prelude::*,
    style::text_anchor::{HPos, Pos, VPos},
};

use super::{charts::ns, series::Scope, HtmlError, Session};
use crate::heatmap::{self, band_lower, level, level_ranges, LEVELS};

/// Most columns a heatmap draws; longer sessions sum neighbouring intervals.
pub const COLS: usize = 120;
const SIZE: (u32, u32) = (600, 220);
/// Shades of levels 1..=4 (light to dark; none is a session's palette color).
pub const SHADES: [(u8, u8, u8); LEVELS as usize] = [
    (254, 224, 139),
    (253, 174, 97),
    (244, 109, 67),
    (165, 0, 38),
];
const TEXT: RGBColor = RGBColor(51, 51, 51);

/// One heatmap: per column its time span (s since the session's first sample) and exits per
/// band from `lo`.
#[derive(Debug)]
pub struct Heat {
    pub title: String,
    pub lo: usize,
    pub bands: usize,
    pub cols: Vec<(f64, f64, Vec<u64>)>,
    pub max: u64,
}

impl Heat {
    /// The legend: (shade, lowest, highest count) per level in use.
    pub fn legend(&self) -> Vec<((u8, u8, u8), u64, u64)> {
        level_ranges(self.max)
            .into_iter()
            .map(|(l, a, b)| (SHADES[l as usize - 1], a, b))
            .collect()
    }
}

/// The heatmaps of `scope`'s reasons `names`, one per session that has intervals of it.
pub fn heats(scope: &Scope, sessions: &[(String, Session)], names: &[String]) -> Vec<Heat> {
    let mut out = Vec::new();
    for name in names {
        for (i, (label, s)) in sessions.iter().enumerate() {
            let (Some(series), Some(pids)) = (&s.heat, scope.pids.get(i)) else {
                continue;
            };
            // Per interval, the exits per band of every row of the scope with this name.
            let mut per: Vec<heatmap::Cells> = vec![Vec::new(); series.intervals.len()];
            for (k, row) in &series.rows {
                if k.vcpu.is_some() || row.name != *name || !pids.contains(&k.pid) {
                    continue;
                }
                for (at, cells) in &row.cols {
                    heatmap::add_cells(&mut per[*at as usize], cells);
                }
            }
            let bands = per.iter().flat_map(|c| c.iter().map(|x| x.0 as usize));
            let (lo, hi) = bands.fold((usize::MAX, 0), |(l, h), b| (l.min(b), h.max(b)));
            if lo > hi {
                continue;
            }
            let chunk = series.intervals.len().div_ceil(COLS).max(1);
            let cols: Vec<(f64, f64, Vec<u64>)> = series
                .intervals
                .chunks(chunk)
                .zip(per.chunks(chunk))
                .map(|(ivs, cells)| {
                    let mut col = vec![0; hi - lo + 1];
                    for &(b, n) in cells.iter().flatten() {
                        col[b as usize - lo] += n;
                    }
                    let (a, b) = (ivs[0].start_ns, ivs[ivs.len() - 1].end_ns);
                    (a as f64 / 1e9, b as f64 / 1e9, col)
                })
                .collect();
            let max = cols.iter().flat_map(|c| &c.2).copied().max().unwrap_or(0);
            let who = if sessions.len() > 1 {
                format!(" · {label}")
            } else {
                String::new()
            };
            out.push(Heat {
                title: format!("{name} over time · {}{who}", scope.title),
                lo,
                bands: hi - lo + 1,
                cols,
                max,
            });
        }
    }
    out
}

/// The heatmap as SVG: x the session's time, y the latency bands (octaves), each cell
/// shaded by its exits on a log scale.
pub fn draw(h: &Heat) -> Result<String, HtmlError> {
    let err = |e: &dyn std::fmt::Display| HtmlError::Chart {
        title: h.title.clone(),
        why: e.to_string(),
    };
    let x0 = h.cols.first().map_or(0.0, |c| c.0);
    let x1 = h.cols.last().map_or(1.0, |c| c.1).max(x0 + 1e-3);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .margin(8)
            .margin_right(24)
            .x_label_area_size(34)
            .y_label_area_size(60)
            .build_cartesian_2d(x0..x1, 0f64..h.bands as f64)
            .map_err(|e| err(&e))?;
        let lo = h.lo;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(6)
            // Band bounds are drawn below, one at each row edge (mesh ticks fall anywhere).
            .y_labels(0)
            .x_label_formatter(&|v| format!("{v:.0}s"))
            .x_desc("time since the first sample")
            .y_desc("exit handling time")
            .axis_style(TEXT)
            .label_style(("sans-serif", 12).into_font().color(&TEXT))
            .draw()
            .map_err(|e| err(&e))?;
        let cells = h.cols.iter().flat_map(|(a, b, col)| {
            col.iter().enumerate().filter_map(move |(i, &n)| {
                let l = level(n, h.max);
                (l > 0).then(|| {
                    let (r, g, bl) = SHADES[l as usize - 1];
                    Rectangle::new(
                        [(*a, i as f64), (*b, i as f64 + 1.0)],
                        RGBColor(r, g, bl).filled(),
                    )
                })
            })
        });
        chart.draw_series(cells).map_err(|e| err(&e))?;
        let label = ("sans-serif", 12)
            .into_font()
            .color(&TEXT)
            .pos(Pos::new(HPos::Right, VPos::Center));
        // Every row edge when they fit, else every other one (a band is an octave).
        let step = if h.bands > 12 { 2 } else { 1 };
        for edge in (0..=h.bands).step_by(step) {
            let (x, y) = chart.backend_coord(&(x0, edge as f64));
            // An edge is the lower bound of the band above it (the upper of the one below).
            let text = ns(band_lower(lo + edge) as f64);
            root.draw(&Text::new(text, (x - 6, y), label.clone()))
                .map_err(|e| err(&e))?;
        }
        root.present().map_err(|e| err(&e))?;
    }
    Ok(svg)
}
