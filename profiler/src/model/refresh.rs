//! A view kept from one refresh to the next and updated in place. When the newer sample says
//! which keys changed since the older one ([`Sample::changed`]), only those keys, the keys
//! whose rows were not quiet before (they fall back to quiet) and the tables holding them are
//! recomputed: a refresh costs what changed, not what exists. Without that, every key is
//! recomputed in place, which saves the allocations of a whole view. What cannot be updated in
//! place (a key appeared or vanished, a VM's facts changed, a pair of samples that does not
//! follow the last one) is computed whole, reusing the old view's buffers.

use profiler_common::ISA_USERSPACE;

use super::{
    compute::{counters, names_source, probe_cost, sched_split, vcpu_totals, vm_totals, Ctx, Span},
    cpu::{host_cpu_of, vcpu_cpu},
    delta::{pack, Delta, DeltaRef},
    lookup::Finds,
    rows::{fill, quiet, refinish},
    span_ns, View,
};
use crate::{
    decode::ExitNames,
    sample::{union_sorted, Key, Sample},
};

/// What a view needs to be updated in place by the next refresh.
#[derive(Default)]
pub struct Model {
    pub(super) ctx: Ctx,
    /// `mono_ns` of the newer sample the view was last computed from.
    pub(super) at: Option<u64>,
    names: ExitNames,
    /// vCPU rows in the view.
    rows: usize,
    /// Keys of vCPU rows that are not quiet, ascending.
    active: Vec<Key>,
    /// VMs whose userspace rows are not all quiet.
    user_active: Vec<u32>,
    // Scratch space, kept for its capacity.
    touched: Vec<Key>,
    deltas: Vec<Delta>,
    /// In-flight count of the vCPU rows touched before the update, by (isa, reason), sorted.
    pub(super) inf_before: Vec<((u32, u32), u64)>,
    pub(super) dirty_user: Vec<u32>,
    moved: Vec<usize>,
    spare: Vec<super::Row>,
    pub(super) run_active: Vec<Key>,
    /// The (isa, reason) of each key of a vCPU's run, packed (a compact binary search).
    run_keys: Vec<u64>,
    /// The VMs whose vCPU rows the view holds, ascending (None: every VM's); the others'
    /// are folded (fold.rs).
    pub(super) open: Option<Vec<u32>>,
    /// Whole views computed (tests check the in-place path is the one taken).
    #[cfg(test)]
    pub(super) wholes: usize,
}

impl Model {
    pub fn new() -> Model {
        Model::default()
    }

    /// Makes `view` the view of `newer − older` (as [`super::compute`] would, less the vCPU
    /// rows of the VMs not shown: fold.rs). `view` must be the one this model last refreshed
    /// (or any view, the first time).
    pub fn refresh(&mut self, view: &mut View, older: &Sample, newer: &Sample, names: &ExitNames) {
        let sp = Span::new(older, newer, names, span_ns(older, newer));
        // The view shows `older` as its newer sample, with the same names and VMs.
        let follows =
            self.at == Some(older.mono_ns) && *names == self.names && older.vms == newer.vms;
        if !(follows && self.update(view, &sp)) {
            #[cfg(test)]
            {
                self.wholes += 1;
            }
            if self.names != *names {
                // Rows are named from the cache: it holds the old names.
                self.ctx.names = Default::default();
                self.names = names.clone();
            }
            *view = self
                .ctx
                .full(&sp, std::mem::take(view), self.open.as_deref());
            self.note(view);
        }
        self.at = Some(newer.mono_ns);
    }

    /// After a whole view: its rows, and which are not quiet (the folded ones' too).
    fn note(&mut self, view: &View) {
        self.rows = self.ctx.folded_rows;
        self.active.clear();
        self.active.extend_from_slice(&self.ctx.folded_active);
        self.user_active.clear();
        for vm in &view.vms {
            for c in &vm.vcpus {
                self.rows += c.reasons.len();
                let keys = c.reasons.iter().filter(|r| !quiet(r)).map(|r| Key {
                    tgid: vm.pid,
                    vcpu: c.vcpu,
                    isa: r.isa,
                    reason: r.reason,
                });
                self.active.extend(keys);
            }
            if !vm.userspace.iter().all(quiet) {
                self.user_active.push(vm.pid);
            }
        }
        self.active.sort_unstable();
    }

