//! In-kernel cost: an exit+entry pair on an existing row, on a new row, and the floor (what
//! the tracepoint programs must do whatever the layout: read their fields, the thread ids and
//! the clock), each above an empty program that reads the same arguments.

use anyhow::Result;
use kvmprof::probe::{
    testrun::{Event, OP_ENTRY, OP_EXIT},
    Probe, ProbeOptions, Programs, KCOST_PROGRAMS,
};
use profiler_common::{SlowCfg, ISA_VMX};

use crate::{median, min_max, ns_per_run, r1, reps, spread, test_probe, Json};

/// 8 VMs × 4 vCPUs × 8 reasons, repeated: rows already exist after the warm-up, as on a busy
/// host.
fn busy_events() -> Vec<Event> {
    let mut events = Vec::new();
    let mut t = 1_000_000u64;
    for i in 0..20_000u64 {
        let (vm, vcpu, reason) = (i % 8, (i / 8) % 4, (i / 32) % 8);
        let tid = 10_000 + vm * 100 + vcpu;
        events.push([OP_EXIT, 1000 + vm, tid, t, vcpu, ISA_VMX as u64, reason]);
        events.push([OP_ENTRY, 1000 + vm, tid, t + 700 + (i % 300), vcpu, 0, 0]);
        t += 2_000;
    }
    events
}

pub fn cost(json: &mut Json) -> Result<()> {
    let p = test_probe(16384)?;
    // The same programs with the slow-exit log off: what the log adds to every exit.
    let quiet = Probe::load(&ProbeOptions {
        programs: Programs::TestRun,
        max_keys: 16384,
        slow: SlowCfg::default(),
        ..Default::default()
    })?;
    let events = busy_events();
    p.test_run(&events[..2_000])?; // warm-up: create the rows
    quiet.test_run(&events[..2_000])?;
    let (mut above, mut floor, mut slow) = (Vec::new(), Vec::new(), Vec::new());
    let mut runs = Vec::new();
    // Taking turns every 100 pairs, so drift in the machine's speed hits all four alike.
    let progs = [
        (&p, "kvmprof_test"),
        (&p, "kvmprof_empty"),
        (&p, "kvmprof_floor"),
        (&quiet, "kvmprof_test"),
    ];
    for _ in 0..reps() {
        let ns = crate::ns_per_run_interleaved(&progs, &events, 200)?;
        let (full, empty, fl, off) = (ns[0], ns[1], ns[2], ns[3]);
        above.push(2.0 * (full - empty));
        floor.push(2.0 * (fl - empty));
        slow.push(2.0 * (full - off));
        runs.push((full, empty));
    }
    let (a, lo, hi) = spread(
        json,
        crate::spread_keys!("kcost_pair_ns_above_empty_per_call"),
        above,
    );
    let (f, flo, fhi) = spread(
        json,
        crate::spread_keys!("kcost_pair_ns_floor_per_call"),
        floor,
    );
    let (full, empty) = (
        median(runs.iter().map(|r| r.0).collect()),
        median(runs.iter().map(|r| r.1).collect()),
    );
    println!("| in-kernel cost per exit+entry pair above empty (per call: one program run per exit or entry) | {a:.1} ns | median of {} runs, the programs taking turns every 100 pairs (min {lo:.1}, max {hi:.1}); {full:.1} ns/run kvmprof vs {empty:.1} ns/run empty; goal ≤ 40 ns |", reps());
    println!("| floor: the same helper calls (thread ids, clock), no aggregation, above empty (per call) | {f:.1} ns | min {flo:.1}, max {fhi:.1}; kvmprof above the floor: {:.1} ns (goal ≤ 15 ns) |", a - f);
    let (s, slo, shi) = spread(json, crate::spread_keys!("kcost_pair_ns_slow_log"), slow);
    println!("| of which the slow-exit log at its default threshold (on vs off, same events) | {s:.1} ns | min {slo:.1}, max {shi:.1}; none of these exits is slow: the compare at the entry, the CPU id and the RIP at the exit |");
    json.insert("kcost_runs", serde_json::json!(reps()));
    Ok(())
}

