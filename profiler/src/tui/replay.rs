//! Replay and recording on the App side: replay state, its keys, the timeline bar and the
//! recording indicator. The sampler does the reading (sampler.rs); the App only asks.

use std::time::Duration;

use crossterm::event::KeyCode;
use ratatui::{
    buffer::Buffer,
    layout::Rect,
    style::Stylize,
    text::{Line, Span},
    widgets::Widget,
};

use super::{fmt, Action, App};
use crate::{sample::Sample, store::Header, text::printable};

/// Playback speeds `x` cycles through.
const SPEEDS: [u32; 3] = [1, 4, 16];

/// The status line at the end of a replay, which switches to "since start" (`on_end`).
pub(super) const END_NOTICE: &str =
    "end of recording · showing since start (t: last interval) · space: play again";
/// The same once the user has picked the view with `t`.
pub(super) const END_PLAIN: &str = "end of recording · space: play again";

pub(super) struct Replay {
    pub header: Header,
    /// Index of the shown frame, and the number of frames.
    pub pos: usize,
    pub len: usize,
    pub speed: u32,
    /// The last frame was reached.
    pub ended: bool,
    /// Reaching the end switched the view to "since start"; leaving the end switches back.
    pub total_at_end: bool,
}

impl Replay {
    /// The recording's own sampling interval (1 s when the header has none).
    fn recorded(&self) -> Duration {
        Duration::from_millis(if self.header.interval_ms == 0 {
            1000
        } else {
            self.header.interval_ms
        })
    }
}

impl App {
    /// The source is a recording of `len` frames made as `header` says.
    pub fn with_replay(mut self, header: Header, len: usize) -> App {
        let r = Replay {
            header,
            pos: 0,
            len,
            speed: 1,
            ended: false,
            total_at_end: false,
        };
        self.interval = r.recorded();
        self.replay = Some(r);
        self
    }

    /// The sampler's interval for this replay speed (recorded interval / speed).
    pub fn playback_interval(&self) -> Option<Duration> {
        let r = self.replay.as_ref()?;
        Some(r.recorded() / r.speed.max(1))
    }

    /// A replay now shows frame `pos` of `len`.
    pub fn on_position(&mut self, pos: usize, len: usize) {
        if let Some((from, from_ns)) = self.slow.pending.take() {
            self.slow.jumped(from, from_ns, pos);
        }
        if let Some(r) = &mut self.replay {
            r.pos = pos;
            r.len = len;
            if pos + 1 < len {
                self.leave_end();
            }
        }
    }

    /// The replay is no longer at its end (seek, step back, play again): the end's notice
    /// and the view it switched to go.
    fn leave_end(&mut self) {
        let Some(r) = &mut self.replay else { return };
        r.ended = false;
        if std::mem::take(&mut r.total_at_end) {
            self.since_start = false;
            self.recompute();
        }
        if matches!(self.status.as_deref(), Some(END_NOTICE | END_PLAIN)) {
            self.status = None;
        }
    }

    /// A replay jumped: `cur` follows `prev` (None: it is the first frame). The rate and
    /// heatmap histories restart, since the intervals before it are not this frame's past.
    pub fn on_jump(&mut self, prev: Option<Sample>, cur: Sample) {
        self.sparks.clear();
        self.heat.clear();
        // Where the jump came from, for on_position to tell whether frames were skipped.
        if let (Some(r), Some(l)) = (&self.replay, &self.last) {
            self.slow.pending = Some((r.pos, l.mono_ns));
        }
        self.slow.jump(prev.as_ref(), &cur, &self.names);
        let before_base = self
            .baseline
            .as_ref()
            .is_some_and(|b| b.mono_ns > cur.mono_ns);
        if before_base || self.baseline.is_none() {
            self.baseline = self.first.clone().or_else(|| Some(cur.clone()));
        }
        if self.first.is_none() {
            self.first = Some(cur.clone());
        }
        self.prev = prev;
        self.last = Some(cur);
        self.recompute();
        for s in [&self.prev, &self.last].into_iter().flatten() {
            self.sparks.push(s);
        }
        self.push_heat();
        self.refresh_advice(true);
    }

