//! Live and replay TUI: app state (this file), input (input.rs), drawing (draw.rs,
//! screens.rs, hist.rs, heat_draw.rs, shared pieces in widgets.rs; heatmap history in heat.rs), replay and recording (replay.rs, sampler.rs), advice (advice.rs) and
//! the terminal loop (run.rs). The App owns every View it draws; the sampler only sends Samples.

mod advice;
mod draw;
pub(crate) mod fmt;
mod heat;
mod heat_draw;
mod hist;
mod input;
mod replay;
mod rips;
mod run;
mod sampler;
mod screens;
mod slow;
mod slow_draw;
mod spark;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_advice;
#[cfg(test)]
mod tests_heat;
#[cfg(test)]
mod tests_names;
#[cfg(test)]
mod tests_readme;
#[cfg(test)]
mod tests_session;
#[cfg(test)]
mod tests_slow;
#[cfg(test)]
mod tests_state;
mod user;
mod widgets;

use std::time::Duration;

use crate::{
    advice::HostFacts,
    decode::ExitNames,
    model::{self, sort_rows, Model, Row, SortKey, View, VmView},
    sample::Sample,
};

pub use run::{require_terminal, run, run_replay, run_with, RunOptions};
pub use sampler::RecInfo;

/// What the caller of [`App::on_key`] must do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    None,
    Quit,
    SetInterval(Duration),
    /// Replay: stop or resume reading frames.
    Pause(bool),
    /// Replay: pause and move this many frames.
    Step(i64),
    /// Replay: show frame i.
    Seek(usize),
    /// Start or stop recording the live session.
    ToggleRecord,
}

/// The sampler's message for a sample it could not read (sampler.rs, `tick`).
fn is_source_error(status: &str) -> bool {
    status.starts_with("source: ")
}

/// Refresh intervals offered by `+`/`-` (kvm_stat allows 0.1–25.5 s; faster is noise).
const INTERVALS_MS: [u64; 8] = [250, 500, 1000, 2000, 3000, 5000, 7500, 10_000];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Screen {
    Vms,
    Vm(u32),
    Vcpu(u32, u32),
    Hist(HistTarget),
    /// Time × latency of a reason or of all exits (heat.rs).
    Heat(heat::HeatTarget),
    Advice(u32),
    /// The slow-exit log (slow.rs).
    Slow,
}

/// One reason of one VM, optionally of one vCPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct HistTarget {
    pid: u32,
    vcpu: Option<u32>,
    isa: u32,
    reason: u32,
}

/// Something a cursor can rest on. Held by identity, so rows re-sorted by a new sample do
/// not move the cursor to another row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Item {
    Vm(u32),
    Reason(u32, u32),
    Vcpu(u32),
    /// An advice finding, by its packed rule id (`advice::rule_key`).
    Finding(u32),
    /// A slow exit, by its exit time and thread.
    Slow(u64, u32),
}

#[derive(Clone, Copy, Debug)]
struct Level {
    screen: Screen,
    sel: Option<Item>,
}

pub struct App {
    names: ExitNames,
    describe: String,
    /// First sample seen: a replay's "since start" falls back to it after seeking before a
    /// reset.
    first: Option<Sample>,
    baseline: Option<Sample>,
    prev: Option<Sample>,
    last: Option<Sample>,
    /// Newest sample that arrived while paused, and how many did.
    queued: Option<Sample>,
    missed: u64,
    interval_view: View,
    /// Keeps `interval_view` between refreshes, to update it in place. Both models keep the
    /// vCPU rows of the VMs in `shown` only (input.rs).
    model: Model,
    total_view: View,
    /// The same for `total_view` (which is whole each time, but reuses its buffers).
    total_model: Model,
    /// The VMs a screen on the stack shows, ascending.
    shown: Vec<u32>,
    sparks: spark::Sparks,
    /// The heatmap history of the VM on screen.
    heat: heat::Heat,
    since_start: bool,
    paused: bool,
    sort: SortKey,
    filter: String,
    /// Some while the filter is being typed.
    editing: Option<String>,
    help: bool,
    interval: Duration,
    stack: Vec<Level>,
    status: Option<String>,
    /// The status line is news, not an error (drawn green, not red).
    status_info: bool,
    /// Some when the source is a recording.
    replay: Option<replay::Replay>,
    /// The recording in progress.
    rec: Option<RecInfo>,
    advice: Option<advice::Cached>,
    /// The selected finding's details are shown.
    expanded: bool,
    /// Facts advice needs about the host; None: this host's, read when first needed.
    host: Option<HostFacts>,
    /// The slow exits seen so far (a replay's: up to its position).
    slow: slow::SlowLog,
}

