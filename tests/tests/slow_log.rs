//! Privileged tests of the slow-exit log, through the exact verified code (BPF_PROG_TEST_RUN):
//! which exits reach userspace, with which fields, and what the rate limit drops and counts.

mod common;

use kvmprof::{
    probe::{
        testrun::{Event, OP_ENTRY},
        Probe, ProbeOptions, Programs,
    },
    sample::SlowEvent,
};
use profiler_common::{counter, ev, SlowCfg, ISA_SVM, ISA_VMX};

/// Exit with its slow-exit fields (the test entry's op 5).
const OP_EXIT_RIP: u64 = 5;
/// A sub-reason event of the exit in flight (op 6).
const OP_DETAIL: u64 = 6;

fn probe(cfg: SlowCfg) -> Probe {
    Probe::load(&ProbeOptions {
        programs: Programs::TestRun,
        max_keys: 256,
        slow: cfg,
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("loading the test entry: {e}"))
}

fn run(p: &Probe, events: &[Event]) {
    let rets = p.test_run(events).expect("BPF_PROG_TEST_RUN");
    assert!(rets.iter().all(|r| *r == 0), "test entry returned {rets:?}");
}

/// Exit of `tid` (VM 7000, vCPU `vcpu`) at `t` with `rip`, an optional sub-reason, entry after
/// `took` ns.
fn exit(tid: u64, vcpu: u64, isa: u32, reason: u32, t: u64, took: u64, rip: u64) -> Vec<Event> {
    vec![
        [
            OP_EXIT_RIP,
            7000,
            tid,
            t,
            vcpu,
            rip,
            (isa as u64) << 32 | reason as u64,
        ],
        [OP_ENTRY, 7000, tid, t + took, vcpu, 0, 0],
    ]
}

const MS: u64 = 1_000_000;

#[test]
fn slow_exits_reach_userspace_with_their_fields_and_nothing_else_does() {
    if !common::privileged("slow_exits_reach_userspace_with_their_fields_and_nothing_else_does") {
        return;
    }
    let p = probe(SlowCfg {
        threshold_ns: MS,
        per_cpu_per_s: 1000,
        with_hlt: 0,
    });
    let t = 10_000 * MS;
    let mut evs = Vec::new();
    // Fast: under the threshold, not logged.
    evs.extend(exit(100, 0, ISA_SVM, 0x7b, t, MS - 1, 0x1000));
    // Slow port write with its kvm_pio sub-reason (out port 0x10, 1 byte) between exit and entry.
    let mut io = exit(100, 0, ISA_SVM, 0x7b, t + 10 * MS, 3 * MS, 0x1000);
    io.insert(1, [OP_DETAIL, 0, 100, ev::PIO_OUT as u64, 1, 0x10, 0]);
    evs.extend(io);
    // Exactly at the threshold: logged, with no sub-reason (the last exit's is not carried over).
    evs.extend(exit(
        100,
        0,
        ISA_SVM,
        0x7c,
        t + 20 * MS,
        MS,
        0xffff_f800_0123_4567,
    ));
    // Slow HLTs (VMX 12, SVM 0x78): left out by default.
    evs.extend(exit(100, 0, ISA_SVM, 0x78, t + 30 * MS, 50 * MS, 0x1002));
    evs.extend(exit(101, 1, ISA_VMX, 12, t + 30 * MS, 50 * MS, 0x1002));
    run(&p, &evs);
    let s = p.sample().expect("sample");
    let want = [
        SlowEvent {
            exit_ns: t + 10 * MS,
            took_ns: 3 * MS,
            tgid: 7000,
            tid: 100,
            vcpu: 0,
            isa: ISA_SVM,
            reason: 0x7b,
            rip: 0x1000,
            detail_kind: ev::PIO_OUT,
            detail_flags: 1,
            detail_a: 0x10,
            ..Default::default()
        },
        SlowEvent {
            exit_ns: t + 20 * MS,
            took_ns: MS,
            tgid: 7000,
            tid: 100,
            vcpu: 0,
            isa: ISA_SVM,
            reason: 0x7c,
            rip: 0xffff_f800_0123_4567,
            ..Default::default()
        },
    ];
    // Host CPUs: the test runs wherever it runs; both ends of one event ran on that CPU.
    let got: Vec<SlowEvent> = s
        .slow
        .iter()
        .map(|e| {
            assert_eq!(e.exit_cpu, e.entry_cpu, "{e:?}");
            SlowEvent {
                exit_cpu: 0,
                entry_cpu: 0,
                ..*e
            }
        })
        .collect();
    assert_eq!(got, want);
    assert_eq!(s.counter(counter::SLOW_EXITS), 2);
    assert_eq!(s.counter(counter::SLOW_DROPPED), 0);
    // Drained: the next sample holds only what came since.
    assert!(p.sample().expect("sample").slow.is_empty());
}

#[test]
fn the_rate_limit_drops_and_counts_and_hlt_is_logged_when_asked() {
    if !common::privileged("the_rate_limit_drops_and_counts_and_hlt_is_logged_when_asked") {
        return;
    }
    let p = probe(SlowCfg {
        threshold_ns: MS,
        per_cpu_per_s: 3,
        with_hlt: 1,
    });
    let t = 50_000 * MS;
    // Five slow HLTs within one second: three sent, two dropped; then, a second later, one more
    // is sent (a new window).
    let mut evs = Vec::new();
    for i in 0..5 {
        evs.extend(exit(
            200,
            0,
            ISA_VMX,
            12,
            t + i * 10 * MS,
            2 * MS,
            0x2000 + i,
        ));
    }
    evs.extend(exit(200, 0, ISA_VMX, 12, t + 1_200 * MS, 2 * MS, 0x3000));
    run(&p, &evs);
    let s = p.sample().expect("sample");
    let rips: Vec<u64> = s.slow.iter().map(|e| e.rip).collect();
    assert_eq!(rips, [0x2000, 0x2001, 0x2002, 0x3000]);
    assert_eq!(s.counter(counter::SLOW_EXITS), 6);
    assert_eq!(s.counter(counter::SLOW_DROPPED), 2);
}

#[test]
fn with_the_log_off_nothing_is_logged_or_counted() {
    if !common::privileged("with_the_log_off_nothing_is_logged_or_counted") {
        return;
    }
    let p = probe(SlowCfg::default());
    run(&p, &exit(300, 0, ISA_VMX, 30, 90_000 * MS, 5 * MS, 0x4000));
    let s = p.sample().expect("sample");
    assert!(s.slow.is_empty(), "{:?}", s.slow);
    assert_eq!(s.counter(counter::SLOW_EXITS), 0);
    // The exit itself is counted as always.
    assert_eq!(s.counter(counter::EXITS), 1);
}
