//! For tests: the model as it was before buffers were reused and views updated in place, the
//! reference the faster paths must match exactly.

use std::collections::{btree_map::Entry, BTreeMap};

use profiler_common::{counter, ISA_USERSPACE};

use super::{sort_rows, Counters, ProbeCost, Row, SortKey, VcpuView, View, VmView};
use crate::{
    decode::ExitNames,
    sample::{Hist, Key, Sample, Stat},
};

/// `compute_elapsed` as it was.
pub(super) fn reference(
    older: &Sample,
    newer: &Sample,
    names: &ExitNames,
    elapsed_ns: u64,
) -> View {
    let secs = elapsed_ns as f64 / 1e9;
    // A pid whose process start time changed is a new VM: nothing of the old one applies.
    let reused = newer.reused_pids(older);

    // pid → (vcpu → reason deltas, userspace deltas by thread). One ordered walk over the
    // four (sorted) maps instead of a set of keys and five lookups per key.
    let mut per_vm: BTreeMap<u32, VmDeltas> = BTreeMap::new();
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
        let d = delta(
            new,
            old_stats.seek(&k),
            inf_new,
            old_inf.seek(&k).copied().unwrap_or(0),
            reused.contains(&k.tgid),
        );
        let vm = per_vm.entry(k.tgid).or_default();
        if k.isa == ISA_USERSPACE {
            vm.user.push((k, d));
        } else {
            vm.vcpus.entry(k.vcpu).or_default().push((k, d));
        }
    }

    let vms = per_vm
        .into_iter()
        .map(|(pid, d)| vm_view(pid, d, (older, newer), names, elapsed_ns, secs))
        .collect();

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
    let counters = Counters {
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
    };

    View {
        duration_s: secs,
        names_source: names_source(names),
        counters,
        probe_cost: probe_cost(older, newer, secs),
        sched_split: super::compute::sched_split(newer),
        vms,
    }
}

fn names_source(names: &ExitNames) -> String {
    if names.source.is_empty() {
        "built-in".into()
    } else {
        names.source.clone()
    }
}

#[derive(Default)]
struct VmDeltas {
    vcpus: BTreeMap<u32, Vec<(Key, Delta)>>,
    user: Vec<(Key, Delta)>,
}

/// Raw interval numbers of one key, or of several keys added together.
#[derive(Clone, Default)]
struct Delta {
    count: u64,
    in_flight: u64,
    timed: u64,
    total_ns: u64,
    wait_ns: u64,
    blocked_ns: u64,
    hist: Hist,
    /// (min, max) of the interval's timed exits; None when there were none.
    range: Option<(u64, u64)>,
}

impl Delta {
    fn add(&mut self, o: &Delta) {
        self.count += o.count;
        self.in_flight += o.in_flight;
        self.timed += o.timed;
        self.total_ns += o.total_ns;
        self.wait_ns += o.wait_ns;
        self.blocked_ns += o.blocked_ns;
        self.hist.add(&o.hist);
        self.range = match (self.range, o.range) {
            (Some(a), Some(b)) => Some((a.0.min(b.0), a.1.max(b.1))),
            (a, b) => a.or(b),
        };
    }
}

/// A cursor over a sorted map for keys looked up in ascending order.
struct Seek<'a, V: 'a>(std::iter::Peekable<Box<dyn Iterator<Item = (&'a Key, &'a V)> + 'a>>);

impl<'a, V: 'a> Seek<'a, V> {
    pub(super) fn new(map: &'a dyn crate::sample::KeyMap<V>) -> Self {
        Seek(map.walk().peekable())
    }

    /// The value of `k`; keys must be asked for in ascending order.
    fn seek(&mut self, k: &Key) -> Option<&'a V> {
        while self.0.next_if(|(a, _)| *a < k).is_some() {}
        self.0.peek().filter(|(a, _)| *a == k).map(|(_, v)| *v)
    }
}

