//! Map reading: per-CPU values are summed here, once, so everything downstream sees one
//! cumulative number per key.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use aya::{
    maps::{Array, HashMap, PerCpuArray, PerCpuHashMap},
    Ebpf,
};
use profiler_common::{counter, ev, hist, HistKey, HistRow, Pending, StatKey, StatValue};

use super::{batch::read_all, slots::SlotView};
use crate::sample::{EvKey, EvStat, Hist, Key, ProgStat, Sample, Stat};

pub fn sample(ebpf: &Ebpf, programs: &[&str], slots: Option<&SlotView>) -> anyhow::Result<Sample> {
    let mono_ns = mono_ns();
    let mut s = Sample {
        mono_ns,
        wall_ms: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0),
        ..Default::default()
    };

    // Batched: a handful of syscalls for all rows (get_next_key + lookup would be two a row).
    let (keys, vals, cpus) = read_all::<StatKey, StatValue>(ebpf, "STATS", true)?;
    let (hkeys, hvals, hcpus) = read_all::<HistKey, HistRow>(ebpf, "HIST", true)?;
    // Both walked in key order, so each key's spilled octaves are found by a merge, not a
    // map of small vectors (tens of thousands a refresh when latencies spread).
    let hcpus = hcpus.max(1);
    let mut spill: Vec<(Key, usize)> = (hkeys.iter().enumerate())
        .map(|(i, k)| (Key::from(k.key), i))
        .collect();
    spill.sort_unstable_by_key(|&(k, i)| (k, hkeys[i].row));
    let mut order: Vec<(Key, usize)> = (keys.iter().enumerate())
        .map(|(i, k)| (Key::from(*k), i))
        .collect();
    order.sort_unstable_by_key(|&(k, _)| k);
    let mut next = spill.iter().peekable();
    let mut buckets: Vec<(u16, u64)> = Vec::new();
    let mut folded = Vec::with_capacity(order.len());
    for (key, i) in order {
        let per_cpu = &vals[i * cpus..(i + 1) * cpus];
        let mut st = fold(per_cpu);
        buckets.clear();
        for v in per_cpu.iter().filter(|v| v.count != 0) {
            for (&tag, n) in v.oct.iter().zip(&v.n) {
                if tag != 0 {
                    push_row(&mut buckets, tag as usize - 1, |i| n[i]);
                }
            }
        }
        // A HIST row without its STATS key is being forgotten: its stats are gone already.
        while next.next_if(|(k, _)| *k < key).is_some() {}
        while let Some((_, h)) = next.next_if(|(k, _)| *k == key) {
            let rows = &hvals[h * hcpus..(h + 1) * hcpus];
            push_row(&mut buckets, hkeys[*h].row as usize, |i| {
                rows.iter().map(|r| r.n[i]).sum()
            });
        }
        st.hist = Hist {
            buckets: merge_sorted(&mut buckets),
        };
        folded.push((key, st));
    }
    s.stats = folded.into_iter().collect();

    let evidence: PerCpuHashMap<_, ev::EvKey, ev::EvValue> =
        PerCpuHashMap::try_from(ebpf.map("EVIDENCE").context("EVIDENCE map missing")?)?;
    for (k, per_cpu) in evidence.iter().flatten() {
        let mut st = EvStat::default();
        for v in per_cpu.iter().filter(|v| v.count != 0) {
            st.count += v.count;
            st.sum += v.sum;
            // Any CPU's last value: the per-CPU copies cannot say which one was newest.
            st.last = v.last;
        }
        let key = EvKey {
            tgid: k.tgid,
            kind: k.kind,
            flags: k.flags,
            a: k.a,
        };
        s.evidence.insert(key, st);
    }

    let mut pending = |p: &Pending| {
        if p.ts != 0 {
            let key = Key {
                tgid: p.tgid,
                vcpu: p.vcpu_id,
                isa: p.isa,
                reason: p.reason,
            };
            *s.in_flight.entry(key).or_insert(0) += 1;
        }
    };
    match slots {
        Some(view) => view.for_each(|_, p| pending(p)),
        None => {
            let (_, slots, _) = read_all::<u32, Pending>(ebpf, "PSLOTS_MAP", false)?;
            slots.iter().for_each(&mut pending);
        }
    }
    for name in ["PENDING", "UPENDING"] {
        let (_, vals, _) = read_all::<u32, Pending>(ebpf, name, false)?;
        vals.iter().for_each(&mut pending);
    }

    let counters: PerCpuArray<_, u64> =
        PerCpuArray::try_from(ebpf.map("COUNTERS").context("COUNTERS map missing")?)?;
    s.counters = (0..counter::COUNT)
        .map(|i| counters.get(&i, 0).map(|v| v.iter().sum()).unwrap_or(0))
        .collect();

    for name in programs {
        let Some(prog) = ebpf.program(name) else {
            continue;
        };
        if let Ok(info) = prog.info() {
            s.progs.push(ProgStat {
                name: (*name).to_string(),
                run_cnt: info.run_count(),
                run_time_ns: info.run_time().as_nanos() as u64,
            });
        }
    }
    Ok(s)
}

