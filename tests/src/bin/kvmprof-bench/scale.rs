//! Userspace cost of a refresh: the sampler reading the exit table and the model computing
//! the views, on a small host and on a big one (64 VMs × 16 vCPUs × 40 reasons = 40 960 rows),
//! all rows changing or only 1 000 of them; and the kernel memory those rows take.

use std::time::Instant;

use anyhow::Result;
use kvmprof::{
    decode::ExitNames,
    model,
    probe::{
        testrun::{Event, OP_ENTRY, OP_EXIT},
        Probe, ProbeOptions,
    },
    sample::Sample,
    test_util::thread_cpu,
};
use profiler_common::ISA_VMX;

use crate::{cpu_ms, median, min_max, r1, reps, test_probe, Json};

const VMS: u64 = 64;
const VCPUS: u64 = 16;
const REASONS: u64 = 40;
const BIG: u32 = (VMS * VCPUS * REASONS) as u32;
/// The pid of the first VM of [`pass`] (the one a screen shows).
const FIRST_VM: u32 = 2000;

/// The fixed part of a refresh: default map sizes, a small host (8 VMs × 4 vCPUs × 8 reasons).
/// What `kvmprof record` or `serve` costs per interval on most hosts.
pub fn small_host() -> Result<()> {
    let p = test_probe(ProbeOptions::default().max_keys)?;
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
    for _ in 0..reps() * 3 {
        let t = thread_cpu();
        let s = p.sample()?;
        read.push(cpu_ms(thread_cpu() - t));
        rows = s.stats.len();
    }
    let r = median(read);
    println!("| sampler: read all maps, default sizes, small host ({rows} rows) | {r:.3} ms | median of {}; the fixed cost of a refresh ({:.3} % of a core at 1 s) |", reps() * 3, r / 10.0);
    Ok(())
}

/// The /proc part of a live refresh on this host: VM discovery (the first refresh reads every
/// process's stat and command line; later ones list /proc once in RECHECK refreshes and
/// re-read a process found not to be QEMU once in RECHECK listings, `vm::Discovery`) and,
/// while a VM runs, the look for its vhost workers among the kernel threads (the same for a
/// kernel thread found not to be one). What a quiet host pays per interval beyond the maps.
pub fn discovery(json: &mut Json) {
    use kvmprof::vm::RECHECK;
    let mut d = kvmprof::vm::Discovery::host();
    let t = first_and_rest(|| {
        d.refresh(&[]);
        d.stat_reads
    });
    println!("| VM discovery per refresh, this host ({} processes) | {:.3} ms | mean of {RECHECK} refreshes (one lists /proc), median of {} such runs (min {:.3}, max {:.3}); the first refresh, which reads every process's stat and command line, {:.3} ms |", t.reads, t.median, t.n, t.min, t.max, t.first);
    json.insert("discovery_ms_per_refresh", r3(t.median));
    json.insert("discovery_ms_first_refresh", r3(t.first));
    let proc_root = std::path::Path::new("/proc");
    let mut k = kvmprof::vm::threads::Kthreads::default();
    let t = first_and_rest(|| {
        kvmprof::vm::threads::vhost_kthreads(proc_root, &mut k);
        k.stat_reads
    });
    println!("| vhost workers looked for per refresh while a VM runs, this host ({} kernel threads) | {:.3} ms | mean of {RECHECK} looks, median of {} such runs (min {:.3}, max {:.3}); the first look, which reads every kernel thread's stat, {:.3} ms |", t.reads, t.median, t.n, t.min, t.max, t.first);
    json.insert("vhost_scan_ms_per_refresh", r3(t.median));
    json.insert("vhost_scan_ms_first", r3(t.first));
}

/// Thread CPU of a first call and of the calls after it (ms), the latter timed in runs of
/// `RECHECK` calls (discovery lists /proc and re-reads known pids once in that many, so a
/// single call's time is bimodal): the mean per call of a run, median over runs. `reads`:
/// what the first call returned (the files it read).
struct FirstAndRest {
    first: f64,
    reads: u64,
    median: f64,
    min: f64,
    max: f64,
    n: usize,
}

fn first_and_rest(mut f: impl FnMut() -> u64) -> FirstAndRest {
    let t = thread_cpu();
    let reads = f();
    let first = cpu_ms(thread_cpu() - t);
    let n = reps() * 3;
    let group = kvmprof::vm::RECHECK;
    let times: Vec<f64> = (0..n)
        .map(|_| {
            let t = thread_cpu();
            for _ in 0..group {
                f();
            }
            cpu_ms(thread_cpu() - t) / f64::from(group)
        })
        .collect();
    let (min, max) = min_max(&times);
    FirstAndRest {
        first,
        reads,
        median: median(times),
        min,
        max,
        n,
    }
}

/// Round for JSON (three decimals).
fn r3(v: f64) -> serde_json::Value {
    serde_json::json!((v * 1000.0).round() / 1000.0)
}

