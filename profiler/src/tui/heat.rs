//! The heatmap's history: per refresh, the latency bands of the rows of the one VM on screen
//! (and of the one vCPU, when a vCPU's screen is open), taken from the interval view the
//! refresh computed anyway. Nothing is kept for the other VMs, so a refresh costs the shown
//! VM's rows (tens), not the host's (40 960 at kvmprof-bench's scale); the history of a VM
//! starts when its screen is opened, and a replay's restarts where it jumps.
//!
//! Memory bound: [`HISTORY`] columns, each with at most (the VM's reasons + one vCPU's
//! reasons) rows of at most [`heatmap::BANDS`] (35) cells of 16 bytes: with 40 reasons,
//! 60 × 80 × 35 × 16 B ≈ 2.7 MB at worst; a few kB per column in practice (an exit reason
//! spans a few octaves).

use std::collections::VecDeque;

use super::{spark::HISTORY, App, Screen};
use crate::{
    heatmap::{self, Cells},
    model::{Row, View},
};

/// What a heatmap shows: one reason of a VM (or of one of its vCPUs), or all its exits but
/// HLT (`reason` None, or `all`: `m` switches, keeping the reason to switch back to).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) struct HeatTarget {
    pub pid: u32,
    pub vcpu: Option<u32>,
    /// (isa, reason).
    pub reason: Option<(u32, u32)>,
    pub all: bool,
}

impl HeatTarget {
    /// The reason shown; None: all exits but HLT.
    pub(super) fn shown(&self) -> Option<(u32, u32)> {
        self.reason.filter(|_| !self.all)
    }
}

/// One row's cells in one interval: ((isa, reason), HLT, cells).
type RowCells = ((u32, u32), bool, Cells);

struct Column {
    start_ns: u64,
    end_ns: u64,
    /// The VM's rows (all vCPUs).
    vm: Vec<RowCells>,
    /// The vCPU whose rows `cpu` holds, if one was on screen.
    vcpu: Option<u32>,
    cpu: Vec<RowCells>,
}

#[derive(Default)]
pub(super) struct Heat {
    pid: Option<u32>,
    /// Oldest first, at most HISTORY.
    cols: VecDeque<Column>,
}

/// A target's heatmap: per interval (oldest first) its start and end (monotonic ns) and cells.
pub(super) type Grid = Vec<(u64, u64, Cells)>;

impl Heat {
    pub(super) fn clear(&mut self) {
        self.cols.clear();
    }

    /// The interval `start_ns`..`end_ns` of `view` (an interval view), for the VM and vCPU
    /// on screen; another VM starts the history anew.
    fn push(&mut self, view: &View, (start_ns, end_ns): (u64, u64), pid: u32, vcpu: Option<u32>) {
        if self.pid != Some(pid) {
            self.cols.clear();
            self.pid = Some(pid);
        }
        let vm = view.vms.iter().find(|v| v.pid == pid);
        let rows = |rows: &[Row]| -> Vec<RowCells> {
            rows.iter()
                .map(|r| ((r.isa, r.reason), r.hlt, heatmap::cells(&r.hist)))
                .filter(|r| !r.2.is_empty())
                .collect()
        };
        let cpu = vcpu.and_then(|v| vm?.vcpus.iter().find(|c| c.vcpu == v));
        if self.cols.len() >= HISTORY {
            self.cols.pop_front();
        }
        self.cols.push_back(Column {
            start_ns,
            end_ns,
            vm: vm.map_or_else(Vec::new, |v| rows(&v.reasons)),
            vcpu,
            cpu: cpu.map_or_else(Vec::new, |c| rows(&c.reasons)),
        });
    }

    /// The target's cells per interval, oldest first: for a vCPU, the intervals since its
    /// screen was opened.
    pub(super) fn grid(&self, t: &HeatTarget) -> Grid {
        if self.pid != Some(t.pid) {
            return Vec::new();
        }
        let cols: Vec<&Column> = match t.vcpu {
            None => self.cols.iter().collect(),
            Some(v) => {
                let run = self
                    .cols
                    .iter()
                    .rev()
                    .take_while(|c| c.vcpu == Some(v))
                    .count();
                self.cols.iter().skip(self.cols.len() - run).collect()
            }
        };
        cols.into_iter()
            .map(|c| {
                let rows = if t.vcpu.is_some() { &c.cpu } else { &c.vm };
                let mut cells = Cells::new();
                for (k, hlt, r) in rows {
                    let wanted = match t.shown() {
                        Some(want) => *k == want,
                        None => !hlt,
                    };
                    if wanted {
                        heatmap::add_cells(&mut cells, r);
                    }
                }
                (c.start_ns, c.end_ns, cells)
            })
            .collect()
    }
}

impl Screen {
    /// The VM (and vCPU) this screen shows.
    pub(super) fn scope(self) -> Option<(u32, Option<u32>)> {
        match self {
            Screen::Vm(pid) | Screen::Advice(pid) => Some((pid, None)),
            Screen::Vcpu(pid, v) => Some((pid, Some(v))),
            Screen::Hist(t) => Some((t.pid, t.vcpu)),
            Screen::Heat(t) => Some((t.pid, t.vcpu)),
            Screen::Vms | Screen::Slow => None,
        }
    }
}

impl App {
    /// The VM (and vCPU) on screen, whose heatmap history is kept.
    fn heat_scope(&self) -> Option<(u32, Option<u32>)> {
        self.level().screen.scope()
    }

    /// Adds the interval just computed to the heatmap history of the VM on screen.
    pub(super) fn push_heat(&mut self) {
        let (Some(p), Some(l)) = (&self.prev, &self.last) else {
            return;
        };
        if let Some((pid, vcpu)) = self.heat_scope() {
            let span = (p.mono_ns, l.mono_ns);
            self.heat.push(&self.interval_view, span, pid, vcpu);
        }
    }

    /// `m`: the heatmap of the row or histogram on screen; on a heatmap, switches between
    /// its reason and all the VM's (or vCPU's) exits but HLT.
    pub(super) fn toggle_heatmap(&mut self) {
        use super::{Item, Level};
        let (screen, sel) = (self.level().screen, self.selected());
        let next = match (screen, sel) {
            (Screen::Hist(t), _) => Screen::Heat(HeatTarget {
                pid: t.pid,
                vcpu: t.vcpu,
                reason: Some((t.isa, t.reason)),
                all: false,
            }),
            (Screen::Heat(t), _) => {
                if let Some(l) = self.stack.last_mut() {
                    l.screen = Screen::Heat(HeatTarget {
                        all: !t.all && t.reason.is_some(),
                        ..t
                    });
                }
                return;
            }
            (Screen::Vm(pid), Some(Item::Reason(isa, reason))) => Screen::Heat(HeatTarget {
                pid,
                vcpu: None,
                reason: Some((isa, reason)),
                all: false,
            }),
            (Screen::Vm(pid), _) => Screen::Heat(HeatTarget {
                pid,
                vcpu: None,
                reason: None,
                all: true,
            }),
            (Screen::Vcpu(pid, v), sel) => Screen::Heat(HeatTarget {
                pid,
                vcpu: Some(v),
                reason: match sel {
                    Some(Item::Reason(isa, reason)) => Some((isa, reason)),
                    _ => None,
                },
                all: false,
            }),
            _ => return,
        };
        if let Some(l) = self.stack.last_mut() {
            l.sel = sel;
        }
        self.stack.push(Level {
            screen: next,
            sel: None,
        });
    }
}
