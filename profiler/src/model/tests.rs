//! Hand-built samples with known answers.

use std::collections::BTreeMap;

use super::*;
use crate::{
    decode::ExitNames,
    sample::{Key, ProgStat, Sample, Stat, VmInfo},
};

const SEC: u64 = 1_000_000_000;

fn key(tgid: u32, vcpu: u32, isa: u32, reason: u32) -> Key {
    Key {
        tgid,
        vcpu,
        isa,
        reason,
    }
}

/// A stat holding `n` exits of `ns` each on top of `base`.
fn add(base: Option<&Stat>, n: u64, ns: u64) -> Stat {
    let mut s = base.cloned().unwrap_or_default();
    s.record(ns, n);
    s
}

fn sample(mono_s: u64, stats: &[(Key, u64, u64)]) -> Sample {
    let mut s = Sample {
        mono_ns: mono_s * SEC,
        ..Default::default()
    };
    for (k, n, ns) in stats {
        let st = add(s.stats.get(k), *n, *ns);
        s.stats.insert(*k, st);
    }
    s
}

fn vm(v: &View, pid: u32) -> &VmView {
    v.vms.iter().find(|m| m.pid == pid).expect("vm present")
}

fn row(rows: &[Row], reason: u32) -> &Row {
    rows.iter()
        .find(|r| r.reason == reason)
        .expect("row present")
}

#[test]
fn deltas_rates_and_shares_exclude_hlt() {
    let names = ExitNames::builtin();
    let io = key(10, 0, 2, 0x7b);
    let hlt = key(10, 0, 2, 0x78);
    let old = sample(100, &[(io, 50, 1_000), (hlt, 5, 1_000_000)]);
    // +100 io of 2 µs and +10 hlt of 1 ms over 2 s.
    let mut new = old.clone();
    new.mono_ns = 102 * SEC;
    new.stats.insert(io, add(old.stats.get(&io), 100, 2_000));
    new.stats
        .insert(hlt, add(old.stats.get(&hlt), 10, 1_000_000));
    new.stats.insert(key(10, 0, 2, 0x72), add(None, 100, 6_000));
    let v = compute(&old, &new, &names);
    assert_eq!(v.duration_s, 2.0);
    let m = vm(&v, 10);
    assert_eq!(m.name, "pid 10");
    assert_eq!(m.exits, 210);
    assert_eq!(m.exits_per_s, 105.0);
    let r = row(&m.reasons, 0x7b);
    assert_eq!(
        (r.count, r.timed, r.hist_total, r.total_ns),
        (100, 100, 100, 200_000)
    );
    assert_eq!(r.rate_per_s, 50.0);
    assert_eq!(r.mean_ns, 2_000.0);
    // Non-HLT: 200 exits, 800 µs: io 50 % of samples, 25 % of time.
    assert_eq!(r.samples_pct, 50.0);
    assert_eq!(r.time_pct, 25.0);
    let h = row(&m.reasons, 0x78);
    assert!(h.hlt);
    // HLT's own share of all 210 exits and of all time (10 ms of 10.8 ms).
    assert!((h.samples_pct - 10.0 / 210.0 * 100.0).abs() < 1e-9);
    assert!((h.time_pct - 10_000_000.0 / 10_800_000.0 * 100.0).abs() < 1e-9);
    // Overhead: 800 µs of non-HLT handling over 2 s × 1 vCPU.
    assert!((m.overhead_pct - 0.04).abs() < 1e-9);
    assert_eq!(m.top_reason().map(|r| r.reason), Some(0x72));
    // Sorted by count by default, ties by (isa, reason).
    assert_eq!(m.reasons[0].reason, 0x72);
}

#[test]
fn in_flight_counts_as_seen_but_not_timed() {
    let names = ExitNames::builtin();
    let hlt = key(10, 1, 1, 12);
    let mut old = sample(1, &[(hlt, 3, 500)]);
    old.in_flight.insert(hlt, 1);
    // The halted exit re-entered (timed +1), and a new one is pending.
    let mut new = sample(2, &[(hlt, 4, 500)]);
    new.in_flight.insert(hlt, 1);
    let r = vm(&compute(&old, &new, &names), 10).reasons[0].clone();
    assert_eq!((r.count, r.timed, r.in_flight), (1, 1, 1));
    // Only in flight, never timed: seen, no time, no min/max.
    let only = key(11, 0, 1, 12);
    let mut new2 = Sample {
        mono_ns: 2 * SEC,
        ..Default::default()
    };
    new2.in_flight.insert(only, 2);
    let r = vm(&compute(&sample(1, &[]), &new2, &names), 11).reasons[0].clone();
    assert_eq!(
        (r.count, r.timed, r.min_ns, r.max_ns, r.mean_ns),
        (2, 0, 0, 0, 0.0)
    );
    // In-flight falling with nothing timed (VM gone mid-exit) saturates at 0.
    let mut old3 = sample(1, &[]);
    old3.in_flight.insert(only, 5);
    let mut new3 = sample(2, &[]);
    new3.in_flight.insert(only, 1);
    assert_eq!(vm(&compute(&old3, &new3, &names), 11).reasons[0].count, 0);
}

