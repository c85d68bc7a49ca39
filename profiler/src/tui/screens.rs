//! The screens: VM list, per-VM exit table (perf kvm stat's columns), per-vCPU table; the
//! returns to the VMM are in user.rs.

use ratatui::{
    buffer::Buffer,
    layout::{Constraint, Layout, Rect},
    style::Stylize,
    text::{Line, Span},
    widgets::{Cell, Paragraph, Row as TRow, Widget},
};

use super::{
    fmt::{self, host_cpu},
    widgets::{centered, opt_dur, r, render_table, section, shown, table},
    App, Screen,
};
use crate::{
    model::{Row, VmView},
    text::printable,
};

pub(super) use super::hist::histogram;
use super::user::{no_kvm_exit_note, userspace_only, userspace_table};

const NO_EXITS: &str = "No KVM exits seen yet. Start a VM, or run `kvmprof demo` to start a tiny \
built-in guest.";
/// Screen 1: one line per VM.
pub(super) fn vm_list(app: &App, area: Rect, buf: &mut Buffer) {
    let view = app.view();
    if !view.vms.iter().any(|v| !v.reasons.is_empty()) {
        if view.vms.iter().any(|v| !v.userspace.is_empty()) {
            userspace_only(app, area, buf);
        } else {
            centered(NO_EXITS, area, buf);
        }
        return;
    }
    let vms = app.vms();
    let items = app.items(Screen::Vms);
    // Host CPU always (vhost kernel threads included: an idle VM's network can cost a core);
    // its VMM and vhost parts where there is room.
    const VMM_COLUMN: usize = 6;
    let split = area.width >= 100;
    let rows = vms
        .iter()
        .map(|v| {
            let top = v.top_reason().map_or("-".into(), |r| shown(&r.name));
            let p99 = v.worst_p99_ns();
            let cpu = v.host_cpu;
            let mut cells = vec![
                Cell::from(shown(&v.name)),
                r(v.pid.to_string()),
                r(v.vcpu_count().to_string()),
                r(fmt::rate(v.exits_per_s)),
                r(fmt::pct(v.overhead_pct)),
                r(cpu.map_or("-".into(), |c| fmt::cpu(c.all_pct))),
                r(cpu.and_then(|c| c.vmm_pct).map_or("-".into(), fmt::cpu)),
                r(cpu.and_then(|c| c.vhost_pct).map_or("-".into(), fmt::cpu)),
                Cell::from(format!(" {top}")),
                r(if p99 == 0 { "-".into() } else { fmt::dur(p99) }),
            ];
            if !split {
                cells.drain(VMM_COLUMN..VMM_COLUMN + 2);
            }
            TRow::new(cells)
        })
        .collect();
    let mut widths = vec![
        Constraint::Fill(1),
        Constraint::Length(7),
        Constraint::Length(5),
        Constraint::Length(7),
        Constraint::Length(6),
        Constraint::Length(6),
        Constraint::Length(6),
        Constraint::Length(6),
        Constraint::Length(18),
        Constraint::Length(9),
    ];
    let mut head = vec![
        "VM",
        "PID",
        "vCPUs",
        "Exits/s",
        "Ovh%",
        "CPU%",
        "VMM%",
        "vhost%",
        " Top reason",
        "Worst p99",
    ];
    if !split {
        widths.drain(VMM_COLUMN..VMM_COLUMN + 2);
        head.drain(VMM_COLUMN..VMM_COLUMN + 2);
    }
    let title = format!(" VMs ({}) · Enter: exit table ", vms.len());
    let t = table(rows, widths, &head).block(section(title));
    render_table(t, Some(app.cursor(&items)), area, buf);
}

/// The VM shows returns to the VMM and no kvm_exit at all (a software backend such as PVM).
fn user_only(vm: &VmView) -> bool {
    vm.reasons.is_empty() && !vm.userspace.is_empty()
}

