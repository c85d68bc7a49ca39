//! Small drawing pieces the screens share (below draw.rs, screens.rs and advice.rs, which
//! all use them, so none of those imports another back).

use ratatui::{
    buffer::Buffer,
    layout::{Constraint, Layout, Rect},
    style::{Style, Stylize},
    text::Line,
    widgets::{
        Block, Borders, Cell, HighlightSpacing, Paragraph, Row as TRow, StatefulWidget, Table,
        TableState, Widget, Wrap,
    },
};

use super::fmt;
use crate::{model::Row, text::printable};

/// A message in the middle of `area`.
pub(super) fn centered(msg: impl Into<String>, area: Rect, buf: &mut Buffer) {
    let msg: String = msg.into();
    let lines = msg.lines().count() as u16;
    let [_, mid, _] = Layout::vertical([
        Constraint::Fill(1),
        Constraint::Length(lines + 1),
        Constraint::Fill(1),
    ])
    .areas(area);
    Paragraph::new(msg)
        .centered()
        .wrap(Wrap { trim: true })
        .render(mid, buf);
}

pub(super) fn r(s: String) -> Cell<'static> {
    Cell::from(Line::from(s).right_aligned())
}

/// A VM or reason name as the terminal may show it (see [`printable`]).
pub(super) fn shown(name: &str) -> String {
    printable(name).into_owned()
}

pub(super) fn section(title: String) -> Block<'static> {
    Block::new().borders(Borders::TOP).title(title).bold()
}

pub(super) fn table<'a>(
    rows: Vec<TRow<'a>>,
    widths: Vec<Constraint>,
    header: &[&'a str],
) -> Table<'a> {
    let header = TRow::new(header.iter().enumerate().map(|(i, h)| {
        // Names left (first column, or a leading space), numbers right, like perf's table.
        if i == 0 || h.starts_with(' ') {
            Cell::from(*h)
        } else {
            Cell::from(Line::from(*h).right_aligned())
        }
    }))
    .bold()
    .underlined();
    Table::new(rows, widths)
        .header(header)
        .row_highlight_style(Style::new().reversed())
        .highlight_symbol("▶ ")
        .highlight_spacing(HighlightSpacing::Always)
}

pub(super) fn render_table(t: Table, sel: Option<usize>, area: Rect, buf: &mut Buffer) {
    // A fresh state per frame: it only scrolls the selected row into view.
    let mut st = TableState::default().with_selected(sel);
    StatefulWidget::render(t, area, buf, &mut st);
}

pub(super) fn opt_dur(r: &Row, ns: u64) -> String {
    if r.timed == 0 {
        "-".into()
    } else {
        fmt::dur(ns)
    }
}
