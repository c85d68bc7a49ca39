//! newer − older for every key, then aggregation per VM / vCPU and shares within each table.
//! One ordered walk over the sorted maps builds each vCPU's rows in place; histogram buffers
//! come from a pool (refilled from the previous view when there is one) and names from a
//! cache, so a refresh allocates per table at most, not per row.

use std::collections::BTreeSet;

use profiler_common::{counter, ISA_USERSPACE};

use super::{
    cpu::{host_cpu_of, vcpu_cpu},
    delta::{delta, Agg, Delta, DeltaRef, Pool},
    rows::{busy_ns, finish, row, NameCache},
    Counters, ProbeCost, Row, VcpuView, View, VmView,
};
use crate::{
    decode::ExitNames,
    sample::{Key, Sample, Stat, VmInfo},
};

/// The view of `newer − older`, over the monotonic time between them. `older` may be
/// `Sample::default()` ("since attach"): counts are then cumulative, and since the attach time
/// is unknown the duration is 0 and every rate and percentage of time is 0 — use
/// [`compute_elapsed`] when the caller knows the span.
pub fn compute(older: &Sample, newer: &Sample, names: &ExitNames) -> View {
    compute_elapsed(older, newer, names, span_ns(older, newer))
}

/// Monotonic ns from `older` to `newer`; 0 when `older` is `Sample::default()` (since
/// attach: the attach time is unknown).
pub fn span_ns(older: &Sample, newer: &Sample) -> u64 {
    if older.mono_ns == 0 {
        0
    } else {
        newer.mono_ns.saturating_sub(older.mono_ns)
    }
}

/// Like [`compute`] with an explicit span in nanoseconds.
pub fn compute_elapsed(older: &Sample, newer: &Sample, names: &ExitNames, elapsed_ns: u64) -> View {
    let sp = Span::new(older, newer, names, elapsed_ns);
    Ctx::default().full(&sp, View::default(), None)
}

/// The two samples of a view and what is derived from them alone.
pub(super) struct Span<'a> {
    pub older: &'a Sample,
    pub newer: &'a Sample,
    pub names: &'a ExitNames,
    pub elapsed_ns: u64,
    pub secs: f64,
    /// Pids that are another process in `newer` than in `older`.
    pub reused: BTreeSet<u32>,
}

impl<'a> Span<'a> {
    pub(super) fn new(
        older: &'a Sample,
        newer: &'a Sample,
        names: &'a ExitNames,
        elapsed_ns: u64,
    ) -> Self {
        Span {
            older,
            newer,
            names,
            elapsed_ns,
            secs: elapsed_ns as f64 / 1e9,
            reused: newer.reused_pids(older),
        }
    }

    pub(super) fn rate(&self, n: u64) -> f64 {
        if self.secs > 0.0 {
            n as f64 / self.secs
        } else {
            0.0
        }
    }
}

pub(super) fn pct(ns: u64, cap: u64) -> f64 {
    if cap > 0 {
        ns as f64 / cap as f64 * 100.0
    } else {
        0.0
    }
}

/// What a refresh reuses from the one before: buffers, names, scratch space.
#[derive(Default)]
pub(super) struct Ctx {
    pub pool: Pool,
    pub names: NameCache,
    pub agg: Agg,
    pub user: Vec<(Key, Delta)>,
    /// The userspace keys of the last full view, ascending.
    pub user_keys: Vec<Key>,
    /// Of the last full view, the folded VMs' vCPU keys (fold.rs): how many, and those not
    /// quiet; and while a folded VM is walked, each of its vCPUs' non-HLT time so far.
    pub folded_rows: usize,
    pub folded_active: Vec<Key>,
    pub busy: Vec<u64>,
}

