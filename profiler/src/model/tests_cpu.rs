//! Host CPU per VM from the samples' CPU times.

use super::*;
use crate::{
    decode::ExitNames,
    sample::{Key, Sample, Stat, VmCpu, VmInfo},
};

const MS: u64 = 1_000_000;

/// A sample at `mono_ms` with one exit row for VM 7 and, if given, its CPU times (total, vCPU
/// threads, their number; guest time 2/5 of the vCPU threads').
fn at(mono_ms: u64, cpu: Option<(u64, u64, u32)>) -> Sample {
    let mut s = Sample {
        mono_ns: mono_ms * MS,
        ..Default::default()
    };
    let k = Key {
        tgid: 7,
        vcpu: 0,
        isa: 1,
        reason: 30,
    };
    let mut st = Stat::default();
    st.record(1000, mono_ms);
    s.stats.insert(k, st);
    s.vms.insert(
        7,
        VmInfo {
            pid: 7,
            name: "win".into(),
            start_time: 5,
            ..Default::default()
        },
    );
    if let Some((total, vcpu, threads)) = cpu {
        s.vm_cpu.insert(
            7,
            VmCpu {
                total_ns: total * MS,
                vcpu_ns: vcpu * MS,
                guest_ns: vcpu * MS * 2 / 5,
                vcpu_threads: threads,
                ..Default::default()
            },
        );
    }
    s
}

