//! `kvmprof_slow_exits_total` and `kvmprof_slow_exits_dropped_total`: the events each sample
//! carries, by VM and reason (named like the exits' series), and the kernel's drop counter.

use profiler_common::{counter, ISA_VMX};

use super::tests::{pair, parse};
use super::*;
use crate::sample::SlowEvent;

fn ev(tgid: u32, reason: u32) -> SlowEvent {
    SlowEvent {
        tgid,
        isa: ISA_VMX,
        reason,
        took_ns: 2_000_000,
        ..Default::default()
    }
}

/// `pair()` with slow exits: one in the baseline (not counted), win11's three port writes and
/// an MSR write in the span, one of a pid that is no VM of the view; 4 dropped in the span.
fn samples() -> (Sample, Sample) {
    let (mut a, mut b) = pair();
    a.counters.resize(counter::COUNT as usize, 0);
    a.counters[counter::SLOW_DROPPED as usize] = 6;
    a.slow = vec![ev(10, 30)];
    b.counters.resize(counter::COUNT as usize, 0);
    b.counters[counter::SLOW_DROPPED as usize] = 10;
    b.slow = vec![ev(10, 30), ev(10, 30), ev(10, 32), ev(10, 30), ev(99, 30)];
    (a, b)
}

#[test]
fn slow_exits_by_vm_and_reason_and_dropped() {
    let (a, b) = samples();
    let e = Exporter::from_pair(&a, &b, &ExitNames::builtin(), ExportOpts::default());
    let text = e.render_text();
    let m = parse(&text);
    assert_eq!(
        m["kvmprof_slow_exits_total{domain=win11,isa=vmx,reason=IO_INSTRUCTION}"],
        3.0
    );
    assert_eq!(
        m["kvmprof_slow_exits_total{domain=win11,isa=vmx,reason=MSR_WRITE}"],
        1.0
    );
    assert_eq!(m["kvmprof_slow_exits_dropped_total{}"], 4.0);
    assert_eq!(
        m.keys()
            .filter(|k| k.starts_with("kvmprof_slow_exits_total"))
            .count(),
        2
    );
    assert!(
        text.contains("# TYPE kvmprof_slow_exits_total counter"),
        "{text}"
    );
    let om = e.render();
    assert!(om.contains("# TYPE kvmprof_slow_exits counter"), "{om}");
    assert_eq!(parse(&om)["kvmprof_slow_exits_dropped_total{}"], 4.0);
}

/// Reasons not among the VM's named ones add up in `reason="other"`, as exits do; the
/// counters only grow.
#[test]
fn slow_exits_follow_the_named_reasons_and_grow() {
    let (a, b) = samples();
    let opts = ExportOpts {
        top_reasons: 1,
        ..Default::default()
    };
    let mut e = Exporter::new(ExitNames::builtin(), opts);
    e.observe(a);
    e.observe(b.clone());
    let m = parse(&e.render_text());
    // IO_INSTRUCTION has the most exits: the one named reason.
    assert_eq!(
        m["kvmprof_slow_exits_total{domain=win11,isa=vmx,reason=IO_INSTRUCTION}"],
        3.0
    );
    assert_eq!(
        m["kvmprof_slow_exits_total{domain=win11,isa=vmx,reason=other}"],
        1.0
    );
    let mut c = b;
    c.mono_ns += 1_000_000_000;
    c.slow = vec![ev(10, 30)];
    e.observe(c);
    let m = parse(&e.render_text());
    assert_eq!(
        m["kvmprof_slow_exits_total{domain=win11,isa=vmx,reason=IO_INSTRUCTION}"],
        4.0
    );
    assert_eq!(m["kvmprof_slow_exits_dropped_total{}"], 4.0);
}
