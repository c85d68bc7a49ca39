//! Privileged host tests: the real eBPF object loads into this kernel, and the exact verified
//! aggregation code is driven with synthetic exit/entry sequences via BPF_PROG_TEST_RUN.

mod common;

use common::test_probe;

use kvmprof::{
    probe::{
        testrun::{Event, OP_ENTRY, OP_EXIT, OP_KVM_RUN, OP_UEXIT},
        Probe, ProbeOptions,
    },
    sample::{Key, Sample},
};
use profiler_common::{counter, ev, hist, ISA_SVM, ISA_USERSPACE, ISA_VMX};

fn ev(op: u64, tgid: u64, tid: u64, now: u64, vcpu: u64, isa: u32, reason: u32) -> Event {
    [op, tgid, tid, now, vcpu, isa as u64, reason as u64]
}

fn key(tgid: u32, vcpu: u32, isa: u32, reason: u32) -> Key {
    Key {
        tgid,
        vcpu,
        isa,
        reason,
    }
}

fn run(p: &Probe, events: &[Event]) -> Sample {
    let rets = p.test_run(events).expect("BPF_PROG_TEST_RUN");
    assert!(rets.iter().all(|r| *r == 0), "test entry returned {rets:?}");
    p.sample().expect("reading maps")
}

#[test]
fn pairs_exits_with_entries_per_thread() {
    if !common::privileged("pairs_exits_with_entries_per_thread") {
        return;
    }
    let p = test_probe(1024);
    let (io, cpuid, msr, hlt) = (0x7b, 0x72, 0x7c, 0x78);
    let s = run(
        &p,
        &[
            ev(OP_EXIT, 100, 1000, 1_000, 0, ISA_SVM, io),
            ev(OP_ENTRY, 100, 1000, 1_500, 0, 0, 0),
            // Another vCPU thread interleaves: pairing is per thread, not global.
            ev(OP_EXIT, 100, 1001, 1_600, 1, ISA_SVM, cpuid),
            ev(OP_EXIT, 100, 1000, 2_000, 0, ISA_SVM, io),
            ev(OP_ENTRY, 100, 1001, 1_700, 1, 0, 0),
            ev(OP_ENTRY, 100, 1000, 4_000, 0, 0, 0),
            // Entry with nothing pending (first entry after attach).
            ev(OP_ENTRY, 100, 1000, 5_000, 0, 0, 0),
            // Exit, exit: the first one's time is lost and counted.
            ev(OP_EXIT, 100, 1000, 6_000, 0, ISA_SVM, msr),
            ev(OP_EXIT, 100, 1000, 6_100, 0, ISA_SVM, hlt),
            // A VMX VM in another process.
            ev(OP_EXIT, 200, 2000, 10_000, 3, ISA_VMX, 49),
            ev(OP_ENTRY, 200, 2000, 13_000, 3, 0, 0),
        ],
    );
    let io_stat = &s.stats[&key(100, 0, ISA_SVM, io)];
    assert_eq!(io_stat.count, 2);
    assert_eq!(io_stat.sum_ns, 500 + 2_000);
    assert_eq!((io_stat.min_ns, io_stat.max_ns), (500, 2_000));
    assert_eq!(io_stat.hist.total(), 2);
    let b: Vec<usize> = io_stat
        .hist
        .buckets
        .iter()
        .map(|(b, _)| *b as usize)
        .collect();
    assert_eq!(b, vec![hist::bucket(500), hist::bucket(2_000)]);
    assert_eq!(s.stats[&key(100, 1, ISA_SVM, cpuid)].sum_ns, 100);
    assert_eq!(s.stats[&key(200, 3, ISA_VMX, 49)].sum_ns, 3_000);
    assert!(!s.stats.contains_key(&key(100, 0, ISA_SVM, msr)));
    // The halted vCPU's exit is in flight, and counted as such (read through the mapped
    // PSLOTS array).
    assert_eq!(s.in_flight.get(&key(100, 0, ISA_SVM, hlt)), Some(&1));
    assert_eq!(s.counter(counter::ORPHAN_ENTRY), 1);
    assert_eq!(s.counter(counter::UNPAIRED_EXIT), 1);
    assert_eq!(s.counter(counter::EXITS), 6);
    assert_eq!(s.counter(counter::ENTRIES), 5);
}

