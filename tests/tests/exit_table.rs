//! Privileged tests of the exit table (one shared mmappable array of rows, reason tables,
//! free lists): readers racing writers, rows spanning many octaves, rows given back on
//! forget, refreshes that decode only what changed. Driven through the exact verified code
//! with BPF_PROG_TEST_RUN.

mod common;

use common::test_probe;

use std::sync::atomic::{AtomicBool, Ordering};

use kvmprof::{
    probe::{
        testrun::{Event, OP_ENTRY, OP_EXIT},
        Probe,
    },
    sample::{Key, Sample, Stat},
};
use profiler_common::{counter, ev, hist, ISA_VMX};

/// One exit+entry of (`vm`, `vcpu`'s thread, `reason`) at time `t` taking `lat` ns.
fn pair(vm: u64, vcpu: u64, reason: u64, t: u64, lat: u64) -> [Event; 2] {
    pair_by(50_000 + vm * 64 + vcpu, vm, vcpu, reason, t, lat)
}

/// [`pair`] by thread `tid`.
fn pair_by(tid: u64, vm: u64, vcpu: u64, reason: u64, t: u64, lat: u64) -> [Event; 2] {
    [
        [OP_EXIT, 5000 + vm, tid, t, vcpu, ISA_VMX as u64, reason],
        [OP_ENTRY, 5000 + vm, tid, t + lat, vcpu, 0, 0],
    ]
}

fn run(p: &Probe, events: &[Event]) {
    let rets = p.test_run(events).expect("BPF_PROG_TEST_RUN");
    assert!(rets.iter().all(|r| *r == 0), "test entry returned {rets:?}");
}

fn octaves(s: &Sample, k: &Key) -> usize {
    let mut o: Vec<u16> = s.stats[k].hist.buckets.iter().map(|(b, _)| b / 8).collect();
    o.dedup();
    o.len()
}

/// A reader scanning the mapped rows while another CPU writes them never sees a count go
/// backwards, and every row it reads is whole: its histogram holds exactly its count (the
/// sequence lock; no row here spans more octaves than it links, so nothing is in the hash).
#[test]
fn a_reader_racing_the_writers_sees_no_torn_or_backward_row() {
    if !common::privileged("a_reader_racing_the_writers_sees_no_torn_or_backward_row") {
        return;
    }
    let p = test_probe(4096);
    // 4 VMs × 4 vCPUs × 8 reasons = 128 rows; latencies over 6 octaves (64 ns – 4 µs).
    let batch: Vec<Event> = (0..2_000u64)
        .flat_map(|i| {
            pair(
                i % 4,
                (i / 4) % 4,
                (i / 16) % 8,
                1_000 + i * 10_000,
                64 << (i % 6),
            )
        })
        .collect();
    let rounds = 200u64;
    let done = AtomicBool::new(false);
    let (mut reads, mut moved) = (0u64, 0u64);
    std::thread::scope(|sc| {
        sc.spawn(|| {
            for _ in 0..rounds {
                run(&p, &batch);
            }
            done.store(true, Ordering::Release);
        });
        let mut last: std::collections::BTreeMap<Key, u64> = Default::default();
        while !done.load(Ordering::Acquire) {
            let s = p.sample().expect("sample");
            reads += 1;
            for (k, st) in &s.stats {
                assert_eq!(st.hist.total(), st.count, "torn row {k:?}: {st:?}");
                let before = last.insert(*k, st.count).unwrap_or(0);
                assert!(
                    st.count >= before,
                    "{k:?} went back from {before} to {}",
                    st.count
                );
                moved += u64::from(st.count > before && before > 0);
            }
        }
    });
    let s = p.sample().expect("sample");
    let total: u64 = s.stats.values().map(|st| st.count).sum();
    assert_eq!(total, rounds * 2_000, "exits lost");
    // The race really happened: rows were read while they moved, more than once.
    assert!(
        reads >= 3 && moved > 0,
        "{reads} reads, {moved} rows seen moving"
    );
    eprintln!(
        "{reads} reads during the writes, {moved} moving rows, {} torn reads retried past",
        p.table_stats().1
    );
}

/// At load the kernel's `kvmprof_fill` puts every row, octave and reason-table index on its
/// free list, once, in ascending order (the sampler's scan counts on rows being used in that
/// order), including a last run shorter than FILL_CHUNK.
#[test]
fn the_kernel_fills_the_free_lists_in_index_order() {
    if !common::privileged("the_kernel_fills_the_free_lists_in_index_order") {
        return;
    }
    let mut p = test_probe(1000);
    assert!(
        p.filled().in_kernel,
        "filled by push syscalls: {:?}",
        p.filled()
    );
    for (name, n) in kvmprof::probe::table_sizes(1000) {
        if !name.starts_with("FREE_") {
            continue;
        }
        let map = p.ebpf_mut().map_mut(name).expect("free list");
        let mut q: aya::maps::Queue<_, u32> = aya::maps::Queue::try_from(map).expect("queue");
        let got: Vec<u32> = std::iter::from_fn(|| q.pop(0).ok()).collect();
        assert_eq!(got, (0..n).collect::<Vec<u32>>(), "{name}");
    }
}

