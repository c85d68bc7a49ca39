//! Small drawing pieces the screens share (below draw.rs, screens.rs and advice.rs, which
//! all use them, so none of those imports another back).

use ratatui::{
    buffer::Buffer,
    layout::{Constraint, Layout, Rect},
    widgets::{Paragraph, Widget, Wrap},
};

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
