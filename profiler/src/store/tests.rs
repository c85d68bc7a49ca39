use std::{collections::BTreeMap, path::Path};

use super::{stats::Models, *};
use crate::sample::{Hist, Key, ProgStat, Sample, Stat, VmInfo};
use crate::source::{replay::ReplaySource, Source};

/// Deterministic synthetic samples: `keys` keys over a few VMs, cumulative and growing.
struct Gen {
    s: Sample,
    rng: u64,
}

impl Gen {
    fn new(vms: u32, vcpus: u32, reasons: u32) -> Gen {
        let mut s = Sample {
            counters: vec![0; 4],
            progs: vec![ProgStat {
                name: "kvm_exit".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        for v in 0..vms {
            let pid = 1000 + v;
            s.vms.insert(pid, vm(pid, "guest"));
            for vcpu in 0..vcpus {
                for r in 0..reasons {
                    let k = Key {
                        tgid: pid,
                        vcpu,
                        isa: 1,
                        reason: r * 3,
                    };
                    s.stats.insert(k, Stat::default());
                }
            }
        }
        Gen {
            s,
            rng: 0x9e37_79b9_7f4a_7c15,
        }
    }

    fn rand(&mut self, n: u64) -> u64 {
        // splitmix64: good enough spread for test data, and reproducible across processes.
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % n.max(1)
    }

    fn next(&mut self) -> Sample {
        self.s.mono_ns += 1_000_000_000 + self.rand(1000);
        self.s.wall_ms += 1000;
        let keys: Vec<Key> = self.s.stats.keys().copied().collect();
        for k in keys {
            if self.rand(10) == 0 {
                continue; // some keys idle this interval
            }
            let mut add = Hist::default();
            for _ in 0..1 + self.rand(12) {
                add.record(200 + self.rand(50_000), 1 + self.rand(300));
            }
            let ns = self.rand(1 << 40);
            let st = self.s.stats.get_mut(&k).unwrap();
            st.count += add.total();
            st.sum_ns += add.total() * 900 + ns % 100_000;
            st.min_ns = if st.min_ns == 0 { 150 } else { st.min_ns };
            st.max_ns = st.max_ns.max(ns % 1_000_000);
            st.hist.add(&add);
            if k.reason % 2 == 1 {
                // The scheduler split (format 5), from the draw above: no extra draws.
                st.wait_ns += ns % 7919;
                st.blocked_ns += ns % 104_729;
            }
        }
        let c = self.rand(4) as usize;
        self.s.counters[c] += 1;
        self.s.progs[0].run_cnt += 5000;
        self.s.progs[0].run_time_ns += 100_000 + self.rand(5000);
        let k = Key {
            tgid: 1000,
            vcpu: self.rand(4) as u32,
            isa: 1,
            reason: 12,
        };
        if self.rand(2) == 0 {
            let v = 1 + self.rand(3);
            self.s.in_flight.insert(k, v);
        } else {
            self.s.in_flight.remove(&k);
        }
        // Sub-reason evidence: MSR writes growing, a port appearing and going.
        let ek = crate::sample::EvKey {
            tgid: 1000,
            kind: profiler_common::ev::MSR_WRITE,
            flags: 0,
            a: 0x4000_0070,
        };
        let (dc, last) = (self.rand(5000), self.rand(1 << 20));
        let e = self.s.evidence.entry(ek).or_default();
        e.count += dc;
        e.last = last;
        let port = crate::sample::EvKey {
            tgid: 1000,
            kind: profiler_common::ev::PIO_IN,
            flags: 1,
            a: 0x70 + self.rand(2),
        };
        let grow = 1 + self.rand(10);
        if self.rand(3) == 0 {
            self.s.evidence.remove(&port);
        } else {
            self.s.evidence.entry(port).or_default().count += grow;
        }
        self.s.clone()
    }
}

fn vm(pid: u32, name: &str) -> VmInfo {
    VmInfo {
        pid,
        name: format!("{name}-{pid}"),
        uuid: Some("6f1c0a52-5a1e-4f43-9d0c-3e3b8a3f0001".into()),
        comm: "qemu-system-x86".into(),
        cmdline: vec!["qemu-system-x86_64".into(), "-name".into(), name.into()],
        start_time: 12345,
        vcpu_threads: (0..4).map(|v| (pid + 1 + v, v)).collect(),
        is_qemu: true,
        ..Default::default()
    }
}

fn header() -> Header {
    Header {
        host: "testhost".into(),
        kernel: "6.18.0-test".into(),
        cpus: 8,
        names: crate::decode::ExitNames::builtin(),
        start_wall_ms: 1_700_000_000_000,
        interval_ms: 1000,
        written_by: "test".into(),
    }
}

fn opts(key_every: u32) -> RecorderOptions {
    RecorderOptions {
        key_every,
        ..Default::default()
    }
}

pub(super) fn record(path: &Path, samples: &[Sample], key_every: u32, finish: bool) {
    let mut r = Recorder::create_with(path, &header(), opts(key_every)).unwrap();
    for s in samples {
        r.append(s).unwrap();
    }
    if finish {
        r.finish().unwrap();
    }
}

pub(super) fn gen_samples(n: usize, vms: u32, vcpus: u32, reasons: u32) -> Vec<Sample> {
    let mut g = Gen::new(vms, vcpus, reasons);
    (0..n).map(|_| g.next()).collect()
}

pub(super) fn read_all(rec: &Recording) -> Vec<Sample> {
    rec.samples().collect::<Result<_, _>>().unwrap()
}

#[test]
fn round_trip_many_keys() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.kvmprof");
    let samples = gen_samples(130, 3, 16, 20); // 960 keys
    record(&path, &samples, 60, true);
    let rec = Recording::open(&path).unwrap();
    assert_eq!(rec.header(), &header());
    assert!(rec.warnings().is_empty(), "{:?}", rec.warnings());
    assert!(rec.finished());
    assert_eq!(read_all(&rec), samples);
    for i in [0, 1, 59, 60, 61, 129, 7, 100] {
        assert_eq!(rec.sample(i).unwrap(), samples[i], "sample {i}");
    }
    assert!(matches!(
        rec.sample(130),
        Err(StoreError::OutOfRange { .. })
    ));
}

/// A payload on its own (fresh models, as a key frame would have).
fn encode(old: &Sample, new: &Sample) -> codec::Payload {
    let mut m = Models::default();
    codec::encode(old, new, &mut m, true).unwrap().0
}

/// Payload plus coded bytes of a frame, before zstd.
fn encoded_len(old: &Sample, new: &Sample) -> usize {
    let mut m = Models::default();
    let (p, coded) = codec::encode(old, new, &mut m, true).unwrap();
    postcard::to_stdvec(&p).unwrap().len() + coded.len()
}

#[test]
fn key_frames_and_deltas() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.kvmprof");
    let samples = gen_samples(25, 1, 8, 10);
    record(&path, &samples, 10, false);
    let rec = Recording::open(&path).unwrap();
    assert!(!rec.finished());
    assert_eq!(rec.keys, vec![0, 10, 20]);
    let kinds: Vec<bool> = rec.frames.iter().map(|f| f.key).collect();
    assert_eq!(kinds, (0..25).map(|i| i % 10 == 0).collect::<Vec<_>>());
    // A delta carries only what changed: an idle interval costs a few bytes.
    let mut idle = samples[24].clone();
    idle.mono_ns += 1_000_000_000;
    let p = encoded_len(&samples[24], &idle);
    let full = encoded_len(&Sample::default(), &idle);
    assert!(p < 48 && full > 2000, "{p} vs {full} bytes");
    // Seeking across and within key intervals, in both directions.
    let mut cur = Cursor::default();
    for i in [24, 3, 4, 19, 10, 0, 25] {
        rec.seek(&mut cur, i).unwrap();
        assert_eq!(cur.position(), i);
        assert_eq!(rec.advance(&mut cur).unwrap(), samples.get(i).cloned());
    }
}

#[test]
fn keys_appear_and_disappear() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.kvmprof");
    let mut g = Gen::new(2, 4, 5);
    let mut samples: Vec<Sample> = (0..5).map(|_| g.next()).collect();
    // VM 1001 exits: its keys and metadata vanish.
    g.s.stats =
        g.s.stats
            .clone()
            .into_iter()
            .filter(|(k, _)| k.tgid != 1001)
            .collect();
    g.s.vms.remove(&1001);
    samples.extend((0..5).map(|_| g.next()));
    // A new VM starts with a lower pid than the survivor (keys insert before existing ones).
    g.s.vms.insert(500, vm(500, "new"));
    for r in 0..5 {
        g.s.stats.insert(
            Key {
                tgid: 500,
                vcpu: 0,
                isa: 2,
                reason: r,
            },
            Stat::default(),
        );
    }
    samples.extend((0..5).map(|_| g.next()));
    g.s.stats.clear();
    samples.push(g.next());
    record(&path, &samples, 100, true);
    assert_eq!(read_all(&Recording::open(&path).unwrap()), samples);
}

