//! Which imported tables count the same exits as others, decided from one pass over all of
//! them, per table kind (VM-EXIT, MSR Access, ...):
//!
//! - per-VCPU tables (`--vcpu N`) next to the all-VCPUs table of the same VMs: when they add
//!   up to it, reason by reason, they are kept (each exit on its own vCPU) and the all-VCPUs
//!   table is skipped; otherwise they are skipped (they count some of its exits again).
//! - an all-VMs table next to per-pid tables: the per-pid ones are kept when they add up to it.

use std::collections::{HashMap, HashSet};

use super::perf_rows::Section;

type Target<'a> = (&'static str, &'a [u32]);

#[derive(Default)]
pub(crate) struct Overlap<'a> {
    /// Targets with an all-VCPUs table.
    whole: HashSet<Target<'a>>,
    kinds: HashMap<&'static str, Totals>,
    /// Samples per reason of a target's all-VCPUs tables, and of its per-VCPU tables.
    all_vcpus: HashMap<Target<'a>, HashMap<&'a str, u64>>,
    per_vcpu: HashMap<Target<'a>, HashMap<&'a str, u64>>,
}

#[derive(Default)]
struct Totals {
    per_pid: Option<u64>,
    all_vms: Option<u64>,
}

impl<'a> Overlap<'a> {
    pub(crate) fn of(sections: &'a [Section]) -> Self {
        let mut o = Overlap::default();
        for sec in sections {
            let target = (sec.event.header(), &sec.pids[..]);
            let by_reason = match sec.vcpu {
                Some(_) => &mut o.per_vcpu,
                None => &mut o.all_vcpus,
            };
            let counts = by_reason.entry(target).or_default();
            for r in &sec.rows {
                let n = counts.entry(&r.name).or_insert(0);
                *n = n.saturating_add(r.samples);
            }
            if sec.vcpu.is_some() {
                continue;
            }
            o.whole.insert(target);
            let t = o.kinds.entry(target.0).or_default();
            let slot = if sec.pids.is_empty() {
                &mut t.all_vms
            } else {
                &mut t.per_pid
            };
            let n = sec
                .rows
                .iter()
                .fold(0u64, |n, r| n.saturating_add(r.samples));
            *slot = Some(slot.unwrap_or(0).saturating_add(n));
        }
        o
    }

    /// Whether the per-VCPU tables of `t` count exactly the exits of its all-VCPUs tables.
    fn vcpus_add_up(&self, t: &Target<'a>) -> bool {
        let (Some(all), Some(per)) = (self.all_vcpus.get(t), self.per_vcpu.get(t)) else {
            return false;
        };
        let nonzero = |m: &HashMap<&'a str, u64>| m.values().filter(|n| **n > 0).count();
        nonzero(all) == nonzero(per) && all.iter().all(|(k, n)| *n == 0 || per.get(k) == Some(n))
    }

    /// Whether the all-VCPUs table `sec` is read through its per-VCPU tables instead.
    pub(crate) fn read_per_vcpu(&self, sec: &Section) -> bool {
        let target = (sec.event.header(), &sec.pids[..]);
        sec.vcpu.is_none() && self.vcpus_add_up(&target) && self.pid_level(sec).is_none()
    }

    /// Why `sec` repeats exits another section counts, if it does.
    pub(crate) fn skipped(&self, sec: &Section) -> Option<String> {
        let target = (sec.event.header(), &sec.pids[..]);
        let kept_per_vcpu = self.vcpus_add_up(&target) && self.pid_level(sec).is_none();
        match sec.vcpu {
            Some(v) if self.whole.contains(&target) && !kept_per_vcpu => Some(format!(
                "VCPU {v} table skipped: the all-VCPUs table of the same VMs already counts these exits"
            )),
            Some(_) => None,
            None if kept_per_vcpu => Some(
                "all-VCPUs table skipped: the VCPU tables of the same VMs count the same exits, each on its vCPU"
                    .into(),
            ),
            None => self.pid_level(sec),
        }
    }

    /// An all-VMs table next to per-pid tables: the per-pid ones are kept when they add up to
    /// it. Why the all-VCPUs table `sec` (or the one its VCPU tables belong to) is not used.
    fn pid_level(&self, sec: &Section) -> Option<String> {
        let Some(Totals {
            per_pid: Some(per_pid),
            all_vms: Some(all_vms),
        }) = self.kinds.get(sec.event.header())
        else {
            return None;
        };
        match (sec.pids.is_empty(), per_pid == all_vms) {
            (true, true) => Some("all-VMs table skipped: the per-pid tables count the same exits".into()),
            (false, false) => Some(
                "per-pid table skipped: it does not add up with the others to the all-VMs table, which is used instead"
                    .into(),
            ),
            _ => None,
        }
    }
}
