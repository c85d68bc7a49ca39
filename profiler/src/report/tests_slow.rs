//! The slow-exit log's report: lines per exit, their filters, times and decoded sub-reasons.

use super::slow::{self, Filter};
use crate::{
    decode::ExitNames,
    sample::{Sample, SlowEvent, VmInfo},
};
use profiler_common::{counter, ev, ISA_SVM, ISA_VMX};

const MS: u64 = 1_000_000;

/// Two samples a second apart; the second logged a slow port write of a named VM (with a
/// control character in its name) and a slow MSR write of vCPU 1.
fn samples() -> Vec<Sample> {
    let mut a = Sample {
        mono_ns: 5_000 * MS,
        wall_ms: 1_764_700_000_000,
        counters: vec![0; counter::COUNT as usize],
        ..Default::default()
    };
    a.vms.insert(
        1000,
        VmInfo {
            pid: 1000,
            name: "win\x1b11".into(),
            ..Default::default()
        },
    );
    let mut b = a.clone();
    b.mono_ns += 1_000 * MS;
    b.wall_ms += 1_000;
    b.counters[counter::SLOW_EXITS as usize] = 5;
    b.counters[counter::SLOW_DROPPED as usize] = 3;
    b.slow = vec![
        SlowEvent {
            exit_ns: 5_500 * MS,
            took_ns: 3 * MS + 1_500,
            tgid: 1000,
            tid: 1001,
            vcpu: 0,
            isa: ISA_SVM,
            reason: 0x7b,
            rip: 0x1000,
            exit_cpu: 1,
            entry_cpu: 0,
            detail_kind: ev::PIO_OUT,
            detail_flags: 1,
            detail_a: 0x70,
            ..Default::default()
        },
        SlowEvent {
            exit_ns: 5_600 * MS,
            took_ns: 600_000,
            tgid: 1000,
            tid: 1002,
            vcpu: 1,
            isa: ISA_VMX,
            reason: 32,
            rip: 0xffff_f803_1234_5678,
            exit_cpu: 1,
            entry_cpu: 1,
            detail_kind: ev::MSR_WRITE,
            detail_flags: 0,
            detail_a: 0x4000_0070,
            ..Default::default()
        },
    ];
    vec![a, b]
}

fn log(f: &Filter) -> slow::Log {
    let s = samples();
    slow::collect(s.iter().map(Ok), &ExitNames::builtin(), f).unwrap()
}

fn all() -> Filter {
    Filter {
        min_ns: 500_000,
        pid: None,
        vcpu: None,
    }
}

#[test]
fn perf_live_prints_perfs_own_line() {
    let out = slow::perf_live(&log(&all()));
    assert_eq!(
        out,
        "5503001500 VM 1000, vcpu 0: io event took 3001usec\n\
         5600600000 VM 1000, vcpu 1: MSR_WRITE event took 600usec\n"
    );
}

#[test]
fn the_table_names_time_vm_reason_detail_rip_and_what_was_dropped() {
    let out = slow::table(&log(&all()), &all());
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        "# 2 slow exits of at least 500µs (the kernel logged 5 at its threshold, dropped 3)"
    );
    // Wall time: the sample's wall clock less the monotonic gap to the exit (0.5 s before).
    assert!(
        lines[1].starts_with("2025-12-02T18:26:40.500000"),
        "{}",
        lines[1]
    );
    assert!(
        lines[1].contains("win\\x1b11 (pid 1000)  vcpu 0  io  3.00ms  out port 0x70 (RTC index) size 1  rip 0x1000 (user)  cpu 1->0"),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].contains("wrmsr 0x40000070 HV_EOI  rip 0xfffff80312345678 (kernel)"),
        "{}",
        lines[2]
    );
}

#[test]
fn filters_by_time_vm_and_vcpu() {
    let f = Filter {
        min_ns: MS,
        ..all()
    };
    assert_eq!(log(&f).lines.len(), 1);
    let f = Filter {
        vcpu: Some(1),
        ..all()
    };
    assert_eq!(log(&f).lines[0].tid, 1002);
    let f = Filter {
        pid: Some(7),
        ..all()
    };
    assert!(log(&f).lines.is_empty());
}

#[test]
fn csv_and_json_carry_every_field() {
    let l = log(&all());
    let csv = slow::csv(&l);
    let mut rows = csv.lines();
    assert_eq!(rows.next().unwrap(), slow::CSV_COLUMNS.join(","));
    let first: Vec<&str> = rows.next().unwrap().split(',').collect();
    assert_eq!(first.len(), slow::CSV_COLUMNS.len(), "{first:?}");
    assert_eq!(first[1], "1000");
    assert_eq!(first[7], "3001500");
    assert_eq!(first[9], "0x1000");
    let j: serde_json::Value = serde_json::from_str(&slow::json(&l).unwrap()).unwrap();
    assert_eq!(j["dropped"], 3);
    assert_eq!(j["exits"][1]["guest_mode"], "kernel");
    assert_eq!(j["exits"][1]["detail"], "wrmsr 0x40000070 HV_EOI");
}

/// Where the kernel split the time (its sched_switch program ran), each line says how long
/// the exit waited for a CPU and slept; where it did not, the split is unknown, not 0.
#[test]
fn the_split_is_shown_only_where_measured() {
    let mut s = samples();
    s[1].slow[0].wait_ns = 1_000_000;
    s[1].slow[0].blocked_ns = 2_000_000;
    let unsplit = slow::collect(s.iter().map(Ok), &ExitNames::builtin(), &all()).unwrap();
    assert_eq!(unsplit.lines[0].wait_ns, None);
    assert!(!slow::table(&unsplit, &all()).contains("waited"));
    s[1].progs.push(crate::sample::ProgStat {
        name: "sched_switch".into(),
        ..Default::default()
    });
    let split = slow::collect(s.iter().map(Ok), &ExitNames::builtin(), &all()).unwrap();
    assert_eq!(
        (split.lines[0].wait_ns, split.lines[0].blocked_ns),
        (Some(1_000_000), Some(2_000_000))
    );
    assert_eq!(split.lines[1].wait_ns, Some(0));
    let t = slow::table(&split, &all());
    assert!(
        t.contains("io  3.00ms  waited 1.00ms asleep 2.00ms  out port"),
        "{t}"
    );
    let csv = slow::csv(&split);
    assert!(
        csv.lines().nth(1).unwrap().ends_with(",1000000,2000000"),
        "{csv}"
    );
}

/// A VM's first slow exit can arrive in the sample before discovery names the VM (seen in a
/// vm-test run: "pid 517"): the line takes the name the next sample knows.
#[test]
fn an_exit_before_its_vm_is_named_takes_the_later_name() {
    let mut s = samples();
    let named = s[1].vms.remove(&1000).expect("the named VM");
    let mut c = s[1].clone();
    c.slow.clear();
    c.vms.insert(1000, named);
    s.push(c);
    let all = Filter {
        min_ns: 0,
        pid: None,
        vcpu: None,
    };
    let name_of_1000 = |s: &[Sample]| {
        let log = slow::collect(s.iter().map(Ok), &ExitNames::builtin(), &all).unwrap();
        let io = log.lines.into_iter().find(|l| l.vm_pid == 1000);
        io.expect("the VM's line").vm_name
    };
    assert_eq!(name_of_1000(&s), "win\x1b11");
    // A pid no sample ever names keeps its number.
    s.pop();
    assert_eq!(name_of_1000(&s), "pid 1000");
}
