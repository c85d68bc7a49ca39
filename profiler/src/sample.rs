//! The one raw record every consumer shares: cumulative counters read from the kernel maps at
//! one instant. Live view, replay, report, check and export all compute from two of these.

use std::collections::BTreeMap;

use profiler_common::hist;
use serde::{Deserialize, Serialize};

/// (VM process, vCPU, isa, reason). For `isa == ISA_USERSPACE`, `vcpu` is the thread id.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
pub struct Key {
    pub tgid: u32,
    pub vcpu: u32,
    pub isa: u32,
    pub reason: u32,
}

impl From<profiler_common::StatKey> for Key {
    fn from(k: profiler_common::StatKey) -> Self {
        Key {
            tgid: k.tgid,
            vcpu: k.vcpu_id,
            isa: k.isa,
            reason: k.reason,
        }
    }
}

/// `out` := the sorted union of two ascending sequences, without duplicates.
pub fn union_sorted<'a>(
    a: impl Iterator<Item = &'a Key>,
    b: impl Iterator<Item = &'a Key>,
    out: &mut Vec<Key>,
) {
    let (mut a, mut b) = (a.peekable(), b.peekable());
    loop {
        let k = match (a.peek(), b.peek()) {
            (None, None) => break,
            (Some(x), None) => **x,
            (None, Some(y)) => **y,
            (Some(x), Some(y)) => (**x).min(**y),
        };
        a.next_if(|x| **x == k);
        b.next_if(|y| **y == k);
        if out.last() != Some(&k) {
            out.push(k);
        }
    }
}

/// The key-ordered maps of a sample (stats in a persistent map, the others in BTreeMaps), as
/// the model reads them: lookups and an ascending walk.
pub trait KeyMap<V> {
    fn find(&self, k: &Key) -> Option<&V>;
    fn walk<'a>(&'a self) -> Box<dyn Iterator<Item = (&'a Key, &'a V)> + 'a>;
    fn drop_key(&mut self, k: &Key);
    /// The value of `k`, for keys asked for in ascending order from one `pos` (0 at first);
    /// a map without a cheaper way looks `k` up.
    fn seek(&self, pos: &mut u64, k: &Key) -> Option<&V> {
        let _ = pos;
        self.find(k)
    }
}

impl<V> KeyMap<V> for BTreeMap<Key, V> {
    fn find(&self, k: &Key) -> Option<&V> {
        self.get(k)
    }
    fn walk<'a>(&'a self) -> Box<dyn Iterator<Item = (&'a Key, &'a V)> + 'a> {
        Box::new(self.iter())
    }
    fn drop_key(&mut self, k: &Key) {
        self.remove(k);
    }
}

impl<V: Clone> KeyMap<V> for crate::chunk_map::ChunkMap<Key, V> {
    fn find(&self, k: &Key) -> Option<&V> {
        self.get(k)
    }
    fn walk<'a>(&'a self) -> Box<dyn Iterator<Item = (&'a Key, &'a V)> + 'a> {
        Box::new(self.iter())
    }
    fn drop_key(&mut self, k: &Key) {
        self.remove(k);
    }
    fn seek(&self, pos: &mut u64, k: &Key) -> Option<&V> {
        crate::chunk_map::ChunkMap::seek(self, pos, k)
    }
}

/// Latency histogram in the kernel's bucket layout (profiler_common::hist), stored sparsely.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hist {
    /// (bucket index, count), ascending by index, no zero counts.
    pub buckets: Vec<(u16, u64)>,
}

impl Hist {
    pub fn from_dense(dense: &[u64]) -> Self {
        let buckets = dense
            .iter()
            .enumerate()
            .filter(|(_, c)| **c != 0)
            .map(|(i, c)| (i as u16, *c))
            .collect();
        Hist { buckets }
    }

    pub fn record(&mut self, ns: u64, n: u64) {
        let b = hist::bucket(ns) as u16;
        match self.buckets.binary_search_by_key(&b, |(i, _)| *i) {
            Ok(i) => self.buckets[i].1 += n,
            Err(i) => self.buckets.insert(i, (b, n)),
        }
    }

