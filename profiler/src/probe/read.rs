//! Map reading: the exit table and the other maps into one cumulative [`Sample`]; per-CPU
//! values (the counters) are summed here, once.

use std::{
    collections::BTreeMap,
    os::fd::AsFd,
    time::{SystemTime, UNIX_EPOCH},
};

use anyhow::Context;

use aya::{maps::HashMap, Ebpf};
use profiler_common::{counter, ev, Oct, OverflowKey, Pending, SlowExit, ISA_USERSPACE};

use super::{
    batch::{read_all, KnownKeys},
    rips::Rips,
    slots::Slots,
    table::Table,
};
use crate::sample::{EvKey, EvStat, Key, ProgStat, Sample, SlowEvent};

/// The programs' run-time statistics as last read from the kernel, and what the sampler
/// asked the kernel for so far (the tests check what it skips).
pub struct ProgCache {
    last: BTreeMap<String, ProgStat>,
    /// BPF_OBJ_GET_INFO_BY_FD calls.
    pub info_reads: u64,
    /// Reads of the PENDING and UPENDING hashes.
    pub hash_reads: [u64; 2],
    /// The keys of EVIDENCE as last read, and the ring that tells of new ones.
    pub evidence_keys: KnownKeys<ev::ThreadEvKey>,
    pub new_keys: Option<aya::maps::RingBuf<aya::maps::MapData>>,
    /// The sampled guest RIPs (mapped).
    pub rips: Rips,
}

impl ProgCache {
    pub fn new(new_keys: Option<aya::maps::RingBuf<aya::maps::MapData>>, rips: Rips) -> Self {
        ProgCache {
            last: BTreeMap::new(),
            info_reads: 0,
            hash_reads: [0; 2],
            evidence_keys: KnownKeys::default(),
            new_keys,
            rips,
        }
    }
}

pub fn sample(
    ebpf: &Ebpf,
    programs: &[&str],
    table: &mut Table,
    progs: &mut ProgCache,
    slots: &Slots,
) -> anyhow::Result<Sample> {
    let mono_ns = mono_ns();
    let mut s = Sample {
        mono_ns,
        wall_ms: wall_ms(),
        ..Default::default()
    };

    let overflow: HashMap<_, OverflowKey, Oct> =
        HashMap::try_from(ebpf.map("OVERFLOW").context("OVERFLOW map missing")?)?;
    table.refresh(|k| overflow.get(&k, 0).ok());
    s.stats = table.stats();

    // The counters, the evidence programs' runs, the fallback hashes' use and the keys added
    // to the evidence hashes, in one read (before those hashes: see KnownKeys).
    let all = per_cpu_sums(ebpf, "COUNTERS")?;
    let slot = |i: u32| all.get(i as usize).copied();
    let unlogged = slot(counter::KEYS_UNLOGGED).filter(|_| progs.new_keys.is_some());
    learn_new_keys(progs);
    s.evidence = evidence(ebpf, progs, unlogged)?;
    let mut in_flight = |key: Key| *s.in_flight.entry(key).or_insert(0) += 1;
    let exit_key = |p: &Pending| Key {
        tgid: p.tgid,
        vcpu: p.vcpu_id,
        isa: p.isa,
        reason: p.reason,
    };
    // Only the slots in use (their SLOT_USED byte is set), and only `ts` and `uts` of each
    // unless an exit is in flight there.
    let uts = std::mem::offset_of!(Pending, uts);
    let (mut exits, mut entries) = slots.freed_events();
    for i in slots.in_use() {
        let (x, e) = slots.events(i);
        exits += x;
        entries += e;
        if slots.pending.u64_at(i, 0) | slots.pending.u64_at(i, uts) != 0 {
            if let Some(p) = slots.pending.get(i) {
                if p.ts != 0 {
                    in_flight(exit_key(&p));
                }
                // The owner's userspace exit, as the UPENDING hash holds other threads'.
                if p.uts != 0 {
                    in_flight(Key {
                        tgid: p.tgid,
                        vcpu: p.owner,
                        isa: ISA_USERSPACE,
                        reason: p.ureason,
                    });
                }
            }
        }
    }
    // Threads without a slot keep their exits in flight in these hashes: read only once one
    // has (a read walks every bucket, empty or not).
    for (i, name, used) in [
        (0, "PENDING", counter::PENDING_USED),
        (1, "UPENDING", counter::UPENDING_USED),
    ] {
        if slot(used) == Some(0) {
            continue;
        }
        progs.hash_reads[i] += 1;
        let (_, vals, _) = read_all::<u32, Pending>(ebpf, name, false)?;
        vals.iter()
            .filter(|p| p.ts != 0)
            .for_each(|p| in_flight(exit_key(p)));
    }

    s.changed = table.changes(s.mono_ns, &s.in_flight);

    s.counters = all.iter().copied().take(counter::COUNT as usize).collect();
    s.counters.resize(counter::COUNT as usize, 0);
    // Slot owners count their exits and entries in their slots.
    s.counters[counter::EXITS as usize] += exits;
    s.counters[counter::ENTRIES as usize] += entries;

    // An evidence program whose own run count equals the kernel's at the last ask has not run
    // since: its statistics stand (most never run on a given guest, and under emulation each
    // ask costs as much as reading a map).
    for name in programs {
        let counted = (ev::PROGRAMS.iter().position(|(p, _)| p == name))
            .and_then(|i| slot(counter::EV_RUNS + i as u32));
        if let Some(last) = (progs.last.get(*name)).filter(|l| Some(l.run_cnt) == counted) {
            s.progs.push(last.clone());
            continue;
        }
        progs.info_reads += 1;
        let Some(runs) = ebpf
            .program(name)
            .and_then(|p| p.fd().ok())
            .and_then(|fd| super::misses::prog_runs(fd.as_fd()))
        else {
            continue;
        };
        if name.starts_with("sched_") {
            if let Some(c) = s.counters.get_mut(counter::SCHED_MISSED as usize) {
                *c += runs.recursion_misses;
            }
        }
        let stat = ProgStat {
            name: (*name).to_string(),
            run_cnt: runs.run_cnt,
            run_time_ns: runs.run_time_ns,
        };
        progs.last.insert(stat.name.clone(), stat.clone());
        s.progs.push(stat);
    }
    Ok(s)
}