pub fn forget(ebpf: &mut Ebpf, tgids: &[u32], view: Option<&SlotView>) -> anyhow::Result<usize> {
    if tgids.is_empty() {
        return Ok(0);
    }
    let mut removed = 0;
    {
        let mut stats: PerCpuHashMap<_, StatKey, StatValue> =
            PerCpuHashMap::try_from(ebpf.map_mut("STATS").context("STATS map missing")?)?;
        let dead: Vec<StatKey> = stats
            .keys()
            .flatten()
            .filter(|k| tgids.contains(&k.tgid))
            .collect();
        for k in dead {
            removed += usize::from(stats.remove(&k).is_ok());
        }
    }
    {
        let mut hist: PerCpuHashMap<_, HistKey, HistRow> =
            PerCpuHashMap::try_from(ebpf.map_mut("HIST").context("HIST map missing")?)?;
        let dead: Vec<HistKey> = hist
            .keys()
            .flatten()
            .filter(|k| tgids.contains(&k.key.tgid))
            .collect();
        for k in dead {
            let _ = hist.remove(&k);
        }
    }
    {
        // Free the slots of dead threads (their tids may come back as other threads).
        let mut slots: Array<_, Pending> = Array::try_from(
            ebpf.map_mut("PSLOTS_MAP")
                .context("PSLOTS_MAP map missing")?,
        )?;
        let dead_slot = |p: &Pending| p.owner != 0 && tgids.contains(&p.tgid);
        let dead: Vec<u32> = match view {
            Some(v) => {
                let mut d = Vec::new();
                v.for_each(|i, p| {
                    if dead_slot(p) {
                        d.push(i as u32);
                    }
                });
                d
            }
            None => (0..slots.len())
                .filter(|&i| slots.get(&i, 0).is_ok_and(|p| dead_slot(&p)))
                .collect(),
        };
        for &i in &dead {
            let _ = slots.set(i, Pending::default(), 0);
        }
        // Then release the claim (the programs' BPF_NOEXIST insert): in this order a thread
        // claiming meanwhile fails and uses the hash, instead of getting a slot we then wipe.
        let mut owners: HashMap<_, u32, u32> = HashMap::try_from(
            ebpf.map_mut("PSLOT_OWNERS")
                .context("PSLOT_OWNERS map missing")?,
        )?;
        for i in dead {
            let _ = owners.remove(&i);
        }
    }
    {
        let mut evidence: PerCpuHashMap<_, ev::EvKey, ev::EvValue> =
            PerCpuHashMap::try_from(ebpf.map_mut("EVIDENCE").context("EVIDENCE map missing")?)?;
        let dead: Vec<ev::EvKey> = evidence
            .keys()
            .flatten()
            .filter(|k| tgids.contains(&k.tgid))
            .collect();
        for k in dead {
            let _ = evidence.remove(&k);
        }
    }
    for name in ["PENDING", "UPENDING"] {
        let mut map: HashMap<_, u32, Pending> = HashMap::try_from(
            ebpf.map_mut(name)
                .with_context(|| format!("{name} map missing"))?,
        )?;
        let dead: Vec<u32> = map
            .iter()
            .flatten()
            .filter(|(_, p)| tgids.contains(&p.tgid))
            .map(|(tid, _)| tid)
            .collect();
        for tid in dead {
            let _ = map.remove(&tid);
        }
    }
    Ok(removed)
}

/// Sum one key's per-CPU values (the histogram is assembled by the caller).
pub fn fold(per_cpu: &[StatValue]) -> Stat {
    let mut st = Stat {
        min_ns: u64::MAX,
        ..Default::default()
    };
    for v in per_cpu.iter().filter(|v| v.count != 0) {
        st.count += v.count;
        st.sum_ns += v.sum_ns;
        st.min_ns = st.min_ns.min(v.min_ns);
        st.max_ns = st.max_ns.max(v.max_ns);
    }
    if st.count == 0 {
        st.min_ns = 0;
    }
    st
}

/// Append one octave's non-zero sub-bucket counts (`n(i)` for sub-bucket i) to a sparse,
/// unsorted histogram.
fn push_row(buckets: &mut Vec<(u16, u64)>, row: usize, n: impl Fn(usize) -> u64) {
    let sub = hist::SUB as usize;
    for i in 0..sub {
        let c = n(i);
        let b = row * sub + i;
        if c != 0 && b < hist::BUCKETS {
            buckets.push((b as u16, c));
        }
    }
}

/// Sort by bucket and add up duplicates (one octave may sit inline on one CPU and in a HIST
/// row, or inline, on another).
fn merge_sorted(buckets: &mut [(u16, u64)]) -> Vec<(u16, u64)> {
    buckets.sort_unstable_by_key(|(b, _)| *b);
    let mut out: Vec<(u16, u64)> = Vec::with_capacity(buckets.len());
    for &(b, c) in buckets.iter() {
        match out.last_mut() {
            Some(last) if last.0 == b => last.1 += c,
            _ => out.push((b, c)),
        }
    }
    out
}

pub fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
