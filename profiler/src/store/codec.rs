//! One frame's payload: a `Sample` encoded as the change from the previous one.
//!
//! A key frame is the same encoding against `Sample::default()`, so there is one code path.
//! The payload (postcard, then zstd) is columnar (all min differences together, all bucket
//! indices together, ...) because zstd then finds the same structure frame after frame. Every
//! difference is a wrapping u64 difference stored as a zigzag varint (postcard's i64), so any
//! u64 round-trips exactly, including counters that go backwards.
//!
//! Format 2 takes the noisy stat values (count, bucket growth, sum) out of the payload: they are
//! residuals against predictions, range coded with adaptive context models (stats.rs), in a
//! second section of the frame. Format 1 kept them in the payload (v1.rs reads it).

use serde::{Deserialize, Serialize};

use super::cpu::CpuColumns;
use super::delta::{diff, undiff, CodecError, StatColumns};
use super::keys::{apply_keys, encode_keys, KeysDelta};
use super::sched::SchedColumns;
use super::slow::SlowColumns;
use super::stats::{Models, StatDecoder, StatEncoder};
use super::threads::ThreadColumns;
use super::v1::StatReader;
use crate::sample::{EvKey, EvStat, ProgStat, Sample, Stat, VmInfo};

/// A frame's payload. Postcard puts nothing around a nested struct, so each format's encoding
/// is the one before's bytes followed by its new part: format 3 appends the CPU columns to the
/// format 1–2 payload (`Core`), format 4 the slow exits, format 5 the scheduler split and the
/// per-vCPU and vhost CPU.
#[derive(Serialize, Deserialize, Default, Debug, Clone)]
pub(crate) struct Payload {
    pub(super) core: Core,
    /// Per-VM CPU times (format 3).
    pub(super) cpu: CpuColumns,
    /// Slow exits logged since the previous sample (format 4); None when there were none, so
    /// that an interval without any costs one byte.
    pub(super) slow: Option<SlowColumns>,
    /// Runnable and asleep time of the stats and slow exits (format 5); None when all zero.
    pub(super) sched: Option<SchedColumns>,
    /// Per-vCPU and vhost CPU times of the VMs in `cpu` (format 5); None when `cpu` names no
    /// VM (and in older formats).
    pub(super) threads: Option<ThreadColumns>,
}

/// Format 4's payload.
#[derive(Deserialize)]
struct Payload4 {
    core: Core,
    cpu: CpuColumns,
    slow: Option<SlowColumns>,
}

/// Format 3's payload.
#[derive(Deserialize)]
struct Payload3 {
    core: Core,
    cpu: CpuColumns,
}

impl Payload {
    /// The payload of a frame of format `version`.
    pub(super) fn decode(raw: &[u8], version: u32) -> Result<Payload, CodecError> {
        let bad = |e: postcard::Error| format!("payload: {e}");
        match version {
            ..3 => Ok(Payload {
                core: postcard::from_bytes(raw).map_err(bad)?,
                ..Default::default()
            }),
            3 => {
                let p: Payload3 = postcard::from_bytes(raw).map_err(bad)?;
                Ok(Payload {
                    core: p.core,
                    cpu: p.cpu,
                    ..Default::default()
                })
            }
            4 => {
                let p: Payload4 = postcard::from_bytes(raw).map_err(bad)?;
                Ok(Payload {
                    core: p.core,
                    cpu: p.cpu,
                    slow: p.slow,
                    ..Default::default()
                })
            }
            _ => postcard::from_bytes(raw).map_err(bad),
        }
    }
}

/// The payload fields of formats 1 and 2 (and the start of format 3's).
#[derive(Serialize, Deserialize, Default, Debug, Clone)]
pub(crate) struct Core {
    mono: i64,
    wall: i64,
    stat_keys: KeysDelta,
    stats: StatColumns,
    flight_keys: KeysDelta,
    flight: Vec<i64>,
    /// Whole vector when its length changed, else per-slot differences.
    counters_full: Option<Vec<u64>>,
    counters: Vec<i64>,
    /// Whole list when the program set changed, else (run_cnt, run_time_ns) differences.
    progs_full: Option<Vec<ProgStat>>,
    progs: Vec<(i64, i64)>,
    /// VM metadata is stored only when it changes (and in key frames).
    vms_gone: Vec<u32>,
    pub(super) vms_set: Vec<(u32, VmInfo)>,
    /// Sub-reason evidence: keys gone, and (key, count, sum, last) differences for keys that
    /// changed or appeared. Few hundred keys at most, so a plain list does.
    ev_gone: Vec<EvKey>,
    ev_set: Vec<(EvKey, i64, i64, i64)>,
}