    pub fn total(&self) -> u64 {
        self.buckets.iter().map(|(_, c)| c).sum()
    }

    pub fn add(&mut self, other: &Hist) {
        if other.buckets.is_empty() {
            return;
        }
        if self.buckets.is_empty() {
            self.buckets.clone_from(&other.buckets);
            return;
        }
        // One merge of two sorted lists (the model adds thousands of histograms a refresh).
        let (a, b) = (&self.buckets, &other.buckets);
        let mut out = Vec::with_capacity(a.len().max(b.len()) + 4);
        let (mut i, mut j) = (0, 0);
        while i < a.len() && j < b.len() {
            let ((ab, ac), (bb, bc)) = (a[i], b[j]);
            if ab == bb {
                out.push((ab, ac + bc));
                i += 1;
                j += 1;
            } else if ab < bb {
                out.push((ab, ac));
                i += 1;
            } else {
                out.push((bb, bc));
                j += 1;
            }
        }
        out.extend_from_slice(&a[i..]);
        out.extend_from_slice(&b[j..]);
        self.buckets = out;
    }

    /// `self - older`, bucket by bucket (saturating: a reset map never yields negatives).
    pub fn since(&self, older: &Hist) -> Hist {
        let mut buckets = Vec::with_capacity(self.buckets.len());
        let mut old = older.buckets.iter().peekable();
        for &(b, c) in &self.buckets {
            while old.next_if(|(ob, _)| *ob < b).is_some() {}
            let o = old.next_if(|(ob, _)| *ob == b).map_or(0, |(_, oc)| *oc);
            let d = c.saturating_sub(o);
            if d != 0 {
                buckets.push((b, d));
            }
        }
        Hist { buckets }
    }

    /// Value at quantile `q` (0..=1): the midpoint of the bucket holding that rank, which is
    /// within 1/16 of any value in the bucket. None when empty.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        self.quantiles([q])[0]
    }

    /// Several quantiles (ascending or not) in one pass over the buckets.
    pub fn quantiles<const N: usize>(&self, qs: [f64; N]) -> [Option<u64>; N] {
        let total = self.total();
        let mut out = [None; N];
        if total == 0 {
            return out;
        }
        let ranks = qs.map(|q| ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1));
        let mut seen = 0;
        for &(b, c) in &self.buckets {
            seen += c;
            for (o, &rank) in out.iter_mut().zip(&ranks) {
                if o.is_none() && seen >= rank {
                    let (lo, hi) = (hist::lower(b as usize), hist::upper(b as usize));
                    *o = Some(if hi - lo <= 1 { lo } else { lo + (hi - lo) / 2 });
                }
            }
            if out.iter().all(Option::is_some) {
                break;
            }
        }
        out
    }

    /// Lowest and highest bucket bounds with any count: interval min/max when only cumulative
    /// extremes are known.
    pub fn bounds(&self) -> Option<(u64, u64)> {
        let first = self.buckets.first()?.0 as usize;
        let last = self.buckets.last()?.0 as usize;
        Some(Hist::span(first, last))
    }

    /// From the lowest bound of bucket `first` to the highest of bucket `last`.
    pub fn span(first: usize, last: usize) -> (u64, u64) {
        (hist::lower(first), hist::upper(last).saturating_sub(1))
    }
}

/// Cumulative statistics of one key, summed over CPUs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stat {
    /// Exits whose entry was seen (these have a handling time).
    pub count: u64,
    pub sum_ns: u64,
    pub min_ns: u64,
    pub max_ns: u64,
    /// Of `sum_ns`: runnable but not running (preempted, or woken and waiting for a CPU), and
    /// asleep (blocked), between exit and entry. 0 where the kernel does not split the time
    /// (threads without a slot, userspace exits, hosts or recordings without the split).
    #[serde(default)]
    pub wait_ns: u64,
    #[serde(default)]
    pub blocked_ns: u64,
    pub hist: Hist,
}