#[test]
fn vm_metadata_only_when_it_changes() {
    let mut g = Gen::new(2, 2, 2);
    let a = g.next();
    let b = g.next();
    assert!(encode(&a, &b).core.vms_set.is_empty());
    assert_eq!(encode(&Sample::default(), &b).core.vms_set.len(), 2);
    let mut c = b.clone();
    c.vms.get_mut(&1000).unwrap().name = "renamed".into();
    c.vms.get_mut(&1001).unwrap().vcpu_threads.insert(99, 7);
    c.counters.push(42); // counter layout grew
    c.progs.push(ProgStat {
        name: "kvm_entry".into(),
        run_cnt: 1,
        run_time_ns: 2,
    });
    let p = encode(&b, &c);
    assert_eq!(p.core.vms_set.len(), 2);
    let mut d = g.next();
    d.vms = c.vms.clone();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.kvmprof");
    let samples = vec![a, b, c, d];
    record(&path, &samples, 60, true);
    assert_eq!(read_all(&Recording::open(&path).unwrap()), samples);
}

#[test]
fn odd_values_round_trip_exactly() {
    let k = |r| Key {
        tgid: u32::MAX,
        vcpu: 0,
        isa: 0x100,
        reason: r,
    };
    let mut a = Sample {
        mono_ns: u64::MAX,
        wall_ms: 5,
        ..Default::default()
    };
    a.stats.insert(
        k(1),
        Stat {
            count: u64::MAX,
            sum_ns: 3,
            min_ns: u64::MAX,
            max_ns: 0,
            wait_ns: u64::MAX,
            blocked_ns: 7,
            // Unsorted, duplicate and zero buckets: not what the kernel gives, still exact.
            hist: Hist {
                buckets: vec![(9, 1), (3, 0), (3, 5), (u16::MAX, u64::MAX)],
            },
        },
    );
    a.in_flight.insert(k(2), u64::MAX);
    let mut b = a.clone();
    b.mono_ns = 0; // clocks and counters going backwards
    b.wall_ms = 1;
    let st = b.stats.get_mut(&k(1)).unwrap();
    st.count = 0;
    st.hist = Hist {
        buckets: vec![(0, 1), (u16::MAX, 2)],
    };
    b.stats.insert(k(0), Stat::default());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.kvmprof");
    let samples = vec![a.clone(), b, a, Sample::default()];
    record(&path, &samples, 60, true);
    assert_eq!(read_all(&Recording::open(&path).unwrap()), samples);
}

