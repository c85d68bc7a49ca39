//! The rate sparkline's history: for the last [`HISTORY`] intervals, each key's cumulative
//! exit count, one column per sample in the sample's key order (shared by the samples whose
//! keys did not change). A refresh appends a column in one sequential pass; the rates of the
//! one row the histogram screen shows are worked out when it is drawn. Keeping each row's
//! rate per interval instead (a map per interval, or a ring per row) cost a scattered write
//! per row and refresh: ~9 ms and ~5 ms at 40 960 rows (kvmprof-bench's TUI line).

use std::{collections::VecDeque, sync::Arc};

use super::HistTarget;
use crate::sample::{Key, Sample};

/// Intervals kept.
pub(super) const HISTORY: usize = 60;

/// One sample's counts.
struct Column {
    mono_ns: u64,
    keys: Arc<Vec<Key>>,
    /// Timed exits per key, in `keys` order.
    counts: Vec<u64>,
    /// Exits in flight (a few keys: halted or busy vCPUs).
    in_flight: Vec<(Key, u64)>,
}

#[derive(Default)]
pub(super) struct Sparks {
    /// Up to HISTORY + 1 samples, oldest first.
    cols: VecDeque<Column>,
}

impl Sparks {
    pub(super) fn clear(&mut self) {
        self.cols.clear();
    }

    pub(super) fn push(&mut self, s: &Sample) {
        let mut counts = match self.cols.len() > HISTORY {
            true => self.cols.pop_front().map(|c| c.counts).unwrap_or_default(),
            false => Vec::with_capacity(s.stats.len()),
        };
        counts.clear();
        let prev = self.cols.back().map(|c| &c.keys);
        // The previous column's keys, while this sample's are the same.
        let mut same = prev.is_some_and(|p| p.len() == s.stats.len());
        let mut fresh = Vec::new();
        for (i, (k, st)) in s.stats.iter().enumerate() {
            counts.push(st.count);
            if same && prev.is_some_and(|p| p[i] != *k) {
                same = false;
                fresh.extend(s.stats.keys().take(i));
            }
            if !same {
                fresh.push(*k);
            }
        }
        let keys = match (same, prev) {
            (true, Some(p)) => p.clone(),
            _ => Arc::new(fresh),
        };
        self.cols.push_back(Column {
            mono_ns: s.mono_ns,
            keys,
            counts,
            in_flight: s.in_flight.iter().map(|(k, v)| (*k, *v)).collect(),
        });
    }

    /// `t`'s rate per interval, oldest first (one interval fewer than samples pushed, at
    /// most [`HISTORY`]): its key's exits per second, or the sum over the VM's vCPUs' keys,
    /// counted as the interval view counts them.
    pub(super) fn history(&self, t: &HistTarget) -> Vec<f64> {
        let per: Vec<Vec<(Key, u64, u64)>> = self.cols.iter().map(|c| c.of(t)).collect();
        let cols: Vec<&Column> = self.cols.iter().collect();
        cols.windows(2)
            .zip(per.windows(2))
            .map(|(c, p)| {
                let secs = c[1].mono_ns.saturating_sub(c[0].mono_ns) as f64 / 1e9;
                let n: u64 = p[1]
                    .iter()
                    .map(|new| exits(p[0].iter().find(|o| o.0 == new.0), new))
                    .sum();
                if secs > 0.0 {
                    n as f64 / secs
                } else {
                    0.0
                }
            })
            .collect()
    }
}

/// A key's exits in an interval from its (key, timed, in flight) before and after, as
/// `model`'s delta counts them: timed exits plus the change in flight, from zero when the
/// count went down (the key was made anew).
fn exits(old: Option<&(Key, u64, u64)>, new: &(Key, u64, u64)) -> u64 {
    let (oc, oi) = old.map_or((0, 0), |o| (o.1, o.2));
    match new.1.checked_sub(oc) {
        Some(timed) => (timed + new.2).saturating_sub(oi),
        None => new.1 + new.2,
    }
}

