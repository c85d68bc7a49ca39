//! VM configuration from the VMM command line (KB "Identifying a VM and its flags"): hv-*
//! flags, hidden hypervisor bit, kvm=off, HPET, PIT tick policy, cpu-pm, nesting, invtsc.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::vm::qemu::split_opts;

/// Hyper-V enlightenments KVM supports, canonical names (QEMU docs/system/i386/hyperv.rst).
pub const HV_FLAGS: &[&str] = &[
    "hv-relaxed",
    "hv-vapic",
    "hv-spinlocks",
    "hv-vpindex",
    "hv-runtime",
    "hv-crash",
    "hv-time",
    "hv-synic",
    "hv-stimer",
    "hv-stimer-direct",
    "hv-tlbflush",
    "hv-tlbflush-ext",
    "hv-tlbflush-direct",
    "hv-ipi",
    "hv-vendor-id",
    "hv-reset",
    "hv-frequencies",
    "hv-reenlightenment",
    "hv-evmcs",
    "hv-no-nonarch-coresharing",
    "hv-xmm-input",
    "hv-emsr-bitmap",
    "hv-avic",
    "hv-syndbg",
];

/// Where the configuration came from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub enum ConfigSource {
    #[default]
    None,
    Cmdline,
    Libvirt,
    Both,
}

/// What a VM was started with, as far as the advice needs.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct VmConfig {
    pub source: ConfigSource,
    /// `-cpu` model (`host`, `kvm64`, ...); libvirt: the `<cpu mode>`.
    pub cpu_model: Option<String>,
    /// Canonical hv flag (see [`HV_FLAGS`]) → on/off, as configured.
    pub hv: BTreeMap<String, bool>,
    /// hv-spinlocks retries.
    pub spinlocks: Option<u64>,
    /// hv-no-nonarch-coresharing value (on/off/auto).
    pub coresharing: Option<String>,
    /// hv-passthrough: every flag KVM supports (effective set only visible in guest behaviour).
    pub passthrough: bool,
    pub enforce_cpuid: bool,
    /// CPUID hypervisor bit cleared (`-hypervisor`, `hypervisor=off`, libvirt disable).
    pub hypervisor_hidden: bool,
    /// `kvm=off` / `<kvm><hidden state='on'/>`: hides the KVM signature only (L11).
    pub kvm_hidden: bool,
    /// HPET present; None = machine default (on for pc/q35).
    pub hpet: Option<bool>,
    /// kvm-pit lost_tick_policy (`delay` = reinject, the default; `discard`).
    pub pit_policy: Option<String>,
    /// `-overcommit cpu-pm=on`: guest HLT/MWAIT/PAUSE do not exit (dedicated pCPUs).
    pub cpu_pm: bool,
    /// vmx/svm exposed to the guest; None = model default (host/max follow the host's nested).
    pub nested: Option<bool>,
    pub invtsc: Option<bool>,
    /// x2APIC exposed to the guest; None = model default.
    pub x2apic: Option<bool>,
    pub tsc_frequency: Option<String>,
    /// `-rtc base=` (utc / localtime / date).
    pub rtc_base: Option<String>,
    pub vcpus: Option<u32>,
    /// libvirt only: libosinfo OS id (e.g. http://microsoft.com/win/11).
    pub os_hint: Option<String>,
    /// libvirt only: vCPUs pinned (`<vcpupin>`).
    pub pinned: Option<bool>,
    /// libvirt only: `<on_crash>` action.
    pub on_crash: Option<String>,
}

/// QEMU's boolean spellings.
pub fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "on" | "yes" | "true" | "y" | "1" => Some(true),
        "off" | "no" | "false" | "n" | "0" => Some(false),
        _ => None,
    }
}

/// Numbers as QEMU takes them: decimal or 0x hex.
pub fn parse_num(v: &str) -> Option<u64> {
    let v = v.trim();
    match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => v.parse().ok(),
    }
}

/// `hv_relaxed` → `hv-relaxed`; aliases (`hv-apicv` → `hv-avic`).
pub fn canonical(key: &str) -> String {
    let k = key.trim().to_ascii_lowercase().replace('_', "-");
    match k.as_str() {
        "hv-apicv" => "hv-avic".into(),
        _ => k,
    }
}