#[test]
fn empty_recording() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.kvmprof");
    for finish in [true, false] {
        record(&path, &[], 60, finish);
        let rec = Recording::open(&path).unwrap();
        assert_eq!((rec.len(), rec.finished()), (0, finish));
        assert_eq!(rec.warnings().len(), usize::from(!finish));
        assert_eq!(rec.samples().count(), 0);
    }
}

/// A small recording and the end offset of each frame.
pub(super) fn small_file(dir: &Path) -> (Vec<u8>, Vec<Sample>, Vec<usize>) {
    let path = dir.join("small.kvmprof");
    let samples = gen_samples(9, 1, 2, 3);
    record(&path, &samples, 4, true);
    let data = std::fs::read(&path).unwrap();
    let rec = Recording::from_bytes("x", data.clone()).unwrap();
    let ends = rec.frames.iter().map(|f| f.end() as usize).collect();
    (data, samples, ends)
}

/// Where each frame of `small_file` starts: after the header, then where the previous ended.
pub(super) fn frame_starts(data: &[u8], ends: &[usize]) -> Vec<usize> {
    let header_end = MAGIC.len() + 12 + u32_at(data, 12).unwrap() as usize;
    std::iter::once(header_end)
        .chain(ends.iter().copied())
        .collect()
}

#[test]
fn truncation_at_every_offset() {
    let dir = tempfile::tempdir().unwrap();
    let (data, samples, ends) = small_file(dir.path());
    let header_end = frame_starts(&data, &ends)[0];
    for cut in 0..data.len() {
        match Recording::from_bytes("cut.kvmprof", data[..cut].to_vec()) {
            Err(e) => assert!(cut < header_end, "cut {cut}: {e}"),
            Ok(rec) => {
                let complete = ends.iter().filter(|&&e| e <= cut).count();
                assert_eq!(rec.len(), complete, "cut {cut}");
                assert_eq!(read_all(&rec), samples[..complete], "cut {cut}");
                // Cut between frames (as kill -9 leaves it) or within one: one warning each,
                // saying the file is unfinished.
                let at_boundary = cut == header_end || ends.contains(&cut);
                let want = if at_boundary {
                    "unfinished (the recorder did not stop cleanly"
                } else {
                    "unfinished: truncated at byte"
                };
                let w = rec.warnings();
                assert!(w.len() == 1 && w[0].contains(want), "cut {cut}: {w:?}");
            }
        }
    }
    assert!(matches!(
        Recording::from_bytes("e", vec![]),
        Err(StoreError::NotARecording { .. })
    ));
}

