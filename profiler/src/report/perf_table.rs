//! `perf kvm stat report --stdio` tables, byte for byte in perf's layout (print_result of
//! tools/perf/builtin-kvm.c with 40-column names), from a kvmprof session.
//!
//! ```text
//! \n\n
//! Analyze events for all VMs, all VCPUs:\n\n          ("pid(s) 1234, " / "VCPU 3:" variants)
//! %40s %10s %9s %9s %11s %11s %16s \n\n                 (header; note the trailing space)
//! %40s %10llu %8.2f%% %8.2f%% %9.2fus %9.2fus %9.2fus ( +-%7.2f%% )\n   (one per reason)
//! \nTotal Samples:%lu, Total events handled time:%.2fus.\n\n
//! ```
//! Everything perf prints keeps perf's meaning: Samples are exits with a handling time,
//! Samples% and Time% are shares of the whole table, HLT included (so HLT's idle time dominates
//! Time%, as in perf). kvmprof's additions come after the footer on lines starting with "# ":
//! HLT's share and the totals without it, exits still in flight, VM names, counters.
//! `( +- x% )` is estimated from the latency histogram (see `rows::rel_stderr_pct`); a row read
//! from perf text prints the value perf printed for it, when one printed row made it; other
//! rows without a histogram show `n/a` there, and in the percentile columns.

pub use super::perf_layout::TableOptions;
use super::{
    evidence,
    perf_layout::{
        classic_row, footer, header, ClassicRow, Event, PerfLayout, SortBy, NAME_WIDTH,
        OLD_NAME_WIDTH,
    },
    perf_table64,
    printf::{f, s},
    rows::{notes, pct, rel_stderr_pct, select_user, table_rows, timed_sorted, Ties},
    Data, ReportError, Scope,
};
use crate::model::{Row, VmSelector, VmView};
use crate::sample::Key;
use crate::text::printable;

/// The tables `opts` asks for, concatenated.
pub fn render(data: &Data, opts: &TableOptions) -> Result<String, ReportError> {
    let opts = &scoped(data, opts);
    let view = &data.view;
    asks_what_is_there(view, opts)?;
    let mut scopes: Vec<Option<&VmView>> = Vec::new();
    match &opts.vm {
        Some(w) => scopes.push(Some(w.find(view)?)),
        None => {
            scopes.push(None);
            if opts.per_vm && view.vms.len() > 1 {
                let mut vms: Vec<&VmView> = view.vms.iter().collect();
                vms.sort_by_key(|v| v.pid);
                scopes.extend(vms.into_iter().map(Some));
            }
        }
    }
    let mut out = String::new();
    for (i, vm) in scopes.into_iter().enumerate() {
        out.push_str(&analyze_line(vm, opts.vcpu, data.scope.as_ref()));
        match (opts.event, opts.layout) {
            (Event::Vmexit, PerfLayout::Classic) => exit_table(&mut out, data, vm, opts, i == 0),
            (Event::Vmexit, PerfLayout::V6_4) => perf_table64::exit_table(&mut out, view, vm, opts),
            (ev, PerfLayout::Classic) => {
                evidence::table(&mut out, data, ev, vm, opts.vcpu, opts.sort)?
            }
            (ev, PerfLayout::V6_4) => {
                evidence::per_vm_only(ev, opts.vcpu)?;
                perf_table64::counts_table(&mut out, data, ev, vm, opts.sort)
            }
        }
    }
    Ok(out)
}

/// A `--vcpu` no selected VM has, or a sort by p99 where no row has percentiles (perf text),
/// would print an empty or arbitrary table: say so instead.
fn asks_what_is_there(view: &crate::model::View, o: &TableOptions) -> Result<(), ReportError> {
    let vms: Vec<&VmView> = match &o.vm {
        Some(w) => vec![w.find(view)?],
        None => view.vms.iter().collect(),
    };
    if let (Some(n), Event::Vmexit) = (o.vcpu, o.event) {
        let mut have: Vec<u32> = vms
            .iter()
            .flat_map(|v| v.vcpus.iter().map(|c| c.vcpu))
            .collect();
        have.sort_unstable();
        have.dedup();
        if !vms.is_empty() && !have.contains(&n) {
            let list: Vec<String> = have.iter().map(u32::to_string).collect();
            let (which, whose) = match o.vm {
                Some(_) => ("that VM", "its"),
                None => ("any VM", "their"),
            };
            let list = if list.is_empty() {
                "none".into()
            } else {
                list.join(", ")
            };
            return Err(ReportError::Usage(format!(
                "no vCPU {n} in {which}: {whose} vCPUs are {list}; pick one of those with --vcpu"
            )));
        }
    }
    let rows = vms.iter().flat_map(|v| v.reasons.iter());
    if o.sort == SortBy::P99 && !rows.clone().any(Row::has_percentiles) && rows.count() > 0 {
        return Err(ReportError::Usage(
            "no percentiles to sort by (perf text has none): use -k sample, time, max_t, min_t, \
             mean_t or name"
                .into(),
        ));
    }
    Ok(())
}

