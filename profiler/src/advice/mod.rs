//! Enlightenment advice: evidence-backed findings for (mostly Windows) guests, from the exit
//! profile, sub-reason evidence, the VM's configuration and host facts. Every rule is a pure
//! function; ids (R01–R23, L01–L16, P1–P5) and sources are those of
//! docs/enlightenment-advice.md (the KB).

pub mod catalog;
pub mod config;
pub mod evidence;
pub mod guest;
pub mod host;
pub mod libvirt;
pub mod names;

mod ctx;
mod fingerprint;
mod import;
mod inhibit_btf;
mod render;
mod rules;
mod summary;
#[cfg(test)]
pub(crate) mod tests;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize, Serializer};

pub use config::VmConfig;
pub use evidence::{per_vm, per_vm_elapsed, EvRow, TimerUse, VmEvidence};
pub use guest::{decode_guest_os_id, GuestKind, GuestOs};
pub use host::{HostFacts, Vendor};
pub use libvirt::parse_libvirt_xml;
pub use names::InhibitNames;
pub use render::{render_json, render_text};
pub use summary::{AdviceItem, AdviceSummary};

use crate::decode::ExitNames;
use crate::model::View;
use crate::sample::Sample;
use crate::settings::{self, SettingsError};

/// How urgent a finding is; ordered (Critical is greatest).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    #[default]
    Info,
    Warn,
    Critical,
}

impl Severity {
    pub fn label(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warn => "warn",
            Severity::Critical => "CRITICAL",
        }
    }
}

/// One piece of advice. Serialized as the report contract:
/// `{"rule", "severity", "title", "evidence", "advice": {"qemu", "libvirt", "effect"}, "source"}`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Finding {
    /// KB id: "R07", "L02", "P2".
    pub rule: String,
    pub severity: Severity,
    pub title: String,
    /// The numbers that triggered it.
    pub evidence: Vec<String>,
    /// Host change (a kernel module option), for the host's vendor.
    pub advice_host: String,
    /// `-cpu` / command-line change.
    pub advice_qemu: String,
    /// libvirt domain XML snippet.
    pub advice_libvirt: String,
    pub effect: String,
    /// KB source: QEMU docs, kernel version/commit, the 2021 thread, TLFS.
    pub source: String,
    /// Share (0–100) of the VM's non-HLT exit cost this finding explains: orders findings of
    /// equal severity. Not serialized.
    pub weight: f64,
    /// Judged from exit shares or configuration alone, without the sub-reason evidence that
    /// would confirm it: ranked below confirmed findings of the same severity.
    pub unconfirmed: bool,
}

impl Serialize for Finding {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Advice<'a> {
            #[serde(skip_serializing_if = "str::is_empty")]
            host: &'a str,
            qemu: &'a str,
            libvirt: &'a str,
            effect: &'a str,
        }
        #[derive(Serialize)]
        struct Out<'a> {
            rule: &'a str,
            severity: Severity,
            title: &'a str,
            evidence: &'a [String],
            advice: Advice<'a>,
            source: &'a str,
            confirmed: bool,
        }
        Out {
            rule: &self.rule,
            severity: self.severity,
            title: &self.title,
            evidence: &self.evidence,
            advice: Advice {
                host: &self.advice_host,
                qemu: &self.advice_qemu,
                libvirt: &self.advice_libvirt,
                effect: &self.effect,
            },
            source: &self.source,
            confirmed: !self.unconfirmed,
        }
        .serialize(s)
    }
}

impl Finding {
    pub(crate) fn new(rule: &str, severity: Severity, title: impl Into<String>) -> Finding {
        Finding {
            rule: rule.into(),
            severity,
            title: title.into(),
            ..Default::default()
        }
    }
    pub(crate) fn ev(mut self, line: impl Into<String>) -> Self {
        self.evidence.push(line.into());
        self
    }
    pub(crate) fn host(mut self, s: impl Into<String>) -> Self {
        self.advice_host = s.into();
        self
    }
    pub(crate) fn qemu(mut self, s: impl Into<String>) -> Self {
        self.advice_qemu = s.into();
        self
    }
    pub(crate) fn libvirt(mut self, s: impl Into<String>) -> Self {
        self.advice_libvirt = s.into();
        self
    }
    pub(crate) fn effect(mut self, s: impl Into<String>) -> Self {
        self.effect = s.into();
        self
    }
    pub(crate) fn source(mut self, s: impl Into<String>) -> Self {
        self.source = s.into();
        self
    }
    pub(crate) fn weight(mut self, w: f64) -> Self {
        self.weight = w;
        self
    }
}