    /// Replay and recording keys; None: not one of them.
    pub(super) fn session_key(&mut self, code: KeyCode) -> Option<Action> {
        if code == KeyCode::Char('R') {
            return Some(Action::ToggleRecord);
        }
        let r = self.replay.as_mut()?;
        let last = r.len.saturating_sub(1);
        let tenth = (r.len / 10).max(1);
        let action = match code {
            KeyCode::Char(' ') | KeyCode::Char('p') => {
                self.paused = !self.paused;
                if !self.paused {
                    // Playing again (from the start if at the end): the end notice is stale.
                    self.leave_end();
                    self.status = None;
                }
                Action::Pause(self.paused)
            }
            KeyCode::Char('.') | KeyCode::Char(',') => {
                self.paused = true;
                Action::Step(if code == KeyCode::Char('.') { 1 } else { -1 })
            }
            KeyCode::Char(']') => Action::Seek((r.pos + tenth).min(last)),
            KeyCode::Char('[') => Action::Seek(r.pos.saturating_sub(tenth)),
            KeyCode::Char('{') => Action::Seek(0),
            KeyCode::Char('}') => Action::Seek(last),
            KeyCode::Char(c @ '0'..='9') => {
                let d = c.to_digit(10).unwrap_or(0) as usize;
                Action::Seek(r.len * d / 10)
            }
            KeyCode::Char('x') => {
                let at = SPEEDS.iter().position(|&s| s == r.speed).unwrap_or(0);
                r.speed = SPEEDS[(at + 1) % SPEEDS.len()];
                let d = r.recorded() / r.speed;
                self.interval = d;
                Action::SetInterval(d)
            }
            // The refresh interval is the recording's; x sets the speed.
            KeyCode::Char('+') | KeyCode::Char('=') | KeyCode::Char('-') => Action::None,
            _ => return None,
        };
        Some(action)
    }

    /// Header parts of a replay: its badge, where (host and kernel) and when it was recorded.
    pub(super) fn replay_header(&self) -> Option<(Span<'static>, String, String)> {
        let r = self.replay.as_ref()?;
        let h = &r.header;
        Some((
            Span::from(" REPLAY ").black().on_cyan().bold(),
            format!(" {} ({})", printable(&h.host), printable(&h.kernel)),
            format!("recorded {} UTC", fmt::utc(h.start_wall_ms)),
        ))
    }

    /// Header span of the recording in progress.
    pub(super) fn rec_span(&self) -> Option<Span<'static>> {
        let rec = self.rec.as_ref()?;
        let name = rec.path.file_name().map_or_else(
            || rec.path.display().to_string(),
            |n| n.to_string_lossy().into(),
        );
        Some(
            Span::from(format!(
                " ● REC {} {} frames {} ",
                printable(&name),
                rec.frames,
                fmt::bytes(rec.bytes)
            ))
            .white()
            .on_red()
            .bold(),
        )
    }

    /// The replay's timeline: state, speed, a progress bar, frame, and the frame's wall time.
    pub(super) fn timeline(&self, area: Rect, buf: &mut Buffer) {
        let Some(r) = &self.replay else { return };
        let state = if r.ended {
            Span::from(" ■ END ").black().on_yellow().bold()
        } else if self.paused {
            Span::from(" ❚❚ PAUSED ").black().on_yellow().bold()
        } else {
            Span::from(" ▶ PLAY ").black().on_green().bold()
        };
        let wall = self
            .last
            .as_ref()
            .map(|s| {
                if s.wall_ms > 0 {
                    s.wall_ms
                } else {
                    r.header.start_wall_ms
                }
            })
            .unwrap_or(r.header.start_wall_ms);
        let offset = wall.saturating_sub(r.header.start_wall_ms) as f64 / 1000.0;
        let right = format!(
            " {}/{} │ {} UTC (+{}) ",
            r.pos + 1,
            r.len,
            fmt::utc(wall),
            fmt::secs(offset)
        );
        let speed = format!(" {:>2}× ", r.speed);
        let used = 10 + speed.chars().count() + right.chars().count() + 2;
        let width = (area.width as usize).saturating_sub(used).max(4);
        let done = if r.len > 1 {
            (r.pos * (width - 1) + (r.len - 1) / 2) / (r.len - 1)
        } else {
            width - 1
        };
        let bar = format!(
            "{}●{}",
            "━".repeat(done),
            "─".repeat(width - 1 - done.min(width - 1))
        );
        Line::from(vec![
            state,
            Span::from(speed).bold(),
            Span::from(bar).cyan(),
            Span::from(right),
        ])
        .render(area, buf);
    }
}
