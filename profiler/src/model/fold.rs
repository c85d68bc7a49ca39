//! Folded VMs: a kept view holds the vCPU rows of the VMs on screen only. A host of 64 VMs ×
//! 16 vCPUs × 40 reasons has 40 960 vCPU rows, and the TUI shows one VM's at most; filling the
//! others (percentiles, shares, order) was half of a refresh. A folded VM keeps its VM rows
//! (the sums of its vCPUs' deltas), its vCPUs and their totals (exits, rate, overhead, CPU)
//! and its userspace tables: only its vCPUs' reason tables are empty. A whole view folds as it
//! is computed (the since-start view, a changed set of VMs shown), a view kept in place as it
//! is updated.

use profiler_common::ISA_USERSPACE;

use super::{
    compute::{shows, vcpu_rates, Span},
    lookup::Finds,
    refresh::{add_to, Model},
    View, VmView,
};
use crate::sample::Key;

/// Empties the vCPU reason tables of the VMs not in `open` (what a [`Model`] that shows only
/// those VMs' vCPU rows keeps of a whole view).
pub fn fold_view(view: &mut View, open: &[u32]) {
    for vm in view.vms.iter_mut().filter(|v| !open.contains(&v.pid)) {
        for c in &mut vm.vcpus {
            c.reasons.clear();
        }
    }
}

impl Model {
    /// A model whose views hold no vCPU rows until [`Model::show_vcpu_rows`] says whose.
    pub fn folded() -> Model {
        let mut m = Model::new();
        m.show_vcpu_rows(Some(&[]));
        m
    }

    /// The VMs whose vCPU rows the views hold from now on (None: every VM's, the default).
    /// A change makes the next refresh compute the view whole.
    pub fn show_vcpu_rows(&mut self, open: Option<&[u32]>) {
        let open = open.map(|o| {
            let mut o = o.to_vec();
            o.sort_unstable();
            o.dedup();
            o
        });
        if open != self.open {
            self.open = open;
            self.at = None;
        }
    }

    pub(super) fn is_open(&self, pid: u32) -> bool {
        shows(self.open.as_deref(), pid)
    }

    /// The keys `run` (ascending, one vCPU's, or one thread's userspace keys) of a folded VM:
    /// their deltas straight into the VM sums in `ctx.agg` and their vCPU's totals, the keys
    /// not quiet into `self.run_active`, the VM into `dirty_user` if it has userspace keys.
    /// Returns how many vCPU and userspace keys it had; None when a key vanished or its vCPU
    /// is not in the view (then the view is computed whole). A key that came since the view
    /// was whole needs no row here (its VM row must exist: the caller checks).
    pub(super) fn fold_run(
        &mut self,
        vm: &mut VmView,
        run: &[Key],
        sp: &Span,
        f: &mut Finds,
    ) -> Option<(usize, usize)> {
        self.run_active.clear();
        let (mut rows, mut user, mut exits, mut busy) = (0, 0, 0, 0);
        for k in run {
            if k.isa == ISA_USERSPACE {
                user += 1;
                if self.dirty_user.last() != Some(&k.tgid) {
                    self.dirty_user.push(k.tgid);
                }
                continue;
            }
            let ir = (k.isa, k.reason);
            let (d, hist, inf_before) = f.fold(k, &mut self.ctx.agg)?;
            rows += 1;
            exits += d.count;
            if !sp.names.is_hlt(k.isa, k.reason) {
                busy += d.total_ns;
            }
            // What the row held before: the older sample's exits in flight (the row of a view
            // computed up to it).
            if inf_before != 0 {
                add_to(&mut self.inf_before, ir, inf_before);
            }
            if d.active(hist) {
                self.run_active.push(*k);
            }
        }
        if rows > 0 {
            let vcpu = run[0].vcpu;
            let ci = vm.vcpus.binary_search_by_key(&vcpu, |c| c.vcpu).ok()?;
            // The rows not in the run are quiet.
            let c = &mut vm.vcpus[ci];
            c.exits = exits;
            vcpu_rates(c, busy, sp);
        }
        Some((rows, user))
    }
}
