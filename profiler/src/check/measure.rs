//! What each threshold measures on one VM: whole-run values from the view, storms and frame
//! windows from the per-interval views.
//!
//! Windows: the caller samples every `interval` and passes one view per interval. A window of
//! `w` is built from consecutive intervals until they cover `w`; when one interval is already
//! longer than `w` (e.g. 1 s sampling, 16.7 ms frames) the interval's average stands for every
//! window inside it, so a burst shorter than the interval is spread over it and the worst
//! window is UNDER-estimated by up to interval / w. Handling time counts in the interval in
//! which the exit completed (its kvm_entry).

use super::outcome::{Measured, Outcome};
use super::{thresholds::resolve_reason, Kind, Planned};
use crate::{
    decode::ExitNames,
    model::{Row, VcpuView, View, VmView},
};

/// Highest `value / duration` over windows of `window_s`; (rate, start offset s, approximate).
pub(crate) fn windowed_max(items: &[(f64, f64)], window_s: f64) -> Option<(f64, f64, bool)> {
    let items: Vec<(f64, f64)> = items.iter().copied().filter(|(d, _)| *d > 0.0).collect();
    let mut best: Option<(f64, f64, bool)> = None;
    let mut start = 0.0;
    for i in 0..items.len() {
        let (mut d, mut v) = (0.0, 0.0);
        let mut covered = false;
        for &(di, vi) in &items[i..] {
            d += di;
            v += vi;
            if d >= window_s * 0.999 {
                covered = true;
                break;
            }
        }
        // A tail shorter than the window is no window, unless the whole run is that short.
        if covered || i == 0 {
            let rate = v / d;
            let approx = d > window_s * 1.5 || !covered;
            if best.is_none_or(|b| rate > b.0) {
                best = Some((rate, start, approx));
            }
        }
        if !covered {
            break;
        }
        start += items[i].0;
    }
    best
}

pub(super) fn base(isa: u32, reason: u32) -> u32 {
    if isa == profiler_common::ISA_VMX {
        reason & 0xffff
    } else {
        reason
    }
}

/// Rows of `rows` that are exit reason `name`.
pub(crate) fn matching<'a>(rows: &'a [Row], name: &str, names: &ExitNames) -> Vec<&'a Row> {
    let codes = resolve_reason(name, names);
    rows.iter()
        .filter(|r| {
            codes
                .iter()
                .any(|&(i, c)| r.isa == i && base(r.isa, r.reason) == c)
                || r.name.eq_ignore_ascii_case(name.trim())
        })
        .collect()
}

fn busy_ns(rows: &[Row]) -> u64 {
    rows.iter().filter(|r| !r.hlt).map(|r| r.total_ns).sum()
}

fn vm_in<'a>(v: &'a View, vm: &VmView) -> Option<&'a VmView> {
    v.vms.iter().find(|m| m.pid == vm.pid)
}

fn fmt_window(start: f64, approx: bool, interval_note: &str) -> String {
    let mut s = format!("window at +{start:.2} s");
    if approx {
        s.push_str(&format!(" (approximate: {interval_note})"));
    }
    s
}

const LONG: &str =
    "sampling interval longer than the window, so a shorter burst is averaged over it";

