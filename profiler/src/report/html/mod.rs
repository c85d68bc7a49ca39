//! The HTML report: one self-contained page (inline CSS and SVG, no script, no network) of one
//! session or of several side by side. Charts as in the talk this tool grew from: exits per
//! reason and exit-handling time per reason, one bar per session in each reason's group, for
//! all VMs and per VM; latency histograms and time × latency heatmaps of the top reasons where
//! the data has them; the advice findings with their evidence; and a table of the numbers,
//! each cell carrying its exact value in a `data-*` attribute (the same value
//! `report --format json` prints).
//!
//! One session and N sessions are the same code path: [`render`] takes a slice of labelled
//! sessions. Everything that comes from a session (VM names, reason names from perf text,
//! labels, advice text) is untrusted: the markup is built with maud, which escapes every
//! interpolated string, plotters' SVG backend escapes chart text, and the page's
//! Content-Security-Policy forbids scripts and every fetch, so even a mistake could not run
//! code or reach the network.

mod charts;
mod heat;
mod page;
mod series;
mod table;
#[cfg(test)]
mod tests;
mod write;

pub use heat::SHADES as HEAT_SHADES;
pub use write::{write, Output};

use super::Data;
use crate::advice;

/// One session of the page: its numbers, when they were computed its advice, and its
/// heatmap rows (None for perf text, which has no intervals).
#[derive(Clone, Debug, Default)]
pub struct Session {
    pub data: Data,
    pub advice: Option<advice::Report>,
    pub heat: Option<crate::heatmap::Series>,
}

/// Errors of the HTML report, one line each.
#[derive(Debug, thiserror::Error)]
pub enum HtmlError {
    #[error("cannot draw the chart '{title}': {why}")]
    Chart { title: String, why: String },
    #[error("{path}: cannot {action}: {cause}")]
    Io {
        path: String,
        action: &'static str,
        cause: std::io::Error,
    },
    #[error("{path} is not a regular file ({kind}): give -o a file path, or -o - for stdout")]
    NotRegular { path: String, kind: &'static str },
    #[error("--format html writes a whole page: give it a file with -o FILE (or -o - for stdout)")]
    NoOutput,
}

/// Session colors, in order (chart bars, legend, table). None of them is used for text,
/// axes or grid lines, so the browser test can find each session's bars by color.
pub const PALETTE: [(u8, u8, u8); 8] = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (188, 189, 34),
];

/// The color of session `i`.
pub fn color(i: usize) -> (u8, u8, u8) {
    PALETTE[i % PALETTE.len()]
}

/// The inline style of session `i`'s legend swatch.
pub fn swatch(i: usize) -> String {
    let (r, g, b) = color(i);
    format!("background:#{r:02x}{g:02x}{b:02x}")
}

/// The page for `sessions`, labelled (a path, or the user's `--label`), first is the base.
pub fn render(sessions: &[(String, Session)]) -> Result<String, HtmlError> {
    page::render(sessions)
}
