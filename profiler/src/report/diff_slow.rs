//! The diff's slow exits: per session, the exits its slow-exit log holds for the compared VMs,
//! per second and per reason, with the worst; "not recorded" for a session without the log
//! (perf text, recordings of format 3 or older), never 0.

use std::collections::BTreeMap;

use serde::Serialize;

use super::slow::Log;
use crate::{text::printable, tui::fmt::dur};

/// One session's slow exits.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SlowSide {
    pub count: u64,
    /// When the session's duration is known.
    pub rate_per_s: Option<f64>,
    /// The longest exit, ns; None when there was none.
    pub worst_ns: Option<u64>,
    /// Events the kernel did not send (rate limit, full buffer), host-wide: missing above.
    pub dropped: u64,
    /// Most first.
    pub reasons: Vec<SlowReason>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SlowReason {
    pub name: String,
    pub count: u64,
    pub rate_per_s: Option<f64>,
    pub worst_ns: u64,
}

/// The slow exits of `log` for the VMs `pids`, over `duration_s` (0: unknown).
pub fn side(log: &Log, pids: &[u32], duration_s: f64) -> SlowSide {
    let rate = |n: u64| (duration_s > 0.0).then(|| n as f64 / duration_s);
    let mut by: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for l in log.lines.iter().filter(|l| pids.contains(&l.vm_pid)) {
        let e = by.entry(&l.name).or_default();
        e.0 += 1;
        e.1 = e.1.max(l.took_ns);
    }
    let mut reasons: Vec<SlowReason> = by
        .into_iter()
        .map(|(name, (count, worst_ns))| SlowReason {
            name: name.to_string(),
            count,
            rate_per_s: rate(count),
            worst_ns,
        })
        .collect();
    reasons.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.name.cmp(&b.name)));
    let count = reasons.iter().map(|r| r.count).sum();
    SlowSide {
        count,
        rate_per_s: rate(count),
        worst_ns: reasons.iter().map(|r| r.worst_ns).max(),
        dropped: log.dropped,
        reasons,
    }
}

/// The table's lines: one per session (named by its tag), or nothing when no session has a
/// slow-exit log.
pub fn table_lines(tags: &[&str], slow: &[Option<SlowSide>]) -> String {
    if slow.iter().all(Option::is_none) {
        return String::new();
    }
    let mut out = String::from("\nSlow exits (the slow-exit log, over each recording's --slow):\n");
    for (tag, s) in tags.iter().zip(slow) {
        let Some(s) = s else {
            out.push_str(&format!("{tag}: not recorded\n"));
            continue;
        };
        let rate = s
            .rate_per_s
            .map_or_else(String::new, |r| format!(" ({r:.2}/s)"));
        let mut l = format!("{tag}: {}{rate}", s.count);
        if let Some(w) = s.worst_ns {
            l.push_str(&format!(", worst {}", dur(w)));
        }
        let reasons: Vec<String> = s
            .reasons
            .iter()
            .map(|r| {
                format!(
                    "{} {} (worst {})",
                    printable(&r.name),
                    r.count,
                    dur(r.worst_ns)
                )
            })
            .collect();
        if !reasons.is_empty() {
            l.push_str(&format!("; {}", reasons.join(", ")));
        }
        if s.dropped > 0 {
            l.push_str(&format!("; {} more dropped by the rate limit", s.dropped));
        }
        out.push_str(&l);
        out.push('\n');
    }
    out
}