impl VmConfig {
    /// Whether flag `f` (canonical) is effectively on. hv-passthrough turns on everything
    /// except what KVM cannot give (hv-evmcs needs nesting, hv-syndbg is explicit).
    pub fn has(&self, f: &str) -> bool {
        match self.hv.get(f) {
            Some(v) => *v,
            None => self.passthrough && !matches!(f, "hv-syndbg" | "hv-evmcs"),
        }
    }

    /// Flags explicitly or implicitly on, for display.
    pub fn enabled(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .hv
            .iter()
            .filter(|(_, on)| **on)
            .map(|(k, _)| k.clone())
            .collect();
        if self.passthrough {
            v.insert(0, "hv-passthrough".into());
        }
        v
    }

    /// Any hv flag configured on (the VM was set up for Windows).
    pub fn any_hv(&self) -> bool {
        self.passthrough || self.hv.values().any(|v| *v)
    }

    /// True when nothing is known.
    pub fn is_unknown(&self) -> bool {
        self.source == ConfigSource::None
    }

    /// The QEMU command line, `argv[0]` included. The last `-cpu` wins.
    pub fn from_cmdline(argv: &[String]) -> VmConfig {
        let mut c = VmConfig {
            source: if argv.is_empty() {
                ConfigSource::None
            } else {
                ConfigSource::Cmdline
            },
            ..Default::default()
        };
        let mut cpu: Option<String> = None;
        let mut globals: Vec<(String, String, String)> = Vec::new();
        let mut args = argv.iter().skip(1);
        while let Some(arg) = args.next() {
            let Some(opt) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
                continue;
            };
            let (key, inline) = match opt.split_once('=') {
                Some((k, v))
                    if matches!(
                        k,
                        "cpu" | "machine" | "M" | "global" | "overcommit" | "rtc" | "smp"
                    ) =>
                {
                    (k, Some(v.to_string()))
                }
                _ => (opt, None),
            };
            let takes_value = matches!(
                key,
                "cpu" | "machine" | "M" | "global" | "overcommit" | "rtc" | "smp"
            );
            if key == "no-hpet" {
                c.hpet = Some(false);
                continue;
            }
            if !takes_value {
                continue;
            }
            let Some(val) = inline.or_else(|| args.next().cloned()) else {
                break;
            };
            match key {
                "cpu" => cpu = Some(val),
                "machine" | "M" => c.machine(&val),
                "global" => globals.extend(global(&val)),
                "overcommit" => {
                    for o in split_opts(&val) {
                        if let Some(("cpu-pm", v)) = o.split_once('=') {
                            c.cpu_pm = parse_bool(v).unwrap_or(false);
                        }
                    }
                }
                "rtc" => {
                    for o in split_opts(&val) {
                        if let Some(("base", v)) = o.split_once('=') {
                            c.rtc_base = Some(v.to_string());
                        }
                    }
                }
                "smp" => c.vcpus = smp(&val),
                _ => {}
            }
        }
        // -global applies as a default for the cpu type; explicit -cpu properties win.
        for (driver, prop, value) in &globals {
            if driver == "kvm-pit" && prop == "lost_tick_policy" {
                c.pit_policy = Some(value.clone());
            } else if driver.ends_with("-cpu") {
                c.cpu_prop(prop, Some(value));
            }
        }
        if let Some(cpu) = cpu {
            c.cpu(&cpu);
        }
        c
    }

    fn machine(&mut self, val: &str) {
        for o in split_opts(val) {
            if let Some((k, v)) = o.split_once('=') {
                if k == "hpet" {
                    self.hpet = parse_bool(v);
                }
            }
        }
    }

    /// `-cpu MODEL,k=v,+f,-f,...`: legacy `+f`/`-f` win over `f=on/off`, whatever the order.
    fn cpu(&mut self, val: &str) {
        let opts = split_opts(val);
        if let Some(model) = opts.first().filter(|m| !m.is_empty() && !m.contains('=')) {
            // host/max pass vmx/svm through when the host allows nesting: `nested` stays
            // None (unknown) unless a property says otherwise.
            self.cpu_model = Some(model.clone());
        }
        let mut legacy: Vec<(String, bool)> = Vec::new();
        for o in opts.iter().skip(usize::from(self.cpu_model.is_some())) {
            if let Some(f) = o.strip_prefix('+') {
                legacy.push((f.to_string(), true));
            } else if let Some(f) = o.strip_prefix('-') {
                legacy.push((f.to_string(), false));
            } else if let Some((k, v)) = o.split_once('=') {
                self.cpu_prop(k, Some(v));
            } else if !o.is_empty() {
                self.cpu_prop(o, None);
            }
        }
        for (f, on) in legacy {
            self.cpu_prop(&f, Some(if on { "on" } else { "off" }));
        }
    }

    /// One CPU property. `value` None = bare key (on).
    fn cpu_prop(&mut self, key: &str, value: Option<&str>) {
        let k = canonical(key);
        let on = value.map_or(Some(true), parse_bool);
        match k.as_str() {
            "hv-passthrough" => self.passthrough = on.unwrap_or(false),
            "hv-enforce-cpuid" => self.enforce_cpuid = on.unwrap_or(false),
            "hv-spinlocks" => {
                self.spinlocks = value.and_then(parse_num);
                self.hv.insert(k, self.spinlocks.is_some());
            }
            "hv-vendor-id" => {
                self.hv.insert(k, value.is_some_and(|v| !v.is_empty()));
            }
            "hv-no-nonarch-coresharing" => {
                let v = value.unwrap_or("on").to_ascii_lowercase();
                self.hv.insert(k, v == "on");
                self.coresharing = Some(v);
            }
            "hypervisor" => self.hypervisor_hidden = on == Some(false),
            "kvm" => self.kvm_hidden = on == Some(false),
            "vmx" | "svm" => self.nested = on,
            "invtsc" => self.invtsc = on,
            "x2apic" => self.x2apic = on,
            "tsc-frequency" | "tsc-freq" => self.tsc_frequency = value.map(String::from),
            _ if k.starts_with("hv-") => {
                if let Some(on) = on {
                    self.hv.insert(k, on);
                }
            }
            _ => {}
        }
    }

    /// `self` with fields it lacks filled from `other` (the command line is what runs; the
    /// libvirt XML adds OS id, pinning, on_crash, and everything when there is no cmdline).
    pub fn merge(mut self, other: &VmConfig) -> VmConfig {
        if other.source == ConfigSource::None {
            return self;
        }
        if self.source == ConfigSource::None {
            return other.clone();
        }
        for (k, v) in &other.hv {
            self.hv.entry(k.clone()).or_insert(*v);
        }
        self.passthrough |= other.passthrough;
        self.hypervisor_hidden |= other.hypervisor_hidden;
        self.kvm_hidden |= other.kvm_hidden;
        self.cpu_pm |= other.cpu_pm;
        macro_rules! fill {
            ($($f:ident),*) => { $( if self.$f.is_none() { self.$f = other.$f.clone(); } )* };
        }
        fill!(
            cpu_model,
            spinlocks,
            coresharing,
            hpet,
            pit_policy,
            nested,
            invtsc,
            x2apic,
            tsc_frequency,
            rtc_base,
            vcpus,
            os_hint,
            pinned,
            on_crash
        );
        self.source = ConfigSource::Both;
        self
    }
}