/// A row spanning more octaves than it links keeps them in the overflow hash: the histogram
/// is still exact. Forgetting the VM gives its rows and octaves back: the table can then be
/// filled to --max-keys again with nothing refused.
#[test]
fn rows_spanning_many_octaves_are_exact_and_forgotten_rows_are_reused() {
    if !common::privileged("rows_spanning_many_octaves_are_exact_and_forgotten_rows_are_reused") {
        return;
    }
    let p = test_probe(256);
    // 20 octaves on one row: 7 linked, 13 in the hash.
    let events: Vec<Event> = (0..20u64)
        .flat_map(|o| pair(0, 0, 12, 1_000 + o * 10_000_000, 9 << o))
        .collect();
    run(&p, &events);
    let s = p.sample().expect("sample");
    let k = Key {
        tgid: 5000,
        vcpu: 0,
        isa: ISA_VMX,
        reason: 12,
    };
    assert_eq!(s.stats[&k].count, 20);
    assert_eq!(octaves(&s, &k), 20);
    let want: Vec<(u16, u64)> = (0..20u64)
        .map(|o| (hist::bucket(9 << o) as u16, 1))
        .collect();
    assert_eq!(s.stats[&k].hist.buckets, want);
    // Fill the table: 255 more rows of VM 1 (256 in all), then one more key is refused.
    let fill: Vec<Event> = (0..256u64)
        .flat_map(|r| pair(1, r / 128, r % 128, 1_000, 500))
        .collect();
    run(&p, &fill);
    let s = p.sample().expect("sample");
    assert_eq!(s.stats.len(), 256, "rows in use");
    assert_eq!(
        s.counter(counter::STATS_FULL),
        1,
        "the 257th key is refused, and counted"
    );
    // Forget VM 1: its 255 rows go back, and a new VM gets them all, with nothing refused.
    let mut p = p;
    p.forget(&[5001]).expect("forget");
    let refill: Vec<Event> = (0..255u64)
        .flat_map(|r| pair(2, r / 128, r % 128, 1_000, 500))
        .collect();
    run(&p, &refill);
    let s = p.sample().expect("sample");
    assert_eq!(
        s.counter(counter::STATS_FULL),
        1,
        "rows were not given back"
    );
    assert_eq!(s.stats.len(), 256);
    assert!(s.stats.keys().all(|k| k.tgid != 5001));
    assert_eq!(
        s.stats.values().map(|st| st.hist.total()).sum::<u64>(),
        20 + 255
    );
}

/// A refresh decodes only the rows that changed since the last one; and it finds rows far
/// past the first ones it scans (rows are used in index order; the scan follows them).
#[test]
fn a_refresh_decodes_only_changed_rows() {
    if !common::privileged("a_refresh_decodes_only_changed_rows") {
        return;
    }
    let p = test_probe(8192);
    let rows = |n: u64, t: u64| -> Vec<Event> {
        (0..n)
            .flat_map(|i| pair(i / 500, (i / 50) % 10, i % 50, t, 700))
            .collect()
    };
    run(&p, &rows(1_000, 1_000));
    p.sample().expect("sample");
    assert_eq!(p.table_stats().0, 1_000);
    let first = p.sample().expect("sample");
    let mut some: Vec<Event> = (0..3u64).flat_map(|i| pair(0, i, 7, 5_000, 900)).collect();
    // And one exit still in flight (its entry not yet seen).
    some.push(pair(1, 3, 9, 6_000, 0)[0]);
    run(&p, &some);
    let s = p.sample().expect("sample");
    assert_eq!(p.table_stats().0, 3, "unchanged rows were decoded again");
    // The sample says what changed since the one before: those rows and the exit in flight.
    let ch = s
        .changed
        .as_ref()
        .expect("the live sampler says what changed");
    assert_eq!(ch.since_ns, first.mono_ns);
    let mut keys = ch.keys.clone();
    keys.sort();
    keys.dedup();
    let k = |vm: u32, vcpu: u32, reason: u32| Key {
        tgid: 5000 + vm,
        vcpu,
        isa: ISA_VMX,
        reason,
    };
    assert_eq!(keys, vec![k(0, 0, 7), k(0, 1, 7), k(0, 2, 7), k(1, 3, 9)]);
    assert_eq!(s.stats.len(), 1_000);
    assert_eq!(s.stats.values().map(|st| st.count).sum::<u64>(), 1_003);
    // 5 000 rows at once: 4 000 beyond the ones seen so far.
    run(&p, &rows(5_000, 9_000));
    let s = p.sample().expect("sample");
    assert_eq!(s.stats.len(), 5_000);
    assert_eq!(s.stats.values().map(|st| st.count).sum::<u64>(), 6_003);
    // Every row moves (the map is rebuilt, with the same keys), then every row and a new one:
    // each time the sample says every key changed, in order.
    for (n, t) in [(5_000, 20_000), (5_001, 30_000)] {
        run(&p, &rows(n, t));
        let s = p.sample().expect("sample");
        let keys: Vec<Key> = s.stats.keys().copied().collect();
        assert_eq!(keys.len(), n as usize);
        let ch = s
            .changed
            .as_ref()
            .expect("the live sampler says what changed");
        assert_eq!(ch.keys, keys, "{n} rows moved");
    }
}