/// The payload and coded section that turn `old` into `new`. `m` is the key interval's coding
/// state; `key` says this is a key frame (`old` is then the default sample, `m` fresh).
pub(crate) fn encode(
    old: &Sample,
    new: &Sample,
    m: &mut Models,
    key: bool,
) -> Result<(Payload, Vec<u8>), CodecError> {
    let mut p = Core {
        mono: diff(new.mono_ns, old.mono_ns),
        wall: diff(new.wall_ms, old.wall_ms),
        ..Default::default()
    };
    let (keys, vals) = encode_keys(&old.stats, &new.stats);
    p.stat_keys = keys;
    let zero = Stat::default();
    let mut stats = StatEncoder::new(m);
    for (e, &(k, o, n)) in vals.iter().enumerate() {
        stats.stat(&mut p.stats, e as u32, k, o.unwrap_or(&zero), n)?;
    }
    let sched = SchedColumns::encode(
        vals.iter().map(|&(_, o, n)| (o.unwrap_or(&zero), n)),
        &new.slow,
    );
    let coded = stats.finish(key);
    let (keys, vals) = encode_keys(&old.in_flight, &new.in_flight);
    p.flight_keys = keys;
    p.flight = vals
        .into_iter()
        .map(|(_, o, n)| diff(*n, o.copied().unwrap_or(0)))
        .collect();

    if old.counters.len() == new.counters.len() {
        p.counters = new
            .counters
            .iter()
            .zip(&old.counters)
            .map(|(n, o)| diff(*n, *o))
            .collect();
    } else {
        p.counters_full = Some(new.counters.clone());
    }
    let same_progs = old.progs.len() == new.progs.len()
        && old
            .progs
            .iter()
            .zip(&new.progs)
            .all(|(o, n)| o.name == n.name);
    if same_progs {
        p.progs = (new.progs.iter().zip(&old.progs))
            .map(|(n, o)| {
                (
                    diff(n.run_cnt, o.run_cnt),
                    diff(n.run_time_ns, o.run_time_ns),
                )
            })
            .collect();
    } else {
        p.progs_full = Some(new.progs.clone());
    }
    p.vms_gone = old
        .vms
        .keys()
        .filter(|pid| !new.vms.contains_key(pid))
        .copied()
        .collect();
    p.vms_set = (new.vms.iter())
        .filter(|(pid, vm)| old.vms.get(pid) != Some(vm))
        .map(|(pid, vm)| (*pid, vm.clone()))
        .collect();
    p.ev_gone = (old.evidence.keys())
        .filter(|k| !new.evidence.contains_key(k))
        .copied()
        .collect();
    let zero = EvStat::default();
    p.ev_set = (new.evidence.iter())
        .filter(|(k, v)| old.evidence.get(k) != Some(v))
        .map(|(k, n)| {
            let o = old.evidence.get(k).unwrap_or(&zero);
            (
                *k,
                diff(n.count, o.count),
                diff(n.sum, o.sum),
                diff(n.last, o.last),
            )
        })
        .collect();
    let cpu = CpuColumns::encode(&old.vm_cpu, &new.vm_cpu);
    let threads = (!cpu.pids().is_empty())
        .then(|| ThreadColumns::encode(&old.vm_cpu, &new.vm_cpu, cpu.pids()));
    let slow = (!new.slow.is_empty()).then(|| SlowColumns::encode(&new.slow));
    let payload = Payload {
        core: p,
        cpu,
        slow,
        sched,
        threads,
    };
    Ok((payload, coded))
}

