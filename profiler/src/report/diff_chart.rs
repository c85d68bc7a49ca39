//! The diff's two charts for a terminal, as the talk drew them: exits per reason and
//! exit-handling time per reason, one bar group per reason with one bar per session.
//!
//! Drawn by ratatui's horizontal [`BarChart`] into an off-screen buffer that is printed as
//! text: no terminal control, so it works over SSH, in a pipe and in a file. Each bar carries
//! its session's tag (`A`, `B`, …; the legend names them) and its value after its end, so the
//! chart reads without colours; on a terminal the sessions also get a colour each.

use ratatui::{
    buffer::Buffer,
    layout::{Direction, Rect},
    style::{Color, Style},
    text::Line,
    widgets::{Bar, BarChart, BarGroup, Widget},
};

use super::diff::{basis_exits, basis_time, Cell, Diff};
use crate::text::printable;

/// How to draw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChartOptions {
    /// Columns of the output (the bars get what the labels and values leave).
    pub width: u16,
    /// Most reasons per chart (the largest); the rest are counted below it.
    pub top: usize,
    /// ANSI colours per session (for a terminal).
    pub color: bool,
}

impl Default for ChartOptions {
    fn default() -> Self {
        ChartOptions {
            width: 80,
            top: 12,
            color: false,
        }
    }
}

/// Bars are scaled so the longest value is this, keeping ratatui's integer arithmetic exact
/// enough (1 ppm) for rates below 1/s and without overflow for hours of handling time.
const SCALE: f64 = 1_000_000.0;

/// Fewest columns the bars get, however narrow the terminal.
const MIN_BARS: u16 = 10;

/// Session colours (ANSI 256-colour indexes), cycled.
const PALETTE: [u8; 6] = [39, 214, 170, 76, 203, 250];

/// One chart's data: per reason, its name and one value per session.
struct Series {
    title: String,
    groups: Vec<(String, Vec<f64>)>,
    fmt: fn(f64) -> String,
    /// After each value: "/s" on the per-second basis.
    unit: &'static str,
}

/// Both charts, the legend first.
pub fn render_chart(d: &Diff, o: &ChartOptions) -> String {
    let per_s = d.per_second();
    let mut out = String::new();
    for (i, sd) in d.sessions.iter().enumerate() {
        let dur = if sd.duration_s > 0.0 {
            format!(" ({:.1} s)", sd.duration_s)
        } else {
            String::new()
        };
        // The colour key, when there are colours; the tags name the bars either way.
        let key = if o.color {
            paint(i, "■ ")
        } else {
            String::new()
        };
        let line = format!("{} {}{dur}", sd.tag, printable(&sd.label));
        out.push_str(&format!("{key}{}\n", wrap(&line, o.width)));
    }
    for n in &d.notes {
        out.push_str(&wrap(&format!("note: {n}"), o.width));
        out.push('\n');
    }
    let exits = |c: &Cell| basis_exits(c, per_s);
    let time = |c: &Cell| basis_time(c, per_s);
    let (per, totals) = if per_s {
        (" per second", "")
    } else {
        ("", " (totals)")
    };
    let unit = if per_s { "/s" } else { "" };
    let series = [
        Series {
            title: format!("Exits{per}, by reason{totals}"),
            groups: groups(d, &exits, true),
            fmt: si,
            unit,
        },
        Series {
            title: format!("Exit-handling time{per}, by reason (HLT excluded: idle){totals}"),
            groups: groups(d, &time, false),
            fmt: duration,
            unit,
        },
    ];
    for s in &series {
        out.push('\n');
        out.push_str(&chart(s, d.sessions.len(), o));
    }
    out
}

/// Per reason, one value per session (`hlt`: keep HLT, named as idle).
fn groups(d: &Diff, v: &dyn Fn(&Cell) -> f64, hlt: bool) -> Vec<(String, Vec<f64>)> {
    d.reasons
        .iter()
        .filter(|r| hlt || !r.hlt)
        .map(|r| {
            let name = printable(&r.name);
            let name = if r.hlt {
                format!("{name} (idle)")
            } else {
                name.into_owned()
            };
            (name, r.sessions.iter().map(v).collect())
        })
        .collect()
}

