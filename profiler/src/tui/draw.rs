//! Frame layout: header, body (one screen), status line, footer, help overlay.
//! `Widget for &App`: drawing reads state and never changes it.

use ratatui::{
    buffer::Buffer,
    layout::{Constraint, Layout, Rect},
    style::{Color, Style, Stylize},
    text::{Line, Span},
    widgets::{Block, Clear, Paragraph, Widget},
};

use super::{advice, fmt, heat_draw, screens, slow_draw, widgets::centered, App, Screen};
use crate::text::{is_unsafe, printable};

/// The keys, as the help shows them; README.md's key table lists the same keys row by row
/// (tests_readme.rs).
pub(super) const KEYS: &[(&str, &str)] = &[
    ("↑/↓ j/k PgUp/PgDn g/G", "move (g/G: first / last)"),
    ("Enter l →", "drill down: VM → exits/vCPUs → histogram"),
    ("Esc h ←", "back (Esc on the VM list: clear filter)"),
    ("m", "heatmap: time × latency of the reason (m: all exits)"),
    ("s", "cycle sort: count, time, max, mean, p99, name"),
    ("/", "filter by VM or reason name (Enter apply, Esc clear)"),
    (
        "t r",
        "last interval / since start; r: since start from now",
    ),
    ("space p", "freeze / resume the view (replay: play / pause)"),
    ("+ -", "refresh interval (0.25 s .. 10 s; live only)"),
    ("a", "advice for the VM (Enter/e: a finding's details)"),
    ("S", "slow exits, newest first (Enter/e: one in full)"),
    ("R", "record the live session to a file / stop"),
    (". ,", "replay: step one frame forward / back"),
    ("[ ] 0-9", "replay: seek -/+10 %, or to 0 %..90 %"),
    ("{ } x", "replay: start / end; x: speed 1×, 4×, 16×"),
    ("?", "this help (any key closes)"),
    ("q Ctrl-C", "quit (a recording is finished first)"),
];

/// What the columns mean, below the keys in the help.
pub(super) const LEGEND: &[(&str, &str)] = &[
    (
        "Samples% Time%",
        "share of non-HLT exits / of non-HLT handling time",
    ),
    ("HLT", "idle time: listed apart with its own share"),
    ("overhead", "non-HLT handling time per vCPU-second"),
    (
        "CPU% VMM% vhost%",
        "host CPU, % of a core: all / non-vCPU threads / vhost",
    ),
    (
        "Steal% Wait% Sleep%",
        "vCPU runnable, no host CPU; of exit time: that / asleep",
    ),
];

impl Widget for &App {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let status_h = u16::from(self.status.is_some());
        let timeline_h = u16::from(self.replay.is_some());
        let [head, body, status, timeline, foot] = Layout::vertical([
            Constraint::Length(1),
            Constraint::Fill(1),
            Constraint::Length(status_h),
            Constraint::Length(timeline_h),
            Constraint::Length(1),
        ])
        .areas(area);
        self.header(head, buf);
        self.body(body, buf);
        if let Some(s) = &self.status {
            let style = if self.status_info {
                Style::new().green().bold()
            } else {
                Style::new().red().bold()
            };
            Line::styled(format!(" {}", printable(s)), style).render(status, buf);
        }
        self.timeline(timeline, buf);
        self.footer(foot, buf);
        if self.help {
            help(area, buf);
        }
        // ratatui writes control characters through to the terminal. Names are escaped where
        // they are drawn; this catches any string that was not, so no text from a VM or a
        // file can send terminal sequences (layout stays: a cell keeps one column).
        for cell in &mut buf.content {
            if cell.symbol().chars().any(is_unsafe) {
                let kept: String = cell.symbol().chars().filter(|c| !is_unsafe(*c)).collect();
                cell.set_symbol(if kept.is_empty() { " " } else { &kept });
            }
        }
    }
}

impl App {
    /// One line: what is shown (source, replay host), then the view's state (interval mode,
    /// sort, filter, pause). When it does not fit, the source's details go first (elapsed or
    /// the recording time), then its name is shortened: the state always stays visible.
    fn header(&self, area: Rect, buf: &mut Buffer) {
        let elapsed = match (&self.baseline, &self.last) {
            (Some(b), Some(l)) => crate::model::span_ns(b, l) as f64 / 1e9,
            _ => 0.0,
        };
        let mode = if self.since_start {
            format!("since start {}", fmt::secs(self.view().duration_s))
        } else {
            format!("last {}", fmt::secs(self.view().duration_s))
        };
        let sep = || Span::from(" │ ").dark_gray();
        let mut lead = vec![Span::from(" kvmprof ").bold().reversed(), Span::from(" ")];
        // The recording indicator first: it must never be cut off.
        if let Some(rec) = self.rec_span() {
            lead.push(rec);
            lead.push(Span::from(" "));
        }
        // (what may be shortened, what goes first when the line is too long)
        let (source, detail) = match self.replay_header() {
            Some((badge, host, when)) => {
                lead.push(badge);
                (host, when)
            }
            None => (
                printable(&self.describe).into_owned(),
                format!("elapsed {}", fmt::secs(elapsed)),
            ),
        };
        let mut state = vec![
            sep(),
            Span::from(mode),
            sep(),
            Span::from(format!("sort {}", self.sort.label())),
        ];
        // The slow-exit pane's key, once it has something to show.
        if self.slow.len() > 0 {
            state.push(sep());
            state.push(Span::from(format!("S: {} slow", self.slow.len())).magenta());
        }
        if !self.filter.is_empty() {
            state.push(sep());
            state.push(Span::from(format!("filter \"{}\"", printable(&self.filter))).yellow());
        }
        // A replay shows its state on the timeline.
        if self.paused && self.replay.is_none() {
            state.push(Span::from(" "));
            let n = self.missed;
            let txt = if n > 0 {
                format!(" PAUSED ({n} new) ")
            } else {
                " PAUSED ".into()
            };
            state.push(Span::from(txt).black().on_yellow().bold());
        }
        let width = |spans: &[Span]| spans.iter().map(Span::width).sum::<usize>();
        let room = (area.width as usize).saturating_sub(width(&lead) + width(&state));
        let mut spans = lead;
        if source.chars().count() + 3 + detail.chars().count() <= room {
            spans.extend([Span::from(source), sep(), Span::from(detail)]);
        } else {
            spans.push(Span::from(fit(&source, room)));
        }
        spans.extend(state);
        Line::from(spans).render(area, buf);
    }