/// Exits of VM 5000 one after another, and what they sum to per key.
#[derive(Default)]
struct Exits {
    t: u64,
    ev: Vec<Event>,
    want: std::collections::BTreeMap<Key, Stat>,
}

impl Exits {
    /// One exit+entry of `reason` on vCPU `vcpu`, by thread `tid`, taking `lat` ns.
    fn add(&mut self, tid: u64, vcpu: u64, reason: u64, lat: u64) {
        self.t += 100_000;
        self.ev.extend(pair_by(tid, 0, vcpu, reason, self.t, lat));
        let k = Key {
            tgid: 5000,
            vcpu: vcpu as u32,
            isa: ISA_VMX,
            reason: reason as u32,
        };
        self.want.entry(k).or_default().record(lat, 1);
    }

    /// Runs the exits added since the last call, samples, and checks every key.
    fn check(&mut self, p: &Probe, step: &str) {
        run(p, &std::mem::take(&mut self.ev));
        let s = p.sample().expect("sample");
        assert_eq!(s.stats.len(), self.want.len(), "{step}: keys");
        for (k, w) in &self.want {
            let g = (s.stats.get(k)).unwrap_or_else(|| panic!("{step}: {k:?} missing"));
            assert_eq!(
                (g.count, g.sum_ns, g.min_ns, g.max_ns, &g.hist),
                (w.count, w.sum_ns, w.min_ns, w.max_ns, &w.hist),
                "{step}: {k:?}"
            );
        }
    }
}

/// A key served by several threads (a vCPU whose thread was replaced) has a row per thread,
/// and its statistics are their sum, whichever rows move: a new thread joining a key whose
/// only row did not move, one of the rows moving alone, every row moving (the refresh that
/// rebuilds all keys), then nothing. Checked against the same exits summed by hand.
#[test]
fn a_key_with_several_rows_is_their_sum_whichever_rows_move() {
    if !common::privileged("a_key_with_several_rows_is_their_sum_whichever_rows_move") {
        return;
    }
    let p = test_probe(4096);
    let mut x = Exits::default();
    // Thread 1 serves vCPU 0 (reasons 1–3); 40 other vCPUs, one thread and reason each.
    for r in 1..=3 {
        x.add(1, 0, r, 500 * r);
    }
    for v in 1..=40 {
        x.add(100 + v, v, 9, 700);
    }
    x.check(&p, "first rows");
    // Thread 2 takes vCPU 0 over: two keys now have two rows; thread 1's did not move.
    x.add(2, 0, 1, 3_000);
    x.add(2, 0, 2, 90);
    x.check(&p, "a second thread joins");
    // Only thread 1's row of reason 1 moves; then only thread 2's of reason 2.
    x.add(1, 0, 1, 40_000);
    x.check(&p, "the first row alone");
    x.add(2, 0, 2, 60);
    x.check(&p, "the second row alone");
    // Every row moves (the refresh that rebuilds every key), and a third thread joins.
    for r in 1..=3 {
        x.add(1, 0, r, 800);
        x.add(3, 0, r, 1_500);
    }
    x.add(2, 0, 1, 2_000);
    x.add(2, 0, 2, 2_000);
    for v in 1..=40 {
        x.add(100 + v, v, 9, 300 + v);
    }
    x.check(&p, "every row");
    assert_eq!(p.table_stats().0, 48, "rows decoded by the last refresh");
    // Nothing moves; then a single row, after the refresh that rebuilt everything.
    x.check(&p, "nothing");
    assert_eq!(p.table_stats().0, 0);
    x.add(105, 5, 9, 9_999);
    x.check(&p, "one row after the rebuild");
}