#[test]
fn percentiles_from_the_delta_histogram() {
    let names = ExitNames::builtin();
    let k = key(1, 0, 1, 30);
    // Before: slow exits that must not show up in this interval's percentiles.
    let old = sample(1, &[(k, 1000, 1_000_000)]);
    let mut new = old.clone();
    new.mono_ns = 2 * SEC;
    let mut st = old.stats[&k].clone();
    for i in 1..=1000u64 {
        st = add(Some(&st), 1, i * 100);
    }
    new.stats.insert(k, st);
    let r = vm(&compute(&old, &new, &names), 1).reasons[0].clone();
    let near = |got: u64, truth: f64| (got as f64 - truth).abs() / truth <= 0.0625;
    assert!(near(r.p50_ns, 50_000.0), "p50 {}", r.p50_ns);
    assert!(near(r.p99_ns, 99_000.0), "p99 {}", r.p99_ns);
    assert!(near(r.p999_ns, 99_900.0), "p999 {}", r.p999_ns);
    assert_eq!(vm(&compute(&old, &new, &names), 1).worst_p99_ns(), r.p99_ns);
}

#[test]
fn min_max_exact_when_new_else_bucket_bounds_clamped() {
    let names = ExitNames::builtin();
    let k = key(1, 0, 1, 30);
    // Key new in this interval: exact cumulative extremes.
    let new = sample(2, &[(k, 1, 1_234), (k, 1, 98_765)]);
    let r = vm(&compute(&sample(1, &[]), &new, &names), 1).reasons[0].clone();
    assert_eq!((r.min_ns, r.max_ns), (1_234, 98_765));
    // Key seen before; this interval's exits lie strictly inside the old range: bucket bounds
    // (a bucket spans 1/8 of its lower bound).
    let old = sample(1, &[(k, 1, 100), (k, 1, 1_000_000)]);
    let mut newer = old.clone();
    newer.mono_ns = 2 * SEC;
    newer.stats.insert(k, add(old.stats.get(&k), 2, 5_000));
    let r = vm(&compute(&old, &newer, &names), 1).reasons[0].clone();
    assert!(
        r.min_ns <= 5_000 && r.min_ns >= 5_000 * 7 / 8,
        "{}",
        r.min_ns
    );
    assert!(
        r.max_ns >= 5_000 && r.max_ns <= 5_000 * 9 / 8,
        "{}",
        r.max_ns
    );
    // A new maximum in the interval is exact; bounds never leave the cumulative range.
    let mut newer2 = newer.clone();
    newer2
        .stats
        .insert(k, add(newer.stats.get(&k), 1, 3_333_333));
    let r = vm(&compute(&newer, &newer2, &names), 1).reasons[0].clone();
    assert_eq!(r.max_ns, 3_333_333);
    // Percentiles (bucket midpoints) stay inside the exact extremes.
    assert!(r.p999_ns <= r.max_ns && r.p50_ns >= r.min_ns, "{r:?}");
    assert!(r.min_ns <= 3_333_333 && r.min_ns >= 3_333_333 * 7 / 8);
}

#[test]
fn overhead_per_vcpu_and_per_vm() {
    let names = ExitNames::builtin();
    let a = key(7, 0, 1, 48);
    let b = key(7, 1, 1, 48);
    let idle = key(7, 1, 1, 12);
    let old = sample(10, &[]);
    // vCPU0 spends 100 ms handling exits in 1 s, vCPU1 0 ms non-HLT (900 ms HLT).
    let new = sample(
        11,
        &[(a, 100, 1_000_000), (b, 0, 0), (idle, 9, 100_000_000)],
    );
    let m = vm(&compute(&old, &new, &names), 7).clone();
    assert_eq!(m.vcpu_count(), 2);
    assert!((m.vcpus[0].overhead_pct - 10.0).abs() < 1e-9);
    assert_eq!(m.vcpus[1].overhead_pct, 0.0);
    assert!((m.overhead_pct - 5.0).abs() < 1e-9);
}