/// The VM's header: one line, or two when the host CPU does not fit on the first. The uuid
/// goes last: on a narrow terminal it is what gets cut.
fn summary(vm: &VmView, width: u16) -> Vec<Line<'static>> {
    let name = format!(" {}", printable(&vm.name));
    let facts = if user_only(vm) {
        // No kvm_exit on this host: no exits, overhead or vCPUs from them to speak of; what is
        // measured is the returns to the VMM (user.rs).
        let rate: f64 = vm.userspace.iter().map(|r| r.rate_per_s).sum();
        let threads = match vm.vcpu_count() {
            0 => String::new(),
            n => format!(" · {n} vCPU threads"),
        };
        format!(
            " pid {}{threads} · {} returns to VMM/s · no kvm_exit: exits not timed",
            vm.pid,
            fmt::rate(rate),
        )
    } else {
        format!(
            " pid {} · {} vCPUs · {} exits/s · overhead {}% · {} in flight",
            vm.pid,
            vm.vcpu_count(),
            fmt::rate(vm.exits_per_s),
            fmt::pct(vm.overhead_pct),
            vm.in_flight(),
        )
    };
    let cpu = host_cpu(vm.host_cpu);
    let uuid = (vm.uuid.as_deref()).map_or(String::new(), |u| format!(" · {}", printable(u)));
    let width_of = |parts: &[&String]| parts.iter().map(|p| p.chars().count()).sum::<usize>();
    let (rest, second) = if cpu.is_empty() {
        (uuid, None)
    } else if width_of(&[&name, &facts, &cpu]) + 3 <= width as usize {
        (format!(" · {cpu}{uuid}"), None)
    } else {
        (String::new(), Some(Line::from(format!(" {cpu}{uuid}"))))
    };
    let first = Line::from(vec![
        Span::from(name).bold(),
        Span::from(format!("{facts}{rest}")),
    ]);
    std::iter::once(first).chain(second).collect()
}

/// Screen 2: the VM's exit table, its returns to the VMM, and its vCPUs.
pub(super) fn vm_detail(app: &App, pid: u32, area: Rect, buf: &mut Buffer) {
    let Some(vm) = app.vm(pid) else {
        centered(format!("VM pid {pid} is gone (Esc: back)"), area, buf);
        return;
    };
    let items = app.items(Screen::Vm(pid));
    let cur = app.cursor(&items);
    let (busy, hlt) = app.ordered(&vm.reasons, &vm.name);
    let n_reasons = busy.len() + hlt.len();
    let (user, _) = app.ordered(&vm.userspace, &vm.name);
    let only_user = user_only(vm);
    let user_h = if user.is_empty() {
        Constraint::Length(0)
    } else if only_user {
        Constraint::Fill(1)
    } else {
        Constraint::Length((user.len() as u16 + 2).min(6))
    };
    // No vCPU known (e.g. a VMM that does not name its threads, on a host without kvm_exit):
    // no empty table.
    let vcpu_h = match vm.vcpus.len() {
        0 => 0,
        n => (n as u16 + 2).min(area.height / 3),
    };
    let summary_lines = summary(vm, area.width);
    // Without kvm_exit the exit table would be empty: a note says why in its place.
    let exits_h = if only_user {
        Constraint::Length(3)
    } else {
        Constraint::Fill(1)
    };
    let [summary, exits, users, vcpus] = Layout::vertical([
        Constraint::Length(summary_lines.len() as u16),
        exits_h,
        user_h,
        Constraint::Length(vcpu_h),
    ])
    .areas(area);
    Paragraph::new(summary_lines).render(summary, buf);

    if only_user {
        no_kvm_exit_note(exits, buf);
    } else {
        let sel = (cur < n_reasons).then_some(cur);
        let title = format!(" VM-EXIT · {} · Enter: histogram ", printable(&vm.name));
        exit_table(&busy, &hlt, sel, app.view().sched_split, title, exits, buf);
    }
    if !user.is_empty() {
        userspace_table(&user, users, buf);
    }

    let rows = vm
        .vcpus
        .iter()
        .map(|c| {
            let top = c.top_reason().map_or("-".into(), |r| shown(&r.name));
            let p99 = c.worst_p99_ns();
            TRow::new(vec![
                Cell::from(c.vcpu.to_string()),
                r(fmt::count(c.exits)),
                r(fmt::rate(c.exits_per_s)),
                r(c.cpu_pct.map_or("-".into(), fmt::cpu)),
                r(c.steal_pct.map_or("-".into(), fmt::cpu)),
                r(fmt::pct(c.overhead_pct)),
                Cell::from(format!(" {top}")),
                r(if p99 == 0 { "-".into() } else { fmt::dur(p99) }),
            ])
        })
        .collect();
    let widths = vec![
        Constraint::Length(5),
        Constraint::Length(8),
        Constraint::Length(8),
        Constraint::Length(6),
        Constraint::Length(6),
        Constraint::Length(6),
        Constraint::Fill(1),
        Constraint::Length(9),
    ];
    let head = [
        "vCPU",
        "Exits",
        "Exits/s",
        "CPU%",
        "Steal%",
        "Ovh%",
        " Top reason",
        "Worst p99",
    ];
    let t = table(rows, widths, &head).block(section(" vCPUs · Enter: per-vCPU table ".into()));
    render_table(t, cur.checked_sub(n_reasons), vcpus, buf);
}

