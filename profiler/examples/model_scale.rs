//! Refresh cost after the sampler at host scale, without root or eBPF: 64 VMs × 16 vCPUs ×
//! 40 exit reasons = 40 960 rows of synthetic samples, then the thread CPU time per 1 s
//! refresh of `model::compute` (a whole view, as reports compute), of `Model::refresh` (a view
//! updated in place) and of the TUI's `App::on_sample`, (a) with every row changed and (b)
//! with 1 000 rows changed (the sample says which, as the live sampler does).
//!
//! `cargo run --release -p kvmprof --example model_scale [-- RUNS] [--json]`
//!
//! Prints one line per measure: median, min–max over RUNS refreshes (default 9), in ms of one
//! thread's CPU, and the same median as % of a core at a 1 s refresh; with `--json`, then one
//! JSON object of them all (`{compute,refresh,tui,drop_sample}_40960_rows[_1000_changed]_ms`:
//! median, min, max, runs).

use std::time::Duration;

use kvmprof::{
    decode::ExitNames,
    model,
    sample::{Changed, Key, ProgStat, Sample, Stat, VmCpu, VmInfo},
    tui::App,
};
use profiler_common::ISA_VMX;

const VMS: u32 = 64;
const VCPUS: u32 = 16;
const REASONS: u32 = 40;
const FEW: usize = 1000;

struct Rng(u64);

impl Rng {
    fn u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.u64() % n
    }
}

/// CPU time of the calling thread (not wall time: the box is shared).
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into the valid, exclusively borrowed `ts`.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "CLOCK_THREAD_CPUTIME_ID");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn pid(vm: u32) -> u32 {
    3000 + vm
}

/// A key's typical handling time: 0.5–64 µs, so its histogram spans ~3 octaves around it.
fn centre(k: &Key) -> u64 {
    500 << ((k.reason * 7 + k.vcpu * 3 + k.tgid) % 8)
}

/// `n` exits of `k` at latencies within ~1.5 octaves either side of its centre.
fn exits(st: &mut Stat, k: &Key, n: u64, rng: &mut Rng) {
    let c = centre(k);
    for _ in 0..n {
        st.record(c / 3 + rng.below(c * 2), 1);
    }
}