#[test]
fn probe_cost_and_counters() {
    let names = ExitNames::builtin();
    let mut old = sample(1, &[]);
    old.progs = vec![ProgStat {
        name: "kvm_exit".into(),
        run_cnt: 1_000,
        run_time_ns: 100_000,
    }];
    old.counters = vec![1, 0, 0, 0, 0, 10, 10, 0];
    let mut new = sample(3, &[]);
    new.progs = vec![
        ProgStat {
            name: "kvm_exit".into(),
            run_cnt: 3_000,
            run_time_ns: 300_000,
        },
        ProgStat {
            name: "kvm_entry".into(),
            run_cnt: 10,
            run_time_ns: 500,
        },
    ];
    new.counters = vec![3, 0, 7, 0, 0, 30, 29];
    let v = compute(&old, &new, &names);
    assert_eq!(v.probe_cost[0].events, 2_000);
    assert_eq!(v.probe_cost[0].events_per_s, 1_000.0);
    assert_eq!(v.probe_cost[0].ns_per_event, 100.0);
    assert_eq!(v.probe_cost[0].run_time_ns, 200_000);
    assert_eq!(
        (v.probe_cost[1].events, v.probe_cost[1].ns_per_event),
        (10, 50.0)
    );
    assert_eq!(v.counters.orphan_entry, 2);
    assert_eq!(v.counters.stats_map_full, 7);
    assert_eq!(v.counters.exits, 20);
    assert_eq!(v.counters.userspace_exits, 0);
}

#[test]
fn pid_reuse_and_vanishing_stats_do_not_underflow() {
    let names = ExitNames::builtin();
    let k = key(42, 0, 1, 30);
    let mut old = sample(1, &[(k, 1_000, 5_000)]);
    old.in_flight.insert(k, 3);
    old.counters = vec![5; 8];
    old.progs = vec![ProgStat {
        name: "kvm_exit".into(),
        run_cnt: 99,
        run_time_ns: 99,
    }];
    // The VM is gone: its key disappeared; counters and programs reset (reload).
    let mut gone = sample(2, &[]);
    gone.counters = vec![1; 8];
    gone.progs = vec![ProgStat {
        name: "kvm_exit".into(),
        run_cnt: 4,
        run_time_ns: 40,
    }];
    let v = compute(&old, &gone, &names);
    assert!(v.vms.is_empty());
    assert_eq!(v.counters.exits, 1);
    assert_eq!(v.probe_cost[0].events, 4);
    // Same pid, new process with fewer exits: counted from zero.
    let mut again = sample(2, &[(k, 10, 7_000)]);
    old.vms.insert(42, vm_info(42, "old", 1));
    again.vms.insert(42, vm_info(42, "new", 2));
    let m = vm(&compute(&old, &again, &names), 42).clone();
    assert_eq!(m.name, "new");
    assert_eq!(
        (m.exits, m.reasons[0].min_ns, m.reasons[0].max_ns),
        (10, 7_000, 7_000)
    );
    // Same start time but more exits than before would be a plain delta; a larger old count
    // on the same key (LRU eviction) also restarts rather than wrapping.
    again.vms.insert(42, vm_info(42, "old", 1));
    assert_eq!(vm(&compute(&old, &again, &names), 42).exits, 10);
}

fn vm_info(pid: u32, name: &str, start_time: u64) -> VmInfo {
    VmInfo {
        pid,
        name: name.into(),
        start_time,
        ..Default::default()
    }
}