    /// Updates `view` in place; false when it cannot be (then part of it may be updated).
    fn update(&mut self, view: &mut View, sp: &Span) -> bool {
        let (older, newer) = (sp.older, sp.newer);
        let mut t = std::mem::take(&mut self.touched);
        t.clear();
        let all = match &newer.changed {
            Some(c) if c.since_ns == older.mono_ns => {
                if c.keys.is_sorted() {
                    union_sorted(c.keys.iter(), self.active.iter(), &mut t);
                } else {
                    t.extend_from_slice(&c.keys);
                    t.extend_from_slice(&self.active);
                    t.sort_unstable();
                    t.dedup();
                }
                false
            }
            _ => {
                union_sorted(newer.stats.keys(), newer.in_flight.keys(), &mut t);
                true
            }
        };
        let dense = all || t.len() * 8 > newer.stats.len();
        let mut f = Finds::new(sp, dense);
        let ok = self.update_keys(view, sp, &t, &mut f, all);
        self.touched = t;
        if !ok {
            return false;
        }
        for vm in &mut view.vms {
            vm.host_cpu = host_cpu_of(older, newer, vm.pid, &sp.reused);
            vm.guest_rips = super::rips::of_vm(older, newer, vm.pid, &sp.reused, sp.names);
            vcpu_cpu(older, newer, vm.pid, &sp.reused, &mut vm.vcpus);
        }
        view.duration_s = sp.secs;
        view.names_source = names_source(sp.names);
        view.counters = counters(older, newer);
        view.probe_cost = probe_cost(older, newer, sp.secs);
        view.sched_split = sched_split(newer);
        true
    }

    /// The rows of the keys `t` (ascending), their tables, and their VMs' userspace tables.
    fn update_keys(
        &mut self,
        view: &mut View,
        sp: &Span,
        t: &[Key],
        f: &mut Finds,
        all: bool,
    ) -> bool {
        let mut active = std::mem::take(&mut self.active);
        active.clear();
        self.dirty_user.clear();
        let (mut rows, mut user_keys) = (0, 0);
        let mut i = 0;
        while i < t.len() {
            let pid = t[i].tgid;
            let end = i + t[i..].partition_point(|k| k.tgid == pid);
            let Ok(vi) = view.vms.binary_search_by_key(&pid, |v| v.pid) else {
                return false;
            };
            let vm = &mut view.vms[vi];
            let open = self.is_open(pid);
            self.inf_before.clear();
            let mut j = i;
            while j < end {
                let vcpu = t[j].vcpu;
                let e = j + t[j..end].partition_point(|k| k.vcpu == vcpu);
                let run = &t[j..e];
                j = e;
                if !open {
                    let Some((n, user)) = self.fold_run(vm, run, sp, f) else {
                        return false;
                    };
                    rows += n;
                    user_keys += user;
                    active.append(&mut self.run_active);
                    continue;
                }
                // Deltas in key order (the cursors need it), rows then in table order.
                self.deltas.clear();
                self.run_keys.clear();
                let mut want = 0;
                for k in run {
                    self.run_keys.push(pack((k.isa, k.reason)));
                    if k.isa == ISA_USERSPACE {
                        self.deltas.push(Delta::default());
                        user_keys += 1;
                        if self.dirty_user.last() != Some(&pid) {
                            self.dirty_user.push(pid);
                        }
                        continue;
                    }
                    let Some(d) = f.delta(k, &mut self.ctx) else {
                        return false;
                    };
                    self.deltas.push(d);
                    want += 1;
                }
                if want == 0 {
                    continue;
                }
                let Ok(ci) = vm.vcpus.binary_search_by_key(&vcpu, |c| c.vcpu) else {
                    return false;
                };
                let c = &mut vm.vcpus[ci];
                let mut got = 0;
                self.moved.clear();
                self.run_active.clear();
                for (pos, r) in c.reasons.iter_mut().enumerate() {
                    let ir = (r.isa, r.reason);
                    let Ok(x) = self.run_keys.binary_search(&pack(ir)) else {
                        continue;
                    };
                    let inf_before = r.in_flight;
                    let ctx = &mut self.ctx;
                    fill(
                        r,
                        std::mem::take(&mut self.deltas[x]),
                        sp.secs,
                        &mut ctx.pool,
                    );
                    if !quiet(r) {
                        self.run_active.push(run[x]);
                    }
                    // The VM's row of this reason: the sum of its vCPUs' rows, of which only
                    // the touched ones are not quiet.
                    ctx.agg.add(ir, DeltaRef::of_row(r));
                    add_to(&mut self.inf_before, ir, inf_before);
                    self.moved.push(pos);
                    got += 1;
                }
                for d in self.deltas.drain(..) {
                    self.ctx.pool.put(d.hist.buckets);
                }
                if got != want {
                    return false;
                }
                rows += got;
                // Runs come in key order: sorting each keeps `active` sorted.
                self.run_active.sort_unstable();
                active.append(&mut self.run_active);
                refinish(&mut c.reasons, &self.moved, &mut self.spare);
                vcpu_totals(c, sp);
            }
            if !self.vm_reasons(vm, sp) {
                return false;
            }
            i = end;
        }
        if all && (rows != self.rows || user_keys != self.ctx.user_keys.len()) {
            return false;
        }
        debug_assert!(active.is_sorted());
        self.active = active;
        self.update_user(view, sp, t, all)
    }