/// Measures one planned threshold on one VM.
pub(crate) fn measure(
    p: &Planned,
    vm: &VmView,
    view: &View,
    series: &[View],
    window_s: f64,
    names: &ExitNames,
) -> Outcome {
    let secs = view.duration_s;
    let rated = |f: &dyn Fn() -> Outcome| {
        if secs > 0.0 {
            f()
        } else {
            Outcome::Error("span length unknown (0 s): rates cannot be measured".into())
        }
    };
    match &p.kind {
        Kind::ExitsPerS => rated(&|| {
            let top = vm.reasons.iter().max_by_key(|r| r.count);
            Outcome::Value(Measured {
                value: vm.exits_per_s,
                worst_reason: top.map(|r| r.name.to_string()),
                detail: top.map_or(String::new(), |r| {
                    format!("top reason {} {:.0}/s", r.name, r.rate_per_s)
                }),
                ..Default::default()
            })
        }),
        Kind::ExitsPerVcpu => rated(&|| {
            let v = vm
                .vcpus
                .iter()
                .max_by(|a, b| a.exits_per_s.total_cmp(&b.exits_per_s));
            per_vcpu(v, |v| v.exits_per_s, |v| v.reasons.first())
        }),
        Kind::Overhead => rated(&|| {
            let v = vm
                .vcpus
                .iter()
                .max_by(|a, b| a.overhead_pct.total_cmp(&b.overhead_pct));
            let top = vm.top_reason();
            Outcome::Value(Measured {
                value: vm.overhead_pct,
                worst_vcpu: v.map(|v| v.vcpu),
                worst_reason: top.map(|r| r.name.to_string()),
                detail: match (v, top) {
                    (Some(v), Some(r)) => format!(
                        "busiest vCPU {} at {:.2} %; {} is {:.0} % of exit time",
                        v.vcpu, v.overhead_pct, r.name, r.time_pct
                    ),
                    _ => String::new(),
                },
            })
        }),
        Kind::P99 | Kind::MaxExit => {
            let p99 = matches!(p.kind, Kind::P99);
            let key = |r: &Row| if p99 { r.p99_ns } else { r.max_ns };
            let Some(r) = vm
                .reasons
                .iter()
                .filter(|r| !r.hlt && r.timed > 0)
                .max_by_key(|r| key(r))
            else {
                return Outcome::Skip("no timed non-HLT exits".into());
            };
            if p99 && !r.has_percentiles() {
                return Outcome::Error(NO_HIST.into());
            }
            let same = |rows: &[Row]| -> Vec<Row> {
                rows.iter()
                    .filter(|x| x.isa == r.isa && x.reason == r.reason)
                    .cloned()
                    .collect()
            };
            let detail = format!("{} over {} timed exits", r.name, r.timed);
            worst_latency(vm, r, &key, &same, detail)
        }
        Kind::Storm => storm(vm, view, series, window_s, |m| m.exits),
        Kind::FrameFrac(hz) | Kind::FrameUs(hz) => {
            frame(vm, view, series, *hz, matches!(p.kind, Kind::FrameUs(_)))
        }
        Kind::ReasonRate(name) | Kind::ReasonVcpuRate(name) => rated(&|| {
            let count =
                |rows: &[Row]| -> u64 { matching(rows, name, names).iter().map(|r| r.count).sum() };
            let busiest = vm.vcpus.iter().max_by_key(|v| count(&v.reasons));
            let vcpu_rate = busiest.map_or(0.0, |v| count(&v.reasons) as f64 / secs);
            let value = if matches!(p.kind, Kind::ReasonRate(_)) {
                count(&vm.reasons) as f64 / secs
            } else {
                vcpu_rate
            };
            Outcome::Value(Measured {
                value,
                worst_vcpu: busiest.filter(|v| count(&v.reasons) > 0).map(|v| v.vcpu),
                worst_reason: Some(name.clone()),
                detail: busiest
                    .filter(|v| count(&v.reasons) > 0)
                    .map_or("not seen".into(), |v| {
                        format!("busiest vCPU {} at {vcpu_rate:.0}/s", v.vcpu)
                    }),
            })
        }),
        Kind::ReasonP99(name) | Kind::ReasonMax(name) => {
            let p99 = matches!(p.kind, Kind::ReasonP99(_));
            let key = |r: &Row| if p99 { r.p99_ns } else { r.max_ns };
            let rows = matching(&vm.reasons, name, names);
            let Some(r) = rows.iter().filter(|r| r.timed > 0).max_by_key(|r| key(r)) else {
                return Outcome::Skip(format!("no timed {name} exits"));
            };
            if p99 && !r.has_percentiles() {
                return Outcome::Error(NO_HIST.into());
            }
            let same = |rows: &[Row]| -> Vec<Row> {
                matching(rows, name, names).into_iter().cloned().collect()
            };
            worst_latency(vm, r, &key, &same, format!("{} timed exits", r.timed))
        }
        Kind::ReasonStorm(name) => storm(vm, view, series, window_s, |m| {
            matching(&m.reasons, name, names)
                .iter()
                .map(|r| r.count)
                .sum()
        }),
        Kind::Advice(_)
        | Kind::SlowPerS
        | Kind::ReasonSlowPerS(_)
        | Kind::SlowDropped
        | Kind::WaitPct
        | Kind::ReasonWaitPct(_) => Outcome::Error("measured by the caller".into()),
    }
}

/// A p99 threshold on a session without latency histograms (perf text) cannot be measured:
/// passing it at "0 µs" would be a lie.
const NO_HIST: &str = "no latency histograms in this session (perf text has only min/max/avg): \
p99 needs a kvmprof recording or a live run; max_exit_us works on perf text";

