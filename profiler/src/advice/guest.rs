//! Guest OS: decoded from the GUEST_OS_ID MSR (0x40000000) when its write was seen, else
//! inferred from behaviour and the libvirt OS id (KB "Identifying a VM").

use serde::Serialize;

use super::config::VmConfig;
use super::evidence::VmEvidence;

/// What the guest is, and how sure we are.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct GuestOs {
    pub kind: GuestKind,
    /// Decoded version, e.g. "Windows 11 (NT 10.0 build 22631)".
    pub version: Option<String>,
    /// NT (major, minor, build) when known from GUEST_OS_ID.
    pub nt: Option<(u8, u8, u16)>,
    /// "GUEST_OS_ID", "behaviour: Hyper-V MSR traffic", "libvirt os id", ...
    pub source: String,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub enum GuestKind {
    Windows,
    Linux,
    Other,
    #[default]
    Unknown,
}

impl GuestOs {
    pub fn is_windows(&self) -> bool {
        self.kind == GuestKind::Windows
    }

    /// Windows Vista/2008 or 7/2008 R2 (NT 6.0/6.1): ignore DEPRECATING_AEOI (L16).
    pub fn is_nt6_legacy(&self) -> bool {
        matches!(self.nt, Some((6, 0 | 1, _)))
    }

    pub fn describe(&self) -> String {
        let what = match (&self.version, self.kind) {
            (Some(v), _) => v.clone(),
            (None, GuestKind::Windows) => "Windows".into(),
            (None, GuestKind::Linux) => "Linux".into(),
            (None, GuestKind::Other) => "other OS".into(),
            (None, GuestKind::Unknown) => "unknown".into(),
        };
        if self.source.is_empty() {
            what
        } else {
            format!("{what} ({})", self.source)
        }
    }
}

/// Decodes a GUEST_OS_ID value (TLFS): bit 63 = open-source OS (Linux sets it, OS type 0x1 in
/// bits 62:56); else bits 63:48 vendor (1 = Microsoft), 47:40 OS id (4 = NT), 39:32 major,
/// 31:24 minor, 15:0 build.
pub fn decode_guest_os_id(v: u64) -> GuestOs {
    let src = format!("GUEST_OS_ID {v:#018x}");
    if v >> 63 == 1 {
        let os_type = (v >> 56) & 0x7f;
        let kind = if os_type == 1 {
            GuestKind::Linux
        } else {
            GuestKind::Other
        };
        let version = (os_type == 1).then(|| {
            let kv = (v >> 16) & 0xff_ffff;
            format!("Linux {}.{}.{}", kv >> 16, (kv >> 8) & 0xff, kv & 0xff)
        });
        return GuestOs {
            kind,
            version,
            nt: None,
            source: src,
        };
    }
    let vendor = v >> 48;
    let os = (v >> 40) & 0xff;
    let major = ((v >> 32) & 0xff) as u8;
    let minor = ((v >> 24) & 0xff) as u8;
    let build = (v & 0xffff) as u16;
    if vendor != 1 || os != 4 {
        return GuestOs {
            kind: if vendor == 1 {
                GuestKind::Windows
            } else {
                GuestKind::Other
            },
            version: None,
            nt: None,
            source: src,
        };
    }
    let name = match (major, minor) {
        (6, 0) => "Windows Vista / Server 2008".to_string(),
        (6, 1) => "Windows 7 / Server 2008 R2".to_string(),
        (6, 2) => "Windows 8 / Server 2012".to_string(),
        (6, 3) => "Windows 8.1 / Server 2012 R2".to_string(),
        (10, 0) if build >= 22000 => "Windows 11".to_string(),
        (10, 0) => "Windows 10 / Server 2016-2022".to_string(),
        _ => "Windows".to_string(),
    };
    GuestOs {
        kind: GuestKind::Windows,
        version: Some(format!("{name} (NT {major}.{minor} build {build})")),
        nt: Some((major, minor, build)),
        source: src,
    }
}

/// GUEST_OS_ID first, then behaviour, then the libvirt OS id, then the configuration.
pub fn detect(ev: Option<&VmEvidence>, cfg: &VmConfig) -> GuestOs {
    if let Some(id) = ev.and_then(|e| e.guest_os_id()) {
        return decode_guest_os_id(id);
    }
    let guess = |kind, source: &str| GuestOs {
        kind,
        source: source.into(),
        ..Default::default()
    };
    if let Some(e) = ev {
        if e.hyperv_traffic() {
            return guess(
                GuestKind::Windows,
                "behaviour: Hyper-V MSR/hypercall traffic",
            );
        }
        if e.kvm_pv_traffic() {
            return guess(GuestKind::Linux, "behaviour: KVM PV MSRs");
        }
    }
    if let Some(id) = &cfg.os_hint {
        if id.contains("microsoft.com") {
            return guess(GuestKind::Windows, "libvirt libosinfo id");
        }
        if !id.is_empty() {
            return guess(GuestKind::Linux, "libvirt libosinfo id");
        }
    }
    if cfg.any_hv() {
        return guess(GuestKind::Windows, "configuration: hv-* flags set");
    }
    if let Some(e) = ev {
        // Legacy timers without any PV clock: an unenlightened Windows is the usual culprit
        // (Linux would use kvm-clock).
        let t = e.timers();
        if t.hpet_timer_per_s + t.hpet_clock_per_s + t.rtc_per_s > 0.0 {
            return guess(
                GuestKind::Windows,
                "behaviour: legacy timers, no PV clock (likely)",
            );
        }
    }
    GuestOs::default()
}
