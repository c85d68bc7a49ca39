//! Series identity (issue #16, #17): `domain` and `uuid` as libvirt exporters label VMs, no pid
//! in any series but `kvmprof_vm_info`; hosts without kvm_exit; the opt-in access series.

use profiler_common::{ev, ISA_USERSPACE, ISA_VMX};

use super::tests::{pair, parse};
use super::*;
use crate::{
    decode::ExitNames,
    sample::{EvKey, EvStat, Key, VmInfo},
};

const SEC: u64 = 1_000_000_000;
const UUID: &str = "6b1f0c7e-1d2a-4a57-9c1e-0a4f3b9d1e22";

fn key(tgid: u32, vcpu: u32, isa: u32, reason: u32) -> Key {
    Key {
        tgid,
        vcpu,
        isa,
        reason,
    }
}

fn vm(s: &mut Sample, pid: u32, start_time: u64) {
    s.vms.insert(
        pid,
        VmInfo {
            pid,
            name: "win11".into(),
            uuid: Some(UUID.into()),
            start_time,
            ..Default::default()
        },
    );
}

/// libvirt restarts the VM: a new process (pid 11) with the same domain and uuid. Its exits go
/// on in the same series (no pid label: no new series per restart); only the info metric
/// names the pid, and the old pid's is gone.
#[test]
fn a_restarted_vm_keeps_its_series_and_only_vm_info_names_the_pid() {
    let mut e = Exporter::new(ExitNames::builtin(), ExportOpts::default());
    let mut s = Sample {
        mono_ns: 100 * SEC,
        ..Default::default()
    };
    vm(&mut s, 10, 1);
    s.stats
        .entry(key(10, 0, ISA_VMX, 30))
        .or_default()
        .record(1_000, 5);
    e.observe(s.clone());
    s.mono_ns += SEC;
    s.stats
        .entry(key(10, 0, ISA_VMX, 30))
        .or_default()
        .record(1_000, 7);
    e.observe(s.clone());
    let io =
        format!("kvmprof_exits_total{{domain=win11,isa=vmx,reason=IO_INSTRUCTION,uuid={UUID}}}");
    let before = parse(&e.render_text());
    assert_eq!(before.get(&io), Some(&7.0), "{before:?}");
    assert_eq!(
        before.get(&format!(
            "kvmprof_vm_info{{domain=win11,pid=10,uuid={UUID}}}"
        )),
        Some(&1.0)
    );
    // The restart: pid 10 gone, pid 11 from scratch.
    s.mono_ns += SEC;
    s.vms.remove(&10);
    s.stats.remove(&key(10, 0, ISA_VMX, 30));
    vm(&mut s, 11, 2);
    s.stats
        .entry(key(11, 0, ISA_VMX, 30))
        .or_default()
        .record(1_000, 4);
    e.observe(s.clone());
    let after = parse(&e.render_text());
    assert_eq!(after.get(&io), Some(&11.0), "{after:?}");
    let names = |m: &tests::Series| -> Vec<String> {
        m.keys()
            .filter(|k| !k.starts_with("kvmprof_vm_info"))
            .cloned()
            .collect()
    };
    assert_eq!(
        names(&before),
        names(&after),
        "the same series after the restart"
    );
    assert!(after
        .keys()
        .all(|k| k.starts_with("kvmprof_vm_info") || !k.contains("pid=")));
    let info: Vec<&String> = after
        .keys()
        .filter(|k| k.starts_with("kvmprof_vm_info"))
        .collect();
    assert_eq!(
        info,
        [&format!(
            "kvmprof_vm_info{{domain=win11,pid=11,uuid={UUID}}}"
        )]
    );
}