impl Ctx {
    /// The whole view of `sp`, with the vCPU rows of the VMs in `open` only (None: of all);
    /// `old`'s histogram buffers are reused.
    pub(super) fn full(&mut self, sp: &Span, old: View, open: Option<&[u32]>) -> View {
        self.recycle(old);
        // A failed update in place may have left sums behind.
        self.agg.clear(&mut self.pool);
        for (_, d) in self.user.drain(..) {
            self.pool.put(d.hist.buckets);
        }
        self.user_keys.clear();
        self.folded_rows = 0;
        self.folded_active.clear();
        self.busy.clear();
        let (older, newer) = (sp.older, sp.newer);
        // A pid whose process start time changed is a new VM: nothing of the old one applies.
        let reused = &sp.reused;

        // One ordered walk over the four (sorted) maps; keys come grouped by VM, then vCPU.
        let mut vms = Vec::new();
        let mut cur: Option<(u32, Vec<VcpuView>)> = None;
        // Whether the VM in `cur` is folded.
        let mut folded = false;
        let mut new_stats = newer.stats.iter().peekable();
        let mut new_inf = newer.in_flight.iter().peekable();
        let mut old_stats = Seek::new(&older.stats);
        let mut old_inf = Seek::new(&older.in_flight);
        loop {
            let k = match (new_stats.peek(), new_inf.peek()) {
                (None, None) => break,
                (Some((a, _)), None) => **a,
                (None, Some((b, _))) => **b,
                (Some((a, _)), Some((b, _))) => (**a).min(**b),
            };
            let new = new_stats.next_if(|(a, _)| **a == k).map(|(_, v)| v);
            let inf_new = new_inf.next_if(|(b, _)| **b == k).map_or(0, |(_, v)| *v);
            let inf = (inf_new, old_inf.seek(&k).copied().unwrap_or(0));
            let stats = (new, old_stats.seek(&k));
            let reset = reused.contains(&k.tgid);
            // The VM before is done first: a folded VM's keys add to the sums as they come.
            let vcpus = match &mut cur {
                Some((pid, vcpus)) if *pid == k.tgid => vcpus,
                _ => {
                    if let Some((pid, vcpus)) = cur.take() {
                        vms.push(self.vm_view(pid, vcpus, sp, folded));
                    }
                    folded = !shows(open, k.tgid);
                    &mut cur.insert((k.tgid, Vec::new())).1
                }
            };
            if folded && k.isa != ISA_USERSPACE {
                if vcpus.last().map(|v| v.vcpu) != Some(k.vcpu) {
                    vcpus.push(VcpuView {
                        vcpu: k.vcpu,
                        ..Default::default()
                    });
                    self.busy.push(0);
                }
                if let Some(v) = vcpus.last_mut() {
                    self.fold_key(k, v, stats, inf, reset, sp.names);
                }
                continue;
            }
            let d = delta(stats.0, stats.1, inf, reset, &mut self.pool);
            if k.isa == ISA_USERSPACE {
                self.user_keys.push(k);
                self.user.push((k, d));
                continue;
            }
            if vcpus.last().map(|v| v.vcpu) != Some(k.vcpu) {
                vcpus.push(VcpuView {
                    vcpu: k.vcpu,
                    ..Default::default()
                });
            }
            let r = row(
                (k.isa, k.reason),
                d,
                (sp.names, &mut self.names),
                sp.secs,
                &mut self.pool,
            );
            if let Some(v) = vcpus.last_mut() {
                v.reasons.push(r);
            }
        }
        if let Some((pid, vcpus)) = cur {
            vms.push(self.vm_view(pid, vcpus, sp, folded));
        }

        View {
            duration_s: sp.secs,
            names_source: names_source(sp.names),
            counters: counters(older, newer),
            probe_cost: probe_cost(older, newer, sp.secs),
            sched_split: sched_split(newer),
            vms,
        }
    }

    /// Gives the pool every histogram buffer of `old`.
    pub(super) fn recycle(&mut self, old: View) {
        for mut vm in old.vms {
            self.pool.put_rows(&mut vm.reasons);
            self.pool.put_rows(&mut vm.userspace);
            for mut v in vm.vcpus {
                self.pool.put_rows(&mut v.reasons);
                self.pool.put_rows(&mut v.userspace);
            }
        }
    }

