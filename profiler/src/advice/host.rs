//! Host facts the advice depends on (APICv/AVIC, IPIv, halt polling, kernel version, vendor),
//! read below an injectable root so tests use a fake tree.

use std::path::Path;

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Vendor {
    Intel,
    Amd,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HostFacts {
    pub vendor: Option<Vendor>,
    /// kvm_intel enable_apicv / kvm_amd avic. None = unknown (module not loaded, replay).
    pub apicv: Option<bool>,
    /// kvm_intel enable_ipiv (Sapphire Rapids+) / kvm_amd enable_ipiv (AVIC IPI virtualization,
    /// forced off on Zen 1/2 by erratum #1235); None where the parameter does not exist.
    pub ipiv: Option<bool>,
    /// kvm halt_poll_ns (module default 200000).
    pub halt_poll_ns: Option<u64>,
    /// kvm_intel/kvm_amd nested.
    pub nested: Option<bool>,
    /// `uname -r`.
    pub kernel_release: Option<String>,
    /// Online logical CPUs.
    pub cpus: Option<u32>,
    /// Current host clocksource (R05: the TSC page needs `tsc`).
    pub clocksource: Option<String>,
    /// TSC scaling in hardware (L09).
    pub tsc_scaling: Option<bool>,
    /// KVM emulates Hyper-V (`KVM_CAP_HYPERV`; a build option since Linux 6.8). Without it
    /// every hv-* flag fails or is inert.
    #[serde(default)]
    pub kvm_hyperv: Option<bool>,
    /// AMD x2AVIC (Zen 4+, Linux ≥ 6.0): AVIC also accelerates vCPUs in x2APIC mode. Without
    /// it such vCPUs lose AVIC, and KVM may not trace that as an inhibit. None = not AMD, or
    /// a kernel too old to report the flag.
    #[serde(default)]
    pub x2avic: Option<bool>,
}

fn read(root: &Path, rel: &str) -> Option<String> {
    std::fs::read_to_string(root.join(rel))
        .ok()
        .map(|s| s.trim().to_string())
}

fn param_bool(v: &str) -> Option<bool> {
    match v {
        "Y" | "y" | "1" => Some(true),
        "N" | "n" | "0" => Some(false),
        _ => None,
    }
}

impl HostFacts {
    /// Reads `/sys/module/kvm*`, `/proc/cpuinfo`, `/proc/sys/kernel/osrelease` below `root`.
    /// Anything unreadable stays None.
    pub fn read(root: &Path) -> HostFacts {
        let intel = read(root, "sys/module/kvm_intel/parameters/enable_apicv");
        let amd = read(root, "sys/module/kvm_amd/parameters/avic");
        let cpuinfo = read(root, "proc/cpuinfo").unwrap_or_default();
        let vendor = if intel.is_some() || cpuinfo.contains("GenuineIntel") {
            Some(Vendor::Intel)
        } else if amd.is_some() || cpuinfo.contains("AuthenticAMD") {
            Some(Vendor::Amd)
        } else {
            None
        };
        let apicv = match vendor {
            Some(Vendor::Intel) => intel.as_deref().and_then(param_bool),
            Some(Vendor::Amd) => amd.as_deref().and_then(param_bool),
            None => None,
        };
        let nested = match vendor {
            Some(Vendor::Intel) => read(root, "sys/module/kvm_intel/parameters/nested"),
            Some(Vendor::Amd) => read(root, "sys/module/kvm_amd/parameters/nested"),
            None => None,
        };
        let cpu_flags = || {
            cpuinfo
                .lines()
                .filter(|l| l.starts_with("flags") || l.starts_with("vmx flags"))
                .flat_map(|l| l.split_whitespace())
        };
        let flags = cpu_flags().any(|f| f == "tsc_scale" || f == "tsc_scaling");
        let kernel_release = read(root, "proc/sys/kernel/osrelease");
        // cpuinfo shows `x2avic` since Linux 6.0 (when KVM learned it): its absence on an
        // older kernel says nothing.
        let x2avic = (vendor == Some(Vendor::Amd)
            && !cpuinfo.is_empty()
            && release_at_least(kernel_release.as_deref(), (6, 0)))
        .then(|| cpu_flags().any(|f| f == "x2avic"));
        let cpus = cpuinfo
            .lines()
            .filter(|l| l.starts_with("processor"))
            .count();
        HostFacts {
            vendor,
            apicv,
            ipiv: match vendor {
                Some(Vendor::Intel) => read(root, "sys/module/kvm_intel/parameters/enable_ipiv"),
                Some(Vendor::Amd) => read(root, "sys/module/kvm_amd/parameters/enable_ipiv"),
                None => None,
            }
            .as_deref()
            .and_then(param_bool),
            halt_poll_ns: read(root, "sys/module/kvm/parameters/halt_poll_ns")
                .and_then(|v| v.parse().ok()),
            nested: nested.as_deref().and_then(param_bool),
            kernel_release,
            cpus: (cpus > 0).then_some(cpus as u32),
            clocksource: read(
                root,
                "sys/devices/system/clocksource/clocksource0/current_clocksource",
            ),
            tsc_scaling: (!cpuinfo.is_empty()).then_some(flags),
            kvm_hyperv: None,
            x2avic,
        }
    }

    /// The host a recording was made on: this host's facts when it is this host (same name
    /// and kernel), else only what the recording says (kernel, CPUs) — never this host's APICv
    /// or Hyper-V support for another host's VMs.
    pub fn of_recording(host: &str, kernel: &str, cpus: u32) -> HostFacts {
        let here = crate::source::live::hostname() == host
            && crate::source::live::kernel_release() == kernel;
        if here {
            return Self::local();
        }
        HostFacts {
            kernel_release: (!kernel.is_empty()).then(|| kernel.to_string()),
            cpus: (cpus > 0).then_some(cpus),
            ..Default::default()
        }
    }

    /// The running host.
    pub fn local() -> HostFacts {
        HostFacts {
            kvm_hyperv: kvm_has_hyperv(Path::new("/dev/kvm")),
            ..Self::read(Path::new("/"))
        }
    }

    /// (major, minor) of the kernel release ("6.8.0-45-generic" → (6, 8)).
    pub fn kernel(&self) -> Option<(u32, u32)> {
        release(self.kernel_release.as_deref()?)
    }

    /// AMD host whose AVIC cannot accelerate vCPUs in x2APIC mode (no x2AVIC).
    pub fn avic_xapic_only(&self) -> bool {
        self.vendor == Some(Vendor::Amd) && self.x2avic == Some(false)
    }

    /// Kernel ≥ 5.15 inhibits APICv only while a SINT uses AutoEOI (KB upstream outcome).
    /// None when unknown.
    pub fn autoeoi_only_inhibit(&self) -> Option<bool> {
        self.kernel().map(|k| k >= (5, 15))
    }

    pub fn apicv_name(&self) -> &'static str {
        match self.vendor {
            Some(Vendor::Amd) => "AVIC (kvm_amd avic)",
            _ => "APICv (kvm_intel enable_apicv)",
        }
    }

    pub fn apicv_param(&self) -> &'static str {
        match self.vendor {
            Some(Vendor::Amd) => "kvm_amd avic=1",
            _ => "kvm_intel enable_apicv=Y",
        }
    }
}