/// `opts` with the perf text's own VM and vCPU where it asks for none: a table read from
/// `perf kvm stat report -p 777 --vcpu 1` prints back as pid 777's vCPU 1, not as all of them.
fn scoped(data: &Data, opts: &TableOptions) -> TableOptions {
    let mut o = opts.clone();
    let Some(sc) = &data.scope else { return o };
    // Only a VM the view has: a perf text of MSR / IO port tables only has no exit rows, so
    // no VM; its tables are that pid's all the same (see analyze_line).
    if o.vm.is_none()
        && data
            .view
            .vms
            .iter()
            .any(|v| sc.pids.first() == Some(&v.pid))
    {
        o.vm = sc
            .pids
            .first()
            .and_then(|p| VmSelector::parse(&p.to_string()).ok());
    }
    if o.vcpu.is_none() && o.event == Event::Vmexit {
        o.vcpu = sc.vcpu;
    }
    o
}

/// perf's print_vcpu_info, after the two newlines print_result starts with; a VM imported
/// from perf text with several pids (`pid(s) 12,34`, which perf cannot tell apart) keeps them.
fn analyze_line(vm: Option<&VmView>, vcpu: Option<u32>, scope: Option<&Scope>) -> String {
    let pids = |sc: &Scope| {
        let pids: Vec<String> = sc.pids.iter().map(u32::to_string).collect();
        format!("pid(s) {}, ", pids.join(","))
    };
    let who = match (vm, scope) {
        // Perf text of one pid's tables without a VM of that pid (MSR / IO port tables only).
        (None, Some(sc)) if !sc.pids.is_empty() => pids(sc),
        (None, _) => "all VMs, ".to_string(),
        (Some(v), Some(sc)) if sc.pids.first() == Some(&v.pid) => pids(sc),
        (Some(v), _) => format!("pid(s) {}, ", v.pid),
    };
    let cpus = match vcpu {
        None => "all VCPUs:".to_string(),
        Some(n) => format!("VCPU {n}:"),
    };
    // The VM's name, on the line before perf's own (after its table it read as the next one's).
    // (Not for a VM known only by its pid, as in perf text: the Analyze line says it all.)
    let label = match vm {
        Some(v) if v.name != format!("pid {}", v.pid) => {
            format!("# VM {} (pid {})\n", printable(&v.name), v.pid)
        }
        _ => String::new(),
    };
    format!("\n\n{label}Analyze events for {who}{cpus}\n\n")
}

/// Bytes of a row up to the end of its "( +- x% )" column, where percentile columns start.
const ROW_AVG_END: usize = NAME_WIDTH + 1 + 10 + 1 + 9 + 1 + 9 + 1 + 11 + 1 + 11 + 1 + 26;