/// A KVM that emits no kvm_exit (a software backend): the VM's threads return to the VMM. Its
/// vCPUs are those threads, the time in the VMM is exported, and kvmprof_kvm_exit_seen says
/// that kernel exits were not measured.
#[test]
fn without_kvm_exit_vcpus_and_vmm_time_come_from_the_returns_to_the_vmm() {
    let mut a = Sample {
        mono_ns: 100 * SEC,
        ..Default::default()
    };
    vm(&mut a, 10, 1);
    let mut b = a.clone();
    b.mono_ns += 2 * SEC;
    // Threads 4400 and 4401: KVM_EXIT_IO (2) and KVM_EXIT_MMIO (6).
    let u = |tid, reason| key(10, tid, ISA_USERSPACE, reason);
    b.stats.entry(u(4400, 2)).or_default().record(20_000, 3_000);
    b.stats.entry(u(4401, 2)).or_default().record(20_000, 1_000);
    b.stats.entry(u(4400, 6)).or_default().record(40_000, 500);
    let e = Exporter::from_pair(&a, &b, &ExitNames::builtin(), ExportOpts::default());
    let m = parse(&e.render_text());
    let l = |reason: &str| format!("domain=win11,reason={reason},uuid={UUID}");
    let vcpus = m.get(&format!("kvmprof_vcpus{{domain=win11,uuid={UUID}}}"));
    assert_eq!(vcpus, Some(&2.0), "{m:?}");
    let io = m[&format!(
        "kvmprof_userspace_exit_seconds_total{{{}}}",
        l("KVM_EXIT_IO")
    )];
    assert!((io - 0.08).abs() < 1e-6, "{io}");
    assert_eq!(
        m[&format!("kvmprof_userspace_exits_total{{{}}}", l("KVM_EXIT_MMIO"))],
        500.0
    );
    assert_eq!(m["kvmprof_kvm_exit_seen{}"], 0.0);
    assert!(
        !m.keys().any(|k| k.starts_with("kvmprof_exits_total")),
        "{m:?}"
    );
    // With kvm_exit, the kernel's vCPUs count, and the host says it measures them.
    let (a, b) = pair();
    let m = parse(
        &Exporter::from_pair(&a, &b, &ExitNames::builtin(), ExportOpts::default()).render_text(),
    );
    assert_eq!(m["kvmprof_kvm_exit_seen{}"], 1.0);
    assert_eq!(m["kvmprof_vcpus{domain=win11}"], 2.0);
}

/// MSR, port and MMIO accesses by address only with `sub_reasons`; bounded per access kind.
#[test]
fn access_series_are_opt_in_and_bounded() {
    let (mut a, mut b) = pair();
    let _ = &mut a;
    for port in 0..5u64 {
        let k = EvKey {
            tgid: 10,
            kind: ev::PIO_OUT,
            flags: 1,
            a: 0x70 + port,
        };
        b.evidence.insert(
            k,
            EvStat {
                count: 100 - port,
                sum: 0,
                last: 0,
            },
        );
    }
    let names = ExitNames::builtin();
    let off = Exporter::from_pair(&a, &b, &names, ExportOpts::default()).render_text();
    assert!(!off.contains("kvmprof_exit_accesses"), "{off}");
    let opts = ExportOpts {
        top_reasons: 2,
        sub_reasons: true,
        ..Default::default()
    };
    let m = parse(&Exporter::from_pair(&a, &b, &names, opts).render_text());
    let got: Vec<(&String, &f64)> = m
        .iter()
        .filter(|(k, _)| k.starts_with("kvmprof_exit_accesses_total"))
        .collect();
    let l = |addr: &str| {
        format!("kvmprof_exit_accesses_total{{access=port_out,address={addr},domain=win11}}")
    };
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(m[&l("0x70")], 100.0);
    assert_eq!(m[&l("0x71")], 99.0);
    assert_eq!(m[&l("other")], 98.0 + 97.0 + 96.0);
}

