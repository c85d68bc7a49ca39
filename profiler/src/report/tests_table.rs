//! perf tables, CSV and JSON from hand-built samples, compared byte for byte with golden files.
//!
//! The golden files were produced by `golden/gen_golden.py`, an independent Python model of the
//! same numbers using Python's `%` formatting (C printf rules) — not by this code. Set
//! `KVMPROF_BLESS=1` to print the Rust output next to a mismatch for inspection.

use profiler_common::{ev, ISA_VMX};

use super::*;
use crate::sample::{EvKey, EvStat, Key, VmInfo};

pub(super) const SEC: u64 = 1_000_000_000;

/// `n` exits of `ns` each added to `s`.
pub(super) fn add(s: &mut Sample, tgid: u32, vcpu: u32, isa: u32, reason: u32, n: u64, ns: u64) {
    let k = Key {
        tgid,
        vcpu,
        isa,
        reason,
    };
    s.stats.entry(k).or_default().record(ns, n);
}

pub(super) fn vm(s: &mut Sample, pid: u32, name: &str) {
    s.vms.insert(
        pid,
        VmInfo {
            pid,
            name: name.into(),
            start_time: 1,
            ..Default::default()
        },
    );
}

fn evid(s: &mut Sample, tgid: u32, kind: u16, a: u64, count: u64) {
    s.evidence.insert(
        EvKey {
            tgid,
            kind,
            flags: 0,
            a,
        },
        EvStat {
            count,
            ..Default::default()
        },
    );
}

/// Two VMX VMs over 10 s (the numbers gen_golden.py uses).
pub(super) fn fixture() -> Data {
    let mut old = Sample {
        mono_ns: 100 * SEC,
        ..Default::default()
    };
    vm(&mut old, 1234, "win11");
    vm(&mut old, 2222, "build-box");
    let mut new = old.clone();
    new.mono_ns = 110 * SEC;
    let v = ISA_VMX;
    add(&mut new, 1234, 0, v, 32, 600, 2_000); // MSR_WRITE
    add(&mut new, 1234, 1, v, 32, 400, 3_000);
    add(&mut new, 1234, 0, v, 49, 300, 5_000); // EPT_MISCONFIG
    add(&mut new, 1234, 1, v, 49, 200, 9_000);
    add(&mut new, 1234, 0, v, 12, 50, 1_000_000); // HLT
    add(&mut new, 1234, 1, v, 30, 1, 12_345); // IO_INSTRUCTION
    add(&mut new, 1234, 0, v, 1, 150, 700); // EXTERNAL_INTERRUPT
    add(&mut new, 2222, 0, v, 10, 250, 1_500); // CPUID
    add(&mut new, 2222, 0, v, 32, 100, 2_500);
    evid(&mut new, 1234, ev::MSR_WRITE, 0x6e0, 900);
    evid(&mut new, 1234, ev::MSR_WRITE, 0x830, 100);
    evid(&mut new, 1234, ev::MSR_READ, 0x1b, 50);
    evid(&mut new, 2222, ev::MSR_WRITE, 0x6e0, 100);
    evid(&mut new, 1234, ev::PIO_OUT, 0x3f8, 1);
    evid(&mut new, 1234, ev::MMIO_WRITE, 0xfee0_00b0, 7);
    Data::from_samples(&old, &new, &ExitNames::builtin(), "fixture")
}

/// Compares with `golden/<name>`, showing both on mismatch.
pub(super) fn golden(name: &str, got: &str) {
    let path = format!("{}/src/report/golden/{name}", env!("CARGO_MANIFEST_DIR"));
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    if got != want {
        if std::env::var_os("KVMPROF_BLESS").is_some() {
            let _ = std::fs::write(format!("{path}.got"), got);
        }
        panic!("{name} differs from the golden file\n--- want\n{want}\n--- got\n{got}");
    }
}

fn opts() -> TableOptions {
    TableOptions::default()
}

#[test]
fn perf_table_all_vms_and_per_vm() {
    let o = TableOptions {
        per_vm: true,
        ..opts()
    };
    golden("vmexit_all.txt", &perf_table(&fixture(), &o).unwrap());
}

#[test]
fn perf_table_one_vm_one_vcpu_percentiles_sorted_by_time() {
    let o = TableOptions {
        vm: Some("win11".into()),
        vcpu: Some(0),
        sort: SortBy::Time,
        percentiles: true,
        ..opts()
    };
    golden(
        "vmexit_win11_vcpu0.txt",
        &perf_table(&fixture(), &o).unwrap(),
    );
}