/// Rounds of turns in the cost loop, at least.
const LOOP_REPS: usize = 101;

/// The in-kernel cost through `kvmprof_kcost` (1 000 pairs a program run, so a run's own
/// costs — the syscall, the run-time statistics' two clock reads — are shared instead of
/// added to each exit and entry as they are in `cost`), and what each part of the path
/// costs: the whole minus the whole with that part left out (the test object's
/// `kvmprof_kcost_no_*`), all taking turns on the same rows.
pub fn cost_loop(json: &mut Json) -> Result<()> {
    // A round of turns takes ~30 ms, and the parts are 0–10 ns with ±3–5 ns of spread a
    // round: a hundred rounds for medians that hold still from one run to the next.
    let reps = reps().max(LOOP_REPS);
    let parts = [
        (
            "the statistics (row lookup and all below)",
            "kvmprof_kcost_no_account",
            "kcost_part_ns_account",
        ),
        (
            "the histogram",
            "kvmprof_kcost_no_hist",
            "kcost_part_ns_hist",
        ),
        (
            "the sequence lock",
            "kvmprof_kcost_no_seq",
            "kcost_part_ns_seq",
        ),
        (
            "min/max",
            "kvmprof_kcost_no_min_max",
            "kcost_part_ns_min_max",
        ),
        (
            "the exit/entry counters",
            "kvmprof_kcost_no_counters",
            "kcost_part_ns_counters",
        ),
        (
            "the guest-RIP sample check",
            "kvmprof_kcost_no_rip",
            "kcost_part_ns_rip",
        ),
        (
            "the slow-exit log's work (on at its default threshold, no exit slow)",
            "kvmprof_kcost_no_slow",
            "kcost_part_ns_slow",
        ),
        // A second copy of the whole: what two programs doing the same differ by, this
        // harness's resolution.
        (
            "nothing (a second copy of the whole)",
            "kvmprof_kcost_again",
            "kcost_part_ns_control",
        ),
    ];
    let p = test_probe(16384)?;
    const PAIRS: u64 = 1000;
    // 20 runs of 1000 pairs each: the same 20 000 pairs as `cost`.
    let runs: Vec<Event> = (0..20).map(|c| [PAIRS, c * PAIRS, 0, 0, 0, 0, 0]).collect();
    // Warm-up: every program once (the rows exist after the first).
    for name in KCOST_PROGRAMS {
        p.test_run_program(name, &runs[..2])?;
    }
    let mut progs = vec![
        (&p, "kvmprof_kcost"),
        (&p, "kvmprof_kcost_empty"),
        (&p, "kvmprof_kcost_floor"),
        (&p, "kvmprof_kcost_two_octaves"),
    ];
    progs.extend(parts.iter().map(|x| (&p, x.1)));
    let mut diffs = vec![Vec::new(); parts.len()];
    let (mut above, mut floor, mut over) = (Vec::new(), Vec::new(), Vec::new());
    let mut over_two = Vec::new();
    for _ in 0..reps {
        let ns: Vec<f64> = crate::ns_per_run_interleaved(&progs, &runs, 1)?
            .into_iter()
            .map(|n| n / PAIRS as f64)
            .collect();
        above.push(ns[0] - ns[1]);
        floor.push(ns[2] - ns[1]);
        // Whole minus floor within the round: a drift between rounds moves both alike.
        over.push(ns[0] - ns[2]);
        over_two.push(ns[3] - ns[2]);
        for (d, n) in diffs.iter_mut().zip(&ns[4..]) {
            d.push(ns[0] - n);
        }
    }
    let (a, lo, hi) = spread(
        json,
        crate::spread_keys!("kcost_pair_ns_above_empty"),
        above,
    );
    json.insert("kcost_loop_runs", serde_json::json!(reps));
    let (f, flo, fhi) = spread(json, crate::spread_keys!("kcost_pair_ns_floor"), floor);
    println!("| in-kernel cost per exit+entry pair above empty (cost loop) | {a:.1} ns | median of {} runs, {PAIRS} pairs a program run (bpf_loop), the programs taking turns (min {lo:.1}, max {hi:.1}); goal ≤ 40 ns |", reps);
    println!("| floor: the same helper calls (thread ids, clock), no aggregation, above empty (cost loop) | {f:.1} ns | min {flo:.1}, max {fhi:.1} |");
    let (o, olo, ohi) = spread(json, crate::spread_keys!("kcost_pair_ns_above_floor"), over);
    println!("| kvmprof above the floor (cost loop) | {o:.1} ns | median of the runs' differences, each within one round of turns (min {olo:.1}, max {ohi:.1}); the difference of the medians above: {:.1} ns; goal ≤ 15 ns |", a - f);
    let (t, tlo, thi) = spread(
        json,
        crate::spread_keys!("kcost_pair_ns_above_floor_two_octaves"),
        over_two,
    );
    println!("| the same, each exit in another octave than its row's last (cost loop) | {t:.1} ns | min {tlo:.1}, max {thi:.1}; above, each row's exits keep to one octave, and an exit in its row's last exit's octave skips the log2 and the octave's link (`Row::hot_oct`) |");
    for ((what, _, key), d) in parts.iter().zip(diffs) {
        let (lo, hi) = min_max(&d);
        let m = median(d);
        println!("| of which {what} | {m:.1} ns | min {lo:.1}, max {hi:.1} |");
        json.insert(key, r1(m));
    }
    Ok(())
}

