//! `report --slow TIME`: the slow-exit log, one line per exit, in kvmprof's layout, perf's
//! `kvm stat live --duration` line (`-f perf-live`), JSON or CSV.

use std::fmt::Write as _;

use serde::Serialize;

use crate::{
    advice::names,
    decode::{isa_name, ExitNames},
    sample::{Sample, SlowEvent},
    text::printable,
};
use profiler_common::ev;

/// Which exits to print.
pub struct Filter {
    /// Handling time at least this (ns).
    pub min_ns: u64,
    pub pid: Option<u32>,
    pub vcpu: Option<u32>,
}

/// One logged exit with what the samples around it say: its wall time and VM name.
#[derive(Clone, Debug, Serialize)]
pub struct Line {
    /// Wall clock at the exit, ns since the Unix epoch (from the sample that carried it).
    pub wall_ns: u64,
    pub vm_pid: u32,
    pub vm_name: String,
    pub vcpu: u32,
    pub tid: u32,
    pub isa: &'static str,
    pub reason: u32,
    pub name: String,
    pub took_ns: u64,
    /// Monotonic clock at the entry that ended it (perf's timestamp for the line).
    pub entry_mono_ns: u64,
    /// Guest RIP; None where the kernel's kvm_exit has no guest_rip.
    pub rip: Option<u64>,
    /// `kernel` when the RIP is in the upper half of the address space (64-bit guests map their
    /// kernel there), else `user`; None without a RIP.
    pub guest_mode: Option<&'static str>,
    pub exit_cpu: u32,
    pub entry_cpu: u32,
    /// The sub-reason, decoded ("out port 0x70 (RTC/CMOS index)", "wrmsr 0x6e0 ..."); None
    /// when no sub-reason event came between exit and entry.
    pub detail: Option<String>,
    /// Of `took_ns`: runnable, waiting for a host CPU, and asleep; None when the kernel did
    /// not split the time (`--no-sched-split`, recordings before format 5).
    pub wait_ns: Option<u64>,
    pub blocked_ns: Option<u64>,
}

/// What a session's samples logged, and what the kernel counted.
#[derive(Clone, Debug, Default)]
pub struct Log {
    pub lines: Vec<Line>,
    /// Exits at or over the kernel's threshold, and those not sent (rate limit, full buffer):
    /// differences between the first and last sample's counters.
    pub seen: u64,
    pub dropped: u64,
}

/// The lines of `samples` (in order) that pass `f`.
pub fn collect<S: std::borrow::Borrow<Sample>>(
    samples: impl IntoIterator<Item = anyhow::Result<S>>,
    names: &ExitNames,
    f: &Filter,
) -> anyhow::Result<Log> {
    use profiler_common::counter::{SLOW_DROPPED, SLOW_EXITS};
    let mut log = Log {
        lines: Vec::new(),
        seen: 0,
        dropped: 0,
    };
    let counts = |s: &Sample| [s.counter(SLOW_EXITS), s.counter(SLOW_DROPPED)];
    let mut first = None;
    let mut last = [0, 0];
    // A VM's first exits can come in the sample before discovery names it: such lines take
    // the name a later sample knows for the pid.
    let (mut unnamed, mut known) = (Vec::new(), std::collections::HashMap::new());
    for s in samples {
        let s = s?;
        let s = s.borrow();
        first.get_or_insert(counts(s));
        last = counts(s);
        for e in &s.slow {
            let keep = e.took_ns >= f.min_ns
                && f.pid.is_none_or(|p| p == e.tgid)
                && f.vcpu.is_none_or(|v| v == e.vcpu);
            if keep {
                if !s.vms.contains_key(&e.tgid) {
                    unnamed.push(log.lines.len());
                }
                log.lines.push(line(s, e, names));
            }
        }
        for i in &unnamed {
            let pid = log.lines[*i].vm_pid;
            if let Some(vm) = s.vms.get(&pid) {
                known.entry(pid).or_insert_with(|| vm.name.clone());
            }
        }
    }
    for i in unnamed {
        if let Some(name) = known.get(&log.lines[i].vm_pid) {
            log.lines[i].vm_name = name.clone();
        }
    }
    if let Some(first) = first {
        log.seen = last[0].saturating_sub(first[0]);
        log.dropped = last[1].saturating_sub(first[1]);
    }
    Ok(log)
}