impl Column {
    /// The target's keys with their timed and in-flight exits: its vCPU's key, or every key
    /// of the VM with its reason.
    fn of(&self, t: &HistTarget) -> Vec<(Key, u64, u64)> {
        let want = |k: &Key| {
            k.tgid == t.pid
                && k.isa == t.isa
                && k.reason == t.reason
                && t.vcpu.is_none_or(|v| k.vcpu == v)
        };
        let lo = self.keys.partition_point(|k| k.tgid < t.pid);
        let hi = self.keys.partition_point(|k| k.tgid <= t.pid);
        let mut out: Vec<(Key, u64, u64)> = (lo..hi)
            .filter(|&i| want(&self.keys[i]))
            .map(|i| (self.keys[i], self.counts[i], 0))
            .collect();
        for (k, n) in self.in_flight.iter().filter(|(k, _)| want(k)) {
            match out.iter_mut().find(|o| o.0 == *k) {
                Some(o) => o.2 = *n,
                None => out.push((*k, 0, *n)),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        model::{self, Row},
        sample::Stat,
    };

    /// The sparkline against the rates the interval views show for the same rows, over keys
    /// that come and go, a key made anew (its count drops) and more intervals than kept.
    #[test]
    fn history_is_the_interval_views_rates() {
        let names = crate::decode::ExitNames::builtin();
        let targets = [
            HistTarget {
                pid: 7,
                vcpu: Some(0),
                isa: 1,
                reason: 30,
            },
            HistTarget {
                pid: 7,
                vcpu: Some(1),
                isa: 1,
                reason: 30,
            },
            HistTarget {
                pid: 7,
                vcpu: None,
                isa: 1,
                reason: 30,
            },
            HistTarget {
                pid: 9,
                vcpu: None,
                isa: 1,
                reason: 12,
            },
        ];
        let mut s = Sparks::default();
        let mut want: Vec<Vec<f64>> = vec![Vec::new(); targets.len()];
        let mut prev: Option<Sample> = None;
        let mut smp = Sample::default();
        let mut x = 88_172_645_463_325_252u64;
        for i in 0..150u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            smp.mono_ns = 1_000_000_000 + i * 250_000_000 + x % 1000;
            for (j, t) in targets.iter().filter(|t| t.vcpu.is_some()).enumerate() {
                let k = Key {
                    tgid: t.pid,
                    vcpu: t.vcpu.unwrap_or(0),
                    isa: 1,
                    reason: t.reason,
                };
                let st = smp.stats.entry(k).or_insert(Stat::default());
                st.count += (x >> (8 * j)) % 50;
            }
            let k9 = Key {
                tgid: 9,
                vcpu: 3,
                isa: 1,
                reason: 12,
            };
            match i % 40 {
                10..=19 => drop(smp.stats.remove(&k9)),
                25 => drop(smp.stats.insert(
                    k9,
                    Stat {
                        count: 1,
                        ..Default::default()
                    },
                )),
                _ => smp.stats.entry(k9).or_default().count += x % 7,
            }
            smp.in_flight.clear();
            if x.is_multiple_of(2) {
                smp.in_flight.insert(
                    Key {
                        tgid: 7,
                        vcpu: 1,
                        isa: 1,
                        reason: 30,
                    },
                    1,
                );
            }
            s.push(&smp);
            if let Some(p) = &prev {
                let v = model::compute(p, &smp, &names);
                for (t, w) in targets.iter().zip(&mut want) {
                    w.push(rate_in(&v, t));
                }
            }
            prev = Some(smp.clone());
            for (t, w) in targets.iter().zip(&want) {
                let got = s.history(t);
                let w = &w[w.len().saturating_sub(HISTORY)..];
                assert_eq!(got.len(), w.len());
                for (g, w) in got.iter().zip(w) {
                    assert!(
                        (g - w).abs() <= 1e-9 * w.abs().max(1.0),
                        "{t:?} interval {i}: {g} vs {w}"
                    );
                }
            }
        }
        s.clear();
        assert!(s.history(&targets[0]).is_empty());
    }

    fn rate_in(v: &model::View, t: &HistTarget) -> f64 {
        let Some(vm) = v.vms.iter().find(|vm| vm.pid == t.pid) else {
            return 0.0;
        };
        let rows: &[Row] = match t.vcpu {
            None => &vm.reasons,
            Some(c) => match vm.vcpus.iter().find(|x| x.vcpu == c) {
                Some(x) => &x.reasons,
                None => return 0.0,
            },
        };
        rows.iter()
            .find(|r| r.isa == t.isa && r.reason == t.reason)
            .map_or(0.0, |r| r.rate_per_s)
    }
}
