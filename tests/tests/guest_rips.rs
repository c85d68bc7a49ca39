//! Privileged test of the sampled guest RIPs, through the exact verified code
//! (BPF_PROG_TEST_RUN): which exits are sampled (the timestamp decides, as at kvm_exit), that
//! each sampled exit is counted at its RIP under its VM and reason, and what the model makes of
//! the counts (top RIPs, guest kernel share).

mod common;

use std::collections::BTreeMap;

use kvmprof::{
    decode::ExitNames,
    model::{compute, rips::of_vm},
    probe::{
        testrun::{Event, OP_ENTRY},
        Probe, ProbeOptions, Programs,
    },
    sample::Sample,
};
use profiler_common::{ev, ISA_SVM, ISA_VMX};

/// Exit with its guest RIP (the test entry's op 5).
const OP_EXIT_RIP: u64 = 5;
const VM: u64 = 7000;
const USER: u64 = 0x1000;
const KERNEL: u64 = 0xffff_f800_0000_2000;

#[test]
fn sampled_exits_are_counted_at_their_rip_and_nothing_else_is() {
    if !common::privileged("sampled_exits_are_counted_at_their_rip_and_nothing_else_is") {
        return;
    }
    let p = Probe::load(&ProbeOptions {
        programs: Programs::TestRun,
        max_keys: 256,
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("loading the test entry: {e}"));
    // 6000 exits: port writes (SVM io) three in four from guest user code, one in four from the
    // guest kernel; and VMX EPT misconfigs with the failed-entry bit on another thread (the
    // basic code is what is kept).
    let mut want: BTreeMap<(u16, u64), u64> = BTreeMap::new();
    let mut events: Vec<Event> = Vec::new();
    let mut t = 1_000_000_000_u64;
    for i in 0..6000u64 {
        t += 1_000 + (i * 7919) % 613;
        let (tid, isa, reason, rip) = match i % 8 {
            7 => (101, ISA_VMX, 0x8000_0031, 0x4000 + i % 3),
            3 => (100, ISA_SVM, 0x7b, KERNEL),
            _ => (100, ISA_SVM, 0x7b, USER),
        };
        if ev::rip_sampled(t) {
            let flags = ev::rip_flags(isa, reason).expect("a sampled code");
            *want.entry((flags, rip)).or_default() += 1;
        }
        events.push([
            OP_EXIT_RIP,
            VM,
            tid,
            t,
            0,
            rip,
            (isa as u64) << 32 | reason as u64,
        ]);
        events.push([OP_ENTRY, VM, tid, t + 500, 0, 0, 0]);
    }
    for chunk in events.chunks(512) {
        let rets = p.test_run(chunk).expect("BPF_PROG_TEST_RUN");
        assert!(rets.iter().all(|r| *r == 0), "test entry returned {rets:?}");
    }
    let total: u64 = want.values().sum();
    // About one in 64: the hash of the timestamps is no fixed stride.
    assert!((50..140).contains(&total), "{total} of 6000 sampled");

    let s = p.sample().expect("sample");
    let got: BTreeMap<(u16, u64), u64> = s
        .evidence
        .iter()
        .filter(|(k, _)| k.kind == ev::GUEST_RIP && k.tgid == VM as u32)
        .map(|(k, v)| ((k.flags, k.a), v.count))
        .collect();
    assert_eq!(
        got, want,
        "sampled RIPs: kernel vs the timestamps' own sampling"
    );

    // The model: io's top RIP is the user one, its kernel share the kernel RIP's.
    let names = ExitNames::builtin();
    let rips = of_vm(
        &Sample::default(),
        &s,
        VM as u32,
        &Default::default(),
        &names,
    );
    let io = rips
        .iter()
        .find(|g| g.isa == ISA_SVM && g.reason == 0x7b)
        .expect("io's RIPs");
    let io_flags = ev::rip_flags(ISA_SVM, 0x7b).unwrap();
    let (user, kernel) = (want[&(io_flags, USER)], want[&(io_flags, KERNEL)]);
    assert_eq!(io.samples, user + kernel);
    assert_eq!((io.top[0].rip, io.top[0].mode), (USER, "user"));
    let kernel_pct = kernel as f64 * 100.0 / (user + kernel) as f64;
    assert!((io.kernel_pct - kernel_pct).abs() < 1e-9, "{io:?}");
    let ept = rips
        .iter()
        .find(|g| g.isa == ISA_VMX && g.reason == 0x31)
        .expect("EPT_MISCONFIG's RIPs, by the basic code");
    assert_eq!(ept.name, "EPT_MISCONFIG");
    assert!(ept.top.len() <= 3 && ept.kernel_pct == 0.0, "{ept:?}");

    // A view of the sample carries them; a later one with no new samples does not.
    let v = compute(&Sample::default(), &s, &names);
    let vm = v.vms.iter().find(|m| m.pid == VM as u32).expect("the VM");
    assert_eq!(vm.guest_rips, rips);
    let again = compute(&s, &s, &names);
    assert!(again.vms.iter().all(|m| m.guest_rips.is_empty()));
}
