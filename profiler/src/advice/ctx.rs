//! What a rule sees for one VM, with the shared helpers: exit-reason shares, rates per vCPU,
//! flag advice that never repeats a flag already on, and missing-evidence notes.

use std::collections::BTreeSet;

use profiler_common::{ISA_SVM, ISA_VMX};

use super::evidence::{kind_event, kind_lost, VmEvidence};
use super::{GuestOs, HostFacts, InhibitNames, Input, Thresholds, VmConfig};
use crate::model::VmView;

/// Exit-reason sets (VMX basic reason, SVM exit code) — KB "Tables".
pub(crate) mod x {
    use super::{ISA_SVM as S, ISA_VMX as V};
    pub const EXTINT: &[(u32, u32)] = &[(V, 1), (S, 0x60)];
    pub const CPUID: &[(u32, u32)] = &[(V, 10), (S, 0x72)];
    pub const VMCALL: &[(u32, u32)] = &[(V, 18), (S, 0x81)];
    /// VMX instructions and SVM vmrun/vmload/vmsave (not 0x81 vmmcall: that is also every
    /// Hyper-V hypercall).
    pub const NESTED: &[(u32, u32)] = &[
        (V, 19),
        (V, 20),
        (V, 21),
        (V, 22),
        (V, 23),
        (V, 24),
        (V, 25),
        (V, 26),
        (V, 27),
        (V, 50),
        (V, 53),
        (S, 0x80),
        (S, 0x82),
        (S, 0x83),
    ];
    pub const DR: &[(u32, u32)] = &[(V, 29)];
    pub const IO: &[(u32, u32)] = &[(V, 30), (S, 0x7b)];
    /// SVM has one msr exit for reads and writes.
    pub const MSR_READ: &[(u32, u32)] = &[(V, 31)];
    pub const MSR_WRITE: &[(u32, u32)] = &[(V, 32), (S, 0x7c)];
    pub const PAUSE: &[(u32, u32)] = &[(V, 40), (S, 0x77)];
    pub const APIC_ACCESS: &[(u32, u32)] = &[(V, 44), (S, 0x402)];
    pub const EOI_INDUCED: &[(u32, u32)] = &[(V, 45)];
    pub const MMIO: &[(u32, u32)] = &[(V, 49), (S, 0x400)];
    pub const APIC_WRITE: &[(u32, u32)] = &[(V, 56), (S, 0x401)];
    /// SVM only: virtual-interrupt window and CR8 (TPR) writes, intercepted only while AVIC is
    /// not in use for the vCPU.
    pub const VINTR: &[(u32, u32)] = &[(S, 0x64)];
    pub const CR8_WRITE: &[(u32, u32)] = &[(S, 0x18)];
    pub const HLT: &[(u32, u32)] = &[(V, 12), (S, 0x78), (S, 0xa6)];
}

/// One exit class summed over its rows.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Rs {
    pub count: u64,
    pub rate: f64,
    /// % of non-HLT exits.
    pub samples_pct: f64,
    /// % of non-HLT handling time.
    pub time_pct: f64,
}

impl Rs {
    pub fn share(&self) -> f64 {
        self.samples_pct.max(self.time_pct)
    }
}

pub(crate) struct Ctx<'a> {
    pub vm: Option<&'a VmView>,
    pub ev: &'a VmEvidence,
    pub cfg: &'a VmConfig,
    pub host: &'a HostFacts,
    pub th: &'a Thresholds,
    pub guest: &'a GuestOs,
    pub inh: &'a InhibitNames,
    pub missing: &'a BTreeSet<u16>,
    pub secs: f64,
    pub vcpus: f64,
    /// vCPUs of every VM in the input (L14: overcommit).
    pub total_vcpus: u32,
}

