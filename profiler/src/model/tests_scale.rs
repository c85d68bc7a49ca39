//! A refresh told which keys changed costs what changed, not what exists: the same changes on
//! a host 8× bigger cost about the same CPU time (this thread's, measured in the same run).

use std::time::Duration;

use profiler_common::ISA_VMX;

use super::{tests_fast::Rng, Model, View};
use crate::{
    decode::ExitNames,
    sample::{Changed, Key, Sample},
    test_util::{allocations, thread_cpu},
};

const VCPUS: u32 = 16;
const REASONS: u32 = 10;
/// Keys changed per refresh, scattered over the whole host.
const CHANGED: usize = 200;
const REFRESHES: usize = 8;

fn host(vms: u32) -> Sample {
    let mut s = Sample {
        mono_ns: 1_000_000_000,
        ..Default::default()
    };
    for tgid in 100..100 + vms {
        for vcpu in 0..VCPUS {
            for reason in 0..REASONS {
                let k = Key {
                    tgid,
                    vcpu,
                    isa: ISA_VMX,
                    reason,
                };
                let st = s.stats.entry(k).or_default();
                for ns in [400, 900, 3_000, 7_000] {
                    st.record(ns << (reason % 4), 2);
                }
            }
        }
    }
    s
}

/// The next sample: `CHANGED` random keys with more exits, and the sample says which.
fn next(s: &Sample, rng: &mut Rng) -> Sample {
    let all: Vec<Key> = s.stats.keys().copied().collect();
    let mut n = s.clone();
    n.mono_ns += 1_000_000_000;
    let mut keys: Vec<Key> = (0..CHANGED)
        .map(|_| all[rng.below(all.len() as u64) as usize])
        .collect();
    keys.sort_unstable();
    keys.dedup();
    for k in &keys {
        if let Some(st) = n.stats.get_mut(k) {
            st.record(500 + rng.below(50_000), 1 + rng.below(3));
        }
    }
    n.changed = Some(Changed {
        since_ns: s.mono_ns,
        keys,
    });
    n
}

/// Thread CPU time of `REFRESHES` refreshes of a host of `vms` VMs, after a first one.
fn refreshes(vms: u32) -> Duration {
    let mut rng = Rng(vms.into());
    let mut samples = vec![host(vms)];
    for _ in 0..=REFRESHES {
        let n = next(samples.last().expect("a sample"), &mut rng);
        samples.push(n);
    }
    let names = ExitNames::builtin();
    let (mut m, mut view) = (Model::new(), View::default());
    m.refresh(&mut view, &samples[0], &samples[1], &names);
    let t = thread_cpu();
    for w in samples[1..].windows(2) {
        m.refresh(&mut view, &w[0], &w[1], &names);
    }
    let spent = thread_cpu() - t;
    assert_eq!(m.wholes, 1, "every refresh after the first is in place");
    assert_eq!(view.vms.len(), vms as usize);
    spent
}

#[test]
fn a_refresh_costs_what_changed_not_what_exists() {
    // The least of three alternating runs each: other work can only add time.
    let (mut small, mut big) = (Duration::MAX, Duration::MAX);
    for _ in 0..3 {
        small = small.min(refreshes(8));
        big = big.min(refreshes(64));
    }
    // 8× the rows with the same changes: about the same time (refreshing every row was 6.5×).
    let ratio = big.as_secs_f64() / small.as_secs_f64().max(1e-3);
    assert!(ratio < 4.0, "{small:?} at 1 280 rows → {big:?} at 10 240");
}

/// A refresh in place reuses the view's rows and histogram buffers: its allocations do not
/// grow with the rows (what stays is per view: probe costs, names source, scratch growth).
#[test]
fn a_refresh_in_place_does_not_allocate_per_row() {
    let mut rng = Rng(3);
    let mut samples = vec![host(16)];
    for i in 0..6 {
        let mut n = next(samples.last().expect("a sample"), &mut rng);
        if i % 2 == 0 {
            // Not told: every key is recomputed in place.
            n.changed = None;
        }
        samples.push(n);
    }
    let rows = samples[0].stats.len() as u64;
    let names = ExitNames::builtin();
    let (mut m, mut view) = (Model::new(), View::default());
    m.refresh(&mut view, &samples[0], &samples[1], &names);
    m.refresh(&mut view, &samples[1], &samples[2], &names);
    for w in samples[2..].windows(2) {
        let before = allocations();
        m.refresh(&mut view, &w[0], &w[1], &names);
        let made = allocations() - before;
        assert!(made < rows / 50, "{made} allocations for {rows} rows");
    }
    assert_eq!(m.wholes, 1);
}