#[test]
fn userspace_exits_are_timed_until_the_next_kvm_run() {
    if !common::privileged("userspace_exits_are_timed_until_the_next_kvm_run") {
        return;
    }
    let p = test_probe(1024);
    let s = run(
        &p,
        &[
            ev(OP_UEXIT, 300, 3000, 1_000, 0, 0, 2), // KVM_EXIT_IO
            ev(OP_KVM_RUN, 300, 3000, 1_250, 0, 0, 0),
            ev(OP_UEXIT, 300, 3000, 2_000, 0, 0, 2),
            ev(OP_KVM_RUN, 300, 3000, 2_750, 0, 0, 0),
            // A KVM_RUN with nothing pending is not an event.
            ev(OP_KVM_RUN, 300, 3000, 3_000, 0, 0, 0),
            ev(OP_UEXIT, 300, 3000, 4_000, 0, 0, 5), // KVM_EXIT_HLT, VMM still handling it
        ],
    );
    let st = &s.stats[&key(300, 3000, ISA_USERSPACE, 2)];
    assert_eq!(
        (st.count, st.sum_ns, st.min_ns, st.max_ns),
        (2, 1_000, 250, 750)
    );
    assert_eq!(s.in_flight.get(&key(300, 3000, ISA_USERSPACE, 5)), Some(&1));
    assert_eq!(s.counter(counter::USERSPACE_EXITS), 3);
}

/// A vCPU thread that owns a slot (its first kvm_exit claimed one) keeps its userspace exit in
/// the slot: timed and counted in flight as before, with nothing in the UPENDING hash, which
/// is sized for the threads without a slot (kernel memory that does not grow per thread).
#[test]
fn a_slot_owners_userspace_exits_live_in_its_slot() {
    if !common::privileged("a_slot_owners_userspace_exits_live_in_its_slot") {
        return;
    }
    let mut p = test_probe(1024);
    let s = run(
        &p,
        &[
            ev(OP_EXIT, 400, 4000, 1_000, 0, ISA_VMX, 30), // IO_INSTRUCTION: claims the slot
            ev(OP_UEXIT, 400, 4000, 1_100, 0, 0, 2),
            ev(OP_KVM_RUN, 400, 4000, 1_400, 0, 0, 0),
            ev(OP_ENTRY, 400, 4000, 1_500, 0, 0, 0),
            ev(OP_EXIT, 400, 4000, 2_000, 0, ISA_VMX, 30),
            ev(OP_UEXIT, 400, 4000, 2_100, 0, 0, 2),
            ev(OP_KVM_RUN, 400, 4000, 2_600, 0, 0, 0),
            ev(OP_ENTRY, 400, 4000, 2_700, 0, 0, 0),
            // A KVM_RUN with nothing pending is not an event.
            ev(OP_KVM_RUN, 400, 4000, 3_000, 0, 0, 0),
            ev(OP_EXIT, 400, 4000, 4_000, 0, ISA_VMX, 12),
            ev(OP_UEXIT, 400, 4000, 4_100, 0, 0, 5), // VMM still handling it
        ],
    );
    let st = &s.stats[&key(400, 4000, ISA_USERSPACE, 2)];
    assert_eq!(
        (st.count, st.sum_ns, st.min_ns, st.max_ns),
        (2, 800, 300, 500)
    );
    assert_eq!(s.stats[&key(400, 0, ISA_VMX, 30)].count, 2);
    assert_eq!(s.in_flight.get(&key(400, 4000, ISA_USERSPACE, 5)), Some(&1));
    assert_eq!(s.in_flight.get(&key(400, 0, ISA_VMX, 12)), Some(&1));
    let upending: aya::maps::HashMap<
        _,
        u32,
        [u8; std::mem::size_of::<profiler_common::Pending>()],
    > = aya::maps::HashMap::try_from(p.ebpf_mut().map("UPENDING").unwrap()).unwrap();
    assert_eq!(
        upending.keys().count(),
        0,
        "UPENDING holds a slot owner's exit"
    );
    for m in p.map_memory() {
        if m.name == "PENDING" || m.name == "UPENDING" {
            assert!(
                m.bytes < 2 << 20,
                "{}: {} bytes of kernel memory",
                m.name,
                m.bytes
            );
        }
    }
}