fn shown(a: &Sample, b: &Sample) -> Option<HostCpu> {
    let v = compute(a, b, &ExitNames::builtin());
    v.vms.iter().find(|m| m.pid == 7).expect("vm 7").host_cpu
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn percent_of_a_core_split_into_vcpu_threads_and_the_rest() {
    // 2 s; 680 ms of CPU, 600 of it on vCPU threads: 34 % = 30 + 4.
    let c = shown(
        &at(10_000, Some((5_000, 4_000, 2))),
        &at(12_000, Some((5_680, 4_600, 2))),
    )
    .expect("both samples have times");
    assert!(close(c.total_pct, 34.0), "{c:?}");
    assert!(close(c.vcpu_pct.unwrap(), 30.0), "{c:?}");
    assert!(close(c.vmm_pct.unwrap(), 4.0), "{c:?}");
    assert!(close(c.guest_pct.unwrap(), 12.0), "{c:?}");
    assert_eq!((c.total_ns, c.vcpu_ns), (680 * MS, Some(600 * MS)));
    assert_eq!(
        c.describe(),
        "34.0% of a core: guest 12.0, vCPU threads outside the guest 18.0, other VMM threads 4.0"
    );
    // A VM with more busy vCPUs than one core.
    let c = shown(
        &at(1_000, Some((0, 0, 4))),
        &at(2_000, Some((3_500, 3_400, 4))),
    )
    .unwrap();
    assert!(close(c.total_pct, 350.0) && close(c.vmm_pct.unwrap(), 10.0));
}

#[test]
fn missing_or_meaningless_times_are_unknown_not_zero() {
    let t = |ms, total, vcpu, n| at(ms, Some((total, vcpu, n)));
    // Either side without times (recordings before format 3, perf imports).
    assert_eq!(shown(&at(1_000, None), &t(2_000, 10, 5, 1)), None);
    assert_eq!(shown(&t(1_000, 10, 5, 1), &at(2_000, None)), None);
    // "Since attach" (no older sample) and an empty span.
    assert_eq!(shown(&Sample::default(), &t(2_000, 10, 5, 1)), None);
    assert_eq!(shown(&t(2_000, 10, 5, 1), &t(2_000, 20, 5, 1)), None);
    // Times going backwards, or a new process on the pid.
    assert_eq!(shown(&t(1_000, 50, 5, 1), &t(2_000, 10, 5, 1)), None);
    let mut reused = t(2_000, 900, 5, 1);
    reused.vms.get_mut(&7).unwrap().start_time = 6;
    assert_eq!(shown(&t(1_000, 10, 5, 1), &reused), None);
    // The total is known but not the split: vCPU threads unknown, or their set changed.
    for (a, b) in [
        (t(1_000, 100, 0, 0), t(2_000, 300, 0, 0)),
        (t(1_000, 100, 50, 2), t(2_000, 300, 200, 3)),
        (t(1_000, 100, 90, 2), t(2_000, 300, 80, 2)),
    ] {
        let c = shown(&a, &b).expect("total known");
        assert!(close(c.total_pct, 20.0), "{c:?}");
        assert_eq!((c.vcpu_pct, c.vmm_pct), (None, None), "{c:?}");
    }
    // Per-thread rounding can put the vCPU threads a tick above the process: kept within it.
    let c = shown(&t(1_000, 100, 90, 2), &t(2_000, 300, 300, 2)).unwrap();
    assert_eq!((c.vcpu_pct, c.vmm_pct), (Some(20.0), Some(0.0)));
    // Guest time (unscaled ticks) above the vCPU threads' or the total: kept within them.
    let mut a = t(1_000, 100, 90, 2);
    let mut b = t(2_000, 300, 250, 2);
    a.vm_cpu.get_mut(&7).unwrap().guest_ns = 0;
    b.vm_cpu.get_mut(&7).unwrap().guest_ns = 250 * MS;
    let c = shown(&a, &b).unwrap();
    assert_eq!((c.guest_pct, c.vcpu_pct), (Some(16.0), Some(16.0)), "{c:?}");
    b.vm_cpu.get_mut(&7).unwrap().vcpu_threads = 3;
    assert_eq!(shown(&a, &b).unwrap().guest_pct, Some(20.0));
    // A kernel that accounts no guest time to the VM (a PVM backend): unknown, not 0.
    b.vm_cpu.get_mut(&7).unwrap().guest_ns = 0;
    b.vm_cpu.get_mut(&7).unwrap().vcpu_threads = 2;
    let c = shown(&a, &b).unwrap();
    assert_eq!(c.guest_pct, None);
    assert_eq!(
        c.describe(),
        "20.0% of a core: vCPU threads 16.0, other VMM threads 4.0"
    );
    // Without the split the text still tells the guest from the rest.
    let c = shown(&t(1_000, 100, 0, 0), &t(2_000, 300, 50, 0)).unwrap();
    assert_eq!(
        c.describe(),
        "20.0% of a core: guest 2.0, outside the guest 18.0"
    );
}

/// Steal: the vCPU threads' run-queue wait over the span, averaged over the threads; unknown
/// when schedstat was not read for every vCPU thread both times.
#[test]
fn vcpu_wait_is_the_average_threads_share_of_the_span() {
    let with_wait = |mut s: Sample, wait_ms: u64, waited: u32| {
        let c = s.vm_cpu.get_mut(&7).expect("cpu");
        c.vcpu_wait_ns = wait_ms * MS;
        c.waited_threads = waited;
        s
    };
    let a = with_wait(at(1_000, Some((5_000, 4_000, 4))), 100, 4);
    // 10 s, 4 vCPU threads waited 2 s in all: each 5 % of the time.
    let b = with_wait(at(11_000, Some((6_000, 4_800, 4))), 2_100, 4);
    let c = shown(&a, &b).expect("host cpu");
    assert!(close(c.vcpu_wait_pct.expect("wait"), 5.0), "{c:?}");
    assert!(c
        .describe()
        .ends_with("vCPUs waited for a host CPU 5.0% of the time"));
    let partial = with_wait(at(11_000, Some((6_000, 4_800, 4))), 2_100, 3);
    assert_eq!(shown(&a, &partial).expect("host cpu").vcpu_wait_pct, None);
}

/// `at(..)` with vhost workers (CPU ms, of it inside the process, threads) and vCPU 0's own
/// thread (CPU ms, wait ms).
fn with_threads(mut s: Sample, vhost: (u64, u64, u32), vcpu0: Option<(u64, u64)>) -> Sample {
    let c = s.vm_cpu.get_mut(&7).unwrap();
    c.vhost = crate::sample::Threads {
        cpu_ns: vhost.0 * MS,
        wait_ns: vhost.0 * MS / 10,
        threads: vhost.2,
        waited: vhost.2,
    };
    c.vhost_in_total_ns = vhost.1 * MS;
    if let Some((cpu, wait)) = vcpu0 {
        let t = crate::sample::ThreadCpu {
            cpu_ns: cpu * MS,
            wait_ns: Some(wait * MS),
        };
        c.vcpus.insert(0, t);
    }
    s
}

/// vhost kernel threads outside the process add to what the VM costs; vhost tasks inside it
/// (Linux 6.4 on) are taken out of the VMM's share instead.
#[test]
fn vhost_workers_inside_and_outside_the_process() {
    let a = |vhost| with_threads(at(10_000, Some((5_000, 4_000, 2))), vhost, None);
    let b = |vhost| with_threads(at(12_000, Some((5_680, 4_600, 2))), vhost, None);
    // Outside: 400 ms over 2 s is 20 %, on top of the process's 34 %.
    let c = shown(&a((1_000, 0, 2)), &b((1_400, 0, 2))).unwrap();
    assert!(close(c.vhost_pct.unwrap(), 20.0), "{c:?}");
    assert!(close(c.all_pct, 54.0) && close(c.total_pct, 34.0), "{c:?}");
    assert!(close(c.vmm_pct.unwrap(), 4.0), "{c:?}");
    // 40 ms of wait over 2 threads and 2 s: 1 % each.
    assert!(close(c.vhost_wait_pct.unwrap(), 1.0), "{c:?}");
    assert!(
        c.describe().contains("; vhost workers 20.0 (54.0% in all)"),
        "{}",
        c.describe()
    );
    // Inside: 60 of the process's 80 ms outside the vCPU threads were the vhost task's.
    let c = shown(&a((1_000, 1_000, 1)), &b((1_060, 1_060, 1))).unwrap();
    assert!(close(c.vhost_pct.unwrap(), 3.0), "{c:?}");
    assert!(
        close(c.vmm_pct.unwrap(), 1.0) && close(c.all_pct, 34.0),
        "{c:?}"
    );
    // A worker that came or went: its whole life would count, so nothing is said.
    let c = shown(&a((1_000, 0, 1)), &b((1_400, 0, 2))).unwrap();
    assert_eq!((c.vhost_pct, c.vhost_wait_pct), (None, None), "{c:?}");
    assert!(
        close(c.all_pct, 34.0) && close(c.vmm_pct.unwrap(), 4.0),
        "{c:?}"
    );
    // No vhost worker at all: none shown (not 0 %).
    let c = shown(&a((0, 0, 0)), &b((0, 0, 0))).unwrap();
    assert_eq!(c.vhost_pct, None);
}

/// Each vCPU's own CPU and steal, from its thread's figures over the span.
#[test]
fn per_vcpu_cpu_and_steal() {
    let vcpu0 = |a: &Sample, b: &Sample| {
        let v = compute(a, b, &ExitNames::builtin());
        let vm = v.vms.iter().find(|m| m.pid == 7).unwrap();
        let c = &vm.vcpus[0];
        (c.cpu_pct, c.steal_pct)
    };
    let s = |ms, cpu: Option<(u64, u64)>| {
        with_threads(at(ms, Some((5_000 + ms, 4_000, 1))), (0, 0, 0), cpu)
    };
    // 2 s: 300 ms on CPU, 40 ms waiting for one.
    let got = vcpu0(&s(10_000, Some((900, 60))), &s(12_000, Some((1_200, 100))));
    assert_eq!(got, (Some(15.0), Some(2.0)));
    // Not named in one of the samples, a thread replaced (time went backwards), a new process.
    let none = (None, None);
    assert_eq!(
        vcpu0(&s(10_000, None), &s(12_000, Some((1_200, 100)))),
        none
    );
    assert_eq!(
        vcpu0(&s(10_000, Some((900, 60))), &s(12_000, Some((10, 1)))),
        none
    );
    let mut reused = s(12_000, Some((1_200, 100)));
    reused.vms.get_mut(&7).unwrap().start_time = 6;
    assert_eq!(vcpu0(&s(10_000, Some((900, 60))), &reused), none);
}