/// Trigger levels. Defaults are the KB's (*heuristic*, configurable): "dominant" ≥ 25 % of
/// non-HLT exits or exit time, "high rate" ≥ 1,000/s per vCPU.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Thresholds {
    /// % of non-HLT exits or handling time that makes a reason dominant (25).
    pub dominant_pct: f64,
    /// Exits or events per second per vCPU that count as a high rate (1000).
    pub high_rate_per_vcpu: f64,
    /// Accesses per second (whole VM) to a legacy timer/clock device (HPET, RTC, PIT, PM
    /// timer) that mean it is in steady use, not a boot-time probe (50).
    pub timer_rate: f64,
    /// % of a class within its exit reason or evidence kind that counts as "mostly" (50).
    pub majority_pct: f64,
    /// HvNotifyLongSpinWait per second per vCPU that counts as high for R13 (100).
    pub spin_rate_per_vcpu: f64,
    /// Fewer non-HLT exits than this in the span: shares are noise, no dominance (1000).
    pub min_exits: u64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            dominant_pct: 25.0,
            high_rate_per_vcpu: 1000.0,
            timer_rate: 50.0,
            majority_pct: 50.0,
            spin_rate_per_vcpu: 100.0,
            min_exits: 1000,
        }
    }
}

/// Where `advise --thresholds` errors send the user.
const THRESHOLDS_FIX: &str = "advice keys: dominant_pct, high_rate_per_vcpu, timer_rate, \
majority_pct, spin_rate_per_vcpu, min_exits (see `kvmprof advise --help`)";

impl Thresholds {
    /// From TOML, or JSON when `json` (missing keys keep their defaults); unknown keys and
    /// impossible numbers are refused as `check --config` refuses them.
    pub fn parse(text: &str, origin: &str, json: bool) -> Result<Thresholds, SettingsError> {
        let t: Thresholds = settings::parse(text, origin, json, THRESHOLDS_FIX)?;
        t.validate()
            .map_err(|e| SettingsError(format!("{origin}: {e}")))?;
        Ok(t)
    }

    /// Reads a thresholds file: JSON when it ends in `.json`, else TOML.
    pub fn load(path: &std::path::Path) -> Result<Thresholds, SettingsError> {
        let t: Thresholds = settings::load(path, THRESHOLDS_FIX)?;
        t.validate()
            .map_err(|e| SettingsError(format!("{}: {e}", path.display())))?;
        Ok(t)
    }

    fn validate(&self) -> Result<(), SettingsError> {
        settings::percent("dominant_pct", self.dominant_pct)?;
        settings::percent("majority_pct", self.majority_pct)?;
        settings::limit("high_rate_per_vcpu", self.high_rate_per_vcpu)?;
        settings::limit("timer_rate", self.timer_rate)?;
        settings::limit("spin_rate_per_vcpu", self.spin_rate_per_vcpu)
    }
}

/// Everything the engine looks at.
#[derive(Clone, Debug, Default)]
pub struct Input {
    pub view: View,
    /// Sub-reason evidence per VM pid (empty for exit-reason-only inputs).
    pub evidence: BTreeMap<u32, VmEvidence>,
    /// Configuration per VM pid (command line and/or libvirt XML).
    pub configs: BTreeMap<u32, VmConfig>,
    pub host: HostFacts,
    pub thresholds: Thresholds,
    pub inhibits: InhibitNames,
    /// Tracepoints missing on the recording kernel (`Probe::missing`, "kvm:kvm_msr").
    pub missing: Vec<String>,
    /// The input has exit reasons only (e.g. perf-text import): no sub-reason evidence but
    /// what pasted msr / ioport / mmio tables gave.
    pub exit_reasons_only: bool,
    /// What the user says the guest is, used when its behaviour does not tell.
    pub guest_hint: Option<GuestKind>,
}

impl Input {
    /// From two cumulative samples: the model view, evidence per VM, and each VM's command
    /// line configuration.
    pub fn from_samples(
        older: &Sample,
        newer: &Sample,
        names: &ExitNames,
        host: HostFacts,
    ) -> Input {
        let view = crate::model::compute(older, newer, names);
        let evidence = per_vm(older, newer);
        let configs = newer
            .vms
            .iter()
            .map(|(pid, vm)| (*pid, VmConfig::from_cmdline(&vm.cmdline)))
            .collect();
        Input {
            view,
            evidence,
            configs,
            host,
            ..Default::default()
        }
    }