    /// One VM from its vCPUs' rows (unfinished) and its userspace keys (in `self.user`); a
    /// folded one from its vCPUs' sums (in `self.agg`) and their exits and times so far.
    fn vm_view(&mut self, pid: u32, mut vcpus: Vec<VcpuView>, sp: &Span, folded: bool) -> VmView {
        let info = sp.newer.vms.get(&pid);
        for (i, v) in vcpus.iter_mut().enumerate() {
            match folded {
                true => vcpu_rates(v, self.busy.get(i).copied().unwrap_or(0), sp),
                false => finish_vcpu(v, sp),
            }
        }
        self.busy.clear();
        for r in vcpus.iter().flat_map(|v| &v.reasons) {
            self.agg.add((r.isa, r.reason), DeltaRef::of_row(r));
        }
        let reasons = self.agg_rows(sp);

        let userspace = self.user_tables(info, &mut vcpus, sp);

        let mut vm = VmView {
            pid,
            name: info.map_or_else(|| format!("pid {pid}"), |i| i.name.clone()),
            uuid: info.and_then(|i| i.uuid.clone()),
            userspace,
            host_cpu: host_cpu_of(sp.older, sp.newer, pid, &sp.reused),
            guest_rips: super::rips::of_vm(sp.older, sp.newer, pid, &sp.reused, sp.names),
            reasons,
            vcpus,
            ..Default::default()
        };
        vm_totals(&mut vm, sp);
        vcpu_cpu(sp.older, sp.newer, pid, &sp.reused, &mut vm.vcpus);
        vm
    }

    /// The VM's userspace table from the deltas in `self.user` (which it empties), and its
    /// vCPUs' (whose userspace tables must be empty). Userspace keys carry the thread id:
    /// threads fold into the VM, and into their vCPU when the VMM named its threads.
    pub(super) fn user_tables(
        &mut self,
        info: Option<&VmInfo>,
        vcpus: &mut [VcpuView],
        sp: &Span,
    ) -> Vec<Row> {
        for (k, d) in &self.user {
            self.agg.add((k.isa, k.reason), DeltaRef::of(d));
        }
        let userspace = self.agg_rows(sp);
        for (k, d) in &self.user {
            if let Some(v) = info.and_then(|i| i.vcpu_threads.get(&k.vcpu)) {
                self.agg.add((*v, k.reason), DeltaRef::of(d));
            }
        }
        for (_, d) in self.user.drain(..) {
            self.pool.put(d.hist.buckets);
        }
        while let Some(((vcpu, reason), d)) = self.agg.pop(&mut self.pool) {
            match vcpus.binary_search_by_key(&vcpu, |v| v.vcpu) {
                Ok(i) => vcpus[i].userspace.push(row(
                    (ISA_USERSPACE, reason),
                    d,
                    (sp.names, &mut self.names),
                    sp.secs,
                    &mut self.pool,
                )),
                Err(_) => self.pool.put(d.hist.buckets),
            }
        }
        for v in vcpus.iter_mut() {
            finish(&mut v.userspace);
        }
        userspace
    }

    /// The rows of the sums in `self.agg` (keyed by (isa, reason)), finished; empties it.
    pub(super) fn agg_rows(&mut self, sp: &Span) -> Vec<Row> {
        let mut out = Vec::with_capacity(self.agg.len());
        while let Some((k, d)) = self.agg.pop(&mut self.pool) {
            out.push(row(
                k,
                d,
                (sp.names, &mut self.names),
                sp.secs,
                &mut self.pool,
            ));
        }
        finish(&mut out);
        out
    }
}

/// Shares, order, exits and overhead of a vCPU whose reason rows are set.
pub(super) fn finish_vcpu(v: &mut VcpuView, sp: &Span) {
    finish(&mut v.reasons);
    vcpu_totals(v, sp);
}

/// Exits, rate and overhead of a vCPU whose reason rows are finished.
pub(super) fn vcpu_totals(v: &mut VcpuView, sp: &Span) {
    v.exits = v.reasons.iter().map(|r| r.count).sum();
    vcpu_rates(v, busy_ns(&v.reasons), sp);
}

/// Exits, rate and overhead of a VM whose reason rows are set.
pub(super) fn vm_totals(vm: &mut VmView, sp: &Span) {
    vm.exits = vm.reasons.iter().map(|r| r.count).sum();
    vm.exits_per_s = sp.rate(vm.exits);
    let cap = sp.elapsed_ns.saturating_mul(vm.vcpus.len() as u64);
    vm.overhead_pct = pct(busy_ns(&vm.reasons), cap);
}

pub(super) fn names_source(names: &ExitNames) -> String {
    if names.source.is_empty() {
        "built-in".into()
    } else {
        names.source.clone()
    }
}

/// A cursor over a sorted map for keys looked up in ascending order.
pub(super) struct Seek<'a, V: 'a> {
    map: &'a dyn crate::sample::KeyMap<V>,
    pos: u64,
}

