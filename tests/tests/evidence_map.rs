//! Privileged tests of the evidence map, keyed per thread (not per CPU): vCPU threads of one
//! VM on different CPUs bump the same evidence at once, and no event may be lost; no map that
//! grows with its keys is per CPU. Driven through the exact verified code (kvm_msr's bump,
//! the test entry's op 4) with BPF_PROG_TEST_RUN.

mod common;

use common::test_probe;

use kvmprof::{probe::testrun::Event, sample::EvKey};
use profiler_common::ev;

const VM: u64 = 7100;
/// MSRs the two CPUs share; every event writes one of them.
const MSRS: u64 = 4;

/// An MSR write event of the test entry (op 4: tid ≠ 0 = write, `now` = MSR, `vcpu` = data).
fn msr_write(msr: u64, data: u64) -> Event {
    [4, VM, 1, msr, data, 0, 0]
}

/// Two threads pinned to two CPUs bump the same four keys 200 000 times each: every key's
/// count, summed over its threads, is exactly the events sent (one value shared by both
/// threads, bumped with plain adds, loses some of them when the CPUs overlap).
#[test]
fn two_cpus_bumping_the_same_keys_lose_no_event() {
    if !common::privileged("two_cpus_bumping_the_same_keys_lose_no_event") {
        return;
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert!(
        cpus >= 2,
        "needs two CPUs to race two writers; this machine has {cpus}"
    );
    let p = test_probe(1024);
    let batch: Vec<Event> = (0..2_000u64)
        .map(|i| msr_write(0x4000_0070 + i % MSRS, i))
        .collect();
    let rounds = 100u64;
    std::thread::scope(|sc| {
        for cpu in 0..2 {
            let (p, batch) = (&p, &batch);
            sc.spawn(move || {
                kvmprof::exerciser::pin_to(cpu).expect("pin to a CPU");
                for _ in 0..rounds {
                    let rets = p.test_run(batch).expect("BPF_PROG_TEST_RUN");
                    assert!(rets.iter().all(|r| *r == 0), "test entry returned {rets:?}");
                }
            });
        }
    });
    let s = p.sample().expect("sample");
    let per_key = 2 * rounds * 2_000 / MSRS;
    for m in 0..MSRS {
        let msr = 0x4000_0070 + m;
        let k = s
            .evidence
            .iter()
            .find(|(k, _)| {
                **k == EvKey {
                    tgid: VM as u32,
                    kind: ev::MSR_WRITE,
                    flags: k.flags,
                    a: msr,
                }
            })
            .map(|(_, v)| v.count);
        assert_eq!(k, Some(per_key), "MSR {msr:#x}: events lost or doubled");
    }
    assert_eq!(
        s.counter(profiler_common::counter::EVIDENCE_FULL),
        0,
        "evidence map full"
    );
}

/// No map whose size grows with its keys is per CPU: the only per-CPU maps are fixed-size
/// counters (a few words per CPU, whatever the number of VMs, vCPUs or evidence keys).
#[test]
fn only_fixed_size_maps_are_per_cpu() {
    if !common::privileged("only_fixed_size_maps_are_per_cpu") {
        return;
    }
    let p = test_probe(1024);
    let mut per_cpu: Vec<String> = (p.map_memory().into_iter())
        .filter(|m| m.per_cpu)
        .map(|m| m.name)
        .collect();
    per_cpu.sort();
    assert_eq!(per_cpu, ["COUNTERS", "SLOW_RATE"], "per-CPU maps");
}

/// A key's count in the sample's evidence (its threads summed), 0 when absent.
fn count_of(s: &kvmprof::sample::Sample, kind: u16, a: u64) -> u64 {
    let hit = |k: &EvKey| k.tgid == VM as u32 && k.kind == kind && k.a == a;
    s.evidence
        .iter()
        .filter(|(k, _)| hit(k))
        .map(|(_, v)| v.count)
        .sum()
}

/// The sampler reads EVIDENCE key by key while the kernel has told it of every key it added
/// (the NEW_KEYS ring), and walks the map again when the ring overflowed; sampled RIPs come
/// from their mapped slots: each sample holds every key with its exact count either way, and
/// keys of a forgotten VM go.
#[test]
fn new_keys_are_read_without_walking_the_maps() {
    if !common::privileged("new_keys_are_read_without_walking_the_maps") {
        return;
    }
    let mut p = test_probe(1024);
    p.sample().expect("first sample");
    let walked = p.evidence_reads();
    // Sampled exits (op 5) at two RIPs, and MSR writes: new keys, then the same keys again
    // with new ones, each followed by a sample.
    let (mut t, mut rips) = (1_000_000_000u64, [0u64; 2]);
    let mut step = |p: &kvmprof::probe::Probe, msrs: std::ops::Range<u64>| {
        let mut events: Vec<Event> = msrs.map(|m| msr_write(0x4000_0000 + m, m)).collect();
        while events.len() < 400 {
            t += 977;
            if ev::rip_sampled(t) {
                let n = events.len() % 2;
                rips[n] += 1;
                let rip = 0x1000 + n as u64;
                events.push([
                    5,
                    VM,
                    300,
                    t,
                    0,
                    rip,
                    (profiler_common::ISA_SVM as u64) << 32 | 0x7b,
                ]);
                events.push([1, VM, 300, t + 500, 0, 0, 0]);
            }
        }
        p.test_run(&events).expect("BPF_PROG_TEST_RUN");
        p.sample().expect("sample")
    };
    let s = step(&p, 0..8);
    let s2 = step(&p, 4..12);
    for (m, want) in [(0, 1), (4, 2), (11, 1)] {
        assert_eq!(
            count_of(&s2, ev::MSR_WRITE, 0x4000_0000 + m),
            want,
            "MSR {m}"
        );
    }
    assert_eq!(count_of(&s, ev::MSR_WRITE, 0x4000_000b), 0);
    let sampled: u64 = (0..2)
        .map(|n| count_of(&s2, ev::GUEST_RIP, 0x1000 + n))
        .sum();
    assert_eq!(
        sampled,
        rips.iter().sum::<u64>(),
        "sampled RIPs lost or doubled"
    );
    assert_eq!(
        p.evidence_reads().0,
        walked.0,
        "the sampler walked EVIDENCE although the kernel told it of every new key"
    );
    assert!(p.evidence_reads().1 >= 2);
    // A forgotten VM's keys leave the sample (its lookups find them gone, its RIP slots are
    // given back).
    let rip_keys = (s2.evidence.keys())
        .filter(|k| k.kind == ev::GUEST_RIP && k.tgid == VM as u32)
        .count() as u64;
    assert!(rip_keys >= 1);
    p.forget(&[VM as u32]).expect("forget");
    assert_eq!(
        p.rip_slots_freed(),
        rip_keys,
        "the VM's RIP slots given back"
    );
    let s = p.sample().expect("sample after forget");
    assert_eq!(count_of(&s, ev::MSR_WRITE, 0x4000_0004), 0);
    assert_eq!(count_of(&s, ev::GUEST_RIP, 0x1000), 0);
    // More new keys than the ring holds between two samples (64 KiB, 40 B each): the ones it
    // could not tell of are counted, and the next sample walks and finds every key.
    let many: Vec<Event> = (0..2_000u64).map(|m| msr_write(0x10_0000 + m, m)).collect();
    p.test_run(&many).expect("BPF_PROG_TEST_RUN");
    let s = p.sample().expect("sample");
    assert!(
        p.evidence_reads().0 > walked.0,
        "no walk after the ring overflowed"
    );
    let found = (0..2_000u64)
        .filter(|m| count_of(&s, ev::MSR_WRITE, 0x10_0000 + m) == 1)
        .count();
    assert_eq!(found, 2_000, "keys missing after the ring overflowed");
}

/// Sampled exits at `rips` (one each, a sampled time each) of VM `VM`, in test runs.
fn sample_rips(p: &kvmprof::probe::Probe, t: &mut u64, rips: impl Iterator<Item = u64>) {
    let mut events: Vec<Event> = Vec::new();
    for rip in rips {
        *t += 977;
        while !ev::rip_sampled(*t) {
            *t += 977;
        }
        let reason = (profiler_common::ISA_SVM as u64) << 32 | 0x7b;
        events.push([5, VM, 300, *t, 0, rip, reason]);
        events.push([1, VM, 300, *t + 500, 0, 0, 0]);
        if events.len() >= 400 {
            p.test_run(&events).expect("BPF_PROG_TEST_RUN");
            events.clear();
        }
    }
    p.test_run(&events).expect("BPF_PROG_TEST_RUN");
}

/// The sampled RIPs' slots (4 096): while more than an eighth are free every key has one; past
/// that the sampler gives back the ones counted least lately, down to a quarter free, so the
/// busy RIPs stay and new ones find room (as the LRU hash this replaced pushed out cold keys).
#[test]
fn the_coldest_rip_slots_are_given_back_when_few_are_free() {
    if !common::privileged("the_coldest_rip_slots_are_given_back_when_few_are_free") {
        return;
    }
    let p = test_probe(1024);
    let full = || -> u64 {
        (p.sample().expect("sample")).counter(profiler_common::counter::EVIDENCE_FULL)
    };
    let (mut t, n) = (1_000_000_000u64, u64::from(ev::RIP_SLOTS));
    let a = |i: u64| 0x10_0000 + i;
    // 3 000 keys, then 100 of them again: all counted exactly, nothing given back.
    sample_rips(&p, &mut t, (0..3_000).map(a));
    let s = p.sample().expect("sample");
    assert!((0..3_000).all(|i| count_of(&s, ev::GUEST_RIP, a(i)) == 1));
    sample_rips(&p, &mut t, (0..100).map(a));
    let s = p.sample().expect("sample");
    assert!((0..100).all(|i| count_of(&s, ev::GUEST_RIP, a(i)) == 2));
    assert_eq!(p.rip_slots_freed(), 0);
    // 700 new keys: 3 700 in use, fewer than an eighth free. This sample still has them all;
    // it gives back the 628 counted least lately (of the 2 900 counted once, first).
    let c = |i: u64| 0x20_0000 + i;
    sample_rips(&p, &mut t, (0..700).map(c));
    let s = p.sample().expect("sample");
    assert!((0..700).all(|i| count_of(&s, ev::GUEST_RIP, c(i)) == 1));
    let give = 3_700 - (n - n / 4);
    assert_eq!(p.rip_slots_freed(), give, "slots given back");
    let s = p.sample().expect("sample");
    assert!(
        (0..100).all(|i| count_of(&s, ev::GUEST_RIP, a(i)) == 2),
        "a busy RIP went"
    );
    assert!(
        (0..700).all(|i| count_of(&s, ev::GUEST_RIP, c(i)) == 1),
        "a new RIP went"
    );
    let gone = (100..3_000)
        .filter(|&i| count_of(&s, ev::GUEST_RIP, a(i)) == 0)
        .count() as u64;
    assert_eq!(gone, give, "cold RIPs given back");
    // The slots are free again: 600 more new keys all find one.
    let d = |i: u64| 0x30_0000 + i;
    sample_rips(&p, &mut t, (0..600).map(d));
    let s = p.sample().expect("sample");
    assert!(
        (0..600).all(|i| count_of(&s, ev::GUEST_RIP, d(i)) == 1),
        "no room made"
    );
    assert_eq!(full(), 0, "a sampled RIP found no slot");
}
