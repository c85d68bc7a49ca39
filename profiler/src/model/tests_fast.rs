//! The model's fast paths against the reference one on random sample series: same view, field
//! for field, whatever happens to the keys (new, vanished, reset, in flight only, pid reused).

use profiler_common::{ISA_SVM, ISA_USERSPACE, ISA_VMX};

use super::{compute, compute_elapsed, reference::reference, span_ns, Model, View};
use crate::{
    decode::ExitNames,
    sample::{Key, Sample, Stat, VmInfo},
};

pub(super) struct Rng(pub u64);

impl Rng {
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n.max(1)
    }
    fn chance(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }
}

fn random_key(rng: &mut Rng) -> Key {
    let tgid = 10 + rng.below(3) as u32;
    let (isa, reason) = match rng.below(5) {
        0 | 1 => (ISA_VMX, [1, 12, 30, 48, 0x8000_0021][rng.below(5) as usize]),
        2 => (ISA_SVM, [0x78, 0x7b, 0x400][rng.below(3) as usize]),
        3 => (ISA_VMX, 0x1_0000 | 2),
        _ => (ISA_USERSPACE, [2, 5, 6][rng.below(3) as usize]),
    };
    // Userspace keys carry a thread id: 100.. are named vCPU threads, 200 is not.
    let vcpu = if isa == ISA_USERSPACE {
        [100, 101, 102, 200][rng.below(4) as usize]
    } else {
        rng.below(4) as u32
    };
    Key {
        tgid,
        vcpu,
        isa,
        reason,
    }
}

fn vm(pid: u32, start_time: u64) -> VmInfo {
    VmInfo {
        pid,
        name: format!("vm{pid}"),
        start_time,
        vcpu_threads: (0..3).map(|v| (100 + v, v)).collect(),
        ..Default::default()
    }
}

/// `n` cumulative samples 1 s apart; `churn` enables new, vanishing, reset and reused keys.
pub(super) fn series(seed: u64, n: usize, churn: bool) -> Vec<Sample> {
    let mut rng = Rng(seed);
    let mut s = Sample {
        mono_ns: 5_000_000_000,
        ..Default::default()
    };
    for pid in 10..12 {
        s.vms.insert(pid, vm(pid, 1));
    }
    for _ in 0..30 {
        let k = random_key(&mut rng);
        s.stats
            .entry(k)
            .or_default()
            .record(100 + rng.below(50_000), 3);
    }
    let mut out = vec![s.clone()];
    for _ in 1..n {
        s.mono_ns += 1_000_000_000 + rng.below(1000);
        // Without churn, only the keys there from the start change.
        let known: Vec<Key> = s.stats.keys().copied().collect();
        let pick = |rng: &mut Rng| match churn {
            true => random_key(rng),
            false => known[rng.below(known.len() as u64) as usize],
        };
        for _ in 0..rng.below(12) {
            let k = pick(&mut rng);
            let st = s.stats.entry(k).or_default();
            st.record(50 + rng.below(200_000), 1 + rng.below(5));
        }
        // Sampled guest RIPs: a few of the keys' reasons, at a handful of addresses; with
        // churn some go (LRU eviction) and come back counting from 1.
        for _ in 0..rng.below(4) {
            let k = pick(&mut rng);
            if let Some(flags) = profiler_common::ev::rip_flags(k.isa, k.reason) {
                let e = crate::sample::EvKey {
                    tgid: k.tgid,
                    kind: profiler_common::ev::GUEST_RIP,
                    flags,
                    a: 0xffff_f800_0000_0000 * rng.below(2) + rng.below(4) * 0x10,
                };
                match churn && rng.chance(20) {
                    true => drop(s.evidence.insert(
                        e,
                        crate::sample::EvStat {
                            count: 1,
                            ..Default::default()
                        },
                    )),
                    false => s.evidence.entry(e).or_default().count += 1 + rng.below(3),
                }
            }
        }
        if rng.chance(40) {
            let k = pick(&mut rng);
            match rng.below(3) {
                0 => drop(s.in_flight.insert(k, rng.below(3))),
                1 => drop(s.in_flight.remove(&k)),
                _ => {}
            }
        }
        if churn && rng.chance(30) {
            let k = random_key(&mut rng);
            match rng.below(3) {
                0 => drop(s.stats.remove(&k)),
                // Recreated with fewer exits than before: a reset.
                1 => drop(s.stats.insert(k, {
                    let mut st = Stat::default();
                    st.record(700, 1);
                    st
                })),
                _ => {
                    let pid = 10 + rng.below(3) as u32;
                    let start = s.vms.get(&pid).map_or(1, |v| v.start_time + 1);
                    s.vms.insert(pid, vm(pid, start));
                }
            }
        }
        out.push(s.clone());
    }
    out
}