    /// From a view alone (perf-text import, foreign reports): exit reasons only.
    pub fn from_view(view: View, host: HostFacts) -> Input {
        Input {
            view,
            host,
            exit_reasons_only: true,
            ..Default::default()
        }
    }

    /// Adds a libvirt domain XML for `pid`; the running command line keeps priority.
    pub fn with_libvirt_xml(mut self, pid: u32, xml: &str) -> Input {
        let x = parse_libvirt_xml(xml);
        let c = self.configs.remove(&pid).unwrap_or_default().merge(&x);
        self.configs.insert(pid, c);
        self
    }

    /// Records the tracepoints the probe could not attach (`Probe::missing`).
    pub fn with_missing(mut self, missing: &[String]) -> Input {
        self.missing.extend(missing.iter().cloned());
        self
    }

    /// Evidence kinds that cannot be present (so "none seen" does not mean "none happened").
    pub fn missing_kinds(&self) -> BTreeSet<u16> {
        if self.exit_reasons_only {
            let pasted = self.pasted_kinds();
            return evidence::ALL_KINDS
                .into_iter()
                .filter(|k| !pasted.contains(k))
                .collect();
        }
        let events: BTreeSet<&str> = self
            .missing
            .iter()
            .map(|m| {
                let m = m.split_whitespace().next().unwrap_or("");
                m.rsplit(':').next().unwrap_or(m)
            })
            .collect();
        evidence::ALL_KINDS
            .into_iter()
            .filter(|k| events.contains(evidence::kind_event(*k)))
            .collect()
    }
}

/// Findings for one VM.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct VmReport {
    pub pid: u32,
    pub name: String,
    pub guest: String,
    /// Whole-profile fingerprint id (P1–P5), if one matched.
    pub profile: Option<String>,
    /// Enlightenments configured on (for display).
    pub config: Vec<String>,
    /// The host CPU the VM used over the span (null when the input has no CPU times).
    pub host_cpu: Option<crate::model::HostCpu>,
    /// Most important first.
    pub findings: Vec<Finding>,
    pub notes: Vec<String>,
}

/// The engine's answer.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Report {
    /// All VMs' findings, most important first (titles prefixed with the VM when several).
    pub findings: Vec<Finding>,
    pub vms: Vec<VmReport>,
    /// Missing evidence and what it does to confidence.
    pub notes: Vec<String>,
}