/// One chart: its title, the bars with their values, and how many reasons were left out.
fn chart(s: &Series, sessions: usize, o: &ChartOptions) -> String {
    let mut groups: Vec<&(String, Vec<f64>)> = s
        .groups
        .iter()
        .filter(|(_, v)| v.iter().any(|x| *x > 0.0))
        .collect();
    let peak = |g: &&(String, Vec<f64>)| g.1.iter().copied().fold(0.0, f64::max);
    groups.sort_by(|a, b| peak(b).total_cmp(&peak(a)).then_with(|| a.0.cmp(&b.0)));
    let left_out = groups.len().saturating_sub(o.top);
    groups.truncate(o.top);
    let mut out = format!("{}\n", s.title);
    let max = groups.iter().map(peak).fold(0.0, f64::max);
    if max <= 0.0 {
        out.push_str("(nothing to draw: no exits)\n");
        return out;
    }
    let name_w = groups
        .iter()
        .map(|g| g.0.chars().count())
        .max()
        .unwrap_or(0);
    let values: Vec<Vec<String>> = groups
        .iter()
        .map(|g| g.1.iter().map(|v| (s.fmt)(*v) + s.unit).collect())
        .collect();
    let value_w = values.iter().flatten().map(String::len).max().unwrap_or(0) as u16 + 1;
    let tags: Vec<String> = (0..sessions).map(super::diff::tag).collect();
    let mut chart = BarChart::default()
        .direction(Direction::Horizontal)
        .bar_width(1)
        .bar_gap(0)
        .group_gap(1);
    for g in &groups {
        let bars: Vec<Bar> =
            g.1.iter()
                .enumerate()
                .map(|(i, v)| {
                    let name = if i == 0 { g.0.as_str() } else { "" };
                    let bar = Bar::default()
                        .value((v / max * SCALE).round() as u64)
                        .label(Line::from(format!("{name:<name_w$} {}", tags[i])))
                        // The value goes after the bar's end, not over its start.
                        .text_value(String::new());
                    if o.color {
                        bar.style(Style::default().fg(color(i)))
                    } else {
                        bar
                    }
                })
                .collect();
        chart = chart.data(BarGroup::default().bars(&bars));
    }
    let label_w = (name_w + 1 + tags.iter().map(String::len).max().unwrap_or(1)) as u16;
    let width = o.width.saturating_sub(value_w).max(label_w + 1 + MIN_BARS);
    let height = (groups.len() * (sessions + 1)) as u16;
    let area = Rect::new(0, 0, width, height);
    let mut buf = Buffer::empty(area);
    chart.render(area, &mut buf);
    // The last row is the gap after the last group.
    for (y, line) in (0..height - 1).zip(lines(&buf, o.color)) {
        out.push_str(&line);
        let (gi, bi) = (y as usize / (sessions + 1), y as usize % (sessions + 1));
        if let Some(v) = values.get(gi).and_then(|v| v.get(bi)) {
            out.push(' ');
            out.push_str(v);
        }
        out.push('\n');
    }
    if left_out > 0 {
        out.push_str(&format!("({left_out} smaller reasons not drawn)\n"));
    }
    out
}

/// The buffer's rows as text, trailing blanks cut; with ANSI colours when `color`.
fn lines(buf: &Buffer, color: bool) -> Vec<String> {
    let a = buf.area;
    (a.top()..a.bottom())
        .map(|y| {
            let mut l = String::new();
            let mut fg = Color::Reset;
            for x in a.left()..a.right() {
                let c = &buf[(x, y)];
                if color && c.fg != fg {
                    fg = c.fg;
                    l.push_str(&match fg {
                        Color::Indexed(n) => format!("\x1b[38;5;{n}m"),
                        _ => "\x1b[39m".into(),
                    });
                }
                l.push_str(c.symbol());
            }
            if color && fg != Color::Reset {
                l.push_str("\x1b[39m");
            }
            l.trim_end().to_string()
        })
        .collect()
}

/// `text` broken at spaces into lines of at most `width` columns (a longer word keeps its
/// own line), the later ones indented by two.
fn wrap(text: &str, width: u16) -> String {
    let width = usize::from(width).max(20);
    let mut lines: Vec<String> = vec![String::new()];
    for word in text.split(' ') {
        let last = lines.last_mut().expect("one line");
        let used = last.chars().count();
        if used > 2 && used + 1 + word.chars().count() > width {
            lines.push(format!("  {word}"));
        } else {
            if used > 0 {
                last.push(' ');
            }
            last.push_str(word);
        }
    }
    lines.join("\n")
}

fn color(i: usize) -> Color {
    Color::Indexed(PALETTE[i % PALETTE.len()])
}

/// `text` in session `i`'s colour.
fn paint(i: usize, text: &str) -> String {
    match color(i) {
        Color::Indexed(n) => format!("\x1b[38;5;{n}m{text}\x1b[39m"),
        _ => text.to_string(),
    }
}

/// `x` with 3 significant digits (whole numbers as they are) and `unit`.
fn digits(x: f64, unit: &str) -> String {
    let p = match x.abs() {
        _ if x.fract() == 0.0 && x.abs() < 1000.0 => 0,
        a if a >= 100.0 => 0,
        a if a >= 10.0 => 1,
        _ => 2,
    };
    format!("{x:.p$}{unit}")
}

/// `v` in the largest of `units` (divisor, name; largest first) it reaches, else in `base`.
fn scaled(v: f64, units: [(f64, &str); 3], base: &str) -> String {
    let (div, unit) = units
        .into_iter()
        .find(|(d, _)| v.abs() >= *d)
        .unwrap_or((1.0, base));
    digits(v / div, unit)
}

/// With k / M / G.
fn si(v: f64) -> String {
    scaled(v, [(1e9, "G"), (1e6, "M"), (1e3, "k")], "")
}

/// A duration in ns with its unit.
fn duration(ns: f64) -> String {
    scaled(ns, [(1e9, "s"), (1e6, "ms"), (1e3, "µs")], "ns")
}