fn exit_table(out: &mut String, data: &Data, vm: Option<&VmView>, o: &TableOptions, first: bool) {
    let view = &data.view;
    let (vms, mut all) = table_rows(view, vm, o.vcpu);
    // A host whose KVM never emits kvm_exit (a software backend) still returns to the VMM:
    // those are what it can measure, so they are the table (and it says so).
    let vmm = all.iter().all(|r| r.timed == 0) && {
        let user = select_user(&vms, o.vcpu);
        let any = user.iter().any(|r| r.timed > 0);
        if any {
            all = user;
        }
        any
    };
    // A table read from perf before 6.4 (its `%20s` names) prints its ties in that perf's order.
    let ties = if data.name_width() == OLD_NAME_WIDTH {
        Ties::ByCode
    } else {
        Ties::ByName
    };
    let rows = timed_sorted(&all, o.sort, ties);

    let total_t: u64 = rows.iter().map(|r| r.total_ns).sum();
    // Counts without times (bcc kvmexit, a table trimmed to its shares): no time is made up.
    if total_t == 0 && !rows.is_empty() && rows.iter().all(|r| r.max_ns == 0) {
        return untimed_table(out, &rows, data.name_width());
    }
    // A table read from a perf that printed no Min/Max has none: no made-up 0.00us. An empty
    // table has them, as perf prints its header whatever the rows.
    let extremes = rows.is_empty() || rows.iter().any(|r| r.max_ns > 0);
    let width = data.name_width();
    let mut h = header(Event::Vmexit.header(), width, true, extremes);
    if o.percentiles {
        let end = ROW_AVG_END + width - NAME_WIDTH - if extremes { 0 } else { 24 };
        h = format!("{h:<end$}");
        for p in ["p50", "p99", "p99.9"] {
            h.push_str(&format!(" {}", s(11, p)));
        }
    }
    out.push_str(&h);
    out.push_str("\n\n");

    let total_n: u64 = rows.iter().map(|r| r.timed).sum();
    let mut missing_hist = false;
    for r in &rows {
        let err = imported_err(data, &vms, o.vcpu, r).or_else(|| rel_stderr_pct(r));
        missing_hist |= err.is_none() || (o.percentiles && !r.has_percentiles());
        out.push_str(&classic_row(&ClassicRow {
            name: &printable(&r.name),
            width,
            count: r.timed,
            count_pct: pct(r.timed as f64, total_n as f64),
            time_pct: pct(r.total_ns as f64, total_t as f64),
            extremes: extremes.then_some((r.min_ns, r.max_ns)),
            mean_ns: r.mean_ns,
            rel_err: err,
        }));
        if o.percentiles {
            for v in [r.p50_ns, r.p99_ns, r.p999_ns] {
                let cell = if r.has_percentiles() {
                    format!("{}us", f(9, 2, v as f64 / 1e3))
                } else {
                    s(11, "n/a")
                };
                out.push_str(&format!(" {cell}"));
            }
        }
        out.push('\n');
    }
    out.push_str(&footer(total_n, Some(total_t)));

    let c = &view.counters;
    let lost = c.stats_map_full + c.pending_map_full + c.read_error;
    if first && lost > 0 {
        out.push_str(&format!("\nLost events: {lost}\n\n"));
    }
    notes(out, &all, &rows, missing_hist);
    if vmm {
        out.push_str(
            "# no exit with kvm_exit here (a KVM that does not emit it, e.g. a software \
             backend): these are the returns of KVM_RUN to the VMM, each timed until the \
             thread's next KVM_RUN\n",
        );
    }
    // Host CPU per VM: in its own table's notes, or here when no per-VM tables follow.
    let per_vm_follows = o.per_vm && view.vms.len() > 1;
    let cpu_of: Vec<&VmView> = match vm {
        Some(v) => vec![v],
        None if !per_vm_follows => view.vms.iter().collect(),
        None => Vec::new(),
    };
    for v in cpu_of {
        if let Some(c) = v.host_cpu {
            let who = match vm {
                Some(_) => String::new(),
                None => format!(" of VM {} (pid {})", printable(&v.name), v.pid),
            };
            out.push_str(&format!("# host CPU{who}: {}\n", c.describe()));
        }
    }
    if first {
        let bad: Vec<String> = c
            .losses()
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| format!("{k}={n}"))
            .collect();
        if !bad.is_empty() {
            out.push_str(&format!("# kvmprof counters: {}\n", bad.join(" ")));
        }
    }
}

/// perf's own `( +- x% )` of a row read from perf text, when exactly one printed row made it
/// (a row summed over several vCPUs, VMs or intervals has none: n/a).
fn imported_err(data: &Data, vms: &[&VmView], vcpu: Option<u32>, r: &Row) -> Option<f64> {
    let mut keys = vms.iter().flat_map(|v| {
        v.vcpus
            .iter()
            .filter(move |c| vcpu.is_none_or(|n| c.vcpu == n))
            .filter(|c| {
                c.reasons
                    .iter()
                    .any(|x| (x.isa, x.reason) == (r.isa, r.reason) && x.timed > 0)
            })
            .map(|c| Key {
                tgid: v.pid,
                vcpu: c.vcpu,
                isa: r.isa,
                reason: r.reason,
            })
    });
    let key = keys.next()?;
    if keys.next().is_some() {
        return None;
    }
    data.rel_err.get(&key).copied()
}

/// Exit counts known without their times: Samples and Samples% only, as the sub-reason tables.
fn untimed_table(out: &mut String, rows: &[&Row], width: usize) {
    out.push_str(&header(Event::Vmexit.header(), width, false, false));
    out.push_str("\n\n");
    let total: u64 = rows.iter().map(|r| r.timed).sum();
    for r in rows {
        out.push_str(&format!(
            "{} {:>10} {}%\n",
            s(width, &printable(&r.name)),
            r.timed,
            f(8, 2, pct(r.timed as f64, total as f64))
        ));
    }
    out.push_str(&footer(total, None));
    out.push_str("# the input held exit counts without times: no Time%/Min/Max/Avg here\n");
}