/// A per-CPU array of u64 summed over the CPUs, by index, in one batch read instead of a
/// lookup per slot (arrays have batch reads since Linux 5.6, before kernel::OLDEST).
fn per_cpu_sums(ebpf: &Ebpf, name: &str) -> anyhow::Result<Vec<u64>> {
    let (keys, vals, cpus) = read_all::<u32, u64>(ebpf, name, true)?;
    let mut out = vec![0u64; keys.iter().max().map_or(0, |&k| k as usize + 1)];
    for (k, per_cpu) in keys.iter().zip(vals.chunks(cpus)) {
        out[*k as usize] = per_cpu.iter().sum();
    }
    Ok(out)
}

/// EVIDENCE (a key's threads summed) and the sampled guest RIPs (`ev::GUEST_RIP` keys, kept
/// with the evidence so recordings hold them), in one map built from a sorted list. RIPS is
/// full (4 096 keys) on any busy guest: inserting its keys one by one cost ~0.3 ms a refresh.
/// EVIDENCE is a hash: while no key was added to it untold (`unlogged`), the keys known are
/// looked up instead of walking its buckets (`KnownKeys`); RIPS is a mapped array (rips.rs).
fn evidence(
    ebpf: &Ebpf,
    progs: &mut ProgCache,
    unlogged: Option<u64>,
) -> anyhow::Result<BTreeMap<EvKey, EvStat>> {
    let of = |k: &ev::EvKey| EvKey {
        tgid: k.tgid,
        kind: k.kind,
        flags: k.flags,
        a: k.a,
    };
    let (keys, values) = progs
        .evidence_keys
        .read::<ev::EvValue>(ebpf, "EVIDENCE", unlogged)?;
    let rips = progs.rips.read(ebpf)?;
    let mut all: Vec<(EvKey, EvStat)> = Vec::with_capacity(keys.len() + rips.len());
    let threads = keys.iter().zip(values).map(|(k, v)| {
        let st = EvStat {
            count: v.count,
            sum: v.sum,
            last: v.last,
        };
        (of(&k.key), st)
    });
    all.extend(threads);
    let sampled = rips.iter().map(|&(k, count)| {
        let st = EvStat {
            count,
            ..Default::default()
        };
        (of(&k), st)
    });
    all.extend(sampled);
    // A key's threads, next to each other now, summed into its first entry (RIPS's keys are
    // one each, and of a kind EVIDENCE never holds).
    all.sort_unstable_by_key(|(k, _)| *k);
    all.dedup_by(|(k, v), (first_k, first)| {
        if k != first_k {
            return false;
        }
        first.count += v.count;
        first.sum += v.sum;
        // Any thread's last value: the map cannot say which one wrote last.
        first.last = v.last;
        true
    });
    // From a sorted list the map is built in one pass, without a search per key.
    Ok(all.into_iter().collect())
}

pub fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
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

/// Every slow exit the kernel has logged so far, oldest first (the ring buffer keeps order).
/// The keys the kernel added to EVIDENCE since the last call.
pub(super) fn learn_new_keys(progs: &mut ProgCache) {
    let Some(ring) = progs.new_keys.as_mut() else {
        return;
    };
    while let Some(item) = ring.next() {
        if item.len() < std::mem::size_of::<ev::NewKey>() {
            continue;
        }
        // SAFETY: the kernel wrote a whole NewKey (plain integers, repr(C)) here; unaligned as
        // in drain_slow.
        let k = unsafe { std::ptr::read_unaligned(item.as_ptr().cast::<ev::NewKey>()) };
        if k.map == ev::NEW_KEY_EVIDENCE {
            progs.evidence_keys.learn(k.key);
        }
    }
}

pub fn drain_slow(log: &mut aya::maps::RingBuf<aya::maps::MapData>, out: &mut Vec<SlowEvent>) {
    while let Some(item) = log.next() {
        if item.len() < std::mem::size_of::<SlowExit>() {
            continue;
        }
        // SAFETY: the kernel wrote a whole SlowExit (a plain-integer repr(C) struct) here;
        // read_unaligned because the record's alignment is the ring buffer's, not ours.
        let e = unsafe { std::ptr::read_unaligned(item.as_ptr().cast::<SlowExit>()) };
        out.push(SlowEvent::from(e));
    }
}
