//! Format 3's per-VM CPU times through whole recordings.

use super::tests::{gen_samples, read_all, record};
use super::*;
use crate::sample::{Sample, VmCpu};
use std::collections::BTreeMap;

/// `samples` with CPU times like a live host's: whole ticks (10 ms), a VM burning about a
/// third of a core, vCPU threads most of it; VMs appear, exit, and change their vCPU threads.
pub(super) fn with_cpu(mut samples: Vec<Sample>) -> Vec<Sample> {
    let mut cpu: BTreeMap<u32, VmCpu> = BTreeMap::new();
    for (i, s) in samples.iter_mut().enumerate() {
        let i = i as u64;
        for (n, pid) in s.vms.keys().enumerate() {
            let c = cpu.entry(*pid).or_insert(VmCpu {
                total_ns: 123_450_000_000,
                vcpu_ns: 100_000_000_000,
                guest_ns: 60_000_000_000,
                vcpu_threads: 4,
                vcpu_wait_ns: 5_000_000_000,
                waited_threads: 4,
                ..Default::default()
            });
            let ticks = 30 + (i * 7 + n as u64 * 3) % 9;
            let vcpu_ticks = ticks - 3 - i % 3;
            c.total_ns += ticks * 10_000_000;
            c.vcpu_ns += vcpu_ticks * 10_000_000;
            c.guest_ns += (vcpu_ticks / 2) * 10_000_000;
            c.vcpu_wait_ns += 1_234_567 * (i % 5);
            if i == 7 {
                c.vcpu_threads = 5; // hotplug
            }
        }
        s.vm_cpu = cpu.clone();
        if (5..9).contains(&i) {
            s.vm_cpu.remove(&1001); // not read for a while (e.g. its /proc vanished)
        }
    }
    samples
}

#[test]
fn cpu_times_round_trip_across_key_and_delta_frames() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.kvmprof");
    let mut samples = with_cpu(gen_samples(23, 2, 2, 3));
    samples[20].vm_cpu.clear();
    samples[21].vm_cpu.insert(
        7,
        VmCpu {
            total_ns: u64::MAX,
            vcpu_ns: 0,
            guest_ns: 1,
            vcpu_threads: u32::MAX,
            vcpu_wait_ns: u64::MAX,
            waited_threads: u32::MAX,
            ..Default::default()
        },
    );
    assert!(samples[3].vm_cpu.len() == 2 && samples[6].vm_cpu.len() == 1);
    record(&path, &samples, 5, true);
    let rec = Recording::open(&path).unwrap();
    assert_eq!(read_all(&rec), samples);
    // Seeking into a key interval rebuilds the times from its key frame.
    for i in [22, 6, 10, 13] {
        assert_eq!(rec.sample(i).unwrap(), samples[i], "sample {i}");
    }
}

#[test]
fn a_thread_count_that_does_not_fit_is_refused() {
    let mut old = BTreeMap::new();
    old.insert(1, VmCpu::default());
    let mut new = old.clone();
    new.get_mut(&1).unwrap().vcpu_threads = 3;
    let c = cpu::CpuColumns::encode(&old, &new);
    let mut s = BTreeMap::from([(
        1,
        VmCpu {
            vcpu_threads: u32::MAX,
            ..Default::default()
        },
    )]);
    assert!(c.apply(&mut s).is_err());
}

/// What the CPU times add to a busy recording is small next to the exit statistics: at most
/// a few bytes per VM and sample after compression.
#[test]
fn cpu_times_cost_little() {
    let dir = tempfile::tempdir().unwrap();
    let size = |samples: &[Sample], name: &str| {
        let path = dir.path().join(name);
        record(&path, samples, 60, true);
        std::fs::metadata(&path).unwrap().len()
    };
    let plain = gen_samples(240, 1, 8, 10);
    let cpu = with_cpu(plain.clone());
    let (a, b) = (size(&plain, "plain"), size(&cpu, "cpu"));
    let per_sample = (b as f64 - a as f64) / plain.len() as f64;
    eprintln!("{a} -> {b} bytes: {per_sample:.1} B per sample");
    assert!(
        per_sample < 12.0,
        "{per_sample:.1} B per sample ({a} -> {b})"
    );
    assert!(b * 100 < a * 101, "{a} -> {b} bytes: more than 1 %");
}