/// Turn `s` (the previous sample) into the next one, reading a payload of format `version`
/// and its coded section (format 2; empty in format 1). `m` and `key` as for `encode`.
/// On error `s` and `m` are left part-updated and must be discarded.
pub(crate) fn apply(
    s: &mut Sample,
    payload: &Payload,
    coded: &[u8],
    version: u32,
    m: &mut Models,
    key: bool,
) -> Result<(), CodecError> {
    let p = &payload.core;
    s.mono_ns = undiff(s.mono_ns, p.mono);
    s.wall_ms = undiff(s.wall_ms, p.wall);

    let entries = apply_keys(&mut s.stats, &p.stat_keys)?;
    let stat_keys: Vec<_> = match payload.sched {
        Some(_) => entries.iter().map(|(k, _)| *k).collect(),
        None => Vec::new(),
    };
    let c = &p.stats;
    let n = entries.len();
    let full = if version == 1 { n } else { 0 };
    if [c.min.len(), c.max.len(), c.hist_len.len()] != [n; 3]
        || [c.count.len(), c.sum.len()] != [full; 2]
    {
        return Err("stat columns disagree with keys".into());
    }
    if version == 1 {
        let mut r = StatReader {
            c,
            gap_pos: 0,
            diff_pos: 0,
            raw_pos: 0,
        };
        for (e, (k, _)) in entries.into_iter().enumerate() {
            r.apply(e, s.stats.entry(k).or_default())?;
        }
        r.finish()?;
    } else {
        if !c.hist_diff.is_empty() {
            return Err("unused histogram data".into());
        }
        let mut r = StatDecoder::new(m, c, coded)?;
        for (e, (k, _)) in entries.into_iter().enumerate() {
            r.stat(e, k, s.stats.entry(k).or_default())?;
        }
        r.finish(key)?;
    }

    let entries = apply_keys(&mut s.in_flight, &p.flight_keys)?;
    if entries.len() != p.flight.len() {
        return Err("in-flight values disagree with keys".into());
    }
    for ((k, _), d) in entries.into_iter().zip(&p.flight) {
        let v = s.in_flight.entry(k).or_default();
        *v = undiff(*v, *d);
    }

    if let Some(full) = &p.counters_full {
        s.counters = full.clone();
    } else if p.counters.len() == s.counters.len() {
        for (c, d) in s.counters.iter_mut().zip(&p.counters) {
            *c = undiff(*c, *d);
        }
    } else {
        return Err("counter deltas disagree in length".into());
    }
    if let Some(full) = &p.progs_full {
        s.progs = full.clone();
    } else if p.progs.len() == s.progs.len() {
        for (pr, (dc, dt)) in s.progs.iter_mut().zip(&p.progs) {
            pr.run_cnt = undiff(pr.run_cnt, *dc);
            pr.run_time_ns = undiff(pr.run_time_ns, *dt);
        }
    } else {
        return Err("program deltas disagree in length".into());
    }
    for pid in &p.vms_gone {
        s.vms.remove(pid);
    }
    for (pid, vm) in &p.vms_set {
        s.vms.insert(*pid, vm.clone());
    }
    for k in &p.ev_gone {
        s.evidence.remove(k);
    }
    for (k, dc, ds, dl) in &p.ev_set {
        let v = s.evidence.entry(*k).or_default();
        v.count = undiff(v.count, *dc);
        v.sum = undiff(v.sum, *ds);
        v.last = undiff(v.last, *dl);
    }
    payload.cpu.apply(&mut s.vm_cpu)?;
    match &payload.threads {
        Some(t) => t.apply(payload.cpu.pids(), &mut s.vm_cpu)?,
        None if version >= 5 && !payload.cpu.pids().is_empty() => {
            return Err("CPU times without their vCPU and vhost columns".into())
        }
        None => {}
    }
    match &payload.slow {
        Some(c) => c.decode(&mut s.slow)?,
        None => s.slow.clear(),
    }
    if let Some(c) = &payload.sched {
        if let Some(split) = c.stat_split(stat_keys.len())? {
            for (k, (w, b)) in stat_keys.iter().zip(split) {
                let st = s.stats.entry(*k).or_default();
                st.wait_ns = undiff(st.wait_ns, w);
                st.blocked_ns = undiff(st.blocked_ns, b);
            }
        }
        c.apply_slow(&mut s.slow)?;
    }
    Ok(())
}
