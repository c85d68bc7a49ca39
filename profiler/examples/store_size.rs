//! Size of one VM-hour of recording: a 16-vCPU VM, 20 active exit reasons, 1 s interval.
//! Prints kvmprof's bytes next to perf.data's cost for the same exit stream.
//!
//! `cargo run -p kvmprof --example store_size [--release] [-- LEVEL...]`

use std::collections::BTreeMap;

use kvmprof::{
    decode::ExitNames,
    sample::{Key, ProgStat, Sample, Stat, VmCpu, VmInfo},
    store::{Header, Recorder, RecorderOptions, Recording},
};
use profiler_common::hist;

const VCPUS: u32 = 16;
const REASONS: u32 = 20;
const SECONDS: usize = 3600;
const PID: u32 = 4242;
/// perf kvm stat record's cost per exit on disk (kvm_exit + kvm_entry through the ring buffer).
const PERF_BYTES_PER_EXIT: u64 = 90;

struct Rng(u64);

impl Rng {
    fn u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.unit().max(1e-12), self.unit());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
    /// Poisson-like count with mean `m` (normal approximation, never negative).
    fn count(&mut self, m: f64) -> u64 {
        (m + m.sqrt() * self.normal()).round().max(0.0) as u64
    }
}

/// One key's behaviour: an exit rate and a log-normal handling time over histogram buckets.
struct Profile {
    rate: f64,
    buckets: Vec<(u16, f64)>,
}

fn profile(rng: &mut Rng) -> Profile {
    let rate = 5.0 * 1000f64.powf(rng.unit()); // 5..5000 exits/s
    let median = 300.0 * 150f64.powf(rng.unit()); // 0.3..45 us
    let sigma = 0.15 + 0.4 * rng.unit();
    let mut buckets: Vec<(u16, f64)> = (0..hist::BUCKETS)
        .map(|b| {
            let mid = (hist::lower(b) + hist::upper(b)) as f64 / 2.0;
            let width = (hist::upper(b) - hist::lower(b)).max(1) as f64;
            let z = (mid.ln() - median.ln()) / sigma;
            (b as u16, (-z * z / 2.0).exp() * width / mid)
        })
        .filter(|(_, p)| *p > 1e-6)
        .collect();
    let total: f64 = buckets.iter().map(|(_, p)| p).sum();
    buckets.iter_mut().for_each(|(_, p)| *p /= total);
    buckets.retain(|(_, p)| *p > 1e-4);
    Profile { rate, buckets }
}

fn vm_info() -> VmInfo {
    let mut cmdline: Vec<String> = "qemu-system-x86_64 -name guest=web-01 -machine q35,accel=kvm \
        -cpu host -smp 16 -m 65536 -drive file=/var/lib/libvirt/images/web-01.qcow2,if=virtio \
        -netdev tap,id=n0,vhost=on -device virtio-net-pci,netdev=n0"
        .split(' ')
        .map(String::from)
        .collect();
    cmdline.push("-uuid".into());
    cmdline.push("6f1c0a52-5a1e-4f43-9d0c-3e3b8a3f0001".into());
    VmInfo {
        pid: PID,
        name: "web-01".into(),
        uuid: Some("6f1c0a52-5a1e-4f43-9d0c-3e3b8a3f0001".into()),
        comm: "qemu-system-x86".into(),
        cmdline,
        start_time: 987_654,
        vcpu_threads: (0..VCPUS).map(|v| (PID + 10 + v, v)).collect(),
        is_qemu: true,
        ..Default::default()
    }
}

