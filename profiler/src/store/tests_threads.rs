//! Format 5's per-vCPU and vhost CPU times through whole recordings, and format 4 payloads.

use super::stats::Models;
use super::tests::{gen_samples, read_all, record};
use super::tests_cpu::with_cpu;
use super::*;
use crate::sample::{Sample, ThreadCpu, Threads};

/// `with_cpu`'s samples plus per-vCPU times (vCPU 3 hot-plugged at sample 7, vCPU 1's
/// schedstat missing for a while) and vhost workers that start at sample 4.
fn with_threads(samples: Vec<Sample>) -> Vec<Sample> {
    let mut samples = with_cpu(samples);
    for (i, s) in samples.iter_mut().enumerate() {
        let i = i as u64;
        for (pid, c) in s.vm_cpu.iter_mut() {
            let p = u64::from(*pid);
            for v in 0..c.vcpu_threads {
                let n = u64::from(v);
                let t = ThreadCpu {
                    cpu_ns: (1000 + p + n * 7 + i * (30 + n)) * 10_000_000,
                    wait_ns: (!(v == 1 && (3..6).contains(&i))).then_some(i * 1_234_567 + n),
                };
                c.vcpus.insert(v, t);
            }
            if i >= 4 {
                c.vhost = Threads {
                    cpu_ns: (i - 3) * 20 * 10_000_000,
                    wait_ns: (i - 3) * 777_777,
                    threads: 2,
                    waited: 2,
                };
                c.vhost_in_total_ns = (i % 2) * c.vhost.cpu_ns;
            }
        }
    }
    samples
}

#[test]
fn vcpu_and_vhost_times_round_trip_across_key_and_delta_frames() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.kvmprof");
    let mut samples = with_threads(gen_samples(23, 2, 2, 3));
    assert!(samples[8].vm_cpu.values().any(|c| c.vcpus.len() == 5));
    // A vCPU that goes away, and extreme values.
    samples[15].vm_cpu.values_mut().for_each(|c| {
        c.vcpus.remove(&2);
    });
    let extreme = samples[21].vm_cpu.values_mut().next().unwrap();
    extreme.vcpus.insert(
        u32::MAX,
        ThreadCpu {
            cpu_ns: u64::MAX,
            wait_ns: Some(u64::MAX),
        },
    );
    extreme.vhost.threads = u32::MAX;
    record(&path, &samples, 5, true);
    let rec = Recording::open(&path).unwrap();
    assert_eq!(read_all(&rec), samples);
    for i in [22, 6, 10, 13, 16] {
        assert_eq!(rec.sample(i).unwrap(), samples[i], "sample {i}");
    }
}

/// A format 4 payload (format 3's fields and the slow exits, nothing after them) reads as a
/// sample without per-vCPU and vhost times; read as format 5 it is short.
#[test]
fn format_4_payloads_have_no_thread_times() {
    let samples = with_threads(gen_samples(6, 1, 2, 3));
    let (old, new) = (&Sample::default(), &samples[4]);
    let (p, coded) = codec::encode(old, new, &mut Models::default(), true).unwrap();
    let v4 = postcard::to_stdvec(&(&p.core, &p.cpu, &p.slow)).unwrap();
    let decoded = codec::Payload::decode(&v4, 4).unwrap();
    let mut s = Sample::default();
    codec::apply(&mut s, &decoded, &coded, 4, &mut Models::default(), true).unwrap();
    let mut want = super::tests::without_sched(vec![new.clone()]).remove(0);
    for c in want.vm_cpu.values_mut() {
        c.vcpus.clear();
        (c.vhost, c.vhost_in_total_ns) = (Threads::default(), 0);
    }
    assert_eq!(s, want);
    assert!(!new.vm_cpu.is_empty() && new.vm_cpu.values().all(|c| !c.vcpus.is_empty()));
    assert!(codec::Payload::decode(&v4, 5).is_err());
}

/// A bad wait flag is refused, not read as some wait.
#[test]
fn inconsistent_thread_columns_are_refused() {
    let samples = with_threads(gen_samples(6, 1, 2, 3));
    let (p, coded) = codec::encode(
        &Sample::default(),
        &samples[4],
        &mut Models::default(),
        true,
    )
    .unwrap();
    let good = postcard::to_stdvec(&p).unwrap();
    let mut s = Sample::default();
    let ok = codec::Payload::decode(&good, 5).unwrap();
    codec::apply(&mut s, &ok, &coded, 5, &mut Models::default(), true).unwrap();
    assert_eq!(s, samples[4]);
    // The last byte is the last vCPU's wait flag (1); 2 is no flag.
    let mut bad = good.clone();
    assert_eq!(bad.last(), Some(&1));
    *bad.last_mut().unwrap() = 2;
    let p = codec::Payload::decode(&bad, 5).unwrap();
    let mut s = Sample::default();
    let err = codec::apply(&mut s, &p, &coded, 5, &mut Models::default(), true);
    assert_eq!(err.unwrap_err(), "vCPU wait flag out of range");
}
