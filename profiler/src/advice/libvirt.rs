//! VM configuration from a libvirt domain XML (or the status file wrapping it): `<hyperv>`
//! features, `<kvm><hidden>`, `<cpu>` features, `<clock>` timers, pinning, libosinfo id.
//! Parsed by the shared, limited reader [`crate::vm::xml::parse`]: a file that is not
//! well-formed or breaks a limit yields no configuration, never a panic.

use super::config::{canonical, parse_bool, ConfigSource, VmConfig};
use crate::vm::xml::{self, Element};

/// libvirt `<hyperv>` child name → QEMU flag (libvirt docs/formatdomain.rst).
fn hv_flag(child: &str) -> String {
    match child {
        "vendor_id" => "hv-vendor-id".into(),
        other => canonical(&format!("hv-{other}")),
    }
}

/// Parses a domain XML (or a `/run/libvirt/qemu/NAME.xml` status file). Unknown or malformed
/// parts are ignored.
pub fn parse_libvirt_xml(text: &str) -> VmConfig {
    let mut c = VmConfig::default();
    let Ok(els) = xml::parse(text) else {
        return c;
    };
    if !els.iter().any(|e| e.name == "domain") {
        return c;
    }
    c.source = ConfigSource::Libvirt;
    // libvirt states pinning explicitly: no <vcpupin> means floating vCPUs.
    c.pinned = Some(false);
    // Depth is capped by the reader, so walking up is cheap.
    let ancestors = |e: &Element| {
        std::iter::successors(e.parent, |&i| els[i].parent).map(|i| els[i].name.as_str())
    };
    for t in &els {
        let parent = ancestors(t).next().unwrap_or("");
        let attr = |name: &str| t.attr(name).map(str::to_string);
        let state = t.attr("state").and_then(parse_bool);
        match (parent, t.name.as_str()) {
            ("features", "hyperv") if t.attr("mode") == Some("passthrough") => {
                c.passthrough = true;
            }
            ("features", "hyperv") => {}
            ("hyperv", child) => {
                let Some(on) = state else { continue };
                let flag = hv_flag(child);
                if flag == "hv-spinlocks" {
                    c.spinlocks = attr("retries").and_then(|r| super::config::parse_num(&r));
                }
                c.hv.insert(flag, on);
            }
            // <stimer><direct/></stimer>, <tlbflush><direct/><extended/></tlbflush>
            ("stimer", "direct") if ancestors(t).any(|a| a == "hyperv") => {
                if let Some(on) = state {
                    c.hv.insert("hv-stimer-direct".into(), on);
                }
            }
            ("tlbflush", "direct" | "extended") if ancestors(t).any(|a| a == "hyperv") => {
                if let Some(on) = state {
                    let f = if t.name == "direct" {
                        "hv-tlbflush-direct"
                    } else {
                        "hv-tlbflush-ext"
                    };
                    c.hv.insert(f.into(), on);
                }
            }
            ("kvm", "hidden") => c.kvm_hidden = state == Some(true),
            ("cpu", "feature") => {
                let name = attr("name").unwrap_or_default();
                let policy = attr("policy").unwrap_or_else(|| "require".into());
                let on = !matches!(policy.as_str(), "disable" | "forbid");
                match name.as_str() {
                    "hypervisor" => c.hypervisor_hidden = !on,
                    "vmx" | "svm" => c.nested = Some(on),
                    "invtsc" => c.invtsc = Some(on),
                    "x2apic" => c.x2apic = Some(on),
                    _ => {}
                }
            }
            ("domain", "cpu") => {
                c.cpu_model = attr("mode");
            }
            (_, "clock") => {
                if let Some(o) = attr("offset") {
                    c.rtc_base = Some(if o == "localtime" { o } else { "utc".into() });
                }
            }
            ("clock", "timer") => {
                let name = attr("name").unwrap_or_default();
                let present = attr("present").and_then(|p| parse_bool(&p));
                match name.as_str() {
                    "hypervclock" => {
                        if let Some(p) = present {
                            c.hv.insert("hv-time".into(), p);
                        }
                    }
                    "hpet" => c.hpet = present,
                    "pit" => {
                        if let Some(tp) = attr("tickpolicy") {
                            c.pit_policy = Some(tp);
                        }
                    }
                    "tsc" => {
                        if let Some(f) = attr("frequency") {
                            c.tsc_frequency = Some(f);
                        }
                    }
                    _ => {}
                }
            }
            ("domain", "vcpu") => c.vcpus = t.text.parse().ok(),
            ("domain", "on_crash") => c.on_crash = Some(t.text.clone()),
            ("cputune", "vcpupin") => c.pinned = Some(true),
            (_, "libosinfo:os") => c.os_hint = attr("id"),
            _ => {}
        }
    }
    c
}