impl<'a, V: 'a> Seek<'a, V> {
    pub(super) fn new(map: &'a dyn crate::sample::KeyMap<V>) -> Self {
        Seek { map, pos: 0 }
    }

    /// The value of `k`; keys must be asked for in ascending order.
    pub(super) fn seek(&mut self, k: &Key) -> Option<&'a V> {
        self.map.seek(&mut self.pos, k)
    }
}

/// Delta of the programs' bookkeeping counters.
pub(super) fn counters(older: &Sample, newer: &Sample) -> Counters {
    // By slot constant, not position: new slots may be appended to profiler_common.
    let d = |slot: u32| {
        let (n, o) = (newer.counter(slot), older.counter(slot));
        // A smaller value means the programs were reloaded: count from zero.
        if n < o {
            n
        } else {
            n - o
        }
    };
    Counters {
        orphan_entry: d(counter::ORPHAN_ENTRY),
        unpaired_exit: d(counter::UNPAIRED_EXIT),
        stats_map_full: d(counter::STATS_FULL),
        pending_map_full: d(counter::PENDING_FULL),
        read_error: d(counter::READ_ERROR),
        exits: d(counter::EXITS),
        entries: d(counter::ENTRIES),
        userspace_exits: d(counter::USERSPACE_EXITS),
        evidence_map_full: d(counter::EVIDENCE_FULL),
        sched_missed: d(counter::SCHED_MISSED),
    }
}

/// Whether `s` was read from a kernel that split exit times (its sched_switch program ran).
pub(super) fn sched_split(s: &Sample) -> bool {
    s.progs.iter().any(|p| p.name == "sched_switch")
}

pub(super) fn probe_cost(older: &Sample, newer: &Sample, secs: f64) -> Vec<ProbeCost> {
    newer
        .progs
        .iter()
        .enumerate()
        .map(|(i, p)| {
            // Same slot first (names may repeat), else by name; a reloaded program starts over.
            let old = older
                .progs
                .get(i)
                .filter(|o| o.name == p.name)
                .or_else(|| older.progs.iter().find(|o| o.name == p.name))
                .filter(|o| o.run_cnt <= p.run_cnt && o.run_time_ns <= p.run_time_ns);
            let (c0, t0) = old.map_or((0, 0), |o| (o.run_cnt, o.run_time_ns));
            let events = p.run_cnt - c0;
            let run_time_ns = p.run_time_ns - t0;
            ProbeCost {
                name: p.name.clone(),
                events,
                events_per_s: if secs > 0.0 {
                    events as f64 / secs
                } else {
                    0.0
                },
                ns_per_event: if events > 0 {
                    run_time_ns as f64 / events as f64
                } else {
                    0.0
                },
                run_time_ns,
            }
        })
        .collect()
}

impl Ctx {
    /// A folded VM's vCPU key `k` in a whole view: its delta into the VM sums in `self.agg`,
    /// its exits to its vCPU `v` and its non-HLT time to `v`'s in `self.busy` (the last).
    pub(super) fn fold_key(
        &mut self,
        k: Key,
        v: &mut VcpuView,
        stats: (Option<&Stat>, Option<&Stat>),
        inf: (u64, u64),
        reused: bool,
        names: &ExitNames,
    ) {
        let (d, hist) = self.agg.add_delta((k.isa, k.reason), stats, inf, reused);
        self.folded_rows += 1;
        if d.active(hist) {
            self.folded_active.push(k);
        }
        v.exits += d.count;
        if let Some(b) = self
            .busy
            .last_mut()
            .filter(|_| !names.is_hlt(k.isa, k.reason))
        {
            *b += d.total_ns;
        }
    }
}

/// Whether a view with the vCPU rows of the VMs `open` (ascending; None: every VM's) holds
/// VM `pid`'s (else the VM is folded: fold.rs).
pub(super) fn shows(open: Option<&[u32]>, pid: u32) -> bool {
    open.is_none_or(|o| o.binary_search(&pid).is_ok())
}

/// A vCPU's rate and overhead from its exits and non-HLT handling time.
pub(super) fn vcpu_rates(v: &mut VcpuView, busy_ns: u64, sp: &Span) {
    v.exits_per_s = sp.rate(v.exits);
    v.overhead_pct = pct(busy_ns, sp.elapsed_ns);
}