/// The old process of a restarted VM can linger with its rows (exited, not pruned yet): it is
/// no longer one of the VM's processes, in `kvmprof_vm_info` or in `kvmprof_vcpus`.
#[test]
fn an_exited_process_leaves_vm_info_and_the_vcpu_count() {
    let mut a = Sample {
        mono_ns: 100 * SEC,
        ..Default::default()
    };
    vm(&mut a, 10, 1);
    vm(&mut a, 11, 2);
    for (pid, vcpu) in [(10, 0), (10, 1), (11, 0), (11, 1)] {
        let k = key(pid, vcpu, ISA_VMX, 30);
        a.stats.entry(k).or_default().record(1_000, 1);
    }
    let mut b = a.clone();
    b.mono_ns += SEC;
    for (pid, vcpu) in [(10, 0), (10, 1), (11, 0), (11, 1)] {
        let k = key(pid, vcpu, ISA_VMX, 30);
        b.stats.entry(k).or_default().record(1_000, 1);
    }
    b.vms.get_mut(&10).expect("pid 10").exited = true;
    let m = parse(
        &Exporter::from_pair(&a, &b, &ExitNames::builtin(), ExportOpts::default()).render_text(),
    );
    let info: Vec<&String> = m
        .keys()
        .filter(|k| k.starts_with("kvmprof_vm_info"))
        .collect();
    assert_eq!(
        info,
        [&format!(
            "kvmprof_vm_info{{domain=win11,pid=11,uuid={UUID}}}"
        )]
    );
    assert_eq!(
        m[&format!("kvmprof_vcpus{{domain=win11,uuid={UUID}}}")],
        2.0
    );
    // Its last exits still count, in the VM's series.
    let io =
        format!("kvmprof_exits_total{{domain=win11,isa=vmx,reason=IO_INSTRUCTION,uuid={UUID}}}");
    assert_eq!(m[&io], 4.0);
    // When no process of the VM runs any more, it keeps its last values, these included.
    let mut e = Exporter::from_pair(&a, &b, &ExitNames::builtin(), ExportOpts::default());
    let mut c = b.clone();
    c.mono_ns += SEC;
    c.vms.get_mut(&11).expect("pid 11").exited = true;
    e.observe(c);
    let m = parse(&e.render_text());
    assert_eq!(
        m[&format!("kvmprof_vcpus{{domain=win11,uuid={UUID}}}")],
        2.0
    );
    assert!(m.contains_key(&format!(
        "kvmprof_vm_info{{domain=win11,pid=11,uuid={UUID}}}"
    )));
}

/// Without kvm_exit, a vCPU thread whose name (`CPU 0/KVM`) is read only after its first
/// returns to the VMM is still one vCPU (found by the live Prometheus test on this host).
#[test]
fn a_vcpu_thread_named_late_counts_once() {
    let mut e = Exporter::new(ExitNames::builtin(), ExportOpts::default());
    let mut s = Sample {
        mono_ns: 100 * SEC,
        ..Default::default()
    };
    vm(&mut s, 10, 1);
    e.observe(s.clone());
    for step in 0..2 {
        s.mono_ns += SEC;
        if step == 1 {
            let info = s.vms.get_mut(&10).expect("vm");
            info.vcpu_threads.insert(4400, 0);
        }
        let k = key(10, 4400, ISA_USERSPACE, 2);
        s.stats.entry(k).or_default().record(20_000, 10);
        e.observe(s.clone());
        let m = parse(&e.render_text());
        let vcpus = m[&format!("kvmprof_vcpus{{domain=win11,uuid={UUID}}}")];
        assert_eq!(vcpus, 1.0, "step {step}");
    }
}

/// `kvmprof serve` leaves both multipliers of the series off unless asked.
#[test]
fn per_vcpu_and_sub_reasons_are_off_unless_asked() {
    use clap::Parser;

    use crate::cli::{Cli, Command};
    let serve = |args: &[&str]| match Cli::try_parse_from(args.iter().copied()) {
        Ok(Cli {
            command: Some(Command::Serve(a)),
            ..
        }) => (a.per_vcpu, a.sub_reasons),
        other => panic!("{args:?}: {other:?}"),
    };
    assert_eq!(serve(&["kvmprof", "serve"]), (false, false));
    assert_eq!(
        serve(&["kvmprof", "serve", "--per-vcpu", "--sub-reasons"]),
        (true, true)
    );
    let d = ExportOpts::default();
    assert!(!d.per_vcpu && !d.sub_reasons);
}