#[test]
fn kernel_histogram_percentiles_within_ten_percent() {
    if !common::privileged("kernel_histogram_percentiles_within_ten_percent") {
        return;
    }
    let p = test_probe(1024);
    // A skewed, deterministic latency mix: mostly fast, a slow tail.
    let mut durations: Vec<u64> = (0..3000u64)
        .map(|i| {
            let x = (i * 2654435761) % 1000;
            if x < 900 {
                300 + x * 3
            } else {
                50_000 + x * 400
            }
        })
        .collect();
    let mut events = Vec::new();
    let mut t = 1_000_000;
    for d in &durations {
        events.push(ev(OP_EXIT, 400, 4000, t, 0, ISA_VMX, 30));
        events.push(ev(OP_ENTRY, 400, 4000, t + d, 0, 0, 0));
        t += d + 100;
    }
    let s = run(&p, &events);
    let st = &s.stats[&key(400, 0, ISA_VMX, 30)];
    assert_eq!(st.count, durations.len() as u64);
    assert_eq!(st.hist.total(), st.count);
    durations.sort_unstable();
    for q in [0.5, 0.99, 0.999] {
        let rank = ((q * durations.len() as f64).ceil() as usize).max(1) - 1;
        let truth = durations[rank] as f64;
        let got = st.hist.quantile(q).expect("non-empty") as f64;
        let err = (got - truth).abs() / truth;
        println!(
            "p{}: kernel histogram {got} ns, exact {truth} ns, error {:.2} %",
            q * 100.0,
            err * 100.0
        );
        assert!(err <= 0.10, "p{q}: {got} vs {truth}");
    }
}

#[test]
fn kernel_histogram_buckets_are_exact_inline_and_spilled() {
    if !common::privileged("kernel_histogram_buckets_are_exact_inline_and_spilled") {
        return;
    }
    let p = test_probe(1024);
    // Octaves in an order that fills the inline windows first, then spills, then comes back
    // to the inline ones: every bucket must hold exactly what the user-space layout says.
    let durations: Vec<u64> = (0..2000u64)
        .map(|i| match i % 5 {
            0 => 700 + i % 300,
            1 => 3_000 + (i * 7) % 1_000,
            2 => 20_000 + (i * 13) % 40_000,
            3 => 5 + i % 3,
            _ => 1_000_000 + i * 997,
        })
        .collect();
    let mut events = Vec::new();
    let mut t = 1_000_000;
    for d in &durations {
        events.push(ev(OP_EXIT, 410, 4100, t, 1, ISA_VMX, 12));
        events.push(ev(OP_ENTRY, 410, 4100, t + d, 1, 0, 0));
        t += d + 100;
    }
    let s = run(&p, &events);
    let st = &s.stats[&key(410, 1, ISA_VMX, 12)];
    let mut want = kvmprof::sample::Hist::default();
    for d in &durations {
        want.record(*d, 1);
    }
    assert_eq!(st.count, durations.len() as u64);
    assert_eq!(st.hist, want);
    assert_eq!(s.counter(counter::HIST_FULL), 0);
}

#[test]
fn a_full_stats_map_counts_drops() {
    if !common::privileged("a_full_stats_map_counts_drops") {
        return;
    }
    let mut p = test_probe(4);
    let mut events = Vec::new();
    for (i, reason) in (0..6u32).enumerate() {
        let t = 1_000 * (i as u64 + 1);
        events.push(ev(OP_EXIT, 500, 5000, t, 0, ISA_VMX, reason));
        events.push(ev(OP_ENTRY, 500, 5000, t + 10, 0, 0, 0));
    }
    let s = run(&p, &events);
    assert_eq!(s.stats.len(), 4);
    assert_eq!(s.counter(counter::STATS_FULL), 2);
    // The kernel says so once (aya-log), not once per dropped exit.
    let notes = p.notices();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(
        notes[0].contains("stats map full") && notes[0].contains("--max-keys"),
        "{notes:?}"
    );
}