/// One VM-hour of cumulative samples, and (exits, changed buckets per key-interval).
fn generate() -> (Vec<Sample>, u64, f64) {
    let mut rng = Rng(42);
    let reasons: Vec<u32> = (0..REASONS)
        .map(|i| [1, 10, 12, 28, 30, 31, 32, 48, 49, 52][i as usize % 10] + 100 * (i / 10))
        .collect();
    let mut profiles = BTreeMap::new();
    let mut s = Sample {
        mono_ns: 5_000_000_000_000,
        wall_ms: 1_760_000_000_000,
        counters: vec![0; 8],
        progs: ["kvm_exit", "kvm_entry", "kvm_msr", "kvm_pio"]
            .iter()
            .map(|n| ProgStat {
                name: n.to_string(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    s.vms.insert(PID, vm_info());
    for vcpu in 0..VCPUS {
        for &reason in &reasons {
            let k = Key {
                tgid: PID,
                vcpu,
                isa: 1,
                reason,
            };
            profiles.insert(k, profile(&mut rng));
            s.stats.insert(k, Stat::default());
        }
    }
    let mut load = vec![1.0f64; VCPUS as usize];
    // Host CPU from its own generator, so the exit data is the same with or without it.
    let mut cpu_rng = Rng(7);
    let mut cpu = VmCpu {
        vcpu_threads: VCPUS,
        waited_threads: VCPUS,
        ..Default::default()
    };
    // Sampled guest RIPs (one exit in 64) from their own generator: each reason's exits come
    // from 1..=16 guest addresses, Zipf-weighted. KVMPROF_STORE_NO_RIPS=1 leaves them out.
    let with_rips = std::env::var_os("KVMPROF_STORE_NO_RIPS").is_none();
    let mut rip_rng = Rng(11);
    let rip_sets: BTreeMap<u32, Vec<(u64, f64)>> = reasons
        .iter()
        .map(|&r| {
            let n = 1 + rip_rng.u64() % 16;
            let w: Vec<f64> = (1..=n).map(|i| 1.0 / i as f64).collect();
            let total: f64 = w.iter().sum();
            let base = 0xffff_f803_0000_0000 + rip_rng.u64() % 0x1000_0000;
            let rips = (0..n)
                .map(|i| (base + i * 0x3a7, w[i as usize] / total))
                .collect();
            (r, rips)
        })
        .collect();
    let (mut changed, mut updates) = (0u64, 0u64);
    let mut out = Vec::with_capacity(SECONDS);
    for _ in 0..SECONDS {
        s.mono_ns += 1_000_000_000 + rng.u64() % 200_000;
        s.wall_ms += 1000;
        for l in &mut load {
            *l = (*l * (1.0 + 0.1 * rng.normal())).clamp(0.05, 2.0);
        }
        let mut exits = 0;
        for (k, p) in &profiles {
            let st = s.stats.get_mut(k).unwrap();
            let n = rng.count(p.rate * load[k.vcpu as usize]);
            if n == 0 {
                continue;
            }
            updates += 1;
            if with_rips {
                let flags = profiler_common::ev::rip_flags(1, k.reason).unwrap_or(0);
                for &(rip, w) in &rip_sets[&k.reason] {
                    let c = rip_rng.count(n as f64 * w / 64.0);
                    if c > 0 {
                        let e = kvmprof::sample::EvKey {
                            tgid: PID,
                            kind: profiler_common::ev::GUEST_RIP,
                            flags,
                            a: rip,
                        };
                        s.evidence.entry(e).or_default().count += c;
                    }
                }
            }
            for &(b, pb) in &p.buckets {
                let c = rng.count(n as f64 * pb);
                if c == 0 {
                    continue;
                }
                changed += 1;
                let (lo, hi) = (hist::lower(b as usize), hist::upper(b as usize));
                // Handling times spread within the bucket: sum = c × mean ± noise.
                let spread = (hi - lo) as f64 / 12f64.sqrt() * (c as f64).sqrt();
                let sum = (c as f64 * (lo + hi) as f64 / 2.0 + spread * rng.normal()).max(0.0);
                st.count += c;
                st.sum_ns += sum as u64;
                exits += c;
                if st.min_ns == 0 || lo < st.min_ns {
                    st.min_ns = lo + rng.u64() % (hi - lo).max(1);
                }
                if hi > st.max_ns {
                    st.max_ns = hi - 1 - rng.u64() % (hi - lo).max(1);
                }
                match st.hist.buckets.binary_search_by_key(&b, |(i, _)| *i) {
                    Ok(i) => st.hist.buckets[i].1 += c,
                    Err(i) => st.hist.buckets.insert(i, (b, c)),
                }
            }
        }
        // Halted vCPUs have an exit in flight most of the time.
        for vcpu in 0..VCPUS {
            let k = Key {
                tgid: PID,
                vcpu,
                isa: 1,
                reason: 12,
            };
            if rng.unit() < 0.6 {
                s.in_flight.insert(k, 1);
            } else {
                s.in_flight.remove(&k);
            }
        }
        s.counters[0] += rng.u64() % 3; // orphans
        for (i, p) in s.progs.iter_mut().enumerate() {
            let runs = if i < 2 { exits } else { exits / 20 };
            p.run_cnt += runs;
            p.run_time_ns += runs * 180 + rng.u64() % 10_000;
        }
        // /proc's 10 ms ticks: each vCPU thread ~30 % of a core with the load, the VMM's other
        // threads a few ticks.
        let tick = 10_000_000;
        let vcpu: u64 =
            load.iter().map(|l| (30.0 * l).round() as u64).sum::<u64>() + cpu_rng.u64() % 4;
        let other = 2 + cpu_rng.u64() % 4;
        cpu.vcpu_ns += vcpu * tick;
        cpu.guest_ns += vcpu * 2 / 3 * tick;
        cpu.total_ns += (vcpu + other) * tick;
        // schedstat's run-queue wait: exact ns, a few ms a second per busy host.
        cpu.vcpu_wait_ns += cpu_rng.u64() % 5_000_000;
        // Format 5: each vCPU thread's own ticks and wait.
        for (n, l) in load.iter().enumerate() {
            let t = cpu.vcpus.entry(n as u32).or_default();
            t.cpu_ns += (30.0 * l).round() as u64 * tick;
            t.wait_ns = Some(t.wait_ns.unwrap_or(0) + cpu_rng.u64() % 1_000_000);
        }
        s.vm_cpu.insert(PID, cpu.clone());
        out.push(s.clone());
    }
    let exits = s.stats.values().map(|st| st.count).sum();
    (out, exits, changed as f64 / updates.max(1) as f64)
}

fn main() -> anyhow::Result<()> {
    let levels: Vec<i32> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let default = RecorderOptions::default();
    let levels = if levels.is_empty() {
        vec![default.level]
    } else {
        levels
    };
    let (samples, exits, buckets) = generate();
    let keys = samples.last().map_or(0, |s| s.stats.len());
    println!(
        "synthetic VM-hour: {VCPUS} vCPUs x {REASONS} reasons = {keys} keys, {SECONDS} samples at 1 s, \
         {exits} exits, {buckets:.1} changed buckets per active key-interval"
    );
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("hour.kvmprof");
    let header = Header {
        host: "bench".into(),
        kernel: "6.18.0".into(),
        cpus: 64,
        names: ExitNames::builtin(),
        start_wall_ms: samples[0].wall_ms,
        interval_ms: 1000,
        written_by: env!("CARGO_PKG_VERSION").into(),
    };
    let perf = exits * PERF_BYTES_PER_EXIT;
    for level in levels {
        let opts = RecorderOptions {
            level,
            sync_every_frames: u32::MAX, // measure size and CPU, not the disk
            ..default.clone()
        };
        let t = std::time::Instant::now();
        let mut rec = Recorder::create_with(&path, &header, opts)?;
        for s in &samples {
            rec.append(s)?;
        }
        rec.finish()?;
        let write = t.elapsed();
        let bytes = std::fs::metadata(&path)?.len();
        let t = std::time::Instant::now();
        let r = Recording::open(&path)?;
        let open = t.elapsed();
        anyhow::ensure!(r.len() == samples.len() && r.warnings().is_empty());
        anyhow::ensure!(r.sample(1234)? == samples[1234], "round trip");
        println!(
            "zstd level {level}: kvmprof {bytes} bytes per VM-hour ({:.2} MB, {} B/sample; \
             write {:.2} s, open+check {:.2} s) | perf.data ~{perf} bytes ({:.1} GB) | perf/kvmprof = {:.0}x",
            bytes as f64 / 1e6,
            bytes / SECONDS as u64,
            write.as_secs_f64(),
            open.as_secs_f64(),
            perf as f64 / 1e9,
            perf as f64 / bytes as f64,
        );
    }
    Ok(())
}