impl App {
    pub fn new(names: ExitNames, describe: String) -> App {
        App {
            names,
            describe,
            first: None,
            baseline: None,
            prev: None,
            last: None,
            queued: None,
            missed: 0,
            interval_view: View::default(),
            model: Model::folded(),
            total_view: View::default(),
            total_model: Model::folded(),
            shown: Vec::new(),
            sparks: Default::default(),
            heat: Default::default(),
            since_start: false,
            paused: false,
            sort: SortKey::Count,
            filter: String::new(),
            editing: None,
            help: false,
            interval: Duration::from_secs(1),
            stack: vec![Level {
                screen: Screen::Vms,
                sel: None,
            }],
            status: None,
            status_info: false,
            replay: None,
            rec: None,
            advice: None,
            expanded: false,
            host: None,
            slow: Default::default(),
        }
    }

    /// Host facts for advice (tests and replays: not this host's).
    pub fn with_host(mut self, host: HostFacts) -> App {
        self.host = Some(host);
        self
    }

    /// The refresh interval shown in the header (the sampler's, set by [`run`]).
    pub fn with_interval(mut self, interval: Duration) -> App {
        self.interval = interval;
        self
    }

    /// A new cumulative sample. While paused it is held back, and the interval after resuming
    /// spans the whole pause.
    pub fn on_sample(&mut self, s: Sample) {
        // A paused replay reads nothing; what arrives is a step the user asked for.
        if self.paused && self.replay.is_none() {
            // A sample's slow exits are those since the one before: keep the held-back ones'.
            let mut s = s;
            if let Some(q) = self.queued.take() {
                s.slow.splice(0..0, q.slow);
            }
            self.queued = Some(s);
            self.missed += 1;
            return;
        }
        // A failed read is over once a read succeeds; other errors (a recording that could not
        // start or stopped, a kernel notice) stay until a key is pressed or news replaces them.
        if !self.status_info && self.status.as_deref().is_some_and(is_source_error) {
            self.status = None;
        }
        if self.baseline.is_none() {
            self.baseline = Some(s.clone());
            self.first = Some(s.clone());
        }
        self.slow.push(&s, &self.names);
        self.prev = self.last.replace(s);
        self.recompute();
        if let Some(l) = &self.last {
            self.sparks.push(l);
        }
        self.push_heat();
        self.refresh_advice(false);
    }

    /// A source failure: shown in the status line; sampling goes on.
    pub fn on_error(&mut self, msg: String) {
        self.status = Some(msg);
        self.status_info = false;
    }

    /// News for the status line (e.g. a recording saved); stays until the next message.
    pub fn on_info(&mut self, msg: String) {
        self.status = Some(msg);
        self.status_info = true;
    }

    /// The recording in progress changed (None: stopped).
    pub fn on_rec(&mut self, rec: Option<RecInfo>) {
        self.rec = rec;
    }

    /// What to print after the terminal is restored: where the recording in progress was
    /// saved (quitting finishes it), as a path that works from any directory.
    pub fn quit_notice(&self) -> Option<String> {
        let rec = self.rec.as_ref()?;
        let path = std::path::absolute(&rec.path).unwrap_or_else(|_| rec.path.clone());
        Some(format!(
            "recording saved: {} ({} frames, {})",
            crate::text::printable(&path.display().to_string()),
            rec.frames,
            fmt::bytes(rec.bytes)
        ))
    }

    /// The source has no more samples. A replay stays on its last frame, paused, and shows
    /// the whole recording: its last interval alone is often empty (the VM was stopping).
    pub fn on_end(&mut self) {
        if let Some(r) = &mut self.replay {
            self.paused = true;
            // Already there (`.` or `}` on the last frame): the view is the user's by now.
            if std::mem::replace(&mut r.ended, true) {
                return;
            }
            if !self.since_start {
                self.since_start = true;
                r.total_at_end = true;
                self.recompute();
            }
            self.on_info(replay::END_NOTICE.into());
        } else {
            self.on_info("end of samples; q to quit".into());
        }
    }