/// Row `r`'s latency (`key`, ns) as a measurement in µs, with the vCPU whose rows of the same
/// reason (`same`) have the highest.
fn worst_latency(
    vm: &VmView,
    r: &Row,
    key: &dyn Fn(&Row) -> u64,
    same: &dyn Fn(&[Row]) -> Vec<Row>,
    detail: String,
) -> Outcome {
    let vcpu = vm
        .vcpus
        .iter()
        .flat_map(|v| same(&v.reasons).into_iter().map(move |x| (v.vcpu, key(&x))))
        .max_by_key(|(_, k)| *k);
    Outcome::Value(Measured {
        value: key(r) as f64 / 1e3,
        worst_vcpu: vcpu.map(|v| v.0),
        worst_reason: Some(r.name.to_string()),
        detail,
    })
}

fn per_vcpu(
    v: Option<&VcpuView>,
    value: impl Fn(&VcpuView) -> f64,
    top: impl Fn(&VcpuView) -> Option<&Row>,
) -> Outcome {
    match v {
        None => Outcome::Skip("no vCPUs seen".into()),
        Some(v) => Outcome::Value(Measured {
            value: value(v),
            worst_vcpu: Some(v.vcpu),
            worst_reason: top(v).map(|r| r.name.to_string()),
            detail: format!("vCPU {}", v.vcpu),
        }),
    }
}

/// Highest windowed rate of `count` over the run; the whole view stands in for the series
/// when there is none.
fn storm(
    vm: &VmView,
    view: &View,
    series: &[View],
    window_s: f64,
    count: impl Fn(&VmView) -> u64,
) -> Outcome {
    let items: Vec<(f64, f64)> = if series.is_empty() {
        vec![(view.duration_s, count(vm) as f64)]
    } else {
        series
            .iter()
            .map(|v| (v.duration_s, vm_in(v, vm).map_or(0, &count) as f64))
            .collect()
    };
    match windowed_max(&items, window_s) {
        None => Outcome::Error("span length unknown (0 s): rates cannot be measured".into()),
        Some((rate, start, approx)) => {
            let note = if series.is_empty() {
                "no per-interval views, so the whole-run average stands in"
            } else {
                LONG
            };
            Outcome::Value(Measured {
                value: rate,
                detail: format!(
                    "{} ms {}",
                    (window_s * 1e3).round(),
                    fmt_window(start, approx, note)
                ),
                ..Default::default()
            })
        }
    }
}

/// Worst window of non-HLT handling time per frame, over vCPUs; the mean goes in the detail.
fn frame(vm: &VmView, view: &View, series: &[View], hz: f64, as_us: bool) -> Outcome {
    let frame_s = 1.0 / hz;
    let scale = |frac: f64| {
        if as_us {
            frac * frame_s * 1e6
        } else {
            frac * 100.0
        }
    };
    let mut worst: Option<(f64, u32, f64, bool)> = None;
    for v in &vm.vcpus {
        let items: Vec<(f64, f64)> = if series.is_empty() {
            vec![(view.duration_s, busy_ns(&v.reasons) as f64)]
        } else {
            series
                .iter()
                .map(|s| {
                    let busy = vm_in(s, vm)
                        .and_then(|m| m.vcpus.iter().find(|c| c.vcpu == v.vcpu))
                        .map_or(0, |c| busy_ns(&c.reasons));
                    (s.duration_s, busy as f64)
                })
                .collect()
        };
        if let Some((ns_per_s, start, approx)) = windowed_max(&items, frame_s) {
            let frac = (ns_per_s / 1e9).min(1.0);
            if worst.is_none_or(|w| frac > w.0) {
                worst = Some((frac, v.vcpu, start, approx));
            }
        }
    }
    let Some((frac, vcpu, start, approx)) = worst else {
        return if vm.vcpus.is_empty() {
            Outcome::Skip("no vCPUs seen".into())
        } else {
            Outcome::Error("span length unknown (0 s): frame time cannot be measured".into())
        };
    };
    let mean = vm
        .vcpus
        .iter()
        .map(|v| v.overhead_pct / 100.0)
        .fold(0.0, f64::max);
    let unit = if as_us { " µs" } else { " %" };
    let note = if series.is_empty() {
        "no per-interval views, so the whole-run average stands in"
    } else {
        LONG
    };
    Outcome::Value(Measured {
        value: scale(frac),
        worst_vcpu: Some(vcpu),
        worst_reason: None,
        detail: format!(
            "{:.1} ms frame: worst vCPU {vcpu}, {}; busiest vCPU mean {:.2}{unit} per frame",
            frame_s * 1e3,
            fmt_window(start, approx, note),
            scale(mean)
        ),
    })
}
