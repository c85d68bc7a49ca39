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