/// Runs every rule, check and fingerprint on every VM of the input.
pub fn analyze(input: &Input) -> Report {
    // A replay or a paste does not say the host's vendor; its exits do (VMX: Intel, SVM: AMD),
    // so host changes name the right module.
    let inferred;
    let input = match (input.host.vendor, host::vendor_of(&input.view)) {
        (None, Some(v)) => {
            let mut i = input.clone();
            i.host.vendor = Some(v);
            inferred = i;
            &inferred
        }
        _ => input,
    };
    let missing = input.missing_kinds();
    let empty_ev = VmEvidence::default();
    let empty_cfg = VmConfig::default();
    let mut pids: BTreeSet<u32> = input.view.vms.iter().map(|v| v.pid).collect();
    pids.extend(input.evidence.keys());
    pids.extend(input.configs.keys());

    let mut vms = Vec::new();
    for pid in pids {
        let vm = input.view.vms.iter().find(|v| v.pid == pid);
        let ev = input.evidence.get(&pid);
        let cfg = input.configs.get(&pid).unwrap_or(&empty_cfg);
        let mut guest = guest::detect(ev, cfg);
        if let (GuestKind::Unknown, Some(kind)) = (guest.kind, input.guest_hint) {
            guest.kind = kind;
            guest.source = "as given with --guest".into();
        }
        let c = ctx::Ctx::new(vm, ev.unwrap_or(&empty_ev), cfg, input, &guest, &missing);
        let mut findings: Vec<Finding> = rules::all(&c).into_iter().flatten().collect();
        // Users meet timer emulation as host CPU, not as exit tables: the VM's cost goes next
        // to every timer finding.
        if let Some(line) = c.host_cpu_line() {
            for f in findings.iter_mut().filter(|f| {
                catalog::rule(&f.rule).is_some_and(|r| r.theme == catalog::Theme::Timers)
            }) {
                f.evidence.push(line.clone());
            }
        }
        let mut notes = Vec::new();
        // Hyper-V advice only where Hyper-V is in play: a Windows guest, hv-* flags, a hidden
        // hypervisor bit, or Hyper-V MSR/hypercall traffic. A Linux microVM's shares say nothing about SynIC.
        // Hiding the hypervisor bit is done for Windows guests (drivers, anti-cheat): R18.
        let hyperv = guest.is_windows()
            || cfg.any_hv()
            || cfg.hypervisor_hidden
            || ev.is_some_and(|e| e.hyperv_traffic());
        if hyperv && input.host.kvm_hyperv == Some(false) {
            let before = findings.len();
            findings.retain(|f| !is_hyperv_rule(&f.rule));
            if findings.len() < before {
                notes.push(
                    "this host's KVM has no Hyper-V emulation (KVM_CAP_HYPERV is 0: \
                     CONFIG_KVM_HYPERV is off, an option since Linux 6.8), so every hv-* flag \
                     fails or is inert: Hyper-V advice withheld; a kernel built with \
                     CONFIG_KVM_HYPERV=y is the first step"
                        .into(),
                );
            }
        } else if !hyperv {
            let before = findings.len();
            findings.retain(|f| !is_hyperv_rule(&f.rule));
            if findings.len() < before || guest.kind == GuestKind::Unknown {
                notes.push(format!(
                    "no sign of Hyper-V use or of a Windows guest: Hyper-V advice withheld (for \
                     a Windows guest say so with --guest windows, or run `{}` on the host)",
                    c.confirm_command()
                ));
            }
        }
        sort(&mut findings);
        let profile = fingerprint::classify(&c, &findings)
            .filter(|_| hyperv && input.host.kvm_hyperv != Some(false));
        if cfg.is_unknown() {
            notes.push("VM configuration unknown (no command line or libvirt XML): configuration checks L01–L16 skipped, advice may repeat flags already on".into());
        }
        if vm.is_none_or(|v| v.reasons.is_empty()) {
            notes.push("no exits seen for this VM in the span".into());
        } else if c.secs <= 0.0 {
            notes
                .push("span length unknown: rate-based triggers skipped, shares still used".into());
        }
        if let Some(p) = &profile {
            findings.push(p.clone());
        }
        for f in &mut findings {
            f.source = catalog::cite(&f.rule, &f.source);
        }
        vms.push(VmReport {
            pid,
            name: vm.map_or_else(|| format!("pid {pid}"), |v| v.name.clone()),
            guest: guest.describe(),
            profile: profile.map(|p| p.rule),
            config: cfg.enabled(),
            host_cpu: vm.and_then(|v| v.host_cpu),
            findings,
            notes,
        });
    }
    // Busiest VM first, so the flattened list starts with what matters most.
    vms.sort_by(|a, b| {
        let top = |r: &VmReport| r.findings.first().map(|f| (f.severity, f.weight));
        top(b)
            .partial_cmp(&top(a))
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(a.pid.cmp(&b.pid))
    });
    let several = vms.len() > 1;
    let mut all: Vec<Finding> = vms
        .iter()
        .flat_map(|v| {
            v.findings.iter().map(move |f| {
                let mut f = f.clone();
                if several {
                    f.title = format!("[{}] {}", v.name, f.title);
                }
                f
            })
        })
        .collect();
    sort(&mut all);
    Report {
        findings: all,
        vms,
        notes: ctx::missing_notes(input, &missing),
    }
}

fn is_hyperv_rule(id: &str) -> bool {
    catalog::rule(id).is_none_or(|r| r.hyperv)
}

/// Most important first: severity, then confirmed before unconfirmed, then the share of cost
/// explained, then runtime rules
/// before configuration checks before fingerprints, then id.
fn sort(f: &mut [Finding]) {
    let class = |r: &str| match r.as_bytes().first() {
        Some(b'R') => 0,
        Some(b'L') => 1,
        _ => 2,
    };
    f.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then(a.unconfirmed.cmp(&b.unconfirmed))
            .then(b.weight.total_cmp(&a.weight))
            .then(class(&a.rule).cmp(&class(&b.rule)))
            .then(a.rule.cmp(&b.rule))
    });
}
