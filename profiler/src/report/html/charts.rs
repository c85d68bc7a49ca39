//! The charts, drawn by plotters' SVG backend (which escapes the text it writes) into strings
//! the page embeds inline. Bars are filled with the session's exact palette color and
//! nothing else uses those colors, so a screenshot shows which session a bar belongs to.

use plotters::{
    prelude::*,
    style::text_anchor::{HPos, Pos, VPos},
};
use profiler_common::hist;

use super::{color, HtmlError};

/// Chart width, px (two charts side by side on a 1280 px screen).
const WIDTH: u32 = 600;
/// Latency histogram size, px (three in a row).
const LATENCY_SIZE: (u32, u32) = (400, 200);
/// Room for reason names left of the bars, px.
const LABEL_PX: u32 = 170;
/// One bar's thickness, px.
const BAR_PX: u32 = 14;
/// Longest reason name drawn in full (the table has every name whole).
const LABEL_CHARS: usize = 24;
const TEXT: RGBColor = RGBColor(51, 51, 51);
const GRID: RGBColor = RGBColor(221, 221, 221);
const GRID_LIGHT: RGBColor = RGBColor(242, 242, 242);
const FONT: &str = "sans-serif";

/// A grouped horizontal bar chart: one group per category, one bar per session in it.
#[derive(Debug)]
pub struct Bars {
    pub title: String,
    pub unit: String,
    pub categories: Vec<String>,
    /// (session index, one value per category).
    pub series: Vec<(usize, Vec<f64>)>,
}

/// A latency histogram: per session, its buckets (kernel layout) and their total count.
#[derive(Debug)]
pub struct Latency {
    pub title: String,
    pub series: Vec<LatencySeries>,
}

/// (session index, buckets as `Hist` keeps them, their total count).
pub type LatencySeries = (usize, Vec<(u16, u64)>, u64);

fn failed<E: std::fmt::Display>(title: &str) -> impl Fn(E) -> HtmlError + '_ {
    move |e| HtmlError::Chart {
        title: title.to_string(),
        why: e.to_string(),
    }
}

fn fill(i: usize) -> ShapeStyle {
    let (r, g, b) = color(i);
    RGBColor(r, g, b).filled()
}

/// The bar chart as SVG.
pub fn bars(b: &Bars) -> Result<String, HtmlError> {
    let err = failed(&b.title);
    let n = b.categories.len().max(1);
    let k = b.series.len().max(1);
    let group_px = (k as u32 * BAR_PX + 10).max(24);
    let height = 50 + group_px * n as u32;
    let max = b
        .series
        .iter()
        .flat_map(|(_, v)| v)
        .fold(0.0f64, |a, &v| a.max(v));
    let xmax = if max > 0.0 { max * 1.05 } else { 1.0 };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).map_err(&err)?;
        let mut chart = ChartBuilder::on(&root)
            .margin(8)
            .margin_right(24)
            .x_label_area_size(34)
            .y_label_area_size(LABEL_PX)
            .build_cartesian_2d(0f64..xmax, 0f64..n as f64)
            .map_err(&err)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(0)
            .x_labels(6)
            .x_label_formatter(&|v| short(*v))
            .x_desc(b.unit.as_str())
            .bold_line_style(GRID)
            .light_line_style(GRID_LIGHT)
            .max_light_lines(2)
            .axis_style(TEXT)
            .label_style((FONT, 12).into_font().color(&TEXT))
            .draw()
            .map_err(&err)?;
        // Category i fills y in [n-i-1, n-i] (first on top); its bars share 80 % of it.
        let step = 0.8 / k as f64;
        for (slot, (session, vals)) in b.series.iter().enumerate() {
            let bars = vals.iter().enumerate().map(|(i, v)| {
                let y1 = (n - i) as f64 - 0.1 - step * slot as f64;
                Rectangle::new([(0.0, y1 - step), (*v, y1)], fill(*session))
            });
            chart.draw_series(bars).map_err(&err)?;
        }
        let label = (FONT, 12)
            .into_font()
            .color(&TEXT)
            .pos(Pos::new(HPos::Right, VPos::Center));
        for (i, c) in b.categories.iter().enumerate() {
            let (x, y) = chart.backend_coord(&(0.0, (n - i) as f64 - 0.5));
            root.draw(&Text::new(clip(c), (x - 6, y), label.clone()))
                .map_err(&err)?;
        }
        root.present().map_err(&err)?;
    }
    Ok(svg)
}

