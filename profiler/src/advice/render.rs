//! Text and JSON forms of a [`Report`]. JSON: `{"findings": [{"rule", "severity", "title",
//! "evidence", "advice": {"qemu", "libvirt", "effect"}, "source"}, ...], "vms": [...],
//! "notes": [...]}`, most important first.

use std::fmt::Write;

use super::{Finding, Report};
use crate::text::printable;

/// Pretty JSON of the report (never fails: the types are plain data).
pub fn render_json(r: &Report) -> String {
    serde_json::to_string_pretty(r).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

fn finding(out: &mut String, i: usize, f: &Finding) {
    let _ = writeln!(
        out,
        "  {i}. [{}] {} {}",
        f.severity.label(),
        f.rule,
        printable(&f.title)
    );
    for e in &f.evidence {
        let _ = writeln!(out, "       evidence: {}", printable(e));
    }
    for (k, v) in [
        ("qemu", &f.advice_qemu),
        ("libvirt", &f.advice_libvirt),
        ("effect", &f.effect),
        ("source", &f.source),
    ] {
        if !v.is_empty() {
            let _ = writeln!(out, "       {k:<8} {}", printable(v));
        }
    }
}

/// Human-readable report, one block per VM, most important finding first.
pub fn render_text(r: &Report) -> String {
    let mut out = String::new();
    if r.vms.is_empty() {
        out.push_str("no VMs in the profile\n");
    }
    for vm in &r.vms {
        let _ = writeln!(out, "VM {} (pid {})", printable(&vm.name), vm.pid);
        let _ = writeln!(out, "  guest:   {}", printable(&vm.guest));
        if !vm.config.is_empty() {
            let _ = writeln!(out, "  config:  {}", printable(&vm.config.join(",")));
        }
        if let Some(p) = vm
            .findings
            .iter()
            .find(|f| Some(&f.rule) == vm.profile.as_ref())
        {
            let _ = writeln!(out, "  {}", printable(&p.title));
        }
        if vm.findings.is_empty() {
            out.push_str("  no findings\n");
        }
        for (i, f) in vm.findings.iter().enumerate() {
            finding(&mut out, i + 1, f);
        }
        for n in &vm.notes {
            let _ = writeln!(out, "  note: {}", printable(n));
        }
        out.push('\n');
    }
    for n in &r.notes {
        let _ = writeln!(out, "note: {}", printable(n));
    }
    out
}
