//! Guest RIPs over a span: where in the guest a VM's exits of each reason come from, from the
//! kernel's sampled RIPs (one exit in 2^`ev::RIP_SAMPLE_LOG2`, evidence kind GUEST_RIP), with
//! the guest kernel/user share (a 64-bit guest's kernel lives in the upper half).

use std::collections::BTreeSet;

use profiler_common::ev;
use serde::Serialize;

use crate::{
    decode::ExitNames,
    sample::{EvKey, Sample},
};

/// RIPs listed per reason, most sampled first.
pub const TOP: usize = 5;

/// One exit reason's sampled RIPs over the span.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct GuestRips {
    pub isa: u32,
    /// The basic reason code (VMX: low 16 bits).
    pub reason: u32,
    pub name: String,
    /// Exits sampled in the span (about one in `sample_every`).
    pub samples: u64,
    pub sample_every: u64,
    /// Of the samples, at a guest kernel address (upper half).
    pub kernel_pct: f64,
    /// The most sampled RIPs (at most TOP).
    pub top: Vec<RipCount>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RipCount {
    pub rip: u64,
    pub samples: u64,
    /// Of the reason's samples.
    pub pct: f64,
    /// "kernel" or "user".
    pub mode: &'static str,
}

/// Whether a guest RIP is in the kernel's half of a 64-bit address space.
pub fn is_kernel(rip: u64) -> bool {
    rip >> 63 == 1
}

/// Per reason (in code order) the RIPs VM `pid` was sampled at between `older` and `newer`;
/// empty when none (a session without samples: perf text, recordings before them).
pub fn of_vm(
    older: &Sample,
    newer: &Sample,
    pid: u32,
    reused: &BTreeSet<u32>,
    names: &ExitNames,
) -> Vec<GuestRips> {
    let lo = EvKey {
        tgid: pid,
        kind: ev::GUEST_RIP,
        flags: 0,
        a: 0,
    };
    let hi = EvKey {
        flags: u16::MAX,
        a: u64::MAX,
        ..lo
    };
    let mut out: Vec<GuestRips> = Vec::new();
    let mut rips: Vec<(u64, u64)> = Vec::new();
    let flush = |flags: u16, rips: &mut Vec<(u64, u64)>, out: &mut Vec<GuestRips>| {
        let samples: u64 = rips.iter().map(|r| r.1).sum();
        if samples == 0 {
            rips.clear();
            return;
        }
        let (isa, reason) = ev::rip_reason(flags);
        let kernel: u64 = rips.iter().filter(|r| is_kernel(r.0)).map(|r| r.1).sum();
        rips.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let pct = |n: u64| n as f64 * 100.0 / samples as f64;
        out.push(GuestRips {
            isa,
            reason,
            name: names.name(isa, reason),
            samples,
            sample_every: 1 << ev::RIP_SAMPLE_LOG2,
            kernel_pct: pct(kernel),
            top: rips
                .iter()
                .take(TOP)
                .map(|&(rip, n)| RipCount {
                    rip,
                    samples: n,
                    pct: pct(n),
                    mode: if is_kernel(rip) { "kernel" } else { "user" },
                })
                .collect(),
        });
        rips.clear();
    };
    let mut cur: Option<u16> = None;
    // Both ranges in step: a walk, not a lookup per key (a busy host holds thousands).
    let mut olds = older.evidence.range(lo..=hi).peekable();
    for (k, new) in newer.evidence.range(lo..=hi) {
        if cur != Some(k.flags) {
            if let Some(f) = cur {
                flush(f, &mut rips, &mut out);
            }
            cur = Some(k.flags);
        }
        while olds.next_if(|(o, _)| *o < k).is_some() {}
        let old = (olds.peek())
            .filter(|(o, v)| *o == k && !reused.contains(&pid) && v.count <= new.count)
            .map_or(0, |(_, o)| o.count);
        if new.count > old {
            rips.push((k.a, new.count - old));
        }
    }
    if let Some(f) = cur {
        flush(f, &mut rips, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use profiler_common::{ev, ISA_VMX};

    use super::*;
    use crate::sample::EvStat;

    fn put(s: &mut Sample, tgid: u32, kind: u16, flags: u16, a: u64, count: u64) {
        let k = EvKey {
            tgid,
            kind,
            flags,
            a,
        };
        s.evidence.insert(
            k,
            EvStat {
                count,
                ..Default::default()
            },
        );
    }

    /// Each RIP counts what it gained over the span; one that went (or restarted lower) counts
    /// from zero; other VMs' and other kinds' keys, interleaved, count for nothing.
    #[test]
    fn rips_count_their_gain_over_the_span() {
        let io = ev::rip_flags(ISA_VMX, 30).expect("io is sampled");
        let cpuid = ev::rip_flags(ISA_VMX, 10).expect("cpuid is sampled");
        let (mut old, mut new) = (Sample::default(), Sample::default());
        let k = 1 << 63;
        for s in [&mut old, &mut new] {
            put(s, 6, ev::GUEST_RIP, io, 0x10, 500);
            put(s, 7, ev::GUEST_RIP - 1, io, 0x10, 900);
        }
        put(&mut old, 7, ev::GUEST_RIP, io, 0x10, 5);
        put(&mut new, 7, ev::GUEST_RIP, io, 0x10, 9);
        put(&mut old, 7, ev::GUEST_RIP, io, 0x18, 40);
        put(&mut new, 7, ev::GUEST_RIP, io, 0x18, 3);
        put(&mut old, 7, ev::GUEST_RIP, io, 0x20, 8);
        put(&mut new, 7, ev::GUEST_RIP, io, k | 0x30, 2);
        put(&mut new, 7, ev::GUEST_RIP, cpuid, 0x40, 1);
        put(&mut old, 7, ev::GUEST_RIP, cpuid, 0x48, 6);
        put(&mut new, 7, ev::GUEST_RIP, cpuid, 0x48, 6);
        let names = ExitNames::builtin();
        let got = of_vm(&old, &new, 7, &BTreeSet::new(), &names);
        let top = |g: &GuestRips| g.top.iter().map(|r| (r.rip, r.samples)).collect::<Vec<_>>();
        let by = |r: u32| got.iter().find(|g| g.reason == r).expect("reason listed");
        assert_eq!(top(by(30)), [(0x10, 4), (0x18, 3), (k | 0x30, 2)]);
        assert_eq!(by(30).samples, 9);
        assert_eq!(top(by(10)), [(0x40, 1)]);
        assert_eq!(got.len(), 2);
        // A new process with the pid: nothing of the old one's counts.
        let got = of_vm(&old, &new, 7, &BTreeSet::from([7]), &names);
        assert_eq!(
            got.iter().map(|g| g.samples).sum::<u64>(),
            9 + 3 + 2 + 1 + 6
        );
    }
}