#[test]
fn bit_flips_in_the_middle() {
    let dir = tempfile::tempdir().unwrap();
    let (data, samples, ends) = small_file(dir.path());
    let starts = frame_starts(&data, &ends);
    for at in starts[0]..data.len() {
        let mut bad = data.clone();
        bad[at] ^= 0x10;
        let rec = Recording::from_bytes("flip.kvmprof", bad).unwrap();
        let hit = starts.iter().rposition(|&s| s <= at).unwrap();
        if hit >= samples.len() {
            continue; // the end marker: nothing lost but the marker
        }
        let got = read_all(&rec);
        // Everything before the damaged frame replays exactly...
        assert_eq!(got[..hit], samples[..hit], "flip at {at}");
        // ...the rest of its key interval is skipped, and the next key interval replays.
        let resume = (hit / 4 + 1) * 4;
        assert_eq!(
            got[hit..],
            samples[resume.min(samples.len())..],
            "flip at {at}"
        );
        let w = &rec.warnings()[0];
        // (A flipped length in the last interval is indistinguishable from a truncation.)
        assert!(w.contains(&format!(" at byte {} ", starts[hit])), "{w}");
    }
}

#[test]
fn newer_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.kvmprof");
    record(&path, &gen_samples(2, 1, 1, 1), 60, true);
    let mut data = std::fs::read(&path).unwrap();
    data[8..12].copy_from_slice(&7u32.to_le_bytes());
    std::fs::write(&path, data).unwrap();
    let err = Recording::open(&path).err().unwrap().to_string();
    assert_eq!(
        err,
        format!(
            "{}: recorded by a newer kvmprof (format v7, this one reads up to v5): upgrade kvmprof",
            path.display()
        )
    );
}

#[test]
fn not_a_recording() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    std::fs::write(&path, "hello, this is text\n").unwrap();
    let err = Recording::open(&path).err().unwrap();
    assert!(matches!(err, StoreError::NotARecording { .. }));
    assert!(err.to_string().contains("not a kvmprof recording"), "{err}");
    let missing = Recording::open(dir.path().join("missing")).err().unwrap();
    assert!(
        missing.to_string().contains("cannot open: No such file"),
        "{missing}"
    );
}

#[test]
fn replay_source_seeks_and_replays_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.kvmprof");
    let samples = gen_samples(12, 1, 2, 2);
    record(&path, &samples, 5, true);
    let mut src = ReplaySource::open(&path).unwrap();
    assert_eq!((src.len(), src.position()), (12, 0));
    assert_eq!(src.names(), header().names);
    assert!(src.describe().contains("testhost"));
    assert_eq!(src.sample_at(7), Some(samples[7].clone()));
    assert_eq!(src.sample_at(12), None);
    src.seek(9).unwrap();
    assert_eq!(src.sample().unwrap(), Some(samples[9].clone()));
    assert_eq!(src.position(), 10);
    src.seek(0).unwrap();
    let mut got = vec![];
    while let Some(s) = src.sample().unwrap() {
        got.push(s);
    }
    assert_eq!(got, samples);
    src.seek(100).unwrap();
    assert_eq!(src.position(), 12);
}