/// This host's KVM (software PVM backend) never emits kvm_exit, but kvm_userspace_exit does
/// fire: the real programs attach, and the built-in guest's port writes come back exactly.
#[test]
fn live_probes_see_the_exerciser_userspace_exits() {
    if !common::privileged("live_probes_see_the_exerciser_userspace_exits") {
        return;
    }
    use kvmprof::source::{live::LiveSource, Source};
    let (mut src, warnings) = LiveSource::open(&ProbeOptions {
        allow_concurrent: true,
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("attaching: {e}"));
    println!("warnings: {warnings:?}");
    for p in [
        "kvm_exit",
        "kvm_entry",
        "kvm_userspace_exit",
        "sys_enter_ioctl",
    ] {
        assert!(src.probe().attached.contains(&p), "{p} not attached");
    }
    let before = src.sample().unwrap().unwrap();
    let iters = 300;
    let r = kvmprof::exerciser::run(&kvmprof::exerciser::ExerciseOpts {
        iters,
        ops: "ocrw".into(),
        forever: false,
        pause: std::time::Duration::ZERO,
        delay_every: 0,
        delay_for: std::time::Duration::ZERO,
        hog_cpu: None,
    })
    .expect("the exerciser runs on /dev/kvm");
    assert_eq!((r.io, r.hlt), (iters, 1));
    let after = src.sample().unwrap().unwrap();
    let pid = std::process::id();
    let mine = |s: &Sample, reason: u32| -> (u64, u64) {
        let timed = s
            .stats
            .iter()
            .filter(|(k, _)| k.tgid == pid && k.isa == ISA_USERSPACE && k.reason == reason)
            .map(|(_, v)| v.count)
            .sum();
        let in_flight = s
            .in_flight
            .iter()
            .filter(|(k, _)| k.tgid == pid && k.isa == ISA_USERSPACE && k.reason == reason)
            .map(|(_, n)| *n)
            .sum();
        (timed, in_flight)
    };
    let (io0, _) = mine(&before, 2);
    let (io1, io_in_flight) = mine(&after, 2);
    let (_, hlt_in_flight) = mine(&after, 5);
    println!(
        "KVM_EXIT_IO timed {} in flight {io_in_flight}; KVM_EXIT_HLT in flight {hlt_in_flight}",
        io1 - io0
    );
    assert_eq!(io1 - io0 + io_in_flight, iters);
    assert_eq!(hlt_in_flight, 1);
    // Sub-reason evidence: the port written and the MSR read/written, exactly.
    let ev = |kind: u16, a: u64| -> u64 {
        let count = |s: &Sample| -> u64 {
            s.evidence
                .iter()
                .filter(|(k, _)| k.tgid == pid && k.kind == kind && k.a == a)
                .map(|(_, v)| v.count)
                .sum()
        };
        count(&after) - count(&before)
    };
    println!(
        "evidence: out 0x10 {}, rdmsr 0x10 {}, wrmsr 0x10 {}",
        ev(ev::PIO_OUT, 0x10),
        ev(ev::MSR_READ, 0x10),
        ev(ev::MSR_WRITE, 0x10)
    );
    assert_eq!(ev(ev::PIO_OUT, 0x10), iters);
    assert_eq!(ev(ev::MSR_READ, 0x10), iters);
    assert_eq!(ev(ev::MSR_WRITE, 0x10), iters);
    for p in [
        "ev_msr",
        "ev_pio",
        "ev_mmio",
        "ev_hv_hypercall",
        "ev_apicv_inhibit",
    ] {
        assert!(src.probe().attached.contains(&p), "{p} not attached");
    }
    // Any KVM user seen in the maps is described, QEMU or not, with its host CPU from /proc.
    assert!(after.vms.contains_key(&pid), "{:?}", after.vms.keys());
    let cpu = after.vm_cpu.get(&pid).expect("host CPU of the KVM user");
    println!("host CPU: {cpu:?}");
    assert!(cpu.total_ns > 0 && cpu.guest_ns <= cpu.total_ns, "{cpu:?}");
    program_runs_are_read_when_they_ran(&mut src, &before, &after);
}

/// An evidence program's run-time statistics are exact when it ran (ev_msr: one run per MSR
/// the evidence counted, all processes), and not asked of the kernel when it did not: a
/// sample with no KVM exits since asks only for the programs that are not evidence programs,
/// and reads no fallback hash that no thread used.
fn program_runs_are_read_when_they_ran(
    src: &mut kvmprof::source::live::LiveSource,
    before: &Sample,
    after: &Sample,
) {
    use kvmprof::source::Source;
    assert!(
        src.probe().measures_cost(),
        "BPF run-time statistics are off"
    );
    let runs = |s: &Sample, name: &str| {
        let p = s.progs.iter().find(|p| p.name == name);
        p.unwrap_or_else(|| panic!("no statistics of {name}"))
            .clone()
    };
    let msrs = |s: &Sample| -> u64 {
        (s.evidence.iter())
            .filter(|(k, _)| k.kind == ev::MSR_READ || k.kind == ev::MSR_WRITE)
            .map(|(_, v)| v.count)
            .sum()
    };
    let ran = runs(after, "ev_msr").run_cnt - runs(before, "ev_msr").run_cnt;
    assert_eq!(
        ran,
        msrs(after) - msrs(before),
        "ev_msr runs against MSRs counted"
    );
    let (asked, hashes) = src.probe().sampler_reads();
    let idle = src.sample().unwrap().unwrap();
    let (asked_now, hashes_now) = src.probe().sampler_reads();
    let (asked, hashes) = (asked_now - asked, [0, 1].map(|i| hashes_now[i] - hashes[i]));
    let attached = &src.probe().attached;
    let others = attached.iter().filter(|p| !p.starts_with("ev_")).count() as u64;
    println!("idle sample: {asked} of {} programs asked", attached.len());
    assert_eq!(
        asked, others,
        "programs asked with no KVM exits: {attached:?}"
    );
    // Kernel exits in flight go to the PENDING hash only for threads without a slot, and the
    // exerciser's one vCPU thread has one (where kvm_exit fires at all: not on every host that
    // has /dev/kvm, and there no slot is claimed and UPENDING is used, and read).
    assert_eq!(
        hashes[0], 0,
        "PENDING read though no thread went without a slot"
    );
    assert_eq!(runs(&idle, "ev_msr"), runs(after, "ev_msr"));
    assert_eq!(idle.progs.len(), attached.len());
}

#[test]
fn rows_of_exited_processes_can_be_forgotten() {
    if !common::privileged("rows_of_exited_processes_can_be_forgotten") {
        return;
    }
    let mut p = test_probe(1024);
    let s = run(
        &p,
        &[
            ev(OP_EXIT, 600, 6000, 1_000, 0, ISA_VMX, 30),
            ev(OP_ENTRY, 600, 6000, 1_100, 0, 0, 0),
            ev(OP_EXIT, 600, 6000, 2_000, 0, ISA_VMX, 12), // stays in flight
            // A thread colliding on 6000's slot: its exit in flight is in the PENDING hash.
            ev(
                OP_EXIT,
                600,
                6000 + profiler_common::PSLOTS as u64,
                2_100,
                1,
                ISA_VMX,
                12,
            ),
            ev(OP_EXIT, 700, 7000, 1_000, 0, ISA_VMX, 30),
            ev(OP_ENTRY, 700, 7000, 1_100, 0, 0, 0),
        ],
    );
    assert_eq!(s.stats.len(), 2);
    // Slot owners count their events in their slots, the colliding thread in the counters.
    let events =
        |s: &kvmprof::sample::Sample| (s.counter(counter::EXITS), s.counter(counter::ENTRIES));
    assert_eq!(events(&s), (4, 2));
    assert_eq!(
        s.in_flight.get(&key(600, 1, ISA_VMX, 12)),
        Some(&1),
        "in the hash"
    );
    // A refresh looks only at slots whose SLOT_USED byte is set: the claimant sets it, and
    // freeing the slot clears it (and nothing else).
    let used = |p: &Probe, slot: u32| -> bool {
        let a: aya::maps::Array<_, u64> =
            aya::maps::Array::try_from(p.ebpf().map("SLOT_USED").expect("SLOT_USED")).unwrap();
        (a.get(&(slot / 8), 0).unwrap() >> (8 * (slot % 8))) & 0xff != 0
    };
    assert!(used(&p, 6000) && used(&p, 7000) && !used(&p, 6001));
    assert_eq!(p.forget(&[600]).unwrap(), 1);
    assert!(!used(&p, 6000) && used(&p, 7000), "freeing slot 6000");
    let s = p.sample().unwrap();
    assert_eq!(events(&s), (4, 2), "the freed slot's events stay counted");
    assert!(
        s.stats.keys().all(|k| k.tgid == 700),
        "{:?}",
        s.stats.keys().collect::<Vec<_>>()
    );
    assert!(s.in_flight.is_empty(), "{:?}", s.in_flight);
    // The freed slot is claimable again (its BPF_NOEXIST claim was released): a new thread
    // reusing tid 6000 and one colliding on its slot (6000 + PSLOTS, kept in the hash) both pair.
    let other = 6000 + profiler_common::PSLOTS as u64;
    let s = run(
        &p,
        &[
            ev(OP_EXIT, 800, 6000, 3_000, 0, ISA_VMX, 30),
            ev(OP_EXIT, 800, other, 3_100, 1, ISA_VMX, 30),
            ev(OP_ENTRY, 800, 6000, 3_500, 0, 0, 0),
            ev(OP_EXIT, 800, 6000, 4_000, 0, ISA_VMX, 12), // in flight in the slot
            ev(OP_ENTRY, 800, other, 3_800, 1, 0, 0),
        ],
    );
    assert_eq!(s.stats[&key(800, 0, ISA_VMX, 30)].sum_ns, 500);
    assert_eq!(s.stats[&key(800, 1, ISA_VMX, 30)].sum_ns, 700);
    assert_eq!(s.in_flight.get(&key(800, 0, ISA_VMX, 12)), Some(&1));
    assert!(used(&p, 6000), "reclaimed slot 6000");
    let slots: aya::maps::Array<_, profiler_common::Pending> =
        aya::maps::Array::try_from(p.ebpf().map("PSLOTS_MAP").expect("PSLOTS_MAP")).unwrap();
    let slot = slots.get(&6000, 0).unwrap();
    assert_eq!(
        (slot.owner, slot.tgid),
        (6000, 800),
        "the freed slot was not reclaimed"
    );
}

/// The MSR path decodes SynIC SINT AutoEOI/masked and stimer direct mode in kernel.
#[test]
fn msr_writes_are_classified_in_kernel() {
    if !common::privileged("msr_writes_are_classified_in_kernel") {
        return;
    }
    let p = test_probe(1024);
    let msr = |write: u64, idx: u64, data: u64| -> Event { [4, 800, write, idx, data, 0, 0] };
    let s = run(
        &p,
        &[
            msr(1, 0x4000_0000, 0x0001_040a_0000_4a61), // GUEST_OS_ID: Microsoft, NT 10.0
            msr(1, 0x4000_0092, (1 << 17) | 0x30),      // SINT2: AutoEOI, vector 0x30
            msr(1, 0x4000_0093, (1 << 16) | 0x31),      // SINT3: masked
            msr(1, 0x4000_00b0, (1 << 12) | 1),         // STIMER0_CONFIG: direct, enabled
            msr(1, 0x4000_0070, 0),                     // EOI
            msr(1, 0x4000_0070, 0),
            msr(0, 0x4000_0020, 0), // TIME_REF_COUNT read
        ],
    );
    let get = |kind: u16, flags: u16, a: u64| {
        s.evidence
            .get(&kvmprof::sample::EvKey {
                tgid: 800,
                kind,
                flags,
                a,
            })
            .copied()
            .unwrap_or_else(|| panic!("no {kind}/{flags:#x}/{a:#x} in {:?}", s.evidence))
    };
    assert_eq!(
        get(ev::MSR_WRITE, 0, 0x4000_0000).last,
        0x0001_040a_0000_4a61
    );
    assert_eq!(get(ev::MSR_WRITE, ev::MSRF_SINT | 2, 0x4000_0092).count, 1);
    assert_eq!(get(ev::MSR_WRITE, ev::MSRF_SINT | 1, 0x4000_0093).count, 1);
    assert_eq!(
        get(ev::MSR_WRITE, ev::MSRF_STIMER_CONFIG | 1, 0x4000_00b0).count,
        1
    );
    assert_eq!(get(ev::MSR_WRITE, 0, 0x4000_0070).count, 2);
    assert_eq!(get(ev::MSR_READ, 0, 0x4000_0020).count, 1);
}

/// A program the verifier refuses comes back as one error naming the program, with the tail
/// of the verifier's log (what a user needs to report or fix it).
#[test]
fn verifier_rejection_carries_the_log() {
    if !common::privileged("verifier_rejection_carries_the_log") {
        return;
    }
    kvmprof::probe::verify_raw_tp("kvmprof_test").expect("the real test entry verifies");
    match kvmprof::probe::verify_raw_tp("kvmprof_rejected") {
        Err(e @ kvmprof::probe::ProbeError::Verifier { .. }) => {
            let msg = e.to_string();
            println!("{msg}");
            assert!(
                msg.starts_with("the kernel verifier rejected program kvmprof_rejected"),
                "{msg}"
            );
            assert!(msg.contains("verifier log"), "{msg}");
            assert!(msg.lines().count() > 3, "the log is missing: {msg}");
        }
        Err(e) => panic!("expected a verifier rejection, got: {e}"),
        Ok(()) => panic!("the deliberately unbounded program was accepted"),
    }
}