impl<'a> Ctx<'a> {
    pub fn new(
        vm: Option<&'a VmView>,
        ev: &'a VmEvidence,
        cfg: &'a VmConfig,
        input: &'a Input,
        guest: &'a GuestOs,
        missing: &'a BTreeSet<u16>,
    ) -> Ctx<'a> {
        let secs = if input.view.duration_s > 0.0 {
            input.view.duration_s
        } else {
            ev.secs
        };
        let seen = vm.map_or(0, |v| v.vcpus.len());
        let vcpus = if seen > 0 {
            seen as f64
        } else {
            f64::from(cfg.vcpus.unwrap_or(1).max(1))
        };
        let mut total_vcpus = 0u32;
        for v in &input.view.vms {
            let cfg_n = input.configs.get(&v.pid).and_then(|c| c.vcpus).unwrap_or(0);
            total_vcpus += (v.vcpus.len() as u32).max(cfg_n);
        }
        for (pid, c) in &input.configs {
            if !input.view.vms.iter().any(|v| v.pid == *pid) {
                total_vcpus += c.vcpus.unwrap_or(0);
            }
        }
        Ctx {
            total_vcpus,
            vm,
            ev,
            cfg,
            host: &input.host,
            th: &input.thresholds,
            guest,
            inh: &input.inhibits,
            missing,
            secs,
            vcpus,
        }
    }

    /// Sum of the rows of `set` (VMX rows match on the basic reason).
    pub fn reason(&self, set: &[(u32, u32)]) -> Rs {
        let mut r = Rs::default();
        for row in self.vm.map_or(&[][..], |v| &v.reasons[..]) {
            let code = if row.isa == ISA_VMX {
                row.reason & 0xffff
            } else {
                row.reason
            };
            if set.contains(&(row.isa, code)) {
                r.count = r.count.saturating_add(row.count);
                r.rate += row.rate_per_s;
                r.samples_pct += row.samples_pct;
                r.time_pct += row.time_pct;
            }
        }
        r
    }

    /// Non-HLT exits in the span.
    pub fn busy(&self) -> u64 {
        self.vm.map_or(0, |v| {
            v.reasons
                .iter()
                .filter(|r| !r.hlt)
                .fold(0u64, |n, r| n.saturating_add(r.count))
        })
    }

    /// ≥ dominant % of non-HLT exits or time, over enough exits to mean something.
    pub fn dominant(&self, r: &Rs) -> bool {
        self.busy() >= self.th.min_exits && r.count > 0 && r.share() >= self.th.dominant_pct
    }

    pub fn per_vcpu(&self, rate: f64) -> f64 {
        rate / self.vcpus
    }

    /// ≥ the high rate per vCPU.
    pub fn high(&self, rate: f64) -> bool {
        self.secs > 0.0 && self.per_vcpu(rate) >= self.th.high_rate_per_vcpu
    }

    pub fn has(&self, kind: u16) -> bool {
        !self.missing.contains(&kind)
    }

    /// "EPT_MISCONFIG: 41.2 % of non-HLT exits, 63.0 % of exit time, 12345/s (3086/s per vCPU)".
    pub fn line(&self, name: &str, r: &Rs) -> String {
        let mut s = format!(
            "{name}: {:.1} % of non-HLT exits, {:.1} % of exit time",
            r.samples_pct, r.time_pct
        );
        if self.secs > 0.0 {
            s.push_str(&format!(
                ", {:.0}/s ({:.0}/s per vCPU)",
                r.rate,
                self.per_vcpu(r.rate)
            ));
        } else {
            s.push_str(&format!(", {} exits", r.count));
        }
        s
    }

    /// "n/s" or "n events" when the span is unknown.
    pub fn rate_str(&self, n: u64) -> String {
        if self.secs > 0.0 {
            format!("{:.0}/s", n as f64 / self.secs)
        } else {
            format!("{n} events")
        }
    }

    /// [`Ctx::rate_str`] of a count of `kind` events, or "not measured" when this input has
    /// no such events at all (a tracepoint missing, perf text): unknown, not zero.
    pub fn measured(&self, kind: u16, n: u64) -> String {
        if self.has(kind) {
            self.rate_str(n)
        } else {
            "not measured".into()
        }
    }

    pub fn rate_of(&self, n: u64) -> f64 {
        if self.secs > 0.0 {
            n as f64 / self.secs
        } else {
            0.0
        }
    }

    /// The evidence line marking a finding judged without the sub-reason evidence it needs,
    /// with the command that would confirm it on the host.
    pub fn unconfirmed(&self, kind: u16) -> Option<String> {
        (!self.has(kind)).then(|| {
            format!(
                "unconfirmed: kvm:{} evidence unavailable, judged on exit reasons and \
                 configuration; to confirm, run on the host: {}",
                kind_event(kind),
                self.confirm_command()
            )
        })
    }

    /// `kvmprof advise --duration 30s --vm NAME` for this VM.
    pub fn confirm_command(&self) -> String {
        let name = self
            .vm
            .map(|v| v.name.as_str())
            .filter(|n| !n.is_empty() && !n.starts_with("pid ") && !n.contains(char::is_whitespace))
            .unwrap_or("NAME");
        format!("kvmprof advise --duration 30s --vm {name}")
    }

    /// A device in steady use: at the timer rate when the span is known; a pasted table has no
    /// span, so there it takes a volume of events instead.
    pub fn steady(&self, n: u64) -> bool {
        if self.secs > 0.0 {
            self.rate_of(n) >= self.th.timer_rate
        } else {
            n >= self.th.min_exits
        }
    }

    /// Enough non-HLT exits for shares to mean something (a handful are not evidence).
    pub fn enough(&self) -> bool {
        self.busy() >= self.th.min_exits
    }

    /// APICv/AVIC known enabled on the host: the only case hv-avic may be advised (L04).
    pub fn apicv_on(&self) -> bool {
        self.host.apicv == Some(true)
    }

    pub fn visible(&self) -> bool {
        !self.cfg.hypervisor_hidden
    }

    /// The flags of `want` not already on.
    pub fn missing_flags<'f>(&self, want: &[&'f str]) -> Vec<&'f str> {
        want.iter().copied().filter(|f| !self.cfg.has(f)).collect()
    }

    /// `-cpu MODEL,…,hv-a=on,hv-b=on` (append to the existing -cpu).
    pub fn cpu_add(&self, flags: &[&str]) -> String {
        if flags.is_empty() {
            return String::new();
        }
        let model = self.cfg.cpu_model.as_deref().unwrap_or("<model>");
        let mut fl: Vec<String> = flags
            .iter()
            .map(|f| match *f {
                "hv-spinlocks" => format!("hv-spinlocks={:#x}", self.spinlock_retries()),
                "hv-vendor-id" => "hv-vendor-id=KVMKVMKVM".to_string(),
                f => format!("{f}=on"),
            })
            .collect();
        if flags.contains(&"hv-avic") && self.x2apic_unaccelerated() {
            fl.push("x2apic=off".into());
        }
        format!("-cpu {model},…,{}", fl.join(","))
    }

    /// The libvirt XML for `flags`, as `cpu_add` gives the command line.
    pub fn libvirt_add(&self, flags: &[&str]) -> String {
        let mut s = libvirt_snippet(flags, self.spinlock_retries());
        if flags.contains(&"hv-avic") && self.x2apic_unaccelerated() {
            s.push_str(" <cpu><feature policy='disable' name='x2apic'/></cpu>");
        }
        s
    }

    /// hv-spinlocks retries: never notify on dedicated vCPUs (cpu-pm or pinned), else notify
    /// early so the host can run the lock holder (0xfff, libvirt's minimum).
    pub fn spinlock_retries(&self) -> u64 {
        if self.dedicated() {
            0xffff_ffff
        } else {
            0xfff
        }
    }

    /// vCPUs with host CPUs of their own: `cpu-pm=on`, or pinned by libvirt.
    pub fn dedicated(&self) -> bool {
        self.cfg.cpu_pm || self.cfg.pinned == Some(true)
    }

    /// An AMD host without x2AVIC where the guest may run its APIC in x2APIC mode: such vCPUs
    /// lose AVIC, so hv-avic (which moves Windows to the x2APIC MSRs) needs x2apic=off too.
    pub fn x2apic_unaccelerated(&self) -> bool {
        self.host.avic_xapic_only() && self.cfg.x2apic != Some(false)
    }

    /// "host CPU of the VM: 34.0% of a core: guest 1.2, …", with what an idle Windows VM costs
    /// once its timers are enlightened when most of it is spent outside the guest.
    pub fn host_cpu_line(&self) -> Option<String> {
        let h = self.vm?.host_cpu?;
        let outside = h.total_pct - h.guest_pct.unwrap_or(0.0);
        let mut s = format!("host CPU of the VM: {}", h.describe());
        if h.guest_pct.is_some() && outside >= 10.0 {
            s.push_str(
                " (idle Windows VMs with hv-synic and hv-stimer were reported at 1–3 % of a core)",
            );
        }
        Some(s)
    }

    /// A key that differs for AMD/Intel: `kvm_intel X` / `kvm_amd Y`.
    pub fn is_amd(&self) -> bool {
        self.host.vendor == Some(super::Vendor::Amd)
            || self
                .vm
                .is_some_and(|v| v.reasons.iter().any(|r| r.isa == ISA_SVM))
    }
}