    fn recompute(&mut self) {
        let Some(last) = &self.last else { return };
        let empty = Sample::default();
        // First sample: counts since attach, no rates yet.
        let older = self.prev.as_ref().unwrap_or(&empty);
        // The interval view feeds the sparklines too, and costs what changed; the since-start
        // one only its screen, and is a full model pass, so it waits until `t` asks for it.
        self.model
            .refresh(&mut self.interval_view, older, last, &self.names);
        if self.since_start {
            let base = self.baseline.as_ref().unwrap_or(&empty);
            self.total_model
                .refresh(&mut self.total_view, base, last, &self.names);
        }
    }

    pub(in crate::tui) fn view(&self) -> &View {
        if self.since_start {
            &self.total_view
        } else {
            &self.interval_view
        }
    }

    fn level(&self) -> Level {
        self.stack.last().copied().unwrap_or(Level {
            screen: Screen::Vms,
            sel: None,
        })
    }

    fn matches(&self, s: &str) -> bool {
        self.filter.is_empty() || s.to_lowercase().contains(&self.filter.to_lowercase())
    }

    /// VMs after filter (VM name or any reason name) and sort.
    fn vms(&self) -> Vec<&VmView> {
        let mut vms: Vec<&VmView> = self
            .view()
            .vms
            .iter()
            .filter(|v| {
                self.matches(&v.name)
                    || v.reasons
                        .iter()
                        .chain(&v.userspace)
                        .any(|r| self.matches(&r.name))
            })
            .collect();
        model::sort_vms(&mut vms, self.sort);
        vms
    }

    fn vm(&self, pid: u32) -> Option<&VmView> {
        self.view().vms.iter().find(|v| v.pid == pid)
    }

    /// A table's rows after filter and sort: (non-HLT rows, HLT rows). A filter matching the
    /// VM's name keeps every row.
    fn ordered(&self, rows: &[Row], vm_name: &str) -> (Vec<Row>, Vec<Row>) {
        let all = self.filter.is_empty() || self.matches(vm_name);
        let mut rows: Vec<Row> = rows
            .iter()
            .filter(|r| all || self.matches(&r.name))
            .cloned()
            .collect();
        sort_rows(&mut rows, self.sort);
        rows.into_iter().partition(|r| !r.hlt)
    }

    /// The cursor's items on a screen, in display order.
    fn items(&self, screen: Screen) -> Vec<Item> {
        let reasons = |rows: &[Row], name: &str| {
            let (busy, hlt) = self.ordered(rows, name);
            busy.iter()
                .chain(&hlt)
                .map(|r| Item::Reason(r.isa, r.reason))
                .collect::<Vec<_>>()
        };
        match screen {
            Screen::Vms => self.vms().iter().map(|v| Item::Vm(v.pid)).collect(),
            Screen::Vm(pid) => self.vm(pid).map_or_else(Vec::new, |vm| {
                let mut items = reasons(&vm.reasons, &vm.name);
                items.extend(vm.vcpus.iter().map(|c| Item::Vcpu(c.vcpu)));
                items
            }),
            Screen::Vcpu(pid, v) => self
                .vm(pid)
                .and_then(|vm| Some((vm, vm.vcpus.iter().find(|c| c.vcpu == v)?)))
                .map_or_else(Vec::new, |(vm, c)| reasons(&c.reasons, &vm.name)),
            Screen::Hist(_) | Screen::Heat(_) => Vec::new(),
            Screen::Advice(pid) => self.finding_items(pid),
            Screen::Slow => self.slow_items(),
        }
    }

    /// Index of the cursor on the current screen (first item when unset or gone).
    fn cursor(&self, items: &[Item]) -> usize {
        let sel = self.level().sel;
        sel.and_then(|s| items.iter().position(|i| *i == s))
            .unwrap_or(0)
    }

    fn selected(&self) -> Option<Item> {
        let items = self.items(self.level().screen);
        items.get(self.cursor(&items)).copied()
    }

    /// Sparkline data: the target's rate per interval, oldest first.
    fn rate_history(&self, t: &HistTarget) -> Vec<f64> {
        self.sparks.history(t)
    }
}
