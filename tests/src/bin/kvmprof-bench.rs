//! `cargo xtask bench` runs this (as root, release, with the eBPF object): prints the cost
//! numbers as a Markdown table. Ratios and medians measured in one run; no absolute asserts.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use kvmprof::{
    decode::ExitNames,
    model,
    probe::{
        testrun::{Event, OP_ENTRY, OP_EXIT},
        Probe, ProbeOptions, Programs,
    },
    sample::Sample,
};
use profiler_common::ISA_VMX;

const REPS: usize = 5;

fn reps() -> usize {
    std::env::var("KVMPROF_BENCH_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(REPS)
}

fn main() -> Result<()> {
    if !kvmprof::probe::HAS_TEST_OBJECT {
        bail!("built without the eBPF test object: run through `cargo xtask bench`");
    }
    println!("| measurement | value | note |");
    println!("|---|---|---|");
    kernel_cost()?;
    if std::env::var_os("KVMPROF_BENCH_KERNEL_ONLY").is_some() {
        return Ok(());
    }
    small_host()?;
    userspace_scale()?;
    Ok(())
}

/// The fixed part of a refresh: default map sizes, a small host (8 VMs × 4 vCPUs × 8 reasons).
/// What `kvmprof record` or `serve` costs per interval on most hosts.
fn small_host() -> Result<()> {
    let p = Probe::load(&ProbeOptions {
        programs: Programs::TestRun,
        ..Default::default()
    })?;
    let mut events = Vec::new();
    for i in 0..256u64 {
        let (vm, vcpu, reason) = (i % 8, (i / 8) % 4, i / 32);
        let tid = 10_000 + vm * 100 + vcpu;
        events.push([
            OP_EXIT,
            1000 + vm,
            tid,
            1_000 + i * 10,
            vcpu,
            ISA_VMX as u64,
            reason,
        ]);
        events.push([OP_ENTRY, 1000 + vm, tid, 1_500 + i * 10, vcpu, 0, 0]);
    }
    p.test_run(&events)?;
    let mut read = Vec::new();
    let mut rows = 0;
    for _ in 0..reps() * 4 {
        let t = Instant::now();
        let s = p.sample()?;
        read.push(t.elapsed().as_secs_f64() * 1e3);
        rows = s.stats.len();
    }
    let r = median(read);
    println!("| sampler: read all maps, default sizes, small host ({rows} rows) | {r:.2} ms | median of {}; the fixed cost of a refresh ({:.3} % of a core at 1 s) |", reps() * 4, r / 10.0);
    Ok(())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn prog_stats(p: &Probe, name: &str) -> Result<(u64, u64)> {
    let info = p
        .ebpf()
        .program(name)
        .with_context(|| format!("{name} missing"))?
        .info()?;
    Ok((info.run_time().as_nanos() as u64, info.run_count()))
}

/// ns per run of `name` over `events`, from the kernel's BPF run-time statistics.
fn ns_per_run(p: &Probe, name: &str, events: &[Event]) -> Result<f64> {
    let (t0, c0) = prog_stats(p, name)?;
    p.test_run_program(name, events)?;
    let (t1, c1) = prog_stats(p, name)?;
    if c1 == c0 {
        bail!("no runs counted for {name}: BPF statistics are off (kernel < 5.8?)");
    }
    Ok((t1 - t0) as f64 / (c1 - c0) as f64)
}

/// The test-run programs with room for a big host's rows.
fn big_test_probe() -> Result<Probe> {
    Ok(Probe::load(&ProbeOptions {
        programs: Programs::TestRun,
        max_keys: 65536,
        ..Default::default()
    })?)
}

/// 1. In-kernel cost of an exit+entry pair above an empty program reading the same args.
fn kernel_cost() -> Result<()> {
    let p = big_test_probe()?;
    // 8 VMs × 4 vCPUs × 8 reasons: rows already exist after the warm-up, as on a busy host.
    let mut events = Vec::new();
    let mut t = 1_000_000u64;
    for i in 0..20_000u64 {
        let (vm, vcpu, reason) = (i % 8, (i / 8) % 4, (i / 32) % 8);
        let tid = 10_000 + vm * 100 + vcpu;
        events.push([OP_EXIT, 1000 + vm, tid, t, vcpu, ISA_VMX as u64, reason]);
        events.push([OP_ENTRY, 1000 + vm, tid, t + 700 + (i % 300), vcpu, 0, 0]);
        t += 2_000;
    }
    p.test_run(&events[..2_000])?; // warm-up: create the rows
    let mut full = Vec::new();
    let mut empty = Vec::new();
    for _ in 0..reps() {
        full.push(ns_per_run(&p, "kvmprof_test", &events)?);
        empty.push(ns_per_run(&p, "kvmprof_empty", &events)?);
    }
    if std::env::var_os("KVMPROF_BENCH_KERNEL_ONLY").is_some() {
        let min = |v: &[f64]| v.iter().copied().fold(f64::MAX, f64::min);
        eprintln!(
            "min: {:.1} ns above empty",
            2.0 * (min(&full) - min(&empty))
        );
    }
    let (f, e) = (median(full), median(empty));
    println!("| in-kernel cost per exit+entry pair (test entry) | {:.1} ns | {:.1} ns/run kvmprof vs {:.1} ns/run empty, median of {REPS}; goal ≤ 60 ns above empty |", 2.0 * (f - e), f, e);
    Ok(())
}

/// Item 4: sampler + model time per refresh on a synthetic big host, 64 VMs × 16 vCPUs ×
/// 40 reasons, every row changing between refreshes.
fn userspace_scale() -> Result<()> {
    let p = big_test_probe()?;
    let mut events = Vec::new();
    let mut t = 1_000_000u64;
    for vm in 0..64u64 {
        for vcpu in 0..16u64 {
            let tid = 100_000 + vm * 100 + vcpu;
            for reason in 0..40u64 {
                for k in 0..2 {
                    events.push([OP_EXIT, 2000 + vm, tid, t, vcpu, ISA_VMX as u64, reason]);
                    events.push([
                        OP_ENTRY,
                        2000 + vm,
                        tid,
                        t + 500 + reason * 97 + k * 3000,
                        vcpu,
                        0,
                        0,
                    ]);
                    t += 10_000;
                }
            }
        }
    }
    p.test_run(&events)?;
    // Every row changes in every interval (a busy host, not a frozen one): one more
    // exit+entry per row, at a latency that drifts, before each refresh (outside the timers).
    let pass = |round: u64| {
        let mut ev = Vec::with_capacity(64 * 16 * 40 * 2);
        let mut t = 1_000_000_000 * (round + 1);
        for vm in 0..64u64 {
            for vcpu in 0..16u64 {
                let tid = 100_000 + vm * 100 + vcpu;
                for reason in 0..40u64 {
                    let lat = 400 + (reason * 131 + vcpu * 17 + round * 977) % 20_000;
                    ev.push([OP_EXIT, 2000 + vm, tid, t, vcpu, ISA_VMX as u64, reason]);
                    ev.push([OP_ENTRY, 2000 + vm, tid, t + lat, vcpu, 0, 0]);
                    t += 25_000;
                }
            }
        }
        ev
    };
    let names = ExitNames::builtin();
    let mut read = Vec::new();
    let mut compute = Vec::new();
    let mut prev: Option<Sample> = None;
    let mut all = Vec::new();
    let mut keys = 0;
    for round in 0..REPS as u64 {
        p.test_run(&pass(round))?;
        let t0 = Instant::now();
        let s = p.sample()?;
        read.push(t0.elapsed());
        keys = s.stats.len();
        let dropped = s.counter(profiler_common::counter::STATS_FULL);
        if dropped != 0 && prev.is_none() {
            println!("| rows refused by the kernel (stats_map_full) | {dropped} exits | per-CPU memory for {keys} rows × {} B × CPUs |", std::mem::size_of::<profiler_common::StatValue>());
        }
        if let Some(old) = &prev {
            let t1 = Instant::now();
            let v = model::compute(old, &s, &names);
            compute.push(t1.elapsed());
            std::hint::black_box(v);
        }
        all.push(s.clone());
        prev = Some(s);
    }
    if let Some(s) = &prev {
        let rows: usize = s
            .stats
            .values()
            .map(|st| {
                let mut r: Vec<u16> = st.hist.buckets.iter().map(|(b, _)| b / 8).collect();
                r.dedup();
                // Octaves beyond the inline windows take HIST rows.
                r.len().saturating_sub(profiler_common::INLINE_OCTAVES)
            })
            .sum();
        let per_key = rows as f64 / s.stats.len().max(1) as f64;
        let bytes = std::mem::size_of::<profiler_common::StatValue>() as f64
            + per_key * std::mem::size_of::<profiler_common::HistRow>() as f64;
        println!("| kernel per-CPU memory per row | {bytes:.0} B × CPUs | {} B stats + {per_key:.2} spilled histogram octaves × {} B (values only); 40,960 rows on 128 CPUs ≈ {:.0} MiB |", std::mem::size_of::<profiler_common::StatValue>(), std::mem::size_of::<profiler_common::HistRow>(), bytes * 128.0 * 40960.0 / (1 << 20) as f64);
    }
    let ms = |d: Vec<Duration>| median(d.iter().map(|d| d.as_secs_f64() * 1e3).collect());
    let (r, c) = (ms(read), ms(compute));
    println!("| sampler: read all maps ({keys} rows, all changed since the last refresh) | {r:.1} ms | median of {REPS} |");
    println!(
        "| model: compute one refresh | {c:.1} ms | median of {} |",
        REPS - 1
    );
    println!(
        "| sampler + model CPU at 1 s refresh | {:.2} % of a core | goal ≤ 1 % |",
        (r + c) / 10.0
    );
    tui_cost(&names, &all, r)
}

/// What the TUI adds on the same host: a refresh (App::on_sample: the interval and
/// since-start views plus advice) and drawing one frame into a TestBackend, per screen.
fn tui_cost(names: &ExitNames, samples: &[Sample], read_ms: f64) -> Result<()> {
    use kvmprof::tui::App;
    use ratatui::{backend::TestBackend, crossterm::event::KeyCode, Terminal};
    let mut app = App::new(names.clone(), "bench".into());
    let mut refresh = Vec::new();
    for (i, s) in samples.iter().enumerate() {
        let s = s.clone();
        let t = Instant::now();
        app.on_sample(s);
        if i > 0 {
            refresh.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    let refresh = median(refresh);
    println!("| TUI refresh: App::on_sample (the interval view; since-start and advice views are computed only while shown) | {refresh:.1} ms | median of {} |", samples.len() - 1);
    println!(
        "| TUI: sampler + refresh CPU at 1 s refresh | {:.2} % of a core | what `kvmprof` (top) costs on this host |",
        (read_ms + refresh) / 10.0
    );
    let mut term = Terminal::new(TestBackend::new(200, 60))?;
    let key = |app: &mut App, c: KeyCode| {
        app.on_key(ratatui::crossterm::event::KeyEvent::from(c));
    };
    for (screen, keys) in [
        ("VM list", &[][..]),
        ("one VM (reasons, vCPUs)", &[KeyCode::Enter][..]),
        ("drill-down (Enter on the first row)", &[KeyCode::Enter][..]),
        ("histogram (Enter again)", &[KeyCode::Enter][..]),
    ] {
        for &k in keys {
            key(&mut app, k);
        }
        let mut times = Vec::new();
        for _ in 0..20 {
            let t = Instant::now();
            term.draw(|f| f.render_widget(&app, f.area()))?;
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
        println!(
            "| TUI frame: {screen}, 200×60 | {:.2} ms | median of 20; goal ≤ 16 ms |",
            median(times)
        );
    }
    Ok(())
}
