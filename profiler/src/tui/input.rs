//! Keys, like kvm_stat and top. Handling only changes state; drawing happens after.

use std::time::Duration;

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::{Action, App, HistTarget, Item, Level, Screen, INTERVALS_MS};

impl App {
    pub fn on_key(&mut self, key: KeyEvent) -> Action {
        let a = self.handle_key(key);
        self.show_vms();
        a
    }

    /// After the stack may have changed: the views hold the vCPU rows of the VMs a screen on
    /// it shows, and no others' (a big host's other rows would cost most of a refresh).
    fn show_vms(&mut self) {
        let mut pids: Vec<u32> = (self.stack.iter())
            .filter_map(|l| Some(l.screen.scope()?.0))
            .collect();
        pids.sort_unstable();
        pids.dedup();
        if pids != self.shown {
            self.model.show_vcpu_rows(Some(&pids));
            self.total_model.show_vcpu_rows(Some(&pids));
            self.shown = pids;
            self.recompute();
        }
    }

    fn handle_key(&mut self, key: KeyEvent) -> Action {
        if key.kind == KeyEventKind::Release {
            return Action::None;
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && key.code == KeyCode::Char('c') {
            return Action::Quit;
        }
        if let Some(text) = &mut self.editing {
            match key.code {
                KeyCode::Enter => {
                    self.filter = std::mem::take(text);
                    self.editing = None;
                }
                KeyCode::Esc => {
                    self.filter.clear();
                    self.editing = None;
                }
                KeyCode::Backspace => {
                    text.pop();
                }
                KeyCode::Char(c) if !ctrl => text.push(c),
                _ => {}
            }
            return Action::None;
        }
        // An error has been seen once a key is pressed.
        if !self.status_info {
            self.status = None;
        }
        if self.help {
            // Any key closes the help; q still quits.
            self.help = false;
            return if key.code == KeyCode::Char('q') {
                Action::Quit
            } else {
                Action::None
            };
        }
        if let Some(a) = self.session_key(key.code) {
            return a;
        }
        // Both open one item in full with Enter and close it with Esc.
        let on_advice = matches!(self.level().screen, Screen::Advice(_));
        let expands = on_advice || self.level().screen == Screen::Slow;
        match key.code {
            KeyCode::Char('q') => return Action::Quit,
            KeyCode::Char('S') => self.toggle_slow(),
            KeyCode::Char('a') if on_advice => self.back(),
            KeyCode::Char('a') => self.open_advice(),
            KeyCode::Enter | KeyCode::Right | KeyCode::Char('l') | KeyCode::Char('e')
                if expands =>
            {
                self.expanded = !self.expanded;
            }
            KeyCode::Esc | KeyCode::Backspace | KeyCode::Left | KeyCode::Char('h')
                if expands && self.expanded =>
            {
                self.expanded = false;
            }
            KeyCode::Up | KeyCode::Char('k') => self.step(-1),
            KeyCode::Down | KeyCode::Char('j') => self.step(1),
            KeyCode::PageUp => self.step(-10),
            KeyCode::PageDown => self.step(10),
            KeyCode::Home | KeyCode::Char('g') => self.step(isize::MIN / 2),
            KeyCode::End | KeyCode::Char('G') => self.step(isize::MAX / 2),
            KeyCode::Enter | KeyCode::Right | KeyCode::Char('l') => self.drill(),
            KeyCode::Esc | KeyCode::Backspace | KeyCode::Left | KeyCode::Char('h') => {
                if self.stack.len() > 1 {
                    self.back();
                } else if key.code == KeyCode::Esc {
                    self.filter.clear();
                }
            }
            KeyCode::Char('m') => self.toggle_heatmap(),
            KeyCode::Char('s') => self.sort = self.sort.next(),
            KeyCode::Char('t') => {
                self.since_start = !self.since_start;
                // The user's choice now, not the end of a replay's (replay.rs, leave_end).
                if let Some(r) = &mut self.replay {
                    r.total_at_end = false;
                    if self.status.as_deref() == Some(super::replay::END_NOTICE) {
                        self.status = Some(super::replay::END_PLAIN.into());
                    }
                }
                self.recompute();
            }
            KeyCode::Char('r') => {
                // Reset, like kvm_stat: "since start" restarts from now.
                self.baseline = self.last.clone();
                self.recompute();
                self.refresh_advice(true);
            }
            KeyCode::Char('/') => self.editing = Some(self.filter.clone()),
            KeyCode::Char('?') => self.help = true,
            KeyCode::Char(' ') | KeyCode::Char('p') => self.toggle_pause(),
            KeyCode::Char('+') | KeyCode::Char('=') => return self.change_interval(1),
            KeyCode::Char('-') => return self.change_interval(-1),
            _ => {}
        }
        Action::None
    }

    pub(super) fn back(&mut self) {
        if self.stack.len() > 1 {
            self.stack.pop();
        }
        self.expanded = false;
    }

    fn toggle_pause(&mut self) {
        self.paused = !self.paused;
        if !self.paused {
            self.missed = 0;
            if let Some(s) = self.queued.take() {
                self.on_sample(s);
            }
        }
    }

    fn change_interval(&mut self, dir: i32) -> Action {
        let ms = self.interval.as_millis() as u64;
        let next = if dir > 0 {
            INTERVALS_MS.iter().find(|&&i| i > ms)
        } else {
            INTERVALS_MS.iter().rev().find(|&&i| i < ms)
        };
        match next {
            Some(&i) => {
                self.interval = Duration::from_millis(i);
                Action::SetInterval(self.interval)
            }
            None => Action::None,
        }
    }

    fn step(&mut self, by: isize) {
        let items = self.items(self.level().screen);
        if items.is_empty() {
            return;
        }
        let at = self.cursor(&items) as isize;
        let to = (at.saturating_add(by)).clamp(0, items.len() as isize - 1) as usize;
        if let Some(l) = self.stack.last_mut() {
            l.sel = Some(items[to]);
        }
    }

    fn drill(&mut self) {
        let Some(item) = self.selected() else { return };
        let next = match (self.level().screen, item) {
            (Screen::Vms, Item::Vm(pid)) => Screen::Vm(pid),
            (Screen::Vm(pid), Item::Vcpu(v)) => Screen::Vcpu(pid, v),
            (Screen::Vm(pid), Item::Reason(isa, reason)) => Screen::Hist(HistTarget {
                pid,
                vcpu: None,
                isa,
                reason,
            }),
            (Screen::Vcpu(pid, v), Item::Reason(isa, reason)) => Screen::Hist(HistTarget {
                pid,
                vcpu: Some(v),
                isa,
                reason,
            }),
            _ => return,
        };
        // Remember the cursor of this level, so going back lands on the same row.
        if let Some(l) = self.stack.last_mut() {
            l.sel = Some(item);
        }
        self.stack.push(Level {
            screen: next,
            sel: None,
        });
    }
}