/// `-global DRIVER.PROP=VALUE` or `-global driver=D,property=P,value=V`.
fn global(val: &str) -> Option<(String, String, String)> {
    if val.starts_with("driver=") {
        let (mut d, mut p, mut v) = (None, None, None);
        for o in split_opts(val) {
            match o.split_once('=') {
                Some(("driver", x)) => d = Some(x.to_string()),
                Some(("property", x)) => p = Some(canonical_prop(x)),
                Some(("value", x)) => v = Some(x.to_string()),
                _ => {}
            }
        }
        return Some((d?, p?, v?));
    }
    let (lhs, v) = val.split_once('=')?;
    let (d, p) = lhs.rsplit_once('.')?;
    Some((d.to_string(), canonical_prop(p), v.to_string()))
}

fn canonical_prop(p: &str) -> String {
    if p.starts_with("hv") {
        canonical(p)
    } else {
        p.to_string()
    }
}

/// `-smp 8`, `-smp cpus=8,sockets=1`, `-smp 8,maxcpus=16`.
fn smp(val: &str) -> Option<u32> {
    let opts = split_opts(val);
    for (i, o) in opts.iter().enumerate() {
        match o.split_once('=') {
            Some(("cpus", v)) => return v.parse().ok(),
            None if i == 0 => return o.parse().ok(),
            _ => {}
        }
    }
    None
}
