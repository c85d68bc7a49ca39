//! The screens for returns to the VMM: the VM's table of them, and the whole screen for hosts
//! whose KVM emits no kvm_exit.

use ratatui::{
    buffer::Buffer,
    layout::{Constraint, Layout, Rect},
    style::Stylize,
    text::{Line, Span, Text},
    widgets::{Block, Borders, Cell, Paragraph, Row as TRow, Widget, Wrap},
};

use super::fmt::{self, host_cpu};
use super::widgets::{opt_dur, r, render_table, section, shown, table};
use super::{App, Item, Screen};
use crate::{model::Row, text::printable};

const USER_ONLY: &str = "Only returns to the VMM are visible: this host's KVM backend emits no \
kvm_exit events (e.g. software PVM), so in-kernel exit handling cannot be timed.";

pub(super) fn userspace_table(rows: &[Row], area: Rect, buf: &mut Buffer) {
    let rows: Vec<TRow> = rows.iter().map(user_cells).map(TRow::new).collect();
    let t = table(rows, user_widths(), &USER_HEAD).block(section(
        " returns to VMM (time until the next KVM_RUN) ".into(),
    ));
    render_table(t, None, area, buf);
}

const USER_HEAD: [&str; 6] = ["Reason", "Count", "Rate/s", "In VMM", "Avg", "Max"];

fn user_widths() -> Vec<Constraint> {
    vec![
        Constraint::Fill(1),
        Constraint::Length(7),
        Constraint::Length(7),
        Constraint::Length(7),
        Constraint::Length(6),
        Constraint::Length(6),
    ]
}

fn user_cells(x: &Row) -> Vec<Cell<'static>> {
    vec![
        Cell::from(shown(&x.name)),
        r(fmt::count(x.count)),
        r(fmt::rate(x.rate_per_s)),
        r(opt_dur(x, x.total_ns)),
        r(if x.timed == 0 {
            "-".into()
        } else {
            fmt::durf(x.mean_ns)
        }),
        r(opt_dur(x, x.max_ns)),
    ]
}

/// Why only returns to the VMM are shown (three lines at 80 columns).
pub(super) fn no_kvm_exit_note(area: Rect, buf: &mut Buffer) {
    Paragraph::new(USER_ONLY)
        .yellow()
        .wrap(Wrap { trim: true })
        .block(
            Block::new()
                .borders(Borders::TOP)
                .title(" no kvm_exit seen "),
        )
        .render(area, buf);
}

/// Hosts whose KVM backend never emits kvm_exit: show what is visible, and say why.
pub(super) fn userspace_only(app: &App, area: Rect, buf: &mut Buffer) {
    let [note, rest] = Layout::vertical([Constraint::Length(3), Constraint::Fill(1)]).areas(area);
    no_kvm_exit_note(note, buf);
    let mut rows = Vec::new();
    // The cursor rests on the selected VM's name row (Enter opens that VM).
    let items = app.items(Screen::Vms);
    let selected = items.get(app.cursor(&items));
    let mut sel = None;
    for vm in app.vms() {
        // A VM without returns in the span keeps its name row: every VM the cursor can
        // reach is drawn.
        let (user, _) = app.ordered(&vm.userspace, &vm.name);
        if selected == Some(&Item::Vm(vm.pid)) {
            sel = Some(rows.len());
        }
        let mut head = vec![Line::from(vec![
            Span::from(shown(&vm.name)).bold(),
            Span::from(format!("  pid {}", vm.pid)),
        ])];
        // On such hosts the host CPU is the only cost visible: lines of its own under the
        // name, the split on the second, so that 80 columns show it whole.
        let cpu = host_cpu(vm.host_cpu);
        let (total, split) = cpu.split_once(" (").unwrap_or((&cpu, ""));
        let mut lines = vec![total.to_string()];
        // The split's parts, as many on a line as the column holds.
        for (i, part) in split.trim_end_matches(')').split(" + ").enumerate() {
            let last = lines
                .last_mut()
                .filter(|l| i > 0 && l.len() + 3 + part.len() <= 38);
            match (i, last) {
                (_, Some(l)) => *l = format!("{l} + {part}"),
                (0, None) => lines.push(part.to_string()),
                (_, None) => lines.push(format!("+ {part}")),
            }
        }
        for part in lines.iter().filter(|p| !p.is_empty()) {
            head.push(Line::from(format!("  {part}")).italic());
        }
        let height = head.len() as u16;
        rows.push(TRow::new(vec![Cell::from(Text::from(head))]).height(height));
        rows.extend(user.iter().map(|x| {
            let mut cells = user_cells(x);
            cells[0] = Cell::from(format!("  {}", printable(&x.name)));
            TRow::new(cells)
        }));
    }
    let mut head = USER_HEAD;
    head[0] = "VM / reason";
    let t = table(rows, user_widths(), &head)
        .block(section(" returns to VMM per VM · Enter: the VM ".into()));
    render_table(t, sel, rest, buf);
}