/// The exit that creates a row: each pair a reason its (existing) vCPU thread has not had, so
/// every entry takes a row and an octave from the free lists.
pub fn first_use(json: &mut Json) -> Result<()> {
    let mut costs = Vec::new();
    for _ in 0..reps() {
        let p = test_probe(16384)?;
        // Threads (slots and reason tables) exist already: 64 vCPU threads, one reason each.
        let warm: Vec<Event> = (0..64u64)
            .flat_map(|i| {
                let tid = 30_000 + i;
                [
                    [OP_EXIT, 3000 + i / 8, tid, 1_000, i % 8, ISA_VMX as u64, 0],
                    [OP_ENTRY, 3000 + i / 8, tid, 1_700, i % 8, 0, 0],
                ]
            })
            .collect();
        p.test_run(&warm)?;
        let mut fresh = Vec::new();
        for reason in 1..65u64 {
            for i in 0..64u64 {
                let tid = 30_000 + i;
                let t = 10_000 + reason * 1_000;
                fresh.push([OP_EXIT, 3000 + i / 8, tid, t, i % 8, ISA_VMX as u64, reason]);
                fresh.push([OP_ENTRY, 3000 + i / 8, tid, t + 700, i % 8, 0, 0]);
            }
        }
        let full = crate::ns_per_run(&p, "kvmprof_test", &fresh)?;
        let empty = crate::ns_per_run(&p, "kvmprof_empty", &fresh)?;
        costs.push(2.0 * (full - empty));
    }
    let (lo, hi) = min_max(&costs);
    let m = median(costs);
    println!("| an exit+entry pair that creates its row, above empty | {m:.1} ns | median of {} (min {lo:.1}, max {hi:.1}); 4096 new rows on 64 threads; was ~12 µs with per-CPU allocation |", reps());
    json.insert("first_use_ns", r1(m));
    Ok(())
}

