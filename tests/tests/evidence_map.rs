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