/// One exit+entry on each of the first `rows` rows, at a latency that drifts with `round`.
fn pass(round: u64, rows: u64) -> Vec<Event> {
    let mut ev = Vec::with_capacity(rows as usize * 2);
    let mut t = 1_000_000_000 * (round + 1);
    for i in 0..rows {
        let (vm, vcpu, reason) = (i / (VCPUS * REASONS), (i / REASONS) % VCPUS, i % REASONS);
        let tid = 100_000 + vm * 100 + vcpu;
        let lat = 400 + (reason * 131 + vcpu * 17 + round * 977) % 20_000;
        let pid = u64::from(FIRST_VM) + vm;
        ev.push([OP_EXIT, pid, tid, t, vcpu, ISA_VMX as u64, reason]);
        ev.push([OP_ENTRY, pid, tid, t + lat, vcpu, 0, 0]);
        t += 25_000;
    }
    ev
}

/// Sampler + model CPU per refresh (ms, thread CPU time) when `changed` rows moved since the
/// last refresh: the sampler, `Model::refresh` (the view kept and updated in place, as the TUI
/// runs it with one VM's screen open: that VM's vCPU rows, every VM's rows) and, for
/// comparison, `model::compute` (a whole view with every vCPU row, as reports compute it).
/// Also the samples, for the TUI's measurement.
struct Refreshes {
    read: Vec<f64>,
    refresh: Vec<f64>,
    compute: Vec<f64>,
    samples: Vec<Sample>,
}

fn refreshes(p: &Probe, names: &ExitNames, changed: u64, first_round: u64) -> Result<Refreshes> {
    let mut prev = p.sample()?;
    let mut m = model::Model::folded();
    m.show_vcpu_rows(Some(&[FIRST_VM]));
    let mut view = model::View::default();
    m.refresh(&mut view, &prev, &prev, names);
    let mut r = Refreshes {
        read: vec![],
        refresh: vec![],
        compute: vec![],
        samples: vec![],
    };
    for round in 0..reps() as u64 {
        p.test_run(&pass(first_round + round, changed))?;
        let t0 = thread_cpu();
        let s = p.sample()?;
        let t1 = thread_cpu();
        m.refresh(&mut view, &prev, &s, names);
        let t2 = thread_cpu();
        let v = model::compute(&prev, &s, names);
        let t3 = thread_cpu();
        std::hint::black_box(v);
        r.read.push(cpu_ms(t1 - t0));
        r.refresh.push(cpu_ms(t2 - t1));
        r.compute.push(cpu_ms(t3 - t2));
        r.samples.push(s.clone());
        prev = s;
    }
    Ok(r)
}

pub fn userspace_scale(json: &mut Json) -> Result<()> {
    let p = test_probe(BIG)?;
    // Every row twice, at two latencies (two octaves), then the measured rounds.
    p.test_run(&pass(0, BIG as u64))?;
    p.test_run(&pass(1, BIG as u64))?;
    let s = p.sample()?;
    let refused = s.counter(profiler_common::counter::STATS_FULL);
    println!("| rows refused by the kernel at {BIG} rows (--max-keys {BIG}) | {refused} exits | {} rows read |", s.stats.len());
    json.insert("rows_refused_40960", serde_json::json!(refused));
    kernel_memory(&p, BIG, json);
    let names = ExitNames::builtin();
    let mut all_samples = Vec::new();
    let mut all_read = 0.0;
    for (changed, key, label) in [
        (BIG as u64, "refresh_cpu_pct_40960_rows", "all rows changed"),
        (
            1000,
            "refresh_cpu_pct_40960_rows_1000_changed",
            "1 000 rows changed",
        ),
    ] {
        let r = refreshes(&p, &names, changed, 2 + changed % 7)?;
        let total: Vec<f64> = r.read.iter().zip(&r.refresh).map(|(a, b)| a + b).collect();
        let (lo, hi) = min_max(&total);
        let (rd, rf, c, t) = (
            median(r.read),
            median(r.refresh),
            median(r.compute),
            median(total),
        );
        println!("| sampler: read the exit table ({BIG} rows, {label}) | {rd:.1} ms | thread CPU, median of {} |", reps());
        println!("| model: Model::refresh, the view updated in place ({label}) | {rf:.1} ms | thread CPU, median of {}; a whole view (model::compute, as reports use) {c:.1} ms |", reps());
        println!("| sampler + model CPU at 1 s refresh ({label}) | {:.2} % of a core | min {:.2}, max {:.2}; goal ≤ 1 % |", t / 10.0, lo / 10.0, hi / 10.0);
        json.insert(key, serde_json::json!((t / 10.0 * 100.0).round() / 100.0));
        if changed == BIG as u64 {
            all_samples = r.samples;
            all_read = rd;
            json.insert("sampler_ms_40960_rows", r1(rd));
        } else {
            json.insert("sampler_ms_40960_rows_1000_changed", r1(rd));
        }
    }
    let refresh = tui_cost(&names, &all_samples, all_read)?;
    json.insert(
        "tui_cpu_pct_40960_rows",
        serde_json::json!(((all_read + refresh) / 10.0 * 100.0).round() / 100.0),
    );
    Ok(())
}