#[test]
fn perf_table_msr_ioport_mmio_from_evidence() {
    let d = fixture();
    let mut out = String::new();
    for event in [Event::Msr, Event::Ioport, Event::Mmio] {
        let o = TableOptions { event, ..opts() };
        out.push_str(&perf_table(&d, &o).unwrap());
    }
    let o = TableOptions {
        event: Event::Msr,
        vm: Some("2222".into()),
        ..opts()
    };
    out.push_str(&perf_table(&d, &o).unwrap());
    golden("subreason.txt", &out);
}

#[test]
fn perf_table_header_and_row_columns_match_perf() {
    let t = perf_table(&fixture(), &opts()).unwrap();
    let lines: Vec<&str> = t.lines().collect();
    assert_eq!(lines[2], "Analyze events for all VMs, all VCPUs:");
    // print_result: "%*s " name, "%10s ", "%9s ", "%9s ", "%11s ", "%11s ", "%16s ".
    let want = format!(
        "{:>40} {:>10} {:>9} {:>9} {:>11} {:>11} {:>16} ",
        "VM-EXIT", "Samples", "Samples%", "Time%", "Min Time", "Max Time", "Avg time"
    );
    assert_eq!(lines[4], want);
    // Every row is 122 bytes: 40+1+10+1+9+1+9+1+11+1+11+1+26.
    for l in &lines[6..11] {
        assert_eq!(l.len(), 122, "{l:?}");
    }
}

#[test]
fn every_sort_key_orders_rows() {
    let d = fixture();
    let first = |sort| {
        let t = perf_table(&d, &TableOptions { sort, ..opts() }).unwrap();
        t.lines()
            .nth(6)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    };
    assert_eq!(first(SortBy::Sample), "MSR_WRITE");
    assert_eq!(first(SortBy::Time), "HLT");
    assert_eq!(first(SortBy::MaxT), "HLT");
    assert_eq!(first(SortBy::MinT), "HLT");
    assert_eq!(first(SortBy::MeanT), "HLT");
    assert_eq!(first(SortBy::P99), "HLT");
    assert_eq!(first(SortBy::Name), "CPUID");
}

