//! Privileged test of a live report's span: between its first and last sample the sampling
//! loop only keeps up (`Source::keep_up`), so nothing leaves the kernel's maps before the last
//! sample reads them; sampling whole every interval forgets a gone VM after ten samples.

mod common;

use std::time::Duration;

use kvmprof::{
    probe::{
        testrun::{OP_ENTRY, OP_EXIT},
        ProbeOptions, Programs,
    },
    source::{drive, live::LiveSource, Source, Stop},
};
use profiler_common::ISA_VMX;

/// A pid no process has now: a child's, once it has exited and been reaped.
fn gone_pid() -> u32 {
    let mut child = std::process::Command::new("true")
        .spawn()
        .expect("spawn true");
    let pid = child.id();
    child.wait().expect("wait");
    pid
}

#[test]
fn a_report_keeps_the_rows_of_vms_gone_before_its_end() {
    if !common::privileged("a_report_keeps_the_rows_of_vms_gone_before_its_end") {
        return;
    }
    for light in [true, false] {
        let (mut src, _) = LiveSource::open(&ProbeOptions {
            programs: Programs::TestRun,
            max_keys: 1024,
            allow_concurrent: true,
            ..Default::default()
        })
        .unwrap_or_else(|e| panic!("loading the test entry: {e}"));
        let first = src.sample().expect("first sample").expect("a sample");
        let pid = gone_pid() as u64;
        let exits: Vec<_> = (0..5u64)
            .flat_map(|i| {
                let t = 1_000 + i * 1_000;
                [
                    [OP_EXIT, pid, 9_100, t, 0, ISA_VMX as u64, 30],
                    [OP_ENTRY, pid, 9_100, t + 400, 0, 0, 0],
                ]
            })
            .collect();
        src.probe().test_run(&exits).expect("BPF_PROG_TEST_RUN");
        // ~30 intervals: three times the samples after which sampling whole forgets a VM.
        let stop = Stop::After(Duration::from_millis(300));
        let mut between = 0;
        let last = drive(
            &mut src,
            &first,
            stop,
            Duration::from_millis(10),
            light,
            &mut |_| {
                between += 1;
                Ok(())
            },
        )
        .expect("drive");
        assert!(between > 12, "only {between} samples");
        let count: u64 = (last.stats.iter())
            .filter(|(k, _)| k.tgid == pid as u32)
            .map(|(_, s)| s.count)
            .sum();
        match light {
            true => assert_eq!(
                count, 5,
                "the gone VM's exits are not all in the last sample"
            ),
            false => assert_eq!(count, 0, "sampling whole no longer forgets a gone VM"),
        }
        let vm = last.vms.get(&(pid as u32));
        assert!(vm.is_some_and(|v| v.exited), "{vm:?}");
    }
}
