//! Map reading: per-CPU values are summed here, once, so everything downstream sees one
//! cumulative number per key.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use aya::{
    maps::{HashMap, PerCpuArray, PerCpuHashMap},
    Ebpf,
};
use profiler_common::{counter, ev, Pending, StatKey, StatValue};

use crate::sample::{EvKey, EvStat, Hist, Key, ProgStat, Sample, Stat};

pub fn sample(ebpf: &Ebpf, programs: &[&str]) -> anyhow::Result<Sample> {
    let mono_ns = mono_ns();
    let mut s = Sample {
        mono_ns,
        wall_ms: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0),
        ..Default::default()
    };

    let stats: PerCpuHashMap<_, StatKey, StatValue> =
        PerCpuHashMap::try_from(ebpf.map("STATS").context("STATS map missing")?)?;
    for item in stats.iter() {
        // A key deleted between get_next_key and lookup is simply gone: skip it.
        let Ok((k, per_cpu)) = item else { continue };
        s.stats.insert(Key::from(k), fold(&per_cpu));
    }

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

    for name in ["PENDING", "UPENDING"] {
        let map: HashMap<_, u32, Pending> = HashMap::try_from(
            ebpf.map(name)
                .with_context(|| format!("{name} map missing"))?,
        )?;
        for (_, p) in map.iter().flatten() {
            if p.ts != 0 {
                let key = Key {
                    tgid: p.tgid,
                    vcpu: p.vcpu_id,
                    isa: p.isa,
                    reason: p.reason,
                };
                *s.in_flight.entry(key).or_insert(0) += 1;
            }
        }
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

pub fn forget(ebpf: &mut Ebpf, tgids: &[u32]) -> anyhow::Result<usize> {
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

/// Sum one key's per-CPU values.
pub fn fold(per_cpu: &[StatValue]) -> Stat {
    let mut st = Stat {
        min_ns: u64::MAX,
        ..Default::default()
    };
    let mut dense = [0u64; profiler_common::hist::BUCKETS];
    for v in per_cpu.iter().filter(|v| v.count != 0) {
        st.count += v.count;
        st.sum_ns += v.sum_ns;
        st.min_ns = st.min_ns.min(v.min_ns);
        st.max_ns = st.max_ns.max(v.max_ns);
        for (d, h) in dense.iter_mut().zip(v.hist.iter()) {
            *d += h;
        }
    }
    if st.count == 0 {
        st.min_ns = 0;
    }
    st.hist = Hist::from_dense(&dense);
    st
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
