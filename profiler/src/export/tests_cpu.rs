//! `kvmprof_vm_cpu_seconds_total`: the VM's host CPU split by thread kind, monotonic.

use super::tests::{pair, parse};
use super::*;
use crate::{decode::ExitNames, sample::VmCpu};

const MS: u64 = 1_000_000;

/// Guest time: half the vCPU threads'.
fn cpu(total_ms: u64, vcpu_ms: u64, threads: u32) -> VmCpu {
    VmCpu {
        total_ns: total_ms * MS,
        vcpu_ns: vcpu_ms * MS,
        guest_ns: vcpu_ms * MS / 2,
        vcpu_threads: threads,
        ..Default::default()
    }
}

#[test]
fn vm_cpu_seconds_by_thread_kind() {
    let (mut a, mut b) = pair();
    let names = ExitNames::builtin();
    // Nothing read yet: no series, rather than a CPU time of 0.
    let none = Exporter::from_pair(&a, &b, &names, ExportOpts::default()).render();
    assert!(!none.contains("kvmprof_vm_cpu_seconds_total"), "{none}");
    assert!(!none.contains("kvmprof_vm_guest_seconds_total"), "{none}");

    a.vm_cpu.insert(10, cpu(5_000, 4_000, 2));
    b.vm_cpu.insert(10, cpu(5_680, 4_600, 2));
    for (s, wait_ms) in [(&mut a, 1_000), (&mut b, 1_250)] {
        let c = s.vm_cpu.get_mut(&10).expect("cpu");
        c.vcpu_wait_ns = wait_ms * MS;
        c.waited_threads = 2;
    }
    let mut e = Exporter::new(names.clone(), ExportOpts::default());
    e.observe(a);
    e.observe(b.clone());
    let text = e.render();
    assert!(
        text.contains("# TYPE kvmprof_vm_cpu_seconds counter") && text.contains("# UNIT"),
        "{text}"
    );
    let m = parse(&text);
    let get = |m: &BTreeMap<String, f64>, t: &str| {
        m.get(&format!(
            "kvmprof_vm_cpu_seconds_total{{domain=win11,threads={t}}}"
        ))
        .copied()
    };
    assert_eq!(get(&m, "vcpu"), Some(0.6));
    assert_eq!(get(&m, "other"), Some(0.08));
    assert_eq!(get(&m, "unknown"), None);
    let guest = |m: &BTreeMap<String, f64>| {
        m.get("kvmprof_vm_guest_seconds_total{domain=win11}")
            .copied()
    };
    assert_eq!(guest(&m), Some(0.3));
    assert_eq!(
        m.get("kvmprof_vm_vcpu_wait_seconds_total{domain=win11}")
            .copied(),
        Some(0.25)
    );

    // A span whose vCPU threads changed cannot be split: its time counts as "unknown", and
    // the split counters keep their values.
    let mut c = b.clone();
    c.mono_ns += 1_000 * MS;
    c.vm_cpu.insert(10, cpu(6_000, 4_900, 3));
    e.observe(c);
    let m = parse(&e.render());
    assert_eq!(get(&m, "vcpu"), Some(0.6));
    assert_eq!(get(&m, "other"), Some(0.08));
    assert_eq!(get(&m, "unknown"), Some(0.32));
    assert_eq!(guest(&m), Some(0.45));
}

/// vhost workers get their own `threads` series (kernel threads outside the process on top of
/// it, tasks inside it out of "other") and wait; each vCPU's thread only with `per_vcpu`.
#[test]
fn vhost_and_per_vcpu_series() {
    let (mut a, mut b) = pair();
    let names = ExitNames::builtin();
    // 80 ms outside the vCPU threads, 30 of them a vhost task inside the process, plus 200 ms
    // of a vhost kernel thread; vCPU 0's thread 400 ms and 50 ms of wait.
    for (s, total, vcpu, vhost, inside, v0) in [
        (&mut a, 5_000, 4_000, 1_000, 100, 3_000),
        (&mut b, 5_680, 4_600, 1_230, 130, 3_400),
    ] {
        let mut c = cpu(total, vcpu, 2);
        c.vhost = crate::sample::Threads {
            cpu_ns: vhost * MS,
            wait_ns: vhost * MS / 10,
            threads: 2,
            waited: 2,
        };
        c.vhost_in_total_ns = inside * MS;
        let t = crate::sample::ThreadCpu {
            cpu_ns: v0 * MS,
            wait_ns: Some(v0 * MS / 8),
        };
        c.vcpus.insert(0, t);
        s.vm_cpu.insert(10, c);
    }
    let render = |per_vcpu| {
        let mut e = Exporter::new(
            names.clone(),
            ExportOpts {
                per_vcpu,
                ..Default::default()
            },
        );
        e.observe(a.clone());
        e.observe(b.clone());
        parse(&e.render())
    };
    let m = render(false);
    let get = |m: &BTreeMap<String, f64>, k: &str| m.get(k).copied();
    let close = |v: Option<f64>, want: f64| v.is_some_and(|v| (v - want).abs() < 1e-9);
    assert!(
        close(
            get(
                &m,
                "kvmprof_vm_cpu_seconds_total{domain=win11,threads=vhost}"
            ),
            0.23
        ),
        "{m:?}"
    );
    assert!(
        close(
            get(
                &m,
                "kvmprof_vm_cpu_seconds_total{domain=win11,threads=other}"
            ),
            0.05
        ),
        "{m:?}"
    );
    assert!(
        close(
            get(&m, "kvmprof_vm_vhost_wait_seconds_total{domain=win11}"),
            0.023
        ),
        "{m:?}"
    );
    assert!(!m.keys().any(|k| k.starts_with("kvmprof_vcpu_")), "{m:?}");
    let m = render(true);
    assert!(
        close(
            get(&m, "kvmprof_vcpu_cpu_seconds_total{domain=win11,vcpu=0}"),
            0.4
        ),
        "{m:?}"
    );
    assert!(
        close(
            get(&m, "kvmprof_vcpu_wait_seconds_total{domain=win11,vcpu=0}"),
            0.05
        ),
        "{m:?}"
    );
}