/// `e` as a line: its wall time from the sample `s` that carried it, the VM's name as `s`
/// knows it, the reason's and the sub-reason's names.
pub fn line(s: &Sample, e: &SlowEvent, names: &ExitNames) -> Line {
    // The sample was read after the exit: step back from its wall clock by the monotonic gap.
    let wall_ns = (s.wall_ms * 1_000_000).saturating_sub(s.mono_ns.saturating_sub(e.exit_ns));
    let vm_name = s
        .vms
        .get(&e.tgid)
        .map_or_else(|| format!("pid {}", e.tgid), |v| v.name.clone());
    let rip = (e.rip != 0).then_some(e.rip);
    let split = s.progs.iter().any(|p| p.name == "sched_switch");
    Line {
        wall_ns,
        vm_pid: e.tgid,
        vm_name,
        vcpu: e.vcpu,
        tid: e.tid,
        isa: isa_name(e.isa),
        reason: e.reason,
        name: names.name(e.isa, e.reason),
        took_ns: e.took_ns,
        entry_mono_ns: e.exit_ns + e.took_ns,
        rip,
        guest_mode: rip.map(|r| if r >> 63 == 1 { "kernel" } else { "user" }),
        exit_cpu: e.exit_cpu,
        entry_cpu: e.entry_cpu,
        detail: detail(e),
        wait_ns: split.then_some(e.wait_ns),
        blocked_ns: split.then_some(e.blocked_ns),
    }
}

/// The sub-reason in words, with names kvmprof knows beside the numbers.
pub fn detail(e: &SlowEvent) -> Option<String> {
    let a = e.detail_a;
    let named = |n: Option<String>| n.map_or(String::new(), |n| format!(" {n}"));
    Some(match e.detail_kind {
        0 => return None,
        ev::MSR_READ => format!("rdmsr {a:#x}{}", named(names::msr_name(a))),
        ev::MSR_WRITE => format!("wrmsr {a:#x}{}", named(names::msr_name(a))),
        ev::PIO_IN | ev::PIO_OUT => {
            let dir = if e.detail_kind == ev::PIO_IN {
                "in"
            } else {
                "out"
            };
            let n = named(names::port_name(a).map(|n| format!("({n})")));
            format!("{dir} port {a:#x}{n} size {}", e.detail_flags)
        }
        ev::MMIO_READ => format!("mmio read {} size {}", names::gpa_label(a), e.detail_flags),
        ev::MMIO_WRITE => format!("mmio write {} size {}", names::gpa_label(a), e.detail_flags),
        ev::NPF_MMIO => format!("npf on MMIO {}", names::gpa_label(a)),
        ev::HV_HYPERCALL => format!(
            "Hyper-V hypercall {a:#06x}{}",
            named(names::hypercall_name(a).map(str::to_string))
        ),
        ev::EXIT_DETAIL => match e.detail_flags {
            1 => format!(
                "interrupt vector {a:#04x}{}",
                named(names::vector_name(a).map(str::to_string))
            ),
            45 => format!("EOI of vector {a:#04x}"),
            56 => format!("APIC register {a:#x}{}", named(names::apic_reg_name(a))),
            r => format!("exit detail {a:#x} (reason {r})"),
        },
        k => format!("event kind {k}: {a:#x}"),
    })
}