/// One key's interval numbers from its newer and older stats and in-flight counts.
fn delta(
    new: Option<&Stat>,
    old: Option<&Stat>,
    inf_new: u64,
    inf_old: u64,
    reused: bool,
) -> Delta {
    let empty = Stat::default();
    let new = new.unwrap_or(&empty);
    // A count that went down means the key was recreated (LRU eviction, pid reuse): start over.
    let reset = reused || old.is_some_and(|o| o.count > new.count);
    let old = old.filter(|_| !reset).unwrap_or(&empty);
    let inf_old = if reset { 0 } else { inf_old };
    let timed = new.count - old.count;
    let hist = new.hist.since(&old.hist);
    let range = (timed > 0).then(|| {
        if old.count == 0 {
            // Nothing before: the cumulative extremes are this interval's exactly.
            (new.min_ns, new.max_ns)
        } else {
            let (lo, hi) = hist.bounds().unwrap_or((new.min_ns, new.max_ns));
            // A moved extreme is exact; otherwise bucket bounds, kept inside the known range.
            let lo = if new.min_ns < old.min_ns {
                new.min_ns
            } else {
                lo
            };
            let hi = if new.max_ns > old.max_ns {
                new.max_ns
            } else {
                hi
            };
            let clamp = |v: u64| v.clamp(new.min_ns, new.max_ns.max(new.min_ns));
            (clamp(lo), clamp(hi))
        }
    });
    Delta {
        count: (timed + inf_new).saturating_sub(inf_old),
        in_flight: inf_new,
        timed,
        total_ns: new.sum_ns.saturating_sub(old.sum_ns),
        wait_ns: new.wait_ns.saturating_sub(old.wait_ns),
        blocked_ns: new.blocked_ns.saturating_sub(old.blocked_ns),
        hist,
        range,
    }
}

fn vm_view(
    pid: u32,
    d: VmDeltas,
    (older, newer): (&Sample, &Sample),
    names: &ExitNames,
    elapsed_ns: u64,
    secs: f64,
) -> VmView {
    let info = newer.vms.get(&pid);
    let rate = |n: u64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
    let pct = |ns: u64, cap: u64| {
        if cap > 0 {
            ns as f64 / cap as f64 * 100.0
        } else {
            0.0
        }
    };

    let mut all: BTreeMap<(u32, u32), Delta> = BTreeMap::new();
    let mut vcpus: Vec<VcpuView> = Vec::new();
    for (vcpu, keys) in d.vcpus {
        for (k, kd) in &keys {
            merge_into(&mut all, (k.isa, k.reason), kd);
        }
        let reasons = rows(
            keys.into_iter().map(|(k, d)| (k.isa, k.reason, d)),
            names,
            secs,
        );
        let exits = reasons.iter().map(|r| r.count).sum();
        vcpus.push(VcpuView {
            vcpu,
            exits,
            exits_per_s: rate(exits),
            overhead_pct: pct(busy_ns(&reasons), elapsed_ns),
            reasons,
            ..Default::default()
        });
    }

    // Userspace keys carry the thread id: fold threads into the VM, and into their vCPU when
    // the VMM named its threads.
    let mut user: BTreeMap<(u32, u32), Delta> = BTreeMap::new();
    let mut user_by_vcpu: BTreeMap<u32, BTreeMap<u32, Delta>> = BTreeMap::new();
    for (k, kd) in &d.user {
        merge_into(&mut user, (k.isa, k.reason), kd);
        if let Some(v) = info.and_then(|i| i.vcpu_threads.get(&k.vcpu)) {
            user_by_vcpu
                .entry(*v)
                .or_default()
                .entry(k.reason)
                .or_default()
                .add(kd);
        }
    }
    for v in &mut vcpus {
        if let Some(m) = user_by_vcpu.remove(&v.vcpu) {
            v.userspace = rows(
                m.into_iter().map(|(r, d)| (ISA_USERSPACE, r, d)),
                names,
                secs,
            );
        }
    }

    let reasons = rows(all.into_iter().map(|((i, r), d)| (i, r, d)), names, secs);
    let exits = reasons.iter().map(|r| r.count).sum();
    let cap = elapsed_ns.saturating_mul(vcpus.len() as u64);
    super::cpu::vcpu_cpu(older, newer, pid, &newer.reused_pids(older), &mut vcpus);
    VmView {
        pid,
        name: info.map_or_else(|| format!("pid {pid}"), |i| i.name.clone()),
        uuid: info.and_then(|i| i.uuid.clone()),
        exits,
        exits_per_s: rate(exits),
        overhead_pct: pct(busy_ns(&reasons), cap),
        userspace: rows(user.into_iter().map(|((i, r), d)| (i, r, d)), names, secs),
        host_cpu: super::host_cpu(older, newer, pid),
        guest_rips: super::rips::of_vm(older, newer, pid, &newer.reused_pids(older), names),
        reasons,
        vcpus,
    }
}