/// The vendor whose exits `view` holds: VMX → Intel, SVM → AMD (None: neither, or both).
pub fn vendor_of(view: &crate::model::View) -> Option<Vendor> {
    use profiler_common::{ISA_SVM, ISA_VMX};
    let isas = || {
        view.vms
            .iter()
            .flat_map(|v| v.reasons.iter().map(|r| r.isa))
    };
    match (isas().any(|i| i == ISA_VMX), isas().any(|i| i == ISA_SVM)) {
        (true, false) => Some(Vendor::Intel),
        (false, true) => Some(Vendor::Amd),
        _ => None,
    }
}

fn release(r: &str) -> Option<(u32, u32)> {
    let mut it = r.split(|c: char| !c.is_ascii_digit());
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

fn release_at_least(r: Option<&str>, want: (u32, u32)) -> bool {
    r.and_then(release).is_some_and(|k| k >= want)
}

/// `KVM_CHECK_EXTENSION(KVM_CAP_HYPERV)` on `dev`; None when it cannot be opened.
pub fn kvm_has_hyperv(dev: &Path) -> Option<bool> {
    const KVM_CAP_HYPERV: u32 = 44;
    let kvm = std::fs::File::open(dev).ok()?;
    Some(crate::exerciser::check_extension(&kvm, KVM_CAP_HYPERV) > 0)
}

#[cfg(test)]
mod recorded_tests {
    use super::*;

    #[test]
    fn another_hosts_recording_gets_none_of_this_hosts_facts() {
        let h = HostFacts::of_recording("elsewhere.example", "6.1.0-13-amd64", 64);
        assert_eq!(h.kernel_release.as_deref(), Some("6.1.0-13-amd64"));
        assert_eq!(h.cpus, Some(64));
        assert_eq!((h.apicv, h.kvm_hyperv, h.vendor), (None, None, None));
        let here = HostFacts::of_recording(
            &crate::source::live::hostname(),
            &crate::source::live::kernel_release(),
            1,
        );
        assert_eq!(here, HostFacts::local());
    }
}
