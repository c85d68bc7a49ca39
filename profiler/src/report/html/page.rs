//! The page around the charts: head (CSS, a Content-Security-Policy that allows no script
//! and no fetch), the sessions, one section per scope, the advice, the numbers. maud escapes
//! every string it interpolates; untrusted text also passes through `printable`, so control
//! and bidi characters show as escapes instead of reordering what the reader sees.

use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::{
    charts, heat,
    series::{self, Measure, Scope},
    swatch, table, HtmlError, Session,
};
use crate::{advice, text::printable};

/// Nothing may load or run: styles only inline, images only as inline SVG.
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:";

const CSS: &str = "
body { font: 14px/1.4 sans-serif; color: #333; margin: 16px 24px; background: #fff; }
h1 { font-size: 20px; margin: 0 0 6px; }
h2 { font-size: 17px; margin: 22px 0 6px; border-bottom: 1px solid #ddd; }
h3 { font-size: 15px; margin: 14px 0 4px; }
.sessions { margin: 0; padding: 0; list-style: none; }
.sessions li { margin: 2px 0; }
.sw { display: inline-block; width: 12px; height: 12px; margin-right: 6px; vertical-align: -1px; }
.row { display: flex; flex-wrap: wrap; gap: 12px; }
figure { margin: 0; }
figcaption { font-weight: bold; font-size: 13px; margin: 4px 0; }
.note { color: #666; font-size: 13px; margin: 4px 0; }
.warn { color: #8a5a00; }
table.numbers { border-collapse: collapse; font-size: 12px; }
table.numbers th, table.numbers td { padding: 2px 8px; border-bottom: 1px solid #eee; }
table.numbers th { text-align: left; background: #f6f6f6; }
.num { text-align: right; font-variant-numeric: tabular-nums; }
.na { text-align: center; color: #999; }
.finding { margin: 6px 0 10px; }
.sev { font-weight: bold; padding: 0 4px; border-radius: 3px; }
.sev-critical { background: #fdd; } .sev-warn { background: #ffefc6; } .sev-info { background: #e8eef8; }
.finding ul { margin: 2px 0; }
pre { background: #f6f6f6; padding: 4px 8px; margin: 2px 0; white-space: pre-wrap; }
";

pub fn render(sessions: &[(String, Session)]) -> Result<String, HtmlError> {
    let title = match sessions {
        [(label, _)] => format!("kvmprof report: {}", printable(label)),
        many => format!("kvmprof: {} sessions compared", many.len()),
    };
    let per_s = series::per_second(sessions);
    let durations: Vec<f64> = sessions
        .iter()
        .map(|(_, s)| s.data.view.duration_s)
        .collect();
    let (scopes, left_out) = series::scopes(sessions);
    let mut sections = Vec::new();
    for scope in &scopes {
        sections.push(section(scope, sessions, &durations, per_s)?);
    }
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta http-equiv="Content-Security-Policy" content=(CSP);
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                style { (PreEscaped(CSS)) }
            }
            body {
                h1 { (title) }
                (legend(sessions, per_s))
                @for s in &sections { (s) }
                @if left_out > 0 {
                    p.note {
                        (left_out) " more VMs, whose exits cost less, are in the All VMs charts "
                        "and in the table."
                    }
                }
                h2 { "Advice" }
                @for (i, (label, s)) in sessions.iter().enumerate() {
                    (advice_of(i, label, s.advice.as_ref()))
                }
                h2 { "Numbers" }
                (table::numbers(sessions))
            }
        }
    };
    Ok(page.into_string())
}

/// The sessions, each with its color, and what the page cannot show of them.
fn legend(sessions: &[(String, Session)], per_s: bool) -> Markup {
    html! {
        ul.sessions {
            @for (i, (label, s)) in sessions.iter().enumerate() {
                @let v = &s.data.view;
                @let exits: u64 = v.vms.iter().map(|vm| vm.exits).sum();
                li data-session=(i) {
                    span.sw style=(swatch(i)) {}
                    b { (printable(label)) }
                    " · " (v.vms.len()) " VM(s) · " (exits) " exits"
                    @if v.duration_s > 0.0 { " in " (format!("{:.1}", v.duration_s)) " s" }
                    @if !s.data.has_hist {
                        " · perf text: no latency histograms, no percentiles, no duration"
                    }
                    " · " (slow_exits(&s.data))
                }
            }
        }
        @if !per_s {
            p.note { "Totals, not rates: at least one session (perf text) has no duration." }
        }
        @for (label, s) in sessions {
            @for w in &s.data.warnings {
                p.note.warn { (printable(label)) ": " (printable(w)) }
            }
        }
    }
}

/// The session's slow exits of its VMs: how many, the worst, what the kernel dropped.
fn slow_exits(d: &crate::report::Data) -> String {
    let Some(log) = &d.slow else {
        return "slow exits not recorded".into();
    };
    let pids: Vec<u32> = d.view.vms.iter().map(|v| v.pid).collect();
    let s = crate::report::diff_slow::side(log, &pids, d.view.duration_s);
    let mut out = format!("{} slow exits", s.count);
    if let Some(w) = s.worst_ns {
        out.push_str(&format!(" (worst {})", crate::tui::fmt::dur(w)));
    }
    if s.dropped > 0 {
        out.push_str(&format!(", {} dropped by the rate limit", s.dropped));
    }
    out
}

/// One scope: its two bar charts side by side, then its latency histograms.
fn section(
    scope: &Scope,
    sessions: &[(String, Session)],
    durations: &[f64],
    per_s: bool,
) -> Result<Markup, HtmlError> {
    let mut bars = Vec::new();
    for m in [Measure::Exits, Measure::Time] {
        let b = series::bars(scope, durations, m, per_s);
        let svg = (!b.categories.is_empty())
            .then(|| charts::bars(&b))
            .transpose()?;
        bars.push((b.title, svg));
    }
    let mut lats = Vec::new();
    for l in series::latencies(scope) {
        let svg = charts::latency(&l)?;
        lats.push((l.title, svg));
    }
    let mut heats = Vec::new();
    for h in heat::heats(scope, sessions, &series::top_reasons(scope)) {
        heats.push((h.title.clone(), heat::draw(&h)?, h.legend()));
    }
    let no_hist: Vec<&str> = sessions
        .iter()
        .zip(&scope.sessions)
        .filter(|((_, s), present)| present.is_some() && !s.data.has_hist)
        .map(|((label, _), _)| label.as_str())
        .collect();
    Ok(html! {
        section.scope {
            h2 { (printable(&scope.title)) }
            div.row {
                @for (title, svg) in &bars {
                    figure.chart {
                        figcaption { (printable(title)) }
                        @match svg {
                            Some(svg) => (PreEscaped(svg)),
                            None => p.note { "no exits" },
                        }
                    }
                }
            }
            @if !lats.is_empty() {
                div.row {
                    @for (title, svg) in &lats {
                        figure.latency {
                            figcaption { (printable(title)) }
                            (PreEscaped(svg))
                        }
                    }
                }
            }
            @if !heats.is_empty() {
                div.row {
                    @for (title, svg, legend) in &heats {
                        figure.heat {
                            figcaption { (printable(title)) }
                            (PreEscaped(svg))
                            p.note {
                                "exits per interval and octave: "
                                @for ((r, g, b), lo, hi) in legend {
                                    span.sw style=(format!("background:#{r:02x}{g:02x}{b:02x}")) {}
                                    @if lo == hi { (lo) } @else { (lo) "–" (hi) }
                                    " "
                                }
                            }
                        }
                    }
                }
            }
            @for label in &no_hist {
                p.note {
                    (printable(label)) " is perf text: it has no latency histograms to draw "
                    "(perf prints only min, max and mean per reason)."
                }
            }
        }
    })
}

/// One session's advice: per VM, its findings with their evidence and the change to make.
fn advice_of(i: usize, label: &str, rep: Option<&advice::Report>) -> Markup {
    html! {
        h3 { span.sw style=(swatch(i)) {} (printable(label)) }
        @match rep {
            None => p.note { "no advice for this session" },
            Some(rep) => {
                @for vm in &rep.vms {
                    p { b { "VM " (printable(&vm.name)) } " (pid " (vm.pid) ") · guest "
                        (printable(&vm.guest))
                        @if !vm.config.is_empty() { " · config " (printable(&vm.config.join(","))) }
                    }
                    @if vm.findings.is_empty() { p.note { "no findings" } }
                    @for f in &vm.findings { (finding(f)) }
                    @for n in &vm.notes { p.note { "note: " (printable(n)) } }
                }
                @if rep.vms.is_empty() { p.note { "no VMs in the profile" } }
                @for n in &rep.notes { p.note { "note: " (printable(n)) } }
            }
        }
    }
}

fn finding(f: &advice::Finding) -> Markup {
    let sev = match f.severity {
        advice::Severity::Critical => "sev sev-critical",
        advice::Severity::Warn => "sev sev-warn",
        advice::Severity::Info => "sev sev-info",
    };
    html! {
        div.finding data-rule=(f.rule) {
            span class=(sev) { (f.severity.label()) } " " b { (printable(&f.rule)) } " "
            (printable(&f.title))
            @if !f.evidence.is_empty() {
                ul { @for e in &f.evidence { li { "evidence: " (printable(e)) } } }
            }
            @for (k, v) in [("host", &f.advice_host), ("qemu", &f.advice_qemu), ("libvirt", &f.advice_libvirt)] {
                @if !v.is_empty() { div { (k) ": " pre { (lines(v)) } } }
            }
            @for (k, v) in [("effect", &f.effect), ("source", &f.source)] {
                @if !v.is_empty() { div.note { (k) ": " (printable(v)) } }
            }
        }
    }
}

/// Multi-line text (a libvirt XML snippet) with each line made printable, newlines kept.
fn lines(s: &str) -> String {
    s.lines().map(printable).collect::<Vec<_>>().join("\n")
}