/// Kernel memory of the exit table's maps as the kernel accounts it (fdinfo memlock), per row
/// of capacity (`--max-keys`); the thread slots (a fixed 2 MiB, whatever the rows) apart.
fn kernel_memory(p: &Probe, max_keys: u32, json: &mut Json) {
    let sizes = kvmprof::probe::table_sizes(max_keys);
    let maps = p.map_memory();
    let table: Vec<_> = maps
        .iter()
        .filter(|m| sizes.iter().any(|(n, _)| *n == m.name))
        .collect();
    let slots: u64 = maps
        .iter()
        .filter(|m| m.name == "PSLOTS_MAP" || m.name == "SLOT_USED")
        .map(|m| m.bytes)
        .sum();
    let bytes: u64 = table.iter().map(|m| m.bytes).sum();
    let per_row = bytes as f64 / max_keys as f64;
    let per_cpu: Vec<&str> = table
        .iter()
        .filter(|m| m.per_cpu)
        .map(|m| m.name.as_str())
        .collect();
    let mut parts: Vec<(u64, String)> = table
        .iter()
        .map(|m| {
            (
                m.bytes,
                format!("{} {:.0}", m.name, m.bytes as f64 / max_keys as f64),
            )
        })
        .collect();
    parts.sort_by_key(|p| std::cmp::Reverse(p.0));
    let parts: Vec<String> = parts.into_iter().map(|p| p.1).collect();
    let mb = |b: u64| b as f64 / 1e6;
    println!("| kernel memory per row (the exit table's maps, as the kernel accounts them) | {per_row:.0} B | {}; per-CPU maps among them: {}; {max_keys} rows = {:.1} MB on any host (goal ≤ 16 MB), plus the thread slots' fixed {:.1} MB |", parts.join(" + "), if per_cpu.is_empty() { "none".to_string() } else { per_cpu.join(", ") }, mb(bytes), mb(slots));
    json.insert("kernel_bytes_per_row", serde_json::json!(per_row.round()));
    json.insert("kernel_bytes_40960_rows", serde_json::json!(bytes));
    json.insert("kernel_bytes_thread_slots", serde_json::json!(slots));
    json.insert(
        "kernel_bytes_per_row_depends_on_cpus",
        serde_json::json!(!per_cpu.is_empty()),
    );
}

/// What the TUI adds on the same host: a refresh (App::on_sample: the interval and
/// since-start views plus advice) with one VM's screen open (its vCPU rows are kept, the
/// others' are not) and drawing one frame into a TestBackend, per screen. Returns the median
/// refresh, ms.
fn tui_cost(names: &ExitNames, samples: &[Sample], read_ms: f64) -> Result<f64> {
    use kvmprof::tui::App;
    use ratatui::{backend::TestBackend, crossterm::event::KeyCode, Terminal};
    let key = |app: &mut App, c: KeyCode| {
        app.on_key(ratatui::crossterm::event::KeyEvent::from(c));
    };
    // Each sample in a new app, after the first the keys `keys` pressed: the app, and its
    // median refresh (ms).
    let run = |keys: &[KeyCode]| {
        let mut app = App::new(names.clone(), "bench".into());
        let mut times = Vec::new();
        for (i, s) in samples.iter().enumerate() {
            let t = thread_cpu();
            app.on_sample(s.clone());
            if i > 0 {
                times.push(cpu_ms(thread_cpu() - t));
            } else {
                keys.iter().for_each(|&k| key(&mut app, k));
            }
        }
        (app, median(times))
    };
    // The first VM's screen (the list's first row).
    let (mut app, refresh) = run(&[KeyCode::Enter]);
    println!("| TUI refresh: App::on_sample, one VM's screen open (the interval view; since-start and advice views are computed only while shown) | {refresh:.1} ms | thread CPU, median of {} |", samples.len() - 1);
    // The same with the since-start view shown (`t`): a whole view each refresh.
    let (_, since) = run(&[KeyCode::Enter, KeyCode::Char('t')]);
    println!("| TUI refresh: App::on_sample, one VM's screen open, since-start view shown (`t`) | {since:.1} ms | thread CPU, median of {}; the interval view and a whole since-start view |", samples.len() - 1);
    println!(
        "| TUI: sampler + refresh CPU at 1 s refresh | {:.2} % of a core | what `kvmprof` (top) costs on this host; goal ≤ 1.5 % |",
        (read_ms + refresh) / 10.0
    );
    let mut term = Terminal::new(TestBackend::new(200, 60))?;
    key(&mut app, KeyCode::Esc);
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
    Ok(refresh)
}
