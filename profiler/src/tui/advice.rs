//! The advice panel: one VM's findings from the enlightenment advisor, computed in the UI
//! thread over the "since start" span (baseline → latest sample), at most every
//! REFRESH_NS of sample time while the panel is open, and the selected one's details.

use ratatui::{
    buffer::Buffer,
    layout::{Constraint, Layout, Rect},
    style::{Style, Stylize},
    text::{Line, Span},
    widgets::{Block, Borders, Cell, Paragraph, Row as TRow, Widget, Wrap},
};

use super::{
    fmt,
    widgets::{centered, render_table, table},
    App, Item, Level, Screen,
};
use crate::advice::{analyze, Finding, HostFacts, Input, Report, Severity, VmReport};
use crate::text::printable;

/// Sample time between recomputations while the panel is open: the rules look at rates over
/// the whole span, so a few seconds more changes little.
const REFRESH_NS: u64 = 5_000_000_000;

pub(super) struct Cached {
    report: Report,
    /// mono_ns of the samples it was computed from.
    base_ns: u64,
    last_ns: u64,
}

/// A rule id ("R07", "L02", "P2") packed into an `Item` (ids are at most 4 bytes).
pub(super) fn rule_key(rule: &str) -> u32 {
    rule.bytes().take(4).fold(0, |k, b| k << 8 | u32::from(b))
}

fn severity_style(s: Severity) -> Style {
    match s {
        Severity::Critical => Style::new().red().bold(),
        Severity::Warn => Style::new().yellow().bold(),
        Severity::Info => Style::new().cyan(),
    }
}

impl App {
    /// `a`: the advice panel of the VM under the cursor (or of the screen's VM).
    pub(super) fn open_advice(&mut self) {
        let sel = self.selected();
        let pid = match (self.level().screen, sel) {
            (Screen::Vms, Some(Item::Vm(pid))) => pid,
            (Screen::Vm(pid) | Screen::Vcpu(pid, _), _) => pid,
            (Screen::Hist(t), _) => t.pid,
            _ => return,
        };
        if let Some(l) = self.stack.last_mut() {
            l.sel = sel;
        }
        self.stack.push(Level {
            screen: Screen::Advice(pid),
            sel: None,
        });
        self.expanded = false;
        self.refresh_advice(true);
    }

    /// Recompute the report if the advice panel is open and it is stale (or `force`).
    pub(super) fn refresh_advice(&mut self, force: bool) {
        if !matches!(self.level().screen, Screen::Advice(_)) {
            return;
        }
        let (Some(base), Some(last)) = (&self.baseline, &self.last) else {
            return;
        };
        let fresh = self.advice.as_ref().is_some_and(|c| {
            c.base_ns == base.mono_ns && last.mono_ns.abs_diff(c.last_ns) < REFRESH_NS
        });
        if fresh && !force {
            return;
        }
        let replay = self.replay.as_ref();
        let host = self.host.get_or_insert_with(|| match replay {
            // Only what the recording says about its host; the rest stays unknown.
            Some(r) => HostFacts::of_recording(&r.header.host, &r.header.kernel, r.header.cpus),
            None => HostFacts::local(),
        });
        let input = Input::from_samples(base, last, &self.names, host.clone());
        self.advice = Some(Cached {
            report: analyze(&input),
            base_ns: base.mono_ns,
            last_ns: last.mono_ns,
        });
    }

    fn vm_report(&self, pid: u32) -> Option<&VmReport> {
        let c = self.advice.as_ref()?;
        c.report.vms.iter().find(|v| v.pid == pid)
    }

    /// Findings most severe first (the engine's order within a severity).
    pub(super) fn findings(&self, pid: u32) -> Vec<&Finding> {
        let mut f: Vec<&Finding> = self
            .vm_report(pid)
            .map(|v| v.findings.iter().collect())
            .unwrap_or_default();
        f.sort_by_key(|x| std::cmp::Reverse(x.severity));
        f
    }

    pub(super) fn finding_items(&self, pid: u32) -> Vec<Item> {
        self.findings(pid)
            .iter()
            .map(|f| Item::Finding(rule_key(&f.rule)))
            .collect()
    }
}