/// kvmprof's layout: a header saying what was asked and what the kernel dropped, then one line
/// per exit: wall time, VM, vCPU, reason, time, sub-reason, RIP, host CPUs.
pub fn table(log: &Log, f: &Filter) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# {} slow exits of at least {} (the kernel logged {} at its threshold, dropped {})",
        log.lines.len(),
        crate::tui::fmt::dur(f.min_ns),
        log.seen,
        log.dropped
    );
    for l in &log.lines {
        let when = jiff::Timestamp::from_nanosecond(l.wall_ns as i128)
            .map_or_else(|_| l.wall_ns.to_string(), |t| format!("{t:.6}"));
        let rip = match (l.rip, l.guest_mode) {
            (Some(r), Some(m)) => format!("rip {r:#x} ({m})"),
            _ => "rip -".to_string(),
        };
        let split = match (l.wait_ns, l.blocked_ns) {
            (Some(w), Some(b)) => format!(
                "  waited {} asleep {}",
                crate::tui::fmt::dur(w),
                crate::tui::fmt::dur(b)
            ),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "{when}  {} (pid {})  vcpu {}  {}  {}{split}  {}  {rip}  cpu {}->{}",
            printable(&l.vm_name),
            l.vm_pid,
            l.vcpu,
            printable(&l.name),
            crate::tui::fmt::dur(l.took_ns),
            l.detail.as_deref().unwrap_or("-"),
            l.exit_cpu,
            l.entry_cpu,
        );
    }
    out
}

/// perf's `kvm stat live --duration` line, for people who grep for it: the entry's timestamp,
/// the VM's pid, the vCPU, the exit's name, whole µs (perf prints exits over the threshold).
pub fn perf_live(log: &Log) -> String {
    let mut out = String::new();
    for l in &log.lines {
        let _ = writeln!(
            out,
            "{} VM {}, vcpu {}: {} event took {}usec",
            l.entry_mono_ns,
            l.vm_pid,
            l.vcpu,
            printable(&l.name),
            l.took_ns / 1000
        );
    }
    out
}

/// The header line's columns of [`csv`].
pub const CSV_COLUMNS: [&str; 17] = [
    "wall_ns",
    "vm_pid",
    "vm_name",
    "vcpu",
    "isa",
    "reason",
    "name",
    "took_ns",
    "tid",
    "rip",
    "guest_mode",
    "exit_cpu",
    "entry_cpu",
    "detail",
    "entry_mono_ns",
    "wait_ns",
    "blocked_ns",
];

pub fn csv(log: &Log) -> String {
    let mut out = CSV_COLUMNS.join(",");
    out.push('\n');
    for l in &log.lines {
        let fields = [
            l.wall_ns.to_string(),
            super::csv::key_fields(
                l.vm_pid,
                &l.vm_name,
                &l.vcpu.to_string(),
                l.isa,
                l.reason,
                &l.name,
            ),
            l.took_ns.to_string(),
            l.tid.to_string(),
            l.rip.map_or(String::new(), |r| format!("{r:#x}")),
            l.guest_mode.unwrap_or("").to_string(),
            l.exit_cpu.to_string(),
            l.entry_cpu.to_string(),
            super::csv::quote(l.detail.as_deref().unwrap_or("")),
            l.entry_mono_ns.to_string(),
            l.wait_ns.map_or(String::new(), |v| v.to_string()),
            l.blocked_ns.map_or(String::new(), |v| v.to_string()),
        ];
        out.push_str(&fields.join(","));
        out.push('\n');
    }
    out
}

/// JSON: `{"seen": N, "dropped": N, "exits": [Line, ...]}`.
pub fn json(log: &Log) -> anyhow::Result<String> {
    #[derive(Serialize)]
    struct Doc<'a> {
        seen: u64,
        dropped: u64,
        exits: &'a [Line],
    }
    Ok(serde_json::to_string_pretty(&Doc {
        seen: log.seen,
        dropped: log.dropped,
        exits: &log.lines,
    })?)
}