impl Stat {
    /// Add `b` in (two rows of one key: e.g. a vCPU served by a new thread).
    pub fn merge(&mut self, b: &Stat) {
        if b.count == 0 {
            return;
        }
        self.min_ns = if self.count == 0 {
            b.min_ns
        } else {
            self.min_ns.min(b.min_ns)
        };
        self.count += b.count;
        self.sum_ns += b.sum_ns;
        self.wait_ns += b.wait_ns;
        self.blocked_ns += b.blocked_ns;
        self.max_ns = self.max_ns.max(b.max_ns);
        self.hist.add(&b.hist);
    }

    /// Adds `n` exits that took `ns` each, as the kernel would: for samples built by hand
    /// (tests, benchmarks).
    pub fn record(&mut self, ns: u64, n: u64) {
        self.min_ns = if self.count == 0 {
            ns
        } else {
            self.min_ns.min(ns)
        };
        self.count += n;
        self.sum_ns += n * ns;
        self.max_ns = self.max_ns.max(ns);
        self.hist.record(ns, n);
    }
}

/// One BPF program's run-time statistics (kernel.bpf_stats_enabled).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgStat {
    pub name: String,
    pub run_cnt: u64,
    pub run_time_ns: u64,
}

/// What the host knows about a VM process.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmInfo {
    pub pid: u32,
    /// libvirt domain name, else QEMU `-name`, else `comm[pid]`.
    pub name: String,
    pub uuid: Option<String>,
    pub comm: String,
    /// The VMM's full command line (for configuration checks).
    pub cmdline: Vec<String>,
    /// Process start time in clock ticks since boot: tells a reused pid from the old one.
    pub start_time: u64,
    /// vCPU thread id → vCPU index, from thread names like "CPU 3/KVM" where present.
    pub vcpu_threads: BTreeMap<u32, u32>,
    /// True when this process is a recognised VMM (QEMU), false for any other KVM user.
    pub is_qemu: bool,
    /// The process has exited; its rows stay until they are pruned from the maps.
    #[serde(default)]
    pub exited: bool,
}

/// Sub-reason evidence key (profiler_common::ev): per VM, kind, flags and subject `a`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
pub struct EvKey {
    pub tgid: u32,
    pub kind: u16,
    pub flags: u16,
    pub a: u64,
}

/// Cumulative evidence counter: events, summed quantity (kind-specific), last value seen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvStat {
    pub count: u64,
    pub sum: u64,
    pub last: u64,
}

/// CPU time a VM process has used so far, from the kernel's own accounting (/proc), ns.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmCpu {
    /// Every thread of the process, exited ones included (user + system time; a vCPU's guest
    /// time counts as user time).
    pub total_ns: u64,
    /// The vCPU threads known at this sample, summed.
    pub vcpu_ns: u64,
    /// Time the process's threads ran a vCPU in guest mode (part of `total_ns`, and of the
    /// vCPU threads' time). Sampled by the kernel at ticks: a statistical figure.
    pub guest_ns: u64,
    /// How many vCPU threads `vcpu_ns` sums; 0 when none is known (then only the total
    /// means anything). A change between two samples makes their vCPU difference meaningless.
    pub vcpu_threads: u32,
    /// Time the vCPU threads were runnable but not running: waiting for a host CPU (the
    /// scheduler's run-queue delay, `schedstat`'s second field, exact ns).
    #[serde(default)]
    pub vcpu_wait_ns: u64,
    /// How many of the vCPU threads `vcpu_wait_ns` sums (schedstat can be missing).
    #[serde(default)]
    pub waited_threads: u32,
    /// The VM's vhost worker threads (`vhost-<pid>`), summed: kernel threads outside the
    /// process, or (Linux 6.4 on) tasks of the process itself.
    #[serde(default)]
    pub vhost: Threads,
    /// Of `vhost.cpu_ns`, the part already in `total_ns` (vhost tasks inside the process).
    #[serde(default)]
    pub vhost_in_total_ns: u64,
    /// Per vCPU index (from the VMM's thread names): that thread's CPU time and wait.
    #[serde(default)]
    pub vcpus: BTreeMap<u32, ThreadCpu>,
}