/// `map[k] += d`, copying `d` when `k` is new (the same result as adding it to a zero Delta).
fn merge_into(map: &mut BTreeMap<(u32, u32), Delta>, k: (u32, u32), d: &Delta) {
    match map.entry(k) {
        Entry::Vacant(e) => {
            e.insert(d.clone());
        }
        Entry::Occupied(mut e) => e.get_mut().add(d),
    }
}

/// Non-HLT handling time: HLT time is mostly the guest idling, not overhead.
fn busy_ns(rows: &[Row]) -> u64 {
    rows.iter().filter(|r| !r.hlt).map(|r| r.total_ns).sum()
}

/// One table: merges duplicate (isa, reason) entries, fills shares, sorts by count.
fn rows(items: impl Iterator<Item = (u32, u32, Delta)>, names: &ExitNames, secs: f64) -> Vec<Row> {
    let mut merged: BTreeMap<(u32, u32), Delta> = BTreeMap::new();
    for (isa, reason, d) in items {
        match merged.entry((isa, reason)) {
            Entry::Vacant(e) => {
                e.insert(d);
            }
            Entry::Occupied(mut e) => e.get_mut().add(&d),
        }
    }
    let mut out: Vec<Row> = merged
        .into_iter()
        .map(|((isa, reason), d)| {
            let (min_ns, max_ns) = d.range.unwrap_or((0, 0));
            // Bucket midpoints can overshoot the exact extremes: keep them inside.
            let [p50, p99, p999] = d
                .hist
                .quantiles([0.5, 0.99, 0.999])
                .map(|v| v.map_or(0, |v| v.clamp(min_ns, max_ns.max(min_ns))));
            Row {
                isa,
                isa_name: crate::decode::isa_name(isa).into(),
                reason,
                name: names.name(isa, reason).into(),
                hlt: names.is_hlt(isa, reason),
                count: d.count,
                in_flight: d.in_flight,
                timed: d.timed,
                hist_total: d.hist.total(),
                rate_per_s: if secs > 0.0 {
                    d.count as f64 / secs
                } else {
                    0.0
                },
                samples_pct: 0.0,
                time_pct: 0.0,
                total_ns: d.total_ns,
                wait_ns: d.wait_ns,
                blocked_ns: d.blocked_ns,
                min_ns,
                max_ns,
                mean_ns: if d.timed > 0 {
                    d.total_ns as f64 / d.timed as f64
                } else {
                    0.0
                },
                p50_ns: p50,
                p99_ns: p99,
                p999_ns: p999,
                hist: d.hist,
            }
        })
        .collect();
    set_shares(&mut out);
    sort_rows(&mut out, SortKey::Count);
    out
}

fn probe_cost(older: &Sample, newer: &Sample, secs: f64) -> Vec<ProbeCost> {
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

/// Samples% and Time% of each row. Shares exclude HLT, whose idle time would swamp everything
/// (perf's "HLT 99.9 %"); HLT rows get their share of everything instead and are shown apart.
fn set_shares(rows: &mut [Row]) {
    let share = |a: u64, b: u64| {
        if b > 0 {
            a as f64 / b as f64 * 100.0
        } else {
            0.0
        }
    };
    let (busy_n, busy_t) = rows
        .iter()
        .filter(|r| !r.hlt)
        .fold((0, 0), |(n, t), r| (n + r.count, t + r.total_ns));
    let (all_n, all_t) = rows
        .iter()
        .fold((0, 0), |(n, t), r| (n + r.count, t + r.total_ns));
    for r in rows {
        let (n, t) = if r.hlt {
            (all_n, all_t)
        } else {
            (busy_n, busy_t)
        };
        r.samples_pct = share(r.count, n);
        r.time_pct = share(r.total_ns, t);
    }
}