/// libvirt XML for a set of QEMU hv flags (libvirt docs/formatdomain.rst); `retries` is the
/// hv-spinlocks value in decimal.
fn libvirt_snippet(flags: &[&str], retries: u64) -> String {
    let mut hv = Vec::new();
    let mut clock = Vec::new();
    let has = |f: &str| flags.contains(&f);
    for f in flags {
        let el = match *f {
            "hv-time" => {
                clock.push("<timer name='hypervclock' present='yes'/>".to_string());
                continue;
            }
            "hv-stimer-direct" if has("hv-stimer") => continue,
            "hv-stimer" if has("hv-stimer-direct") => {
                "<stimer state='on'><direct state='on'/></stimer>".into()
            }
            "hv-stimer-direct" => "<stimer state='on'><direct state='on'/></stimer>".into(),
            "hv-tlbflush-direct" => "<tlbflush state='on'><direct state='on'/></tlbflush>".into(),
            "hv-tlbflush-ext" => "<tlbflush state='on'><extended state='on'/></tlbflush>".into(),
            "hv-spinlocks" => format!("<spinlocks state='on' retries='{retries}'/>"),
            "hv-vendor-id" => "<vendor_id state='on' value='KVMKVMKVM'/>".into(),
            f => {
                let name = f.trim_start_matches("hv-").replace('-', "_");
                format!("<{name} state='on'/>")
            }
        };
        hv.push(el);
    }
    let mut out = Vec::new();
    if !hv.is_empty() {
        out.push(format!(
            "<features><hyperv mode='custom'>{}</hyperv></features>",
            hv.join("")
        ));
    }
    if !clock.is_empty() {
        out.push(format!("<clock>{}</clock>", clock.join("")));
    }
    out.join(" ")
}

/// Report notes for missing evidence: which rules lose what.
pub(crate) fn missing_notes(input: &Input, missing: &BTreeSet<u16>) -> Vec<String> {
    if input.exit_reasons_only {
        return vec![
            "input has exit reasons only (no MSR/port/MMIO/hypercall/APICv-inhibit evidence): \
             findings are judged on exit-reason shares and configuration, marked 'unconfirmed'; \
             R05, R07 (inhibit), R11, R16, R17, R20, R21, R23 and P2/P3/P5 need a live or \
             recorded kvmprof profile"
                .into(),
        ];
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for k in missing {
        let e = kind_event(*k);
        if seen.insert(e) {
            out.push(format!(
                "tracepoint kvm:{e} unavailable on the recording kernel: no {}; affected findings are marked 'unconfirmed' or skipped",
                kind_lost(*k)
            ));
        }
    }
    out
}
