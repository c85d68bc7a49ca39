//! VM configuration from a libvirt domain XML (or the status file wrapping it): `<hyperv>`
//! features, `<kvm><hidden>`, `<cpu>` features, `<clock>` timers, pinning, libosinfo id.
//! A tolerant tag scanner: libvirt writes these files, and a malformed one yields less, never
//! a panic.

use super::config::{canonical, parse_bool, ConfigSource, VmConfig};

/// One start or empty tag with its ancestors' names.
struct Tag<'a> {
    name: &'a str,
    attrs: &'a str,
    /// Enclosing element names, outermost first.
    path: Vec<&'a str>,
    /// Text up to the next `<` (for `<vcpu>8</vcpu>`).
    text: &'a str,
}

fn scan(xml: &str) -> Vec<Tag<'_>> {
    let mut out = Vec::new();
    let mut stack: Vec<&str> = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find('<') {
        rest = &rest[i + 1..];
        if let Some(r) = rest.strip_prefix("!--") {
            rest = r.find("-->").map_or("", |j| &r[j + 3..]);
            continue;
        }
        let Some(end) = rest.find('>') else { break };
        let body = &rest[..end];
        rest = &rest[end + 1..];
        if body.starts_with('?') || body.starts_with('!') {
            continue;
        }
        if let Some(close) = body.strip_prefix('/') {
            let close = close.trim();
            if let Some(pos) = stack.iter().rposition(|n| *n == close) {
                stack.truncate(pos);
            }
            continue;
        }
        let empty = body.ends_with('/');
        let body = body.trim_end_matches('/');
        let (name, attrs) = body
            .split_once(|c: char| c.is_whitespace())
            .unwrap_or((body, ""));
        let text = &rest[..rest.find('<').unwrap_or(rest.len())];
        out.push(Tag {
            name,
            attrs,
            path: stack.clone(),
            text: text.trim(),
        });
        if !empty {
            stack.push(name);
        }
    }
    out
}

/// `name='v'` / `name="v"` in a tag's attribute text.
fn attr(attrs: &str, name: &str) -> Option<String> {
    let mut rest = attrs;
    loop {
        let i = rest.find(name)?;
        let before_ok = i == 0 || rest[..i].ends_with(char::is_whitespace);
        let after = rest[i + name.len()..].trim_start();
        rest = &rest[i + name.len()..];
        let Some(after) = after.strip_prefix('=').filter(|_| before_ok) else {
            continue;
        };
        let after = after.trim_start();
        let q = after.chars().next().filter(|q| *q == '\'' || *q == '"')?;
        let body = &after[1..];
        return Some(
            body[..body.find(q)?]
                .replace("&apos;", "'")
                .replace("&quot;", "\"")
                .replace("&amp;", "&"),
        );
    }
}

/// libvirt `<hyperv>` child name → QEMU flag (libvirt docs/formatdomain.rst).
fn hv_flag(child: &str) -> String {
    match child {
        "vendor_id" => "hv-vendor-id".into(),
        other => canonical(&format!("hv-{other}")),
    }
}

/// Parses a domain XML (or a `/run/libvirt/qemu/NAME.xml` status file). Unknown or malformed
/// parts are ignored.
pub fn parse_libvirt_xml(xml: &str) -> VmConfig {
    let mut c = VmConfig::default();
    let tags = scan(xml);
    if !tags.iter().any(|t| t.name == "domain") {
        return c;
    }
    c.source = ConfigSource::Libvirt;
    // libvirt states pinning explicitly: no <vcpupin> means floating vCPUs.
    c.pinned = Some(false);
    for t in &tags {
        let parent = t.path.last().copied().unwrap_or("");
        let state = attr(t.attrs, "state").and_then(|s| parse_bool(&s));
        match (parent, t.name) {
            ("features", "hyperv") if attr(t.attrs, "mode").as_deref() == Some("passthrough") => {
                c.passthrough = true;
            }
            ("features", "hyperv") => {}
            ("hyperv", child) => {
                let Some(on) = state else { continue };
                let flag = hv_flag(child);
                if flag == "hv-spinlocks" {
                    c.spinlocks =
                        attr(t.attrs, "retries").and_then(|r| super::config::parse_num(&r));
                }
                c.hv.insert(flag, on);
            }
            // <stimer><direct/></stimer>, <tlbflush><direct/><extended/></tlbflush>
            ("stimer", "direct") if t.path.contains(&"hyperv") => {
                if let Some(on) = state {
                    c.hv.insert("hv-stimer-direct".into(), on);
                }
            }
            ("tlbflush", "direct" | "extended") if t.path.contains(&"hyperv") => {
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
                let name = attr(t.attrs, "name").unwrap_or_default();
                let policy = attr(t.attrs, "policy").unwrap_or_else(|| "require".into());
                let on = !matches!(policy.as_str(), "disable" | "forbid");
                match name.as_str() {
                    "hypervisor" => c.hypervisor_hidden = !on,
                    "vmx" | "svm" => c.nested = Some(on),
                    "invtsc" => c.invtsc = Some(on),
                    _ => {}
                }
            }
            ("domain", "cpu") => {
                c.cpu_model = attr(t.attrs, "mode");
            }
            (_, "clock") => {
                if let Some(o) = attr(t.attrs, "offset") {
                    c.rtc_base = Some(if o == "localtime" { o } else { "utc".into() });
                }
            }
            ("clock", "timer") => {
                let name = attr(t.attrs, "name").unwrap_or_default();
                let present = attr(t.attrs, "present").and_then(|p| parse_bool(&p));
                match name.as_str() {
                    "hypervclock" => {
                        if let Some(p) = present {
                            c.hv.insert("hv-time".into(), p);
                        }
                    }
                    "hpet" => c.hpet = present,
                    "pit" => {
                        if let Some(tp) = attr(t.attrs, "tickpolicy") {
                            c.pit_policy = Some(tp);
                        }
                    }
                    "tsc" => {
                        if let Some(f) = attr(t.attrs, "frequency") {
                            c.tsc_frequency = Some(f);
                        }
                    }
                    _ => {}
                }
            }
            ("domain", "vcpu") => c.vcpus = t.text.parse().ok(),
            ("domain", "on_crash") => c.on_crash = Some(t.text.to_string()),
            ("cputune", "vcpupin") => c.pinned = Some(true),
            (_, "libosinfo:os") => c.os_hint = attr(t.attrs, "id"),
            _ => {}
        }
    }
    c
}