/// Screen: the advice panel.
pub(super) fn advice_screen(app: &App, pid: u32, area: Rect, buf: &mut Buffer) {
    let Some(vm) = app.vm_report(pid) else {
        centered(
            format!("No advice for pid {pid} (no samples yet, or the VM is gone; Esc: back)"),
            area,
            buf,
        );
        return;
    };
    let findings = app.findings(pid);
    let items = app.items(Screen::Advice(pid));
    let cur = app.cursor(&items);
    let span_s = match (&app.baseline, &app.last) {
        (Some(b), Some(l)) => crate::model::span_ns(b, l) as f64 / 1e9,
        _ => 0.0,
    };
    let notes: Vec<&String> = vm
        .notes
        .iter()
        .chain(app.advice.iter().flat_map(|c| &c.report.notes))
        .collect();
    let expanded = app.expanded && !findings.is_empty();
    let list_h = (findings.len() as u16 + 2).max(3);
    let (list_c, rest_c) = if expanded {
        (
            Constraint::Length(list_h.min(area.height / 3).max(4)),
            Constraint::Fill(1),
        )
    } else {
        (
            Constraint::Fill(1),
            Constraint::Length((notes.len() as u16).min(4)),
        )
    };
    let [summary, list, rest] =
        Layout::vertical([Constraint::Length(1), list_c, rest_c]).areas(area);

    let profile = vm.profile.as_deref().unwrap_or("none matched");
    Line::from(vec![
        Span::from(format!(" {}", printable(&vm.name))).bold(),
        // The guest description is the longest part: last, where a narrow terminal cuts.
        Span::from(format!(
            " › advice over {} since start · profile {profile} · guest {}",
            fmt::secs(span_s),
            printable(&vm.guest)
        )),
    ])
    .render(summary, buf);

    let rows: Vec<TRow> = findings
        .iter()
        .map(|f| {
            TRow::new(vec![
                Cell::from(Span::styled(f.severity.label(), severity_style(f.severity))),
                Cell::from(f.rule.clone()).bold(),
                Cell::from(format!(" {}", printable(&f.title))),
            ])
        })
        .collect();
    let n = findings.len();
    let title = if n == 0 {
        " findings · none: nothing to advise on this span ".to_string()
    } else if expanded {
        format!(" findings ({n}) · Enter/e: hide details ")
    } else {
        format!(" findings ({n}) · Enter/e: details ")
    };
    let widths = vec![
        Constraint::Length(8),
        Constraint::Length(4),
        Constraint::Fill(1),
    ];
    let t = table(rows, widths, &["Severity", "Rule", " Title"])
        .block(Block::new().borders(Borders::TOP).title(title).bold());
    render_table(t, (n > 0).then_some(cur), list, buf);

    if expanded {
        if let Some(f) = findings.get(cur) {
            details(f, rest, buf);
        }
    } else {
        let lines: Vec<Line> = notes
            .iter()
            .map(|n| Line::from(format!(" note: {}", printable(n))).dark_gray())
            .collect();
        Paragraph::new(lines)
            .wrap(Wrap { trim: true })
            .render(rest, buf);
    }
}

/// The selected finding: evidence, the QEMU and libvirt changes, effect and source.
fn details(f: &Finding, area: Rect, buf: &mut Buffer) {
    let label = |s: &'static str| Span::from(format!(" {s:<8} ")).bold();
    let mut lines = vec![Line::from(label("Evidence"))];
    lines.extend(
        f.evidence
            .iter()
            .map(|e| Line::from(format!("   • {}", printable(e)))),
    );
    let mut field = |name: &'static str, text: &str| {
        let text = if text.is_empty() { "-" } else { text };
        for (i, l) in text.lines().enumerate() {
            let head = if i == 0 {
                label(name)
            } else {
                Span::from(" ".repeat(10))
            };
            lines.push(Line::from(vec![
                head,
                Span::from(printable(l).into_owned()),
            ]));
        }
    };
    if !f.advice_host.is_empty() {
        field("host", &f.advice_host);
    }
    field("QEMU", &f.advice_qemu);
    field("libvirt", &f.advice_libvirt);
    field("Effect", &f.effect);
    field("Source", &f.source);
    let title = Line::from(vec![
        Span::from(format!(" {} ", f.rule)).bold(),
        Span::styled(f.severity.label(), severity_style(f.severity)),
        Span::from(" · details ").bold(),
    ]);
    Paragraph::new(lines)
        .wrap(Wrap { trim: false })
        .block(Block::new().borders(Borders::TOP).title(title))
        .render(area, buf);
}
