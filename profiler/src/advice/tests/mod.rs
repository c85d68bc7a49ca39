//! Advice engine tests: fixture profiles hand-built from the KB's descriptions, driven through
//! the same path as live data (two cumulative samples → model view + evidence → analyze).

mod amd;
mod config;
mod cpu;
mod fingerprints;
mod rules;

use profiler_common::{ev, ISA_SVM, ISA_VMX};

use super::*;
use crate::sample::{EvKey, EvStat, Key, Stat, VmInfo};

pub(crate) const PID: u32 = 4242;
const SEC: u64 = 1_000_000_000;
/// Span of every fixture, seconds.
pub(super) const SPAN: u64 = 10;
pub(super) const VCPUS: u32 = 4;

/// A VM profile over a 10 s span on 4 vCPUs.
pub(crate) struct Fx {
    older: Sample,
    newer: Sample,
    missing: Vec<String>,
    xml: Option<String>,
}

pub(super) fn argv(s: &str) -> Vec<String> {
    s.split_whitespace().map(String::from).collect()
}

impl Fx {
    pub fn new(cmdline: &str) -> Fx {
        let vm = VmInfo {
            pid: PID,
            name: "win".into(),
            cmdline: argv(cmdline),
            is_qemu: true,
            ..Default::default()
        };
        let mut older = Sample {
            mono_ns: SEC,
            ..Default::default()
        };
        older.vms.insert(PID, vm.clone());
        let mut newer = Sample {
            mono_ns: (1 + SPAN) * SEC,
            ..Default::default()
        };
        newer.vms.insert(PID, vm);
        Fx {
            older,
            newer,
            missing: Vec::new(),
            xml: None,
        }
    }

    /// `per_s` exits per second (whole VM, spread over the vCPUs) of `ns` each.
    pub fn exit(mut self, isa: u32, reason: u32, per_s: u64, ns: u64) -> Fx {
        let n = per_s * SPAN / u64::from(VCPUS);
        for vcpu in 0..VCPUS {
            let mut st = Stat::default();
            st.record(ns, n);
            let k = Key {
                tgid: PID,
                vcpu,
                isa,
                reason,
            };
            self.newer.stats.insert(k, st);
        }
        self
    }

    pub fn vmx(self, reason: u32, per_s: u64, ns: u64) -> Fx {
        self.exit(ISA_VMX, reason, per_s, ns)
    }

    pub fn svm(self, reason: u32, per_s: u64, ns: u64) -> Fx {
        self.exit(ISA_SVM, reason, per_s, ns)
    }

    /// Evidence at `per_s` events per second in the span; `last` = last value.
    pub fn ev(mut self, kind: u16, flags: u16, a: u64, per_s: u64, last: u64) -> Fx {
        let k = EvKey {
            tgid: PID,
            kind,
            flags,
            a,
        };
        let old = EvStat {
            count: 5,
            sum: 0,
            last,
        };
        self.older.evidence.insert(k, old);
        let n = per_s * SPAN;
        self.newer.evidence.insert(
            k,
            EvStat {
                count: 5 + n,
                sum: n * 1000,
                last,
            },
        );
        self
    }

    /// Evidence seen before the span only (e.g. written at boot).
    pub fn once(mut self, kind: u16, flags: u16, a: u64, last: u64) -> Fx {
        let k = EvKey {
            tgid: PID,
            kind,
            flags,
            a,
        };
        let s = EvStat {
            count: 1,
            sum: 0,
            last,
        };
        self.older.evidence.insert(k, s);
        self.newer.evidence.insert(k, s);
        self
    }

    pub fn msr_w(self, idx: u64, per_s: u64) -> Fx {
        let flags = ev::msr_write_flags(idx as u32, 0);
        self.ev(ev::MSR_WRITE, flags, idx, per_s, 0)
    }

    /// The VM's host CPU over the span, in % of one core: all threads, guest mode, vCPU
    /// threads (4 of them).
    pub fn cpu(mut self, total_pct: u64, guest_pct: u64, vcpu_pct: u64) -> Fx {
        let ns = |pct: u64| pct * SPAN * SEC / 100;
        self.older.vm_cpu.insert(
            PID,
            crate::sample::VmCpu {
                vcpu_threads: VCPUS,
                ..Default::default()
            },
        );
        self.newer.vm_cpu.insert(
            PID,
            crate::sample::VmCpu {
                total_ns: ns(total_pct),
                vcpu_ns: ns(vcpu_pct),
                guest_ns: ns(guest_pct),
                vcpu_threads: VCPUS,
                ..Default::default()
            },
        );
        self
    }

    pub fn missing(mut self, m: &str) -> Fx {
        self.missing.push(m.into());
        self
    }

    pub fn xml(mut self, x: &str) -> Fx {
        self.xml = Some(x.into());
        self
    }

    pub fn input(&self, host: HostFacts) -> Input {
        let mut i = Input::from_samples(&self.older, &self.newer, &ExitNames::builtin(), host);
        i.missing = self.missing.clone();
        if let Some(x) = &self.xml {
            i = i.with_libvirt_xml(PID, x);
        }
        i
    }

    /// The two cumulative samples (for the TUI's advice panel tests).
    pub fn samples(self) -> (Sample, Sample) {
        (self.older, self.newer)
    }

    pub fn run(&self, host: HostFacts) -> VmReport {
        let r = analyze(&self.input(host));
        r.vms.into_iter().find(|v| v.pid == PID).expect("vm report")
    }
}

pub(crate) fn intel(apicv: bool) -> HostFacts {
    HostFacts {
        vendor: Some(Vendor::Intel),
        apicv: Some(apicv),
        halt_poll_ns: Some(200_000),
        kernel_release: Some("6.8.0-45-generic".into()),
        cpus: Some(32),
        clocksource: Some("tsc".into()),
        ..Default::default()
    }
}

pub(super) fn amd(avic: bool) -> HostFacts {
    HostFacts {
        vendor: Some(Vendor::Amd),
        ..intel(avic)
    }
}

pub(super) fn ids(r: &VmReport) -> Vec<&str> {
    r.findings.iter().map(|f| f.rule.as_str()).collect()
}

pub(super) fn get<'a>(r: &'a VmReport, id: &str) -> &'a Finding {
    r.findings
        .iter()
        .find(|f| f.rule == id)
        .unwrap_or_else(|| panic!("{id} missing in {:?}", ids(r)))
}

/// No finding tells the user to turn hv-avic on.
pub(super) fn never_adds_hv_avic(r: &VmReport) {
    // Fingerprints only point at the top finding ("see R..").
    for f in r.findings.iter().filter(|f| !f.rule.starts_with('P')) {
        let adds = f.advice_qemu.contains("hv-avic=on");
        assert!(!adds, "{} advises hv-avic: {}", f.rule, f.advice_qemu);
        assert!(
            !f.advice_libvirt.contains("<avic state='on'/>"),
            "{} advises <avic/>",
            f.rule
        );
    }
}

pub(super) const ALL_HV: &str = "hv-relaxed=on,hv-vapic=on,hv-spinlocks=0x1fff,hv-vpindex=on,hv-runtime=on,hv-synic=on,hv-stimer=on,hv-stimer-direct=on,hv-reset=on,hv-frequencies=on,hv-reenlightenment=on,hv-tlbflush=on,hv-ipi=on,hv-time=on,hv-vendor-id=KVMKVMKVM";

pub(super) fn qemu(cpu: &str) -> String {
    format!("/usr/bin/qemu-system-x86_64 -name guest=win,debug-threads=on -machine pc-q35-8.2,accel=kvm -cpu {cpu} -smp 4 -m 8G")
}