const KILL9_ENV: &str = "KVMPROF_STORE_KILL9_PATH";

/// Child half of `kill9_loses_at_most_the_last_sample`: records until killed. A no-op in a
/// normal test run (the variable is unset).
#[test]
fn kill9_child() {
    let Some(path) = std::env::var_os(KILL9_ENV) else {
        return;
    };
    // Never fsync: a killed process must lose nothing the OS already has.
    let o = RecorderOptions {
        key_every: 7,
        sync_every_frames: u32::MAX,
        sync_every: std::time::Duration::from_secs(3600),
        ..Default::default()
    };
    let mut r = Recorder::create_with(&path, &header(), o).unwrap();
    let mut g = Gen::new(1, 4, 5);
    for i in 0..100_000 {
        r.append(&g.next()).unwrap();
        println!("appended {i}");
    }
}

#[test]
fn kill9_loses_at_most_the_last_sample() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("killed.kvmprof");
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "store::tests::kill9_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(KILL9_ENV, &path)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut appended = 0;
    for line in out.lines() {
        if let Some(n) = line.unwrap().strip_prefix("appended ") {
            appended = n.parse::<usize>().unwrap() + 1;
            if appended >= 40 {
                break;
            }
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(appended >= 40, "child stopped early");
    let rec = Recording::open(&path).unwrap();
    assert!(!rec.finished());
    // Cut between frames or within one: either way the file says it is unfinished.
    let w = rec.warnings();
    assert!(w.len() == 1 && w[0].contains("unfinished"), "{w:?}");
    assert!(rec.len() >= appended, "{} < {appended}", rec.len());
    let mut g = Gen::new(1, 4, 5);
    let want: BTreeMap<usize, Sample> = (0..rec.len()).map(|i| (i, g.next())).collect();
    for (i, s) in rec.samples().enumerate() {
        assert_eq!(s.unwrap(), want[&i], "sample {i}");
    }
}

/// `samples` as a format before 5 stores them: no scheduler split.
pub(super) fn without_sched(mut samples: Vec<Sample>) -> Vec<Sample> {
    for s in &mut samples {
        let keys: Vec<Key> = s.stats.keys().copied().collect();
        for k in keys {
            let st = s.stats.get_mut(&k).unwrap();
            (st.wait_ns, st.blocked_ns) = (0, 0);
        }
        for e in &mut s.slow {
            (e.wait_ns, e.blocked_ns) = (0, 0);
        }
    }
    samples
}

/// A format-1 recording (written by the first kvmprof, from `Gen::new(1, 2, 3)`, key frames
/// every 5) still replays sample for sample: users keep their old recordings.
#[test]
fn format_1_recordings_still_read() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/store/fixtures/v1.kvmprof");
    let r = Recording::open(&path).unwrap();
    assert!(r.warnings().is_empty(), "{:?}", r.warnings());
    let mut g = Gen::new(1, 2, 3);
    let want = without_sched((0..12).map(|_| g.next()).collect());
    assert_eq!(r.len(), want.len());
    for (i, w) in want.iter().enumerate() {
        assert_eq!(&r.sample(i).unwrap(), w, "sample {i}");
    }
}

/// A format-2 recording (written before the per-VM CPU times, from `Gen::new(1, 2, 3)`, key
/// frames every 5) still replays sample for sample, with no CPU times.
#[test]
fn format_2_recordings_still_read() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/store/fixtures/v2.kvmprof");
    let data = std::fs::read(&path).unwrap();
    assert_eq!(u32::from_le_bytes(data[8..12].try_into().unwrap()), 2);
    let r = Recording::open(&path).unwrap();
    assert!(r.warnings().is_empty(), "{:?}", r.warnings());
    let mut g = Gen::new(1, 2, 3);
    let want = without_sched((0..12).map(|_| g.next()).collect());
    assert_eq!(r.len(), want.len());
    for (i, w) in want.iter().enumerate() {
        assert_eq!(&r.sample(i).unwrap(), w, "sample {i}");
    }
}