/// The latency histogram as SVG: x the exit handling time (log scale), y each session's
/// share of the reason's exits per bucket; a bucket's sessions stand side by side in it.
pub fn latency(l: &Latency) -> Result<String, HtmlError> {
    let err = failed(&l.title);
    let k = l.series.len().max(1);
    let buckets = l
        .series
        .iter()
        .flat_map(|(_, b, _)| b.iter().map(|(i, _)| *i as usize));
    let (lo, hi) = buckets.fold((u64::MAX, 1u64), |(lo, hi), b| {
        (lo.min(hist::lower(b).max(1)), hi.max(hist::upper(b)))
    });
    // Whole decades (the axis labels 1µs, 10µs, ...): even one bucket gets two labels.
    let (lo, hi) = if lo >= hi {
        (1, 10)
    } else {
        (decade_below(lo), decade_above(hi))
    };
    let pct = |c: u64, total: u64| c as f64 * 100.0 / total.max(1) as f64;
    let ymax = l
        .series
        .iter()
        .flat_map(|(_, b, t)| b.iter().map(move |(_, c)| pct(*c, *t)))
        .fold(0.0f64, f64::max);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, LATENCY_SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(&err)?;
        let mut chart = ChartBuilder::on(&root)
            .margin(8)
            .margin_right(24)
            .x_label_area_size(34)
            .y_label_area_size(50)
            .build_cartesian_2d(
                (lo as f64..hi as f64).log_scale(),
                0f64..(ymax * 1.1).max(1.0),
            )
            .map_err(&err)?;
        chart
            .configure_mesh()
            .x_labels(6)
            .y_labels(5)
            .max_light_lines(2)
            .x_label_formatter(&|v| ns(*v))
            .y_label_formatter(&|v| format!("{v:.0}%"))
            .x_desc("exit handling time")
            .y_desc("% of its exits")
            .bold_line_style(GRID)
            .light_line_style(GRID_LIGHT)
            .axis_style(TEXT)
            .label_style((FONT, 12).into_font().color(&TEXT))
            .draw()
            .map_err(&err)?;
        for (slot, (session, buckets, total)) in l.series.iter().enumerate() {
            let bars = buckets.iter().map(|&(b, c)| {
                let (blo, bhi) = (
                    hist::lower(b as usize).max(1) as f64,
                    hist::upper(b as usize) as f64,
                );
                let at = |f: f64| blo * (bhi / blo).powf(f);
                let (x0, x1) = (at(slot as f64 / k as f64), at((slot + 1) as f64 / k as f64));
                Rectangle::new([(x0, 0.0), (x1, pct(c, *total))], fill(*session))
            });
            chart.draw_series(bars).map_err(&err)?;
        }
        root.present().map_err(&err)?;
    }
    Ok(svg)
}

/// The power of ten at or below `v` (v ≥ 1).
fn decade_below(v: u64) -> u64 {
    10u64.pow(v.max(1).ilog10())
}

/// The power of ten above `v`.
fn decade_above(v: u64) -> u64 {
    10u64.saturating_pow(v.max(1).ilog10() + 1)
}

/// A name cut to what fits left of the bars.
fn clip(s: &str) -> String {
    if s.chars().count() <= LABEL_CHARS {
        return s.to_string();
    }
    let mut out: String = s.chars().take(LABEL_CHARS - 1).collect();
    out.push('…');
    out
}

/// An axis value in few characters: 950, 1.5k, 12M.
pub fn short(v: f64) -> String {
    let a = v.abs();
    let (d, unit) = if a >= 1e9 {
        (1e9, "G")
    } else if a >= 1e6 {
        (1e6, "M")
    } else if a >= 1e3 {
        (1e3, "k")
    } else {
        (1.0, "")
    };
    let x = v / d;
    let s = if x.fract().abs() < 1e-9 || x.abs() >= 10.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    };
    s + unit
}

/// A duration in ns as an axis or table value: 850ns, 1.5µs, 12ms, 2s.
pub fn ns(v: f64) -> String {
    let (d, unit) = if v >= 1e9 {
        (1e9, "s")
    } else if v >= 1e6 {
        (1e6, "ms")
    } else if v >= 1e3 {
        (1e3, "µs")
    } else {
        (1.0, "ns")
    };
    let x = v / d;
    let s = if x >= 100.0 || unit == "ns" {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    };
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        &s
    };
    format!("{s}{unit}")
}
