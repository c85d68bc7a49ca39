//! Parsed perf sections → one cumulative [`Sample`] (since an empty one) and the exit names it
//! needs.
//!
//! - VM: the first pid of `pid(s) ...` (several pids cannot be told apart), or pid 0 named
//!   "all VMs"; vCPU: `VCPU N`, or 0 for an all-VCPUs table. Tables that count the same exits
//!   twice (per-VCPU and all-VCPUs, per-pid and all-VMs) are read once (`import_overlap`);
//!   repeated tables of one target (`perf kvm stat live` intervals) are added up.
//! - Names: decoded back to codes by the built-in names under the ISA most names belong to;
//!   `0x4a` (kvmprof's unknown codes) and ` FAILED_VMENTRY` are read back; any other name
//!   (perf's `UNKNOWN`) gets a synthetic code (VMX 0xff00–0xffff, SVM 0xfffe0000+) and keeps
//!   its name; a 257th such name is an error (perf prints all unknown reasons as `UNKNOWN`).
//! - Time linear in the text: names are looked up in a hash index, and which tables overlap
//!   is decided from one pass over all of them.
//! - Stat: count = Samples, sum = the row's time as `import_time` rebuilds it from Avg, Time%
//!   and the footer, min / max as printed (0 when this perf printed none), no histogram.
//! - MSR / IO Port / MMIO tables become evidence counts, their times kept beside them
//!   (`sub_times`: kvmprof's evidence holds counts only).

use std::collections::HashMap;

use profiler_common::ev;

use super::{
    import_names::{detect_isa, Names},
    import_overlap::Overlap,
    import_split, import_time,
    perf_layout::Event,
    perf_rows::{ImportError, ImportWarning, PerfRow, Section},
    sub_times::{SubTime, SubTimes},
};
use crate::{
    decode::ExitNames,
    sample::{EvKey, Key, Sample, Stat, VmInfo},
};

/// What the import built from the tables.
pub(crate) struct Built {
    pub sample: Sample,
    pub names: ExitNames,
    /// perf's `( +- x% )` of each key made from exactly one printed row.
    pub rel_err: HashMap<Key, f64>,
    pub sub_times: SubTimes,
}

pub(crate) fn samples(
    sections: &[Section],
    warnings: &mut Vec<ImportWarning>,
) -> Result<Built, ImportError> {
    let mut names = Names::new();
    let mut s = Sample::default();
    let mut errs: HashMap<Key, Option<f64>> = HashMap::new();
    let mut sub_times = SubTimes::new();
    let overlap = Overlap::of(sections);
    let preset = per_vcpu_times(sections, &overlap);
    let mut budget = Budget::default();
    for (i, sec) in sections.iter().enumerate() {
        if let Some(why) = overlap.skipped(sec) {
            warnings.push(ImportWarning::new(sec.line, why));
            continue;
        }
        if let Some(n) = sec.lost_events.filter(|n| *n > 0) {
            warnings.push(ImportWarning::new(
                sec.line,
                format!("perf lost {n} events: its counts are low"),
            ));
        }
        let tgid = sec.pids.first().copied().unwrap_or(0);
        s.vms.entry(tgid).or_insert_with(|| VmInfo {
            pid: tgid,
            name: vm_name(&sec.pids),
            ..Default::default()
        });
        if sec.event == Event::Vmexit {
            let mut out = Out {
                s: &mut s,
                names: &mut names,
                budget: &mut budget,
                errs: &mut errs,
                preset: preset.get(&i).map(Vec::as_slice),
            };
            exits(sec, tgid, &mut out, warnings)?;
        } else {
            evidence(sec, tgid, &mut s, &mut budget, &mut sub_times)?;
        }
    }
    Ok(Built {
        sample: s,
        names: names.names,
        rel_err: errs
            .into_iter()
            .filter_map(|(k, e)| Some((k, e?)))
            .collect(),
        sub_times,
    })
}

/// Where `exits` adds what it reads.
struct Out<'a> {
    s: &'a mut Sample,
    names: &'a mut Names,
    budget: &'a mut Budget,
    /// `( +- x% )` per key; None once a second row adds to the key (live intervals, ...).
    errs: &'a mut HashMap<Key, Option<f64>>,
    /// The rows' times, when chosen with other tables (`import_split`).
    preset: Option<&'a [u64]>,
}

/// The row times of per-VCPU tables read in place of their VM's one all-VCPUs table, chosen to
/// add up to it (section index → times); tables of several intervals keep their own.
fn per_vcpu_times(sections: &[Section], overlap: &Overlap) -> HashMap<usize, Vec<u64>> {
    let mut preset = HashMap::new();
    for all in sections.iter().filter(|s| s.event == Event::Vmexit) {
        if !overlap.read_per_vcpu(all) {
            continue;
        }
        let same = |s: &Section| s.event == all.event && s.pids == all.pids;
        if sections
            .iter()
            .filter(|s| s.vcpu.is_none() && same(s))
            .count()
            != 1
        {
            continue;
        }
        let parts: Vec<(usize, &Section)> = sections
            .iter()
            .enumerate()
            .filter(|(_, s)| s.vcpu.is_some() && same(s))
            .collect();
        let mut vcpus: Vec<Option<u32>> = parts.iter().map(|(_, s)| s.vcpu).collect();
        vcpus.sort_unstable();
        vcpus.dedup();
        if vcpus.len() != parts.len() {
            continue;
        }
        let tables: Vec<&Section> = parts.iter().map(|p| p.1).collect();
        if let Some(times) = import_split::split(all, &tables) {
            preset.extend(parts.iter().map(|p| p.0).zip(times));
        }
    }
    preset
}