/// Screen 2b: one vCPU's exit table.
pub(super) fn vcpu_detail(app: &App, pid: u32, v: u32, area: Rect, buf: &mut Buffer) {
    let Some((vm, c)) = app
        .vm(pid)
        .and_then(|vm| Some((vm, vm.vcpus.iter().find(|c| c.vcpu == v)?)))
    else {
        centered(
            format!("vCPU {v} of pid {pid} is gone (Esc: back)"),
            area,
            buf,
        );
        return;
    };
    let items = app.items(Screen::Vcpu(pid, v));
    let (busy, hlt) = app.ordered(&c.reasons, &vm.name);
    let (user, _) = app.ordered(&c.userspace, &vm.name);
    let user_h = if user.is_empty() {
        0
    } else {
        (user.len() as u16 + 2).min(6)
    };
    let [summary, exits, users] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Fill(1),
        Constraint::Length(user_h),
    ])
    .areas(area);
    Line::from(vec![
        Span::from(format!(" {} › vCPU {v}", printable(&vm.name))).bold(),
        Span::from(format!(
            "  {} exits · {} exits/s · overhead {}%",
            fmt::count(c.exits),
            fmt::rate(c.exits_per_s),
            fmt::pct(c.overhead_pct)
        )),
    ])
    .render(summary, buf);
    let title = format!(
        " VM-EXIT · {} vCPU {v} · Enter: histogram ",
        printable(&vm.name)
    );
    let split = app.view().sched_split;
    exit_table(
        &busy,
        &hlt,
        Some(app.cursor(&items)),
        split,
        title,
        exits,
        buf,
    );
    if user_h > 0 {
        userspace_table(&user, users, buf);
    }
}

fn head_len(wide: bool, split: bool) -> usize {
    9 + if wide { 2 } else { 0 } + if split { 2 } else { 0 }
}

/// perf kvm stat's columns plus percentiles and rate (and, where the kernel split the time
/// and there is room, the shares spent waiting for a CPU and asleep); HLT below a
/// separator, dimmed.
fn exit_table(
    busy: &[Row],
    hlt: &[Row],
    sel: Option<usize>,
    measured: bool,
    title: String,
    area: Rect,
    buf: &mut Buffer,
) {
    let wide = area.width >= 100;
    let split = measured && area.width >= 116;
    let line = |x: &Row| {
        let mut cells = vec![
            Cell::from(shown(&x.name)),
            r(fmt::count(x.count)),
            r(fmt::pct(x.samples_pct)),
            r(fmt::pct(x.time_pct)),
            r(opt_dur(x, x.min_ns)),
            r(opt_dur(x, x.max_ns)),
            r(if x.timed == 0 {
                "-".into()
            } else {
                fmt::durf(x.mean_ns)
            }),
        ];
        if wide {
            cells.push(r(opt_dur(x, x.p50_ns)));
        }
        cells.push(r(opt_dur(x, x.p99_ns)));
        if wide {
            cells.push(r(opt_dur(x, x.p999_ns)));
        }
        if split {
            let s = x.split(true);
            cells.push(r(s.map_or("-".into(), |s| fmt::pct(s.wait_pct))));
            cells.push(r(s.map_or("-".into(), |s| fmt::pct(s.sleep_pct))));
        }
        cells.push(r(fmt::rate(x.rate_per_s)));
        TRow::new(cells)
    };
    let mut rows: Vec<TRow> = busy.iter().map(line).collect();
    if !hlt.is_empty() {
        // HLT is guest idle time: apart, with its share of all exits and all time.
        let mut sep = vec![Cell::from(format!("── idle: % of all {}", "─".repeat(60)))];
        sep.extend((1..head_len(wide, split)).map(|_| Cell::from("────────")));
        rows.push(TRow::new(sep).dark_gray());
        rows.extend(hlt.iter().map(|x| line(x).dark_gray()));
    }
    let mut head = vec!["Reason", "Samples", "Samp%", "Time%", "Min", "Max", "Avg"];
    let mut widths = vec![Constraint::Fill(1), Constraint::Length(7)];
    widths.extend([Constraint::Length(6); 5]);
    if wide {
        head.push("p50");
        widths.push(Constraint::Length(6));
    }
    head.push("p99");
    widths.push(Constraint::Length(6));
    if wide {
        head.push("p99.9");
        widths.push(Constraint::Length(6));
    }
    if split {
        head.extend(["Wait%", "Sleep%"]);
        widths.extend([Constraint::Length(6); 2]);
    }
    head.push("Rate/s");
    widths.push(Constraint::Length(7));
    // The separator row is not an item: rows below it shift by one.
    let sel = sel.map(|i| if i < busy.len() { i } else { i + 1 });
    render_table(
        table(rows, widths, &head).block(section(title)),
        sel,
        area,
        buf,
    );
}