    /// The VM rows of the reasons touched, from the sums in `ctx.agg` of the vCPU rows
    /// touched: a VM row is the sum of its vCPUs' rows, and the others are quiet, so only their
    /// in-flight counts are kept from before.
    fn vm_reasons(&mut self, vm: &mut super::VmView, sp: &Span) -> bool {
        let ctx = &mut self.ctx;
        if ctx.agg.is_empty() {
            return true;
        }
        let mut got = 0;
        self.moved.clear();
        for (pos, r) in vm.reasons.iter_mut().enumerate() {
            let k = (r.isa, r.reason);
            let Some(mut d) = ctx.agg.take(k, &mut ctx.pool) else {
                continue;
            };
            let touched_before = self
                .inf_before
                .binary_search_by_key(&k, |(k, _)| *k)
                .map_or(0, |i| self.inf_before[i].1);
            d.in_flight += r.in_flight - touched_before;
            fill(r, d, sp.secs, &mut ctx.pool);
            self.moved.push(pos);
            got += 1;
        }
        let whole = got == ctx.agg.len();
        ctx.agg.clear(&mut ctx.pool);
        refinish(&mut vm.reasons, &self.moved, &mut self.spare);
        vm_totals(vm, sp);
        whole
    }

    /// Userspace tables of the VMs with a changed userspace key, or not quiet before (of
    /// every VM when `all`), from their userspace keys.
    fn update_user(&mut self, view: &mut View, sp: &Span, t: &[Key], all: bool) -> bool {
        let mut dirty = std::mem::take(&mut self.dirty_user);
        dirty.extend_from_slice(&self.user_active);
        if all {
            dirty.extend(view.vms.iter().map(|v| v.pid));
        }
        dirty.sort_unstable();
        dirty.dedup();
        self.user_active.clear();
        let ok = dirty.iter().all(|&pid| self.vm_user(view, sp, t, pid));
        self.dirty_user = dirty;
        ok
    }

    fn vm_user(&mut self, view: &mut View, sp: &Span, t: &[Key], pid: u32) -> bool {
        let Ok(vi) = view.vms.binary_search_by_key(&pid, |v| v.pid) else {
            return false;
        };
        let vm = &mut view.vms[vi];
        let keys = &self.ctx.user_keys;
        let (a, b) = (
            keys.partition_point(|k| k.tgid < pid),
            keys.partition_point(|k| k.tgid <= pid),
        );
        // A changed userspace key must be one the view has.
        let lo = t.partition_point(|k| k.tgid < pid);
        let changed = t[lo..].iter().take_while(|k| k.tgid == pid);
        if !changed
            .filter(|k| k.isa == ISA_USERSPACE)
            .all(|k| keys[a..b].binary_search(k).is_ok())
        {
            return false;
        }
        for i in a..b {
            let k = self.ctx.user_keys[i];
            // Lookups: the cursors are past these keys.
            let Some(d) = Finds::lookups(sp).delta(&k, &mut self.ctx) else {
                return false;
            };
            self.ctx.user.push((k, d));
        }
        self.ctx.pool.put_rows(&mut vm.userspace);
        for c in &mut vm.vcpus {
            self.ctx.pool.put_rows(&mut c.userspace);
        }
        let info = sp.newer.vms.get(&pid);
        vm.userspace = self.ctx.user_tables(info, &mut vm.vcpus, sp);
        if !vm.userspace.iter().all(quiet) {
            self.user_active.push(pid);
        }
        true
    }
}

/// Adds `v` to the sum of `k` in `sums` (sorted by key).
pub(super) fn add_to(sums: &mut Vec<((u32, u32), u64)>, k: (u32, u32), v: u64) {
    match sums.binary_search_by_key(&k, |(k, _)| *k) {
        Ok(i) => sums[i].1 += v,
        Err(i) => sums.insert(i, (k, v)),
    }
}