fn first_sample(rng: &mut Rng) -> Sample {
    let mut s = Sample {
        mono_ns: 10_000_000_000,
        wall_ms: 1_760_000_000_000,
        counters: vec![0; 16],
        progs: ["kvm_exit", "kvm_entry", "kvm_userspace_exit"]
            .iter()
            .map(|n| ProgStat {
                name: n.to_string(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    for vm in 0..VMS {
        let p = pid(vm);
        s.vms.insert(
            p,
            VmInfo {
                pid: p,
                name: format!("guest-{vm:02}"),
                uuid: Some(format!("6f1c0a52-5a1e-4f43-9d0c-3e3b8a3f{vm:04}")),
                comm: "qemu-system-x86".into(),
                cmdline: vec!["qemu-system-x86_64".into(), "-name".into()],
                start_time: 1000 + u64::from(vm),
                vcpu_threads: (0..VCPUS).map(|v| (p * 100 + v, v)).collect(),
                is_qemu: true,
                exited: false,
            },
        );
        s.vm_cpu.insert(
            p,
            VmCpu {
                vcpu_threads: VCPUS,
                waited_threads: VCPUS,
                ..Default::default()
            },
        );
        for vcpu in 0..VCPUS {
            for reason in 0..REASONS {
                let k = Key {
                    tgid: p,
                    vcpu,
                    isa: ISA_VMX,
                    reason,
                };
                let mut st = Stat::default();
                exits(&mut st, &k, 40, rng);
                s.stats.insert(k, st);
            }
            // A halted vCPU has its HLT exit in flight.
            if vcpu % 2 == 0 {
                let k = Key {
                    tgid: p,
                    vcpu,
                    isa: ISA_VMX,
                    reason: 12,
                };
                s.in_flight.insert(k, 1);
            }
        }
    }
    s
}

/// The next sample, 1 s later, with `changed` rows (None: all) given a few more exits.
fn next(s: &Sample, changed: Option<&[Key]>, rng: &mut Rng) -> Sample {
    let mut n = s.clone();
    n.mono_ns += 1_000_000_000;
    n.wall_ms += 1000;
    let keys: Vec<Key> = changed.map_or_else(|| s.stats.keys().copied().collect(), <[Key]>::to_vec);
    for k in &keys {
        let st = n.stats.get_mut(k).expect("known key");
        exits(st, k, 1 + rng.below(4), rng);
    }
    // What the live sampler tells: the keys changed since the sample before.
    n.changed = Some(Changed {
        since_ns: s.mono_ns,
        keys,
    });
    for c in n.vm_cpu.values_mut() {
        c.total_ns += 300_000_000;
        c.vcpu_ns += 250_000_000;
    }
    n
}

/// `FEW` distinct keys at random.
fn some_keys(s: &Sample, rng: &mut Rng) -> Vec<Key> {
    let all: Vec<Key> = s.stats.keys().copied().collect();
    let mut pick = std::collections::BTreeSet::new();
    while pick.len() < FEW {
        pick.insert(all[rng.below(all.len() as u64) as usize]);
    }
    pick.into_iter().collect()
}

fn series(runs: usize, few: bool) -> Vec<Sample> {
    let mut rng = Rng(42);
    let mut out = vec![first_sample(&mut rng)];
    for _ in 0..runs + 1 {
        let last = out.last().expect("one sample");
        let keys = few.then(|| some_keys(last, &mut rng));
        let n = next(last, keys.as_deref(), &mut rng);
        out.push(n);
    }
    out
}

/// Prints "median ms (min–max), % of a core at 1 s" and keeps the figures under `key`.
fn report(
    out: &mut serde_json::Map<String, serde_json::Value>,
    key: &str,
    what: &str,
    mut ms: Vec<f64>,
) {
    ms.sort_by(f64::total_cmp);
    let (med, min, max) = (ms[ms.len() / 2], ms[0], ms[ms.len() - 1]);
    println!(
        "{what}: median {med:.2} ms (min {min:.2}, max {max:.2}, {} runs) = {:.2} % of a core at 1 s",
        ms.len(),
        med / 10.0
    );
    let v = serde_json::json!({ "median": med, "min": min, "max": max, "runs": ms.len() });
    out.insert(format!("{key}_ms"), v);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let json = args.iter().any(|a| a == "--json");
    let runs: usize = args
        .iter()
        .find(|a| *a != "--json")
        .map(|a| a.parse().expect("usage: model_scale [RUNS] [--json]"))
        .unwrap_or(9)
        .max(5);
    let names = ExitNames::builtin();
    let mut out = serde_json::Map::new();
    for (label, key, few) in [
        ("all 40960 rows changed", "40960_rows", false),
        (
            "1000 of 40960 rows changed",
            "40960_rows_1000_changed",
            true,
        ),
    ] {
        let samples = series(runs, few);
        assert_eq!(samples[0].stats.len(), (VMS * VCPUS * REASONS) as usize);
        // model::compute of each consecutive pair after the first (its pair is the warm-up).
        let mut ms = Vec::new();
        for w in samples.windows(2).skip(1) {
            let t = thread_cpu();
            let v = model::compute(&w[0], &w[1], &names);
            ms.push((thread_cpu() - t).as_secs_f64() * 1e3);
            std::hint::black_box(v);
        }
        report(
            &mut out,
            &format!("compute_{key}"),
            &format!("model::compute, {label}"),
            ms,
        );
        // Model::refresh: the same view kept and updated in place, as the TUI does.
        let mut m = model::Model::new();
        let mut view = model::View::default();
        let mut ms = Vec::new();
        for (i, w) in samples.windows(2).enumerate() {
            let t = thread_cpu();
            m.refresh(&mut view, &w[0], &w[1], &names);
            if i > 0 {
                ms.push((thread_cpu() - t).as_secs_f64() * 1e3);
            }
        }
        report(
            &mut out,
            &format!("refresh_{key}"),
            &format!("Model::refresh, {label}"),
            ms,
        );
        // The TUI's refresh: App::on_sample with the sample moved in (cloned outside the timer).
        let mut app = App::new(names.clone(), "model_scale".into());
        let mut ms = Vec::new();
        for (i, s) in samples.iter().enumerate() {
            let s = s.clone();
            let t = thread_cpu();
            app.on_sample(s);
            if i >= 2 {
                ms.push((thread_cpu() - t).as_secs_f64() * 1e3);
            }
        }
        report(
            &mut out,
            &format!("tui_{key}"),
            &format!("App::on_sample, {label}"),
            ms,
        );
        // Part of on_sample: freeing the sample two refreshes old (a heap buffer per row).
        let mut ms = Vec::new();
        for s in &samples[1..] {
            let s = s.clone();
            let t = thread_cpu();
            drop(s);
            ms.push((thread_cpu() - t).as_secs_f64() * 1e3);
        }
        report(
            &mut out,
            &format!("drop_sample_{key}"),
            &format!("dropping one Sample, {label}"),
            ms,
        );
    }
    if json {
        println!("{}", serde_json::Value::Object(out));
    }
}