/// CPU time and run-queue wait of a set of threads, summed, ns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Threads {
    pub cpu_ns: u64,
    /// Of the threads that have schedstat (`waited` of them).
    pub wait_ns: u64,
    pub threads: u32,
    pub waited: u32,
}

/// One thread's CPU time (user + system) and run-queue wait (None without schedstat), ns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadCpu {
    pub cpu_ns: u64,
    pub wait_ns: Option<u64>,
}

/// One exit that took at least the slow-exit threshold (`--slow`), as the kernel logged it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlowEvent {
    /// CLOCK_MONOTONIC at the exit, ns (the clock of `Sample::mono_ns`).
    pub exit_ns: u64,
    /// Exit to entry, ns.
    pub took_ns: u64,
    pub tgid: u32,
    /// The vCPU thread.
    pub tid: u32,
    pub vcpu: u32,
    pub isa: u32,
    pub reason: u32,
    /// Guest RIP at the exit (0: this kernel's kvm_exit has no guest_rip).
    pub rip: u64,
    /// Host CPUs the exit and its entry ran on.
    pub exit_cpu: u32,
    pub entry_cpu: u32,
    /// What the sub-reason events between exit and entry named, as in [`EvKey`]: kind
    /// (`profiler_common::ev`; 0 = none), flags and subject (MSR, port, GPA, call code, vector).
    pub detail_kind: u16,
    pub detail_flags: u16,
    pub detail_a: u64,
    /// Of `took_ns`: runnable but not running, and asleep (0 when not split: format ≤ 4).
    #[serde(default)]
    pub wait_ns: u64,
    #[serde(default)]
    pub blocked_ns: u64,
}

impl From<profiler_common::SlowExit> for SlowEvent {
    fn from(e: profiler_common::SlowExit) -> Self {
        SlowEvent {
            exit_ns: e.exit_ns,
            took_ns: e.took_ns,
            tgid: e.tgid,
            tid: e.tid,
            vcpu: e.vcpu_id,
            isa: e.isa,
            reason: e.reason,
            rip: e.rip,
            exit_cpu: e.exit_cpu,
            entry_cpu: e.entry_cpu,
            detail_kind: e.detail_kind,
            detail_flags: e.detail_flags,
            detail_a: e.detail_a,
            wait_ns: e.wait_ns,
            blocked_ns: e.blocked_ns,
        }
    }
}

/// Raw cumulative counters at one instant.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// CLOCK_MONOTONIC at read time, ns.
    pub mono_ns: u64,
    /// Wall clock at read time, ms since the Unix epoch.
    pub wall_ms: u64,
    /// Per key; a persistent map, so that a sample shares the rows that did not change with
    /// the one before it (a clone copies no row; a changed key copies its chunk).
    pub stats: crate::chunk_map::ChunkMap<Key, Stat>,
    /// Exits that have not seen their entry yet (e.g. a halted vCPU), per key.
    pub in_flight: BTreeMap<Key, u64>,
    /// profiler_common::counter slots, summed over CPUs.
    pub counters: Vec<u64>,
    pub progs: Vec<ProgStat>,
    /// Known VM processes by pid.
    pub vms: BTreeMap<u32, VmInfo>,
    /// Sub-reason evidence (MSRs, ports, MMIO, hypercalls, inhibits, ...), summed over CPUs.
    #[serde(default)]
    pub evidence: BTreeMap<EvKey, EvStat>,
    /// CPU time per VM pid (live sources only; absent from perf imports and format 1–2
    /// recordings). Not in `VmInfo`: that is stored only when it changes, this changes always.
    #[serde(default)]
    pub vm_cpu: BTreeMap<u32, VmCpu>,
    /// Exits that took at least the slow-exit threshold, logged one by one since the sample
    /// before this one (live sources and format 4 recordings), oldest first.
    #[serde(default)]
    pub slow: Vec<SlowEvent>,
    /// Which keys changed since an earlier sample, when the source knows it (the live
    /// sampler); None: unknown, any may have. Lets a refresh cost what changed, not what
    /// exists. Not recorded.
    #[serde(skip)]
    pub changed: Option<Changed>,
}

