//! CSV report: one row per (VM, vCPU or all, reason), RFC 4180 quoting, `\n` line ends.
//!
//! Columns, in this order (stable; new columns are only ever appended):
//!
//! | column        | meaning                                                                |
//! |---------------|------------------------------------------------------------------------|
//! | `vm_pid`      | VMM process id                                                         |
//! | `vm_name`     | libvirt / QEMU name (or `pid N`)                                       |
//! | `vcpu`        | vCPU id, or `all` for the VM's totals                                  |
//! | `isa`         | `vmx`, `svm`, or `user` (returns of KVM_RUN to the VMM)               |
//! | `reason`      | exit code, decimal                                                     |
//! | `name`        | exit name as the kernel prints it                                      |
//! | `hlt`         | `true` for HLT-like reasons (kept apart from the shares)               |
//! | `count`       | exits seen (timed + change of in-flight)                               |
//! | `in_flight`   | exits not yet re-entered at the end of the span                        |
//! | `timed`       | exits with a handling time                                             |
//! | `rate_per_s`  | count per second, 3 decimals (0 when the span is unknown)              |
//! | `samples_pct` | share of non-HLT exits (HLT rows: of all), 4 decimals                  |
//! | `time_pct`    | share of non-HLT handling time (HLT rows: of all), 4 decimals          |
//! | `total_ns`    | summed handling time                                                   |
//! | `min_ns`      | shortest handling time                                                 |
//! | `max_ns`      | longest handling time                                                  |
//! | `mean_ns`     | total_ns / timed, 1 decimal                                            |
//! | `p50_ns`      | median from the histogram; empty when there is none (perf text import) |
//! | `p99_ns`      | 99th percentile; empty likewise                                        |
//! | `p999_ns`     | 99.9th percentile; empty likewise                                      |
//! | `wait_ns`     | of total_ns: runnable, waiting for a host CPU; empty when not measured |
//! | `blocked_ns`  | of total_ns: asleep (blocked); empty likewise                          |
//! | `host_cpu_pct`| vCPU rows: its thread's host CPU, % of a core; `all` rows: the VM's (all |
//! |               | threads and vhost workers); empty when not known (perf text, no names) |
//! | `steal_pct`   | vCPU rows: its thread's wait for a host CPU while runnable, % of the   |
//! |               | span; `all` rows: the average vCPU's; empty likewise                   |
//!
//! Each row of a VM or vCPU repeats its host CPU and steal.
//! Order: VMs by pid; per VM the `all` rows (exit reasons, then `user` rows), then each vCPU
//! ascending; rows within a group by count, descending.

use crate::model::{Row, View, VmView};

/// The header line's columns.
pub const COLUMNS: [&str; 24] = [
    "vm_pid",
    "vm_name",
    "vcpu",
    "isa",
    "reason",
    "name",
    "hlt",
    "count",
    "in_flight",
    "timed",
    "rate_per_s",
    "samples_pct",
    "time_pct",
    "total_ns",
    "min_ns",
    "max_ns",
    "mean_ns",
    "p50_ns",
    "p99_ns",
    "p999_ns",
    "wait_ns",
    "blocked_ns",
    "host_cpu_pct",
    "steal_pct",
];

/// The whole view as CSV, header line first.
pub fn render(view: &View) -> String {
    let mut out = COLUMNS.join(",");
    out.push('\n');
    let mut vms: Vec<_> = view.vms.iter().collect();
    vms.sort_by_key(|v| v.pid);
    for vm in vms {
        let mut line = |vcpu: &str, r: &Row, cpu| {
            out.push_str(&row(vm.pid, &vm.name, vcpu, r, view.sched_split, cpu));
            out.push('\n');
        };
        let cpu = vm_cpu(vm);
        for r in vm.reasons.iter().chain(&vm.userspace) {
            line("all", r, cpu);
        }
        let mut vcpus: Vec<_> = vm.vcpus.iter().collect();
        vcpus.sort_by_key(|c| c.vcpu);
        for c in vcpus {
            let id = c.vcpu.to_string();
            for r in c.reasons.iter().chain(&c.userspace) {
                line(&id, r, [c.cpu_pct, c.steal_pct]);
            }
        }
    }
    out
}

/// The `host_cpu_pct` and `steal_pct` of a VM's `all` rows.
pub fn vm_cpu(vm: &VmView) -> [Option<f64>; 2] {
    let c = vm.host_cpu;
    [c.map(|c| c.all_pct), c.and_then(|c| c.vcpu_wait_pct)]
}

/// One row's line (no line end), in [`COLUMNS`] order; `split`: the time split was measured;
/// `cpu`: its host CPU and steal.
pub fn row(pid: u32, vm: &str, vcpu: &str, r: &Row, split: bool, cpu: [Option<f64>; 2]) -> String {
    let measured = |v: u64| if split { v.to_string() } else { String::new() };
    let p = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.4}"));
    let q = |v: u64| {
        if r.has_percentiles() {
            v.to_string()
        } else {
            String::new()
        }
    };
    [
        key_fields(pid, vm, vcpu, &r.isa_name, r.reason, &r.name),
        r.hlt.to_string(),
        r.count.to_string(),
        r.in_flight.to_string(),
        r.timed.to_string(),
        format!("{:.3}", r.rate_per_s),
        format!("{:.4}", r.samples_pct),
        format!("{:.4}", r.time_pct),
        r.total_ns.to_string(),
        r.min_ns.to_string(),
        r.max_ns.to_string(),
        format!("{:.1}", r.mean_ns),
        q(r.p50_ns),
        q(r.p99_ns),
        q(r.p999_ns),
        measured(r.wait_ns),
        measured(r.blocked_ns),
        p(cpu[0]),
        p(cpu[1]),
    ]
    .join(",")
}

/// The first six columns (`vm_pid` … `name`), which every CSV of rows by (VM, vCPU, reason)
/// starts with (this report's and the heatmap's).
pub fn key_fields(pid: u32, vm: &str, vcpu: &str, isa: &str, reason: u32, name: &str) -> String {
    [
        pid.to_string(),
        quote(vm),
        vcpu.to_string(),
        quote(isa),
        reason.to_string(),
        quote(name),
    ]
    .join(",")
}

/// RFC 4180: quoted when it holds a comma, quote, CR or LF; quotes doubled.
pub(crate) fn quote(v: &str) -> String {
    if v.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v.to_string()
    }
}