#[test]
fn unknown_reasons_stay_separate_and_userspace_apart() {
    let names = ExitNames::builtin();
    let old = sample(1, &[]);
    let mut new = sample(
        2,
        &[
            (key(5, 0, 1, 0xdead), 1, 100),
            (key(5, 0, 1, 0xbeef), 2, 100),
            (key(5, 1, 1, 0xbeef), 3, 100),
            (key(5, 4242, 0x100, 2), 4, 10_000),
            (key(5, 4243, 0x100, 2), 6, 10_000),
        ],
    );
    let mut info = vm_info(5, "web", 1);
    info.vcpu_threads = BTreeMap::from([(4242, 0), (4243, 1)]);
    info.uuid = Some("u-u-i-d".into());
    new.vms.insert(5, info);
    let v = compute(&old, &new, &names);
    let m = vm(&v, 5);
    assert_eq!(m.uuid.as_deref(), Some("u-u-i-d"));
    assert_eq!(m.reasons.len(), 2);
    assert_eq!(row(&m.reasons, 0xbeef).count, 5);
    assert_eq!(row(&m.reasons, 0xdead).count, 1);
    assert_ne!(row(&m.reasons, 0xbeef).name, row(&m.reasons, 0xdead).name);
    assert_eq!(m.exits, 6, "userspace returns are not kvm exits");
    assert_eq!(m.userspace.len(), 1);
    assert_eq!(
        (m.userspace[0].count, m.userspace[0].isa_name.as_str()),
        (10, "user")
    );
    assert_eq!(m.vcpus[1].userspace[0].count, 6);
    assert_eq!(m.vcpu_count(), 2);
}

#[test]
fn json_schema_is_exact() {
    let names = ExitNames::builtin();
    let new = sample(
        2,
        &[(key(5, 0, 2, 0x7b), 1, 100), (key(5, 9, 0x100, 2), 1, 100)],
    );
    let j = serde_json::to_value(compute(&sample(1, &[]), &new, &names)).expect("json");
    let keys = |v: &serde_json::Value| -> Vec<String> {
        let mut k: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(
        keys(&j),
        [
            "counters",
            "duration_s",
            "names_source",
            "probe_cost",
            "sched_split",
            "vms"
        ]
    );
    assert_eq!(
        keys(&j["counters"]),
        [
            "entries",
            "evidence_map_full",
            "exits",
            "orphan_entry",
            "pending_map_full",
            "read_error",
            "sched_missed",
            "stats_map_full",
            "unpaired_exit",
            "userspace_exits"
        ]
    );
    let vm = &j["vms"][0];
    assert_eq!(
        keys(vm),
        [
            "exits",
            "exits_per_s",
            "host_cpu",
            "name",
            "overhead_pct",
            "pid",
            "reasons",
            "userspace",
            "uuid",
            "vcpus"
        ]
    );
    assert!(vm["uuid"].is_null());
    assert!(vm["host_cpu"].is_null(), "no CPU times in these samples");
    assert_eq!(
        keys(&vm["vcpus"][0]),
        [
            "cpu_pct",
            "exits",
            "exits_per_s",
            "overhead_pct",
            "reasons",
            "steal_pct",
            "vcpu"
        ]
    );
    let row_keys = [
        "blocked_ns",
        "count",
        "hist_total",
        "hlt",
        "in_flight",
        "isa",
        "isa_name",
        "max_ns",
        "mean_ns",
        "min_ns",
        "name",
        "p50_ns",
        "p999_ns",
        "p99_ns",
        "rate_per_s",
        "reason",
        "samples_pct",
        "time_pct",
        "timed",
        "total_ns",
        "wait_ns",
    ];
    assert_eq!(keys(&vm["reasons"][0]), row_keys);
    assert_eq!(keys(&vm["userspace"][0]), row_keys);
    assert_eq!(vm["userspace"][0]["isa"], 256);
    assert_eq!(vm["reasons"][0]["isa_name"], "svm");
}

#[test]
fn sort_keys_order_rows() {
    let mk = |reason, count, total_ns, max_ns, p99_ns, name: &str| Row {
        reason,
        count,
        total_ns,
        max_ns,
        p99_ns,
        mean_ns: total_ns as f64 / count as f64,
        name: name.into(),
        ..Default::default()
    };
    let mut rows = vec![
        mk(1, 10, 100, 50, 40, "b"),
        mk(2, 5, 500, 400, 300, "a"),
        mk(3, 1, 200, 900, 100, "c"),
    ];
    let order = |rows: &[Row]| rows.iter().map(|r| r.reason).collect::<Vec<_>>();
    for (k, want) in [
        (SortKey::Count, [1, 2, 3]),
        (SortKey::Time, [2, 3, 1]),
        (SortKey::Max, [3, 2, 1]),
        (SortKey::Mean, [3, 2, 1]),
        (SortKey::P99, [2, 3, 1]),
        (SortKey::Name, [2, 1, 3]),
    ] {
        sort_rows(&mut rows, k);
        assert_eq!(order(&rows), want, "{k:?}");
    }
    assert_eq!(SortKey::Name.next(), SortKey::Count);
}