#[test]
fn compute_matches_the_reference() {
    let names = ExitNames::builtin();
    for seed in 0..40 {
        let s = series(seed, 12, true);
        for w in s.windows(2) {
            let want = reference(&w[0], &w[1], &names, span_ns(&w[0], &w[1]));
            assert_eq!(compute(&w[0], &w[1], &names), want, "seed {seed}");
        }
        let (first, last) = (&s[0], &s[s.len() - 1]);
        let empty = Sample::default();
        for (a, b, ns) in [(&empty, first, 0), (first, last, 7), (last, first, 3)] {
            assert_eq!(
                compute_elapsed(a, b, &names, ns),
                reference(a, b, &names, ns),
                "seed {seed}"
            );
        }
    }
}

/// The keys whose stats or in-flight count differ between `a` and `b`.
pub(super) fn diff(a: &Sample, b: &Sample) -> Vec<Key> {
    let keys: std::collections::BTreeSet<&Key> = [a, b]
        .iter()
        .flat_map(|s| s.stats.keys().chain(s.in_flight.keys()))
        .collect();
    keys.into_iter()
        .filter(|k| a.stats.get(k) != b.stats.get(k) || a.in_flight.get(k) != b.in_flight.get(k))
        .copied()
        .collect()
}

/// Each sample of `s` told what changed since the one before it.
pub(super) fn with_changes(mut s: Vec<Sample>) -> Vec<Sample> {
    for i in 1..s.len() {
        let mut keys = diff(&s[i - 1], &s[i]);
        // In any order, as the contract allows.
        if i % 2 == 1 {
            keys.reverse();
        }
        s[i].changed = Some(crate::sample::Changed {
            since_ns: s[i - 1].mono_ns,
            keys,
        });
    }
    s
}

#[test]
fn model_refreshes_match_the_reference() {
    let names = ExitNames::builtin();
    let mut with_rips = 0;
    for seed in 0..40 {
        for (churn, told) in [(false, false), (false, true), (true, false), (true, true)] {
            let s = series(seed, 12, churn);
            let s = if told { with_changes(s) } else { s };
            let mut m = Model::new();
            let mut view = View::default();
            let empty = Sample::default();
            for (a, b) in pairs(&s, &empty) {
                m.refresh(&mut view, a, b, &names);
                let want = reference(a, b, &names, span_ns(a, b));
                with_rips += view.vms.iter().filter(|v| !v.guest_rips.is_empty()).count();
                if view != want {
                    panic!(
                        "seed {seed} churn {churn} told {told}: {}",
                        first_diff(&view, &want)
                    );
                }
            }
            if !churn {
                // In place from the second refresh on (the first is since attach).
                assert_eq!(m.wholes, 1, "seed {seed} told {told}");
            }
        }
    }
    // The series sample guest RIPs, so the views compared hold them.
    assert!(with_rips > 100, "{with_rips} VM views with RIPs");
}

/// Since attach, then each interval, with one pause (a sample skipped).
pub(super) fn pairs<'a>(s: &'a [Sample], empty: &'a Sample) -> Vec<(&'a Sample, &'a Sample)> {
    let mut pairs = vec![(empty, &s[0])];
    pairs.extend(s.windows(2).take(6).map(|w| (&w[0], &w[1])));
    pairs.push((&s[6], &s[9]));
    pairs.extend(s[9..].windows(2).map(|w| (&w[0], &w[1])));
    pairs
}

/// Where two views differ first, shortly.
pub(super) fn first_diff(a: &View, b: &View) -> String {
    for (x, y) in a.vms.iter().zip(&b.vms) {
        let tables = [(&x.reasons, &y.reasons), (&x.userspace, &y.userspace)];
        let vcpus = x.vcpus.iter().zip(&y.vcpus);
        let vcpus =
            vcpus.flat_map(|(c, d)| [(&c.reasons, &d.reasons), (&c.userspace, &d.userspace)]);
        for (t, u) in tables.into_iter().chain(vcpus) {
            if t != u {
                return format!("vm {}: {t:?}\nwant {u:?}", x.pid);
            }
        }
        if x != y {
            return format!("vm {}: {x:?}\nwant {y:?}", x.pid);
        }
    }
    format!("{a:?}\nwant {b:?}")
}

/// Other names (another kernel's tables, a replay's) name the rows anew.
#[test]
fn model_renames_rows_when_the_names_change() {
    let s = series(5, 4, false);
    let mut other = ExitNames::builtin();
    for n in [&mut other.vmx, &mut other.svm, &mut other.user]
        .into_iter()
        .flat_map(|t| t.values_mut())
    {
        n.push_str(" (elsewhere)");
    }
    let (mut m, mut view) = (Model::new(), View::default());
    for (names, w) in [ExitNames::builtin(), other].iter().zip(s.windows(2)) {
        m.refresh(&mut view, &w[0], &w[1], names);
        assert_eq!(view, reference(&w[0], &w[1], names, span_ns(&w[0], &w[1])));
    }
}