/// The keys of a sample that may differ from those of the sample taken at `since_ns`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changed {
    /// `mono_ns` of the earlier sample.
    pub since_ns: u64,
    /// Every key whose stats or in-flight count differ from that sample's, keys that
    /// appeared or vanished included (a superset is fine), in any order.
    pub keys: Vec<Key>,
}

impl Sample {
    pub fn counter(&self, slot: u32) -> u64 {
        self.counters.get(slot as usize).copied().unwrap_or(0)
    }

    /// Pids that belong to a different process than in `older` (same pid, new start time): a
    /// new VM, so none of the old counters apply to it.
    pub fn reused_pids(&self, older: &Sample) -> std::collections::BTreeSet<u32> {
        self.vms
            .iter()
            .filter(|(pid, vm)| {
                older
                    .vms
                    .get(pid)
                    .is_some_and(|o| o.start_time != vm.start_time)
            })
            .map(|(pid, _)| *pid)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_within_a_sixteenth() {
        let mut h = Hist::default();
        // 1..=100_000 ns, one each: the true p50 is 50_000, p99 99_000.
        for v in 1..=100_000u64 {
            h.record(v, 1);
        }
        for (q, truth) in [(0.5, 50_000.0), (0.99, 99_000.0), (0.999, 99_900.0)] {
            let got = h.quantile(q).unwrap() as f64;
            assert!(
                (got - truth).abs() / truth <= 0.0625,
                "q{q}: {got} vs {truth}"
            );
        }
    }

    #[test]
    fn since_and_add_are_inverse() {
        let mut a = Hist::default();
        a.record(100, 3);
        a.record(5_000, 2);
        let mut b = a.clone();
        b.record(5_000, 4);
        b.record(1_000_000, 1);
        let d = b.since(&a);
        assert_eq!(d.total(), 5);
        let mut back = a.clone();
        back.add(&d);
        assert_eq!(back, b);
    }

    /// The linear merges agree with adding bucket by bucket in a map, on uneven overlaps.
    #[test]
    fn merges_match_a_map() {
        let mut seed = 7u64;
        let mut rand = |n: u64| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % n
        };
        for _ in 0..200 {
            let (mut a, mut b) = (Hist::default(), Hist::default());
            for _ in 0..rand(30) {
                a.record(rand(1 << 20), 1 + rand(50));
            }
            for _ in 0..rand(30) {
                b.record(rand(1 << 20), 1 + rand(50));
            }
            let mut want = std::collections::BTreeMap::new();
            for &(i, c) in a.buckets.iter().chain(&b.buckets) {
                *want.entry(i).or_insert(0u64) += c;
            }
            let mut sum = a.clone();
            sum.add(&b);
            assert_eq!(sum.buckets, want.into_iter().collect::<Vec<_>>());
            assert_eq!(sum.since(&a), b);
            // One pass for several quantiles = the bucket where each rank falls.
            let total = sum.total();
            let got = sum.quantiles([0.999, 0.5]);
            for (q, g) in [0.999, 0.5].into_iter().zip(got) {
                let rank = ((q * total as f64).ceil() as u64).max(1);
                let mut seen = 0;
                let at = sum.buckets.iter().find(|(_, c)| {
                    seen += c;
                    seen >= rank
                });
                assert_eq!(g.is_some(), at.is_some());
                if let (Some(g), Some(&(bk, _))) = (g, at) {
                    let bk = bk as usize;
                    assert!(hist::lower(bk) <= g && g < hist::upper(bk).max(hist::lower(bk) + 1));
                }
            }
        }
    }

    #[test]
    fn bucket_bounds_cover_values() {
        for v in [0u64, 7, 8, 9, 15, 16, 100, 1023, 1024, 123_456_789, 1 << 40] {
            let b = hist::bucket(v);
            assert!(hist::lower(b) <= v, "{v}");
            assert!(b == hist::BUCKETS - 1 || v < hist::upper(b), "{v}");
        }
    }
}