    fn body(&self, area: Rect, buf: &mut Buffer) {
        if self.last.is_none() {
            let msg = format!(
                "Waiting for the first sample from {} …",
                printable(&self.describe)
            );
            centered(msg, area, buf);
            return;
        }
        match self.level().screen {
            Screen::Vms => screens::vm_list(self, area, buf),
            Screen::Vm(pid) => screens::vm_detail(self, pid, area, buf),
            Screen::Vcpu(pid, v) => screens::vcpu_detail(self, pid, v, area, buf),
            Screen::Hist(t) => screens::histogram(self, &t, area, buf),
            Screen::Heat(t) => heat_draw::heatmap_screen(self, &t, area, buf),
            Screen::Advice(pid) => advice::advice_screen(self, pid, area, buf),
            Screen::Slow => slow_draw::slow_screen(self, area, buf),
        }
    }

    fn footer(&self, area: Rect, buf: &mut Buffer) {
        if let Some(text) = &self.editing {
            Line::from(vec![
                Span::from(" filter: ").yellow().bold(),
                Span::from(text.clone()),
                Span::from("▏").yellow(),
                Span::from("   Enter apply · Esc clear").dark_gray(),
            ])
            .render(area, buf);
            return;
        }
        let v = self.view();
        let sep = Span::from(" │ ").dark_gray();
        let every = fmt::secs(self.interval.as_secs_f64());
        let mut spans = vec![Span::from(match &self.replay {
            Some(r) => format!(" speed {}× · a frame every {every}", r.speed),
            None => format!(" every {every}"),
        })];
        spans.push(sep.clone());
        let (events, run_ns) = v
            .probe_cost
            .iter()
            .fold((0u64, 0u64), |(e, t), p| (e + p.events, t + p.run_time_ns));
        if v.probe_cost.is_empty() {
            spans.push(Span::from("probe cost n/a").dark_gray());
        } else if v.duration_s > 0.0 {
            let per = if events > 0 {
                run_ns as f64 / events as f64
            } else {
                0.0
            };
            let cpu = run_ns as f64 / (v.duration_s * 1e9) * 100.0;
            spans.push(Span::from(format!(
                "probes {}/ev {} ev/s CPU {:.2}%",
                fmt::durf(per),
                fmt::rate(events as f64 / v.duration_s),
                cpu
            )));
        } else {
            spans.push(Span::from("probes: measuring…").dark_gray());
        }
        let losses: Vec<_> = v
            .counters
            .losses()
            .into_iter()
            .filter(|l| l.1 > 0)
            .collect();
        if !losses.is_empty() {
            spans.push(sep.clone());
            for (i, (name, n)) in losses.iter().enumerate() {
                if i > 0 {
                    spans.push(Span::from(" "));
                }
                // Orphan entries are expected right after attach; everything else lost data.
                let style = if *name == "orphan_entry" {
                    Style::new().yellow()
                } else {
                    Style::new().fg(Color::White).bg(Color::Red).bold()
                };
                spans.push(Span::styled(format!("{name} {n}"), style));
            }
        }
        spans.push(sep);
        spans.push(Span::from("? help").dark_gray());
        Line::from(spans).render(area, buf);
    }
}

/// `s` cut to `room` columns, with "…" where it was cut.
fn fit(s: &str, room: usize) -> String {
    if s.chars().count() <= room {
        return s.to_string();
    }
    match room {
        0 => String::new(),
        n => s.chars().take(n - 1).chain(['…']).collect(),
    }
}

fn help(area: Rect, buf: &mut Buffer) {
    // 78 wide and 24 high: the whole help fits an 80x24 terminal.
    let w = area.width.min(78);
    let h = area.height.min((KEYS.len() + LEGEND.len()) as u16 + 2);
    let r = Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    );
    Clear.render(r, buf);
    let lines: Vec<Line> = KEYS
        .iter()
        .chain(LEGEND)
        .map(|(k, d)| {
            Line::from(vec![
                Span::from(format!(" {k:<10} ")).bold(),
                Span::from(*d),
            ])
        })
        .collect();
    Paragraph::new(lines)
        .block(
            Block::bordered()
                .title(" keys ")
                .title_bottom(" any key closes "),
        )
        .render(r, buf);
}