/// The evidence programs' per-event cost (an MSR write: kvm_msr's program, through the test
/// entry's op 4) above empty, for a key seen before and for a new one, and what their map
/// holds per key.
pub fn evidence(json: &mut Json) -> Result<()> {
    let p = test_probe(1024)?;
    // 8 VMs × 32 MSRs, repeated.
    let events: Vec<Event> = (0..20_000u64)
        .map(|i| [4, 1000 + i % 8, 1, 0x4000_0000 + (i / 8) % 32, i, 0, 0])
        .collect();
    p.test_run(&events[..512])?;
    let mut above = Vec::new();
    let mut fresh = Vec::new();
    for rep in 0..reps() as u64 {
        let full = ns_per_run(&p, "kvmprof_test", &events)?;
        let empty = ns_per_run(&p, "kvmprof_empty", &events)?;
        above.push(full - empty);
        // 1 024 keys no event had before (MSR indices of this rep), then the same again.
        let new: Vec<Event> = (0..1024u64)
            .map(|i| [4, 2000 + i % 8, 1, 0x10_0000 * (rep + 1) + i, i, 0, 0])
            .collect();
        let first = ns_per_run(&p, "kvmprof_test", &new)?;
        let again = ns_per_run(&p, "kvmprof_test", &new)?;
        fresh.push(first - again);
    }
    let (lo, hi) = min_max(&above);
    let m = median(above);
    let (flo, fhi) = min_max(&fresh);
    let f = median(fresh);
    let keys = p.sample()?.evidence.len() as f64;
    let cpus = aya::util::nr_cpus().map_or(1, |n| n);
    let map = p.map_memory().into_iter().find(|m| m.name == "EVIDENCE");
    let (bytes, per_cpu) = map.map_or((0, false), |m| (m.bytes, m.per_cpu));
    let per_key = bytes as f64 / keys.max(1.0);
    println!("| evidence event (kvm_msr write) above empty | {m:.1} ns | median of {} (min {lo:.1}, max {hi:.1}) |", reps());
    println!("| evidence event that creates its key, above one that finds it | {f:.1} ns | median of {} (min {flo:.1}, max {fhi:.1}); 1 024 new keys a run |", reps());
    println!("| evidence map memory per key | {per_key:.0} B | {keys:.0} keys take {:.0} KiB here ({cpus} CPUs); per-CPU map: {per_cpu} |", bytes as f64 / 1024.0);
    json.insert("evidence_event_ns_above_empty", r1(m));
    json.insert("evidence_first_use_ns", r1(f));
    json.insert("evidence_bytes_per_key", r1(per_key));
    json.insert(
        "evidence_bytes_per_key_depends_on_cpus",
        serde_json::json!(per_cpu),
    );
    Ok(())
}

/// Filling the free lists at load (default --max-keys: 16 384 rows, 49 152 octaves, 1 024
/// reason tables): the kernel's `kvmprof_fill`, against pushing the same indexes one syscall
/// each (what kvmprof did before, and still does where the kernel cannot run it).
pub fn fill(json: &mut Json) -> Result<()> {
    let max_keys = ProbeOptions::default().max_keys;
    let (mut kernel, mut pushes) = (Vec::new(), Vec::new());
    for _ in 0..reps() {
        let mut p = test_probe(max_keys)?;
        let f = p.filled();
        anyhow::ensure!(f.in_kernel, "the free lists were not filled by the kernel");
        kernel.push(f.took.as_secs_f64() * 1e3);
        let mut took = std::time::Duration::ZERO;
        for (name, n) in kvmprof::probe::table_sizes(max_keys) {
            if !name.starts_with("FREE_") {
                continue;
            }
            let map = p.ebpf_mut().map_mut(name).expect("free list");
            let mut q: aya::maps::Queue<_, u32> = aya::maps::Queue::try_from(map)?;
            while q.pop(0).is_ok() {}
            let t = std::time::Instant::now();
            for i in 0..n {
                q.push(i, 0)?;
            }
            took += t.elapsed();
        }
        pushes.push(took.as_secs_f64() * 1e3);
    }
    let ((klo, khi), (plo, phi)) = (min_max(&kernel), min_max(&pushes));
    let (k, u) = (median(kernel), median(pushes));
    println!("| free lists filled at load by the kernel (kvmprof_fill, default --max-keys) | {k:.2} ms | median of {} (min {klo:.2}, max {khi:.2}); one push syscall per index: {u:.1} ms (min {plo:.1}, max {phi:.1}) |", reps());
    json.insert(
        "free_list_fill_ms",
        serde_json::json!((k * 100.0).round() / 100.0),
    );
    json.insert("free_list_fill_ms_by_syscalls", r1(u));
    Ok(())
}