/// kvmprof-bench's in-kernel cost loop (`kvmprof_kcost`) runs the real exit and entry paths on
/// every pair it times, its floor and empty baselines aggregate nothing, and each program that
/// leaves a part out (`kvmprof_kcost_no_*`) leaves out that part: otherwise its figures would
/// price some other path.
#[test]
fn the_cost_loop_times_the_real_path_and_its_cuts_cut_only_their_part() {
    if !common::privileged("the_cost_loop_times_the_real_path_and_its_cuts_cut_only_their_part") {
        return;
    }
    // Pair i: VM i % 8, vCPU (i / 8) % 4, reason (i / 32) % 8, 700 + i % 300 ns; 512 pairs.
    let run = |name: &str| {
        let p = test_probe(1024);
        p.test_run_program(name, &[[512, 0, 0, 0, 0, 0, 0]])
            .expect("BPF_PROG_TEST_RUN");
        p.sample().expect("sample")
    };
    let want_sum: u64 = (0..512u64).map(|i| 700 + i % 300).sum();
    let sum = |s: &Sample| s.stats.values().map(|st| st.sum_ns).sum::<u64>();
    for name in ["kvmprof_kcost_empty", "kvmprof_kcost_floor"] {
        let s = run(name);
        assert!(s.stats.is_empty(), "{name} aggregated");
        assert_eq!(s.counters[counter::EXITS as usize], 0, "{name}");
    }
    for name in ["kvmprof_kcost", "kvmprof_kcost_again"] {
        let s = run(name);
        assert_eq!(s.stats.len(), 256, "{name}");
        assert!(s
            .stats
            .values()
            .all(|st| st.count == 2 && st.hist.total() == 2));
        assert_eq!(sum(&s), want_sum, "{name}");
        assert!(s
            .stats
            .values()
            .all(|st| st.max_ns >= 700 && st.min_ns <= st.max_ns));
        assert_eq!(s.counters[counter::EXITS as usize], 512, "{name}");
        assert_eq!(s.counters[counter::ENTRIES as usize], 512, "{name}");
    }
    // Each row's second exit in the next octave: the same pairs, counted in two octaves.
    let s = run("kvmprof_kcost_two_octaves");
    assert_eq!(s.stats.len(), 256);
    assert_eq!(sum(&s), want_sum + 256 * 700);
    assert!(s.stats.values().all(|st| {
        let (lo, hi) = (st.min_ns, st.max_ns);
        st.count == 2 && (700..1000).contains(&lo) && (1400..1700).contains(&hi)
    }));
    assert!(s.stats.values().all(|st| {
        let mut octs: Vec<u16> = st.hist.buckets.iter().map(|(b, _)| b / 8).collect();
        octs.dedup();
        st.hist.total() == 2 && octs.len() == 2 && octs[1] == octs[0] + 1
    }));
    let s = run("kvmprof_kcost_no_account");
    assert!(s.stats.is_empty(), "no_account made rows");
    assert_eq!(s.counters[counter::ENTRIES as usize], 512);
    let s = run("kvmprof_kcost_no_hist");
    assert_eq!(sum(&s), want_sum);
    assert!(s
        .stats
        .values()
        .all(|st| st.hist.total() == 0 && st.max_ns >= 700));
    let s = run("kvmprof_kcost_no_min_max");
    assert!(s
        .stats
        .values()
        .all(|st| st.hist.total() == 2 && st.max_ns == 0));
    let s = run("kvmprof_kcost_no_counters");
    assert_eq!(sum(&s), want_sum);
    assert_eq!(s.counters[counter::EXITS as usize], 0);
    assert_eq!(s.counters[counter::ENTRIES as usize], 0);
    // Without the sequence lock a row's generation never moves: the reader skips every row.
    let s = run("kvmprof_kcost_no_seq");
    assert!(s.stats.is_empty(), "no_seq moved a row's generation");
    assert_eq!(s.counters[counter::ENTRIES as usize], 512);
    // About one exit in 64 is a guest-RIP sample; none without the check.
    let rips = |s: &Sample| {
        let n = s.evidence.iter().filter(|(k, _)| k.kind == ev::GUEST_RIP);
        n.map(|(_, v)| v.count).sum::<u64>()
    };
    assert!(
        rips(&run("kvmprof_kcost")) > 0,
        "the whole path sampled no RIP"
    );
    let s = run("kvmprof_kcost_no_rip");
    assert_eq!((sum(&s), rips(&s)), (want_sum, 0));
    // None of these exits is slow: without the log's work everything else is still done.
    let s = run("kvmprof_kcost_no_slow");
    assert_eq!(sum(&s), want_sum);
    assert!(s
        .stats
        .values()
        .all(|st| st.hist.total() == 2 && st.max_ns >= 700));
    assert!(rips(&s) > 0);
}
