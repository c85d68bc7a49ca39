//! Text and JSON forms of a [`Report`]. JSON: `{"findings": [{"rule", "severity", "title",
//! "evidence", "advice": {"qemu", "libvirt", "effect"}, "source"}, ...], "vms": [...],
//! "notes": [...]}`, most important first. Each VM carries `host_cpu` (`{"total_pct",
//! "vcpu_pct", "vmm_pct"}` in % of one core, or null).

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
        ("host", &f.advice_host),
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
        // Perf text of all VMs has no VM to name: no "VM all VMs (pid 0)".
        match vm.pid {
            0 => writeln!(out, "{} (the input names no VM)", printable(&vm.name)),
            _ => writeln!(out, "VM {} (pid {})", printable(&vm.name), vm.pid),
        }
        .ok();
        let _ = writeln!(out, "  guest:   {}", printable(&vm.guest));
        if let Some(c) = vm.host_cpu {
            let _ = writeln!(out, "  host CPU: {}", c.describe());
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        advice::{analyze, HostFacts, Input},
        decode::ExitNames,
        sample::{Key, Sample, Stat, VmCpu, VmInfo},
    };

    /// Two samples 10 s apart of a VM that exits and, if `cpu`, has CPU times: 3.4 s of CPU,
    /// 3 s of it on its vCPU threads, 1.2 s of that in the guest.
    fn input(cpu: bool) -> Input {
        let at = |s: u64, total: u64, vcpu: u64| {
            let mut x = Sample {
                mono_ns: s * 1_000_000_000,
                ..Default::default()
            };
            let mut st = Stat::default();
            st.record(2_000, s * 100);
            let k = Key {
                tgid: 9,
                vcpu: 0,
                isa: 1,
                reason: 30,
            };
            x.stats.insert(k, st);
            let vm = VmInfo {
                pid: 9,
                name: "win".into(),
                ..Default::default()
            };
            x.vms.insert(9, vm);
            if cpu {
                let c = VmCpu {
                    total_ns: total * 1_000_000,
                    vcpu_ns: vcpu * 1_000_000,
                    guest_ns: vcpu * 400_000,
                    vcpu_threads: 2,
                    ..Default::default()
                };
                x.vm_cpu.insert(9, c);
            }
            x
        };
        let names = ExitNames::builtin();
        Input::from_samples(
            &at(10, 500, 400),
            &at(20, 3_900, 3_400),
            &names,
            HostFacts::default(),
        )
    }

    #[test]
    fn host_cpu_per_vm_in_text_and_json() {
        let rep = analyze(&input(true));
        let text = render_text(&rep);
        assert!(
            text.contains(
                "  host CPU: 34.0% of a core: guest 12.0, vCPU threads outside the guest 18.0, \
                 other VMM threads 4.0\n"
            ),
            "{text}"
        );
        let j: serde_json::Value = serde_json::from_str(&render_json(&rep)).unwrap();
        let c = &j["vms"][0]["host_cpu"];
        assert_eq!(c["total_pct"], 34.0, "{j}");
        assert_eq!(c["vcpu_pct"], 30.0, "{j}");
        assert_eq!(c["vmm_pct"], 4.0, "{j}");
        assert!(
            (c["guest_pct"].as_f64().unwrap() - 12.0).abs() < 1e-9,
            "{j}"
        );
        // Without CPU times: null, and no line rather than a made-up 0.
        let rep = analyze(&input(false));
        assert!(!render_text(&rep).contains("host CPU"));
        let j: serde_json::Value = serde_json::from_str(&render_json(&rep)).unwrap();
        assert!(j["vms"][0]["host_cpu"].is_null(), "{j}");
    }
}