#[test]
fn unknown_vm_and_vcpu_with_evidence_are_one_line_errors() {
    let d = fixture();
    let e = perf_table(
        &d,
        &TableOptions {
            vm: Some("nope".into()),
            ..opts()
        },
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        e,
        "no VM `nope` in this session (VMs: win11 (pid 1234), build-box (pid 2222)): name one by name, uuid or pid"
    );
    let e = perf_table(
        &d,
        &TableOptions {
            event: Event::Ioport,
            vcpu: Some(1),
            ..opts()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(!e.contains('\n') && e.contains("--vcpu"), "{e}");
}

#[test]
fn empty_view_prints_an_empty_perf_table() {
    let d = Data::from_samples(
        &Sample::default(),
        &Sample::default(),
        &ExitNames::builtin(),
        "empty",
    );
    let t = perf_table(&d, &opts()).unwrap();
    assert!(
        t.ends_with("\nTotal Samples:0, Total events handled time:0.00us.\n\n"),
        "{t}"
    );
}

#[test]
fn csv_columns_are_stable() {
    assert_eq!(
        csv::COLUMNS.join(","),
        "vm_pid,vm_name,vcpu,isa,reason,name,hlt,count,in_flight,timed,rate_per_s,samples_pct,\
         time_pct,total_ns,min_ns,max_ns,mean_ns,p50_ns,p99_ns,p999_ns,wait_ns,blocked_ns,host_cpu_pct,steal_pct"
    );
    golden("fixture.csv", &csv::render(&fixture().view));
}

#[test]
fn csv_quotes_names() {
    assert_eq!(csv::quote("a,b"), "\"a,b\"");
    assert_eq!(csv::quote("say \"hi\""), "\"say \"\"hi\"\"\"");
    assert_eq!(csv::quote("plain"), "plain");
}

#[test]
fn json_is_the_view_contract() {
    let d = fixture();
    let j = json::render(&d.view).unwrap();
    assert_eq!(j, serde_json::to_string_pretty(&d.view).unwrap() + "\n");
    let back: serde_json::Value = serde_json::from_str(&j).unwrap();
    assert_eq!(back["vms"][0]["name"], "win11");
    assert_eq!(back["vms"][0]["reasons"][0]["name"], "MSR_WRITE");
}

#[test]
fn host_cpu_in_the_notes_and_the_json() {
    let mut old = Sample {
        mono_ns: 100 * SEC,
        ..Default::default()
    };
    vm(&mut old, 1234, "win11");
    let mut new = old.clone();
    new.mono_ns = 110 * SEC;
    add(&mut new, 1234, 0, ISA_VMX, 30, 500, 4_000);
    let cpu = |total_s: u64, vcpu_s: u64| crate::sample::VmCpu {
        total_ns: total_s * SEC / 10,
        vcpu_ns: vcpu_s * SEC / 10,
        guest_ns: vcpu_s * SEC / 20,
        vcpu_threads: 2,
        ..Default::default()
    };
    let vcpu0 = |cpu_ms: u64, wait_ms: u64| crate::sample::ThreadCpu {
        cpu_ns: cpu_ms * 1_000_000,
        wait_ns: Some(wait_ms * 1_000_000),
    };
    old.vm_cpu.insert(1234, cpu(10, 8));
    old.vm_cpu
        .get_mut(&1234)
        .unwrap()
        .vcpus
        .insert(0, vcpu0(500, 100));
    // 3.4 s in 10 s, 3.0 of it on vCPU threads, 1.5 of that in the guest; vCPU 0's thread 2 s
    // of it, and it waited 0.5 s for a host CPU.
    new.vm_cpu.insert(1234, cpu(44, 38));
    new.vm_cpu
        .get_mut(&1234)
        .unwrap()
        .vcpus
        .insert(0, vcpu0(2_500, 600));
    let d = Data::from_samples(&old, &new, &ExitNames::builtin(), "cpu");
    let o = TableOptions {
        per_vm: true,
        ..opts()
    };
    let t = perf_table(&d, &o).unwrap();
    let line = "34.0% of a core: guest 15.0, vCPU threads outside the guest 15.0, other VMM \
                threads 4.0\n";
    assert!(
        t.contains(&format!("# host CPU of VM win11 (pid 1234): {line}")),
        "{t}"
    );
    let one = TableOptions {
        vm: Some("win11".into()),
        ..opts()
    };
    let t = perf_table(&d, &one).unwrap();
    // The VM's label heads its table; its notes follow the footer.
    assert!(
        t.contains("\n# VM win11 (pid 1234)\nAnalyze events for pid(s) 1234"),
        "{t}"
    );
    assert!(t.contains(&format!("\n# host CPU: {line}")), "{t}");
    let j: serde_json::Value = serde_json::from_str(&json::render(&d.view).unwrap()).unwrap();
    assert_eq!(j["vms"][0]["host_cpu"]["total_pct"], 34.0, "{j}");
    assert_eq!(j["vms"][0]["host_cpu"]["vmm_pct"], 4.0, "{j}");
    assert_eq!(j["vms"][0]["host_cpu"]["all_pct"], 34.0, "{j}");
    assert_eq!(j["vms"][0]["vcpus"][0]["cpu_pct"], 20.0, "{j}");
    assert_eq!(j["vms"][0]["vcpus"][0]["steal_pct"], 5.0, "{j}");
    // CSV: the VM's rows carry its host CPU and average vCPU wait (unknown here: no schedstat
    // sum), the vCPU's rows its own thread's.
    let c = csv::render(&d.view);
    let mut lines = c.lines().skip(1);
    assert!(lines.next().unwrap().ends_with(",34.0000,"), "{c}");
    assert!(lines.next().unwrap().ends_with(",20.0000,5.0000"), "{c}");
    // The golden fixture has no CPU times: its tables say nothing, its JSON has null.
    assert!(!perf_table(&fixture(), &o).unwrap().contains("host CPU"));
    assert!(fixture().view.vms.iter().all(|v| v.host_cpu.is_none()));
}

/// A host whose KVM emits no kvm_exit (a software backend): the table is the returns of
/// KVM_RUN to the VMM it did measure, and says so, instead of an empty table.
#[test]
fn without_kvm_exit_the_table_is_the_returns_to_the_vmm() {
    let mut old = Sample {
        mono_ns: 100 * SEC,
        ..Default::default()
    };
    vm(&mut old, 4321, "tcg-guest");
    let mut new = old.clone();
    new.mono_ns = 110 * SEC;
    // Two vCPU threads (the key's vcpu is the thread id for these), KVM_EXIT_IO and MMIO.
    let u = profiler_common::ISA_USERSPACE;
    add(&mut new, 4321, 4400, u, 2, 3_000, 20_000);
    add(&mut new, 4321, 4401, u, 2, 1_000, 20_000);
    add(&mut new, 4321, 4400, u, 6, 500, 40_000);
    let d = Data::from_samples(&old, &new, &ExitNames::builtin(), "tcg");
    let t = perf_table(&d, &opts()).unwrap();
    let io = t.lines().find(|l| l.contains("KVM_EXIT_IO")).expect(&t);
    assert!(io.split_whitespace().nth(1) == Some("4000"), "{io}");
    assert!(t.contains("KVM_EXIT_MMIO"), "{t}");
    assert!(t.contains("Total Samples:4500,"), "{t}");
    assert!(t.contains("returns of KVM_RUN to the VMM"), "{t}");
    // Where kernel exits exist, the table is theirs and says nothing of the VMM.
    let t = perf_table(&fixture(), &opts()).unwrap();
    assert!(!t.contains("returns of KVM_RUN"), "{t}");
}
