//! The histogram screen's guest RIPs: where in the guest one reason's exits came from
//! (sampled, one exit in 64), and how many of them in the guest kernel.

use ratatui::{
    buffer::Buffer,
    layout::Rect,
    text::Line,
    widgets::{Block, Borders, Paragraph, Widget},
};

use profiler_common::ev;

use super::fmt;
use crate::model::{rips::GuestRips, VmView};

/// The RIPs of reason (isa, reason) of `vm`, if any were sampled in the span.
pub(super) fn of(vm: &VmView, isa: u32, reason: u32) -> Option<&GuestRips> {
    // The (isa, basic code) the kernel keyed the samples by.
    let (isa, base) = ev::rip_reason(ev::rip_flags(isa, reason)?);
    vm.guest_rips
        .iter()
        .find(|g| g.isa == isa && g.reason == base)
}

/// Rows the block takes: a title line and a line per RIP.
pub(super) fn height(g: &GuestRips) -> u16 {
    1 + g.top.len() as u16
}

/// `per_vcpu`: the screen is one vCPU's, the RIPs are the whole VM's.
pub(super) fn draw(g: &GuestRips, per_vcpu: bool, area: Rect, buf: &mut Buffer) {
    let title = format!(
        " guest RIPs{} · {} sampled (1 in {} exits) · guest kernel {}% ",
        if per_vcpu { " of all vCPUs" } else { "" },
        fmt::count(g.samples),
        g.sample_every,
        fmt::pct(g.kernel_pct),
    );
    let lines: Vec<Line> = g
        .top
        .iter()
        .map(|r| {
            Line::from(format!(
                "  {:#018x}  {:<6} {:>9} {:>6}%",
                r.rip,
                r.mode,
                fmt::count(r.samples),
                fmt::pct(r.pct)
            ))
        })
        .collect();
    let block = Block::new().borders(Borders::TOP).title(title);
    let inner = block.inner(area);
    block.render(area, buf);
    Paragraph::new(lines).render(inner, buf);
}
