//! The slow-exit pane's state: a bounded history of the exits the kernel logged (newest
//! last), kept in step with a replay's position, and its keys. Drawing is in slow_draw.rs;
//! the decoding of each event is report::slow's.

use std::collections::VecDeque;

use super::{App, Item, Level, Screen};
use crate::{
    decode::ExitNames,
    report::slow::{line, Line},
    sample::{Sample, SlowEvent},
};

/// Most events the pane keeps; older ones are forgotten (and counted).
pub(super) const CAP: usize = 10_000;

pub(super) struct Held {
    pub ev: SlowEvent,
    pub line: Line,
    /// The line's VM name came from a sample that knew the VM (else it is "pid N").
    named: bool,
}

#[derive(Default)]
pub(super) struct SlowLog {
    /// Oldest first.
    held: VecDeque<Held>,
    /// Events forgotten to stay within CAP.
    pub evicted: u64,
    /// A replay seeked forward over frames whose events were never read: the history lacks
    /// the events after this time (CLOCK_MONOTONIC ns) up to the seek's target.
    pub gap_after: Option<u64>,
    /// `mono_ns` of the newest sample whose events were taken.
    last_ns: Option<u64>,
    /// A replay jump's origin (frame index, its time) until its new position arrives.
    pub pending: Option<(usize, u64)>,
}

impl SlowLog {
    /// Takes the events `s` carries, unless its sample was taken already.
    pub fn push(&mut self, s: &Sample, names: &ExitNames) {
        if self.last_ns.is_some_and(|t| s.mono_ns <= t) {
            return;
        }
        self.last_ns = Some(s.mono_ns);
        // The ring buffer orders them by entry (an event is sent when its exit ends): by exit
        // time within the sample, as the pane lists them.
        let mut evs = s.slow.clone();
        evs.sort_by_key(|e| e.exit_ns);
        for e in &evs {
            self.held.push_back(Held {
                ev: *e,
                line: line(s, e, names),
                named: s.vms.contains_key(&e.tgid),
            });
        }
        // An exit logged before discovery named its VM (a VM started while kvmprof runs)
        // takes the name once a sample knows it, as `report --slow` does.
        for h in self.held.iter_mut().filter(|h| !h.named) {
            if let Some(vm) = s.vms.get(&h.ev.tgid) {
                h.line.vm_name.clone_from(&vm.name);
                h.named = true;
            }
        }
        while self.held.len() > CAP {
            self.held.pop_front();
            self.evicted += 1;
        }
    }

    /// A replay jumped to `cur`, preceded by `prev`: the events that ended after `cur` was
    /// taken are the future and go; `prev`'s and `cur`'s are taken if not held yet.
    pub fn jump(&mut self, prev: Option<&Sample>, cur: &Sample, names: &ExitNames) {
        if self.last_ns.is_some_and(|t| cur.mono_ns <= t) {
            self.held
                .retain(|h| h.ev.exit_ns.saturating_add(h.ev.took_ns) <= cur.mono_ns);
            self.last_ns = Some(cur.mono_ns);
        }
        if self.gap_after.is_some_and(|g| cur.mono_ns <= g) {
            self.gap_after = None;
        }
        if let Some(p) = prev {
            self.push(p, names);
        }
        self.push(cur, names);
    }

    /// After a jump from frame `from` (taken at `from_ns`) to frame `to`: `to`'s and the
    /// frame before's events are held, so a jump over more frames than that skipped some.
    pub fn jumped(&mut self, from: usize, from_ns: u64, to: usize) {
        if to > from + 2 && self.gap_after.is_none() {
            self.gap_after = Some(from_ns);
        }
    }

    /// Newest first.
    pub fn newest_first(&self) -> impl Iterator<Item = &Held> {
        self.held.iter().rev()
    }

    pub fn len(&self) -> usize {
        self.held.len()
    }
}

/// An event's identity for the cursor: (exit time, thread).
fn item(h: &Held) -> Item {
    Item::Slow(h.ev.exit_ns, h.ev.tid)
}

impl App {
    /// The held events that pass the filter (VM, reason or sub-reason), newest first.
    pub(super) fn slow_shown(&self) -> Vec<&Held> {
        self.slow
            .newest_first()
            .filter(|h| {
                self.matches(&h.line.vm_name)
                    || self.matches(&h.line.name)
                    || h.line.detail.as_deref().is_some_and(|d| self.matches(d))
            })
            .collect()
    }

    pub(super) fn slow_items(&self) -> Vec<Item> {
        self.slow_shown().into_iter().map(item).collect()
    }

    /// The event under the cursor.
    pub(super) fn slow_selected(&self) -> Option<&Held> {
        let shown = self.slow_shown();
        let items: Vec<Item> = shown.iter().map(|h| item(h)).collect();
        shown.get(self.cursor(&items)).copied()
    }

    /// `S`: the slow-exit pane, or back from it.
    pub(super) fn toggle_slow(&mut self) {
        if self.level().screen == Screen::Slow {
            self.back();
            return;
        }
        let sel = self.selected();
        if let Some(l) = self.stack.last_mut() {
            l.sel = sel;
        }
        self.stack.push(Level {
            screen: Screen::Slow,
            sel: None,
        });
        self.expanded = false;
    }
}