/// Running totals, kept far below u64::MAX so no sum downstream can overflow.
#[derive(Default)]
struct Budget {
    count: u64,
    ns: u64,
}

impl Budget {
    const LIMIT: u64 = 1 << 60;

    fn take(&mut self, line: usize, count: u64, ns: u64) -> Result<(), ImportError> {
        self.count = self.count.saturating_add(count);
        self.ns = self.ns.saturating_add(ns);
        if self.count > Self::LIMIT || self.ns > Self::LIMIT {
            return Err(ImportError::At {
                file: String::new(),
                line,
                msg: "the counts or times add up to more than kvmprof can hold".into(),
            });
        }
        Ok(())
    }
}

fn vm_name(pids: &[u32]) -> String {
    match pids {
        [] => "all VMs".into(),
        [p] => format!("pid {p}"),
        ps => {
            let list: Vec<String> = ps.iter().map(u32::to_string).collect();
            format!("pid(s) {}", list.join(","))
        }
    }
}

fn exits(
    sec: &Section,
    tgid: u32,
    out: &mut Out,
    warnings: &mut Vec<ImportWarning>,
) -> Result<(), ImportError> {
    let isa = detect_isa(&sec.rows, out.names);
    let untimed = |r: &PerfRow| {
        r.avg_us.is_none()
            && r.total_us.is_none()
            && (r.time_pct.is_none() || sec.total_time_us.is_none())
    };
    if !sec.rows.is_empty() && sec.rows.iter().all(untimed) {
        warnings.push(ImportWarning::new(
            sec.line,
            "this table holds exit counts without times: Time%, Min, Max and Avg stay empty",
        ));
    } else if !sec.rows.is_empty() && sec.rows.iter().all(|r| r.min_us.is_none()) {
        warnings.push(ImportWarning::new(
            sec.line,
            "this table printed no Min/Max Time: they read as 0",
        ));
    }
    let times = match out.preset {
        Some(t) => t.to_vec(),
        None => import_time::row_times(sec),
    };
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (r, &sum_ns) in sec.rows.iter().zip(&times).filter(|(r, _)| r.samples > 0) {
        let nth = seen.entry(&r.name).or_insert(0);
        let reason = out.names.resolve(isa, &r.name, *nth, r.line)?;
        *nth += 1;
        let key = Key {
            tgid,
            vcpu: sec.vcpu.unwrap_or(0),
            isa,
            reason,
        };
        let st = Stat {
            count: r.samples,
            sum_ns,
            min_ns: r.min_us.map_or(0, ns),
            max_ns: r.max_us.map_or(0, ns),
            ..Default::default()
        };
        out.budget
            .take(r.line, st.count, st.sum_ns.max(st.max_ns).max(st.min_ns))?;
        let first = out.s.stats.get(&key).is_none_or(|st| st.count == 0);
        out.errs
            .insert(key, if first { r.rel_err_pct } else { None });
        merge(out.s.stats.entry(key).or_default(), &st);
    }
    Ok(())
}

fn ns(us: f64) -> u64 {
    (us * 1e3).round() as u64
}

fn merge(into: &mut Stat, add: &Stat) {
    if into.count == 0 {
        *into = add.clone();
        return;
    }
    into.count += add.count;
    into.sum_ns += add.sum_ns;
    into.min_ns = into.min_ns.min(add.min_ns);
    into.max_ns = into.max_ns.max(add.max_ns);
}

/// `0x6e0:W`, `0x3f8:POUT`, `0xfee000b0:R` → evidence counts.
fn evidence(
    sec: &Section,
    tgid: u32,
    s: &mut Sample,
    budget: &mut Budget,
    times: &mut SubTimes,
) -> Result<(), ImportError> {
    let row_ns = import_time::row_times(sec);
    for (r, &total_ns) in sec.rows.iter().zip(&row_ns).filter(|(r, _)| r.samples > 0) {
        let bad = |why: &str| ImportError::At {
            file: String::new(),
            line: r.line,
            msg: format!("cannot read {} key '{}': {why}", sec.event.header(), r.name),
        };
        let (addr, dir) = r
            .name
            .rsplit_once(':')
            .ok_or_else(|| bad("expected ADDRESS:DIRECTION, e.g. 0x3f8:POUT"))?;
        // kvmprof's own tables put a name after an MSR's index (sub_times::named_key).
        let a = match addr.split_whitespace().next().unwrap_or_default() {
            "0" => 0,
            h => h
                .strip_prefix("0x")
                .and_then(|h| u64::from_str_radix(h, 16).ok())
                .ok_or_else(|| bad("the address is not hex like 0x3f8"))?,
        };
        let kind = match (sec.event, dir.trim()) {
            (Event::Msr, "R") => ev::MSR_READ,
            (Event::Msr, "W") => ev::MSR_WRITE,
            (Event::Ioport, "PIN") => ev::PIO_IN,
            (Event::Ioport, "POUT") => ev::PIO_OUT,
            (Event::Mmio, "R") => ev::MMIO_READ,
            (Event::Mmio, "W") => ev::MMIO_WRITE,
            _ => return Err(bad("unknown direction")),
        };
        let k = EvKey {
            tgid,
            kind,
            flags: 0,
            a,
        };
        budget.take(r.line, r.samples, total_ns)?;
        s.evidence.entry(k).or_default().count += r.samples;
        if r.avg_us.is_some() || r.total_us.is_some() {
            let t = SubTime {
                count: r.samples,
                total_ns,
                min_ns: r.min_us.map_or(0, ns),
                max_ns: r.max_us.map_or(0, ns),
                rel_err: r.rel_err_pct,
                line: r.line,
            };
            match times.get_mut(&k) {
                Some(m) => m.merge(&t),
                None => {
                    times.insert(k, t);
                }
            }
        }
    }
    Ok(())
}
