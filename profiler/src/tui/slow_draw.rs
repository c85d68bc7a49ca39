//! Screen: the slow-exit log (state in slow.rs): what was lost above the list, the events
//! newest first, and the selected one in full under it (Enter).

use ratatui::{
    buffer::Buffer,
    layout::{Constraint, Layout, Rect},
    style::Stylize,
    text::{Line, Span},
    widgets::{Block, Borders, Cell, Paragraph, Row as TRow, Widget, Wrap},
};

use super::{
    fmt,
    slow::{Held, CAP},
    widgets::{r, render_table, table},
    App,
};
use crate::{report::slow::Line as SlowLine, text::printable};
use profiler_common::counter::SLOW_DROPPED;

/// A wall time as "12:00:41.123456" (UTC, as the rest of the TUI).
fn clock(wall_ns: u64, format: &str) -> String {
    jiff::Timestamp::from_nanosecond(i128::from(wall_ns))
        .map_or_else(|_| wall_ns.to_string(), |t| t.strftime(format).to_string())
}

fn rip(l: &SlowLine) -> String {
    match (l.rip, l.guest_mode) {
        (Some(r), Some(m)) => format!("{r:#x} {m}"),
        _ => "-".into(),
    }
}

/// What the pane does not list: events the kernel dropped, the pane forgot, or a seek skipped.
fn losses(app: &App) -> Vec<Line<'static>> {
    let mut out = Vec::new();
    let dropped = match (&app.first, &app.last) {
        (Some(f), Some(l)) => l
            .counter(SLOW_DROPPED)
            .saturating_sub(f.counter(SLOW_DROPPED)),
        _ => 0,
    };
    if dropped > 0 {
        out.push(
            Line::from(format!(
                " {dropped} dropped by the rate limit, see --slow-rate"
            ))
            .red()
            .bold(),
        );
    }
    if app.slow.evicted > 0 {
        out.push(
            Line::from(format!(
                " {} older ones forgotten (the pane keeps the last {CAP}; report --slow on a recording lists all)",
                app.slow.evicted
            ))
            .yellow(),
        );
    }
    if app.slow.gap_after.is_some() {
        out.push(
            Line::from(" a seek skipped frames: their slow exits are not listed (seek back before them and play to list them)")
                .yellow(),
        );
    }
    out
}

pub(super) fn slow_screen(app: &App, area: Rect, buf: &mut Buffer) {
    let shown = app.slow_shown();
    let items = app.slow_items();
    let cur = app.cursor(&items);
    let notes = losses(app);
    let expanded = app.expanded && !shown.is_empty();
    let (list_c, rest_c) = if expanded {
        (
            Constraint::Length((area.height / 3).max(4)),
            Constraint::Fill(1),
        )
    } else {
        (Constraint::Fill(1), Constraint::Length(0))
    };
    let [head, list, rest] =
        Layout::vertical([Constraint::Length(notes.len() as u16), list_c, rest_c]).areas(area);
    Paragraph::new(notes).render(head, buf);

    // Narrow terminals leave out the RIP and the CPUs (Enter shows them) and the µs.
    let wide = area.width >= 120;
    let rows: Vec<TRow> = shown
        .iter()
        .map(|h| {
            let l = &h.line;
            let mut cells = vec![
                Cell::from(clock(
                    l.wall_ns,
                    if wide { "%H:%M:%S%.6f" } else { "%H:%M:%S%.3f" },
                )),
                Cell::from(printable(&l.vm_name).into_owned()),
                r(l.vcpu.to_string()),
                Cell::from(printable(&l.name).into_owned()),
                r(fmt::dur(l.took_ns)),
                Cell::from(printable(l.detail.as_deref().unwrap_or("-")).into_owned()),
            ];
            if wide {
                cells.push(Cell::from(rip(l)));
                cells.push(r(format!("{}→{}", l.exit_cpu, l.entry_cpu)));
            }
            TRow::new(cells)
        })
        .collect();
    let held = app.slow.len();
    let n = shown.len();
    let title = match (n, held) {
        (0, 0) => " slow exits · none logged yet (kvmprof --slow sets the threshold) ".into(),
        (0, _) => format!(" slow exits · none of {held} match the filter "),
        _ if n < held => {
            format!(" slow exits · {n} of {held} (filter) · newest first · Enter: details ")
        }
        _ => format!(" slow exits · {n} · newest first · Enter: details "),
    };
    let mut widths = vec![
        Constraint::Length(if wide { 15 } else { 12 }),
        Constraint::Fill(1),
        Constraint::Length(4),
        Constraint::Fill(1),
        Constraint::Length(7),
        Constraint::Fill(2),
    ];
    let mut header = vec![
        "Time (UTC)",
        " VM",
        "vCPU",
        " Reason",
        "Took",
        " Sub-reason",
    ];
    if wide {
        widths.extend([Constraint::Length(25), Constraint::Length(7)]);
        header.extend([" Guest RIP", "CPUs"]);
    }
    let t =
        table(rows, widths, &header).block(Block::new().borders(Borders::TOP).title(title).bold());
    render_table(t, (n > 0).then_some(cur), list, buf);
    if expanded {
        if let Some(h) = app.slow_selected() {
            details(h, rest, buf);
        }
    }
}

/// Every field of one event, with names.
fn details(h: &Held, area: Rect, buf: &mut Buffer) {
    let (l, e) = (&h.line, &h.ev);
    let field = |k: &str, v: String| {
        Line::from(vec![Span::from(format!(" {k:<12} ")).bold(), Span::from(v)])
    };
    let lines = vec![
        field("wall time", clock(l.wall_ns, "%Y-%m-%d %H:%M:%S%.9f UTC")),
        field(
            "VM",
            format!("{} (pid {})", printable(&l.vm_name), l.vm_pid),
        ),
        field("vCPU", format!("{} (thread {})", l.vcpu, l.tid)),
        field(
            "reason",
            format!("{} ({} {:#x})", printable(&l.name), l.isa, l.reason),
        ),
        field(
            "took",
            format!("{} ({} ns)", fmt::dur(l.took_ns), l.took_ns),
        ),
        field(
            "where",
            match (l.wait_ns, l.blocked_ns) {
                (Some(w), Some(b)) => format!(
                    "on a CPU {}, waiting for a CPU {}, asleep {}",
                    fmt::dur(l.took_ns.saturating_sub(w + b)),
                    fmt::dur(w),
                    fmt::dur(b)
                ),
                _ => "not split (--no-sched-split, or recorded before format 5)".into(),
            },
        ),
        field(
            "sub-reason",
            printable(l.detail.as_deref().unwrap_or("none logged")).into_owned(),
        ),
        field(
            "raw detail",
            format!(
                "kind {} flags {:#x} value {:#x}",
                e.detail_kind, e.detail_flags, e.detail_a
            ),
        ),
        field(
            "guest RIP",
            match (l.rip, l.guest_mode) {
                (Some(r), Some(m)) => format!("{r:#018x} (guest {m} half)"),
                _ => "not given by this kernel's kvm_exit".into(),
            },
        ),
        field(
            "host CPU",
            format!("{} at the exit, {} at the entry", l.exit_cpu, l.entry_cpu),
        ),
        field(
            "monotonic",
            format!("exit {} ns, entry {} ns", e.exit_ns, l.entry_mono_ns),
        ),
    ];
    Paragraph::new(lines)
        .block(
            Block::new()
                .borders(Borders::TOP)
                .title(" event · Enter/Esc: hide ")
                .bold(),
        )
        .wrap(Wrap { trim: false })
        .render(area, buf);
}
