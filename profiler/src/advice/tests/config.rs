//! Command-line and libvirt parsing on real-world lines, host facts from a fake root, guest OS
//! decoding, names.

use super::*;
use crate::advice::config::ConfigSource;

fn cfg(s: &str) -> VmConfig {
    VmConfig::from_cmdline(&argv(s))
}

#[test]
fn libvirt_generated_cpu_line() {
    let c = cfg("/usr/bin/qemu-system-x86_64 -name guest=win11,debug-threads=on -machine pc-q35-8.2,usb=off,hpet=off,acpi=on -accel kvm -cpu host,migratable=on,hv-time=on,hv-relaxed=on,hv-vapic=on,hv-spinlocks=0x1fff,hv-vpindex=on,hv-runtime=on,hv-synic=on,hv-stimer=on,hv-stimer-direct=on,hv-reset=on,hv-vendor-id=KVM,,Hv,hv-frequencies=on,hv-reenlightenment=on,hv-tlbflush=on,hv-ipi=on,hv-avic=on -global kvm-pit.lost_tick_policy=delay -rtc base=localtime,driftfix=slew -smp 8,sockets=1,cores=4,threads=2 -no-hpet");
    assert_eq!(c.source, ConfigSource::Cmdline);
    assert_eq!(c.cpu_model.as_deref(), Some("host"));
    for f in [
        "hv-time",
        "hv-relaxed",
        "hv-vapic",
        "hv-synic",
        "hv-stimer",
        "hv-stimer-direct",
        "hv-avic",
        "hv-vendor-id",
        "hv-ipi",
    ] {
        assert!(c.has(f), "{f}");
    }
    assert!(!c.has("hv-evmcs") && !c.has("hv-crash"));
    assert_eq!(c.spinlocks, Some(0x1fff));
    assert_eq!(c.hpet, Some(false));
    assert_eq!(c.pit_policy.as_deref(), Some("delay"));
    assert_eq!(c.rtc_base.as_deref(), Some("localtime"));
    assert_eq!(c.vcpus, Some(8));
    assert!(!c.hypervisor_hidden && !c.passthrough);
}

#[test]
fn proxmox_underscore_spellings() {
    let c = cfg("/usr/bin/kvm -id 100 -name win10,debug-threads=on -smp 4,sockets=1,cores=4,maxcpus=4 -cpu kvm64,enforce,hv_ipi,hv_relaxed,hv_reset,hv_runtime,hv_spinlocks=0x1fff,hv_stimer,hv_synic,hv_time,hv_vapic,hv_vpindex,+kvm_pv_eoi,+kvm_pv_unhalt,+lahf_lm,+sep");
    assert_eq!(c.cpu_model.as_deref(), Some("kvm64"));
    for f in [
        "hv-ipi",
        "hv-relaxed",
        "hv-reset",
        "hv-runtime",
        "hv-stimer",
        "hv-synic",
        "hv-time",
        "hv-vapic",
        "hv-vpindex",
        "hv-spinlocks",
    ] {
        assert!(c.has(f), "{f}");
    }
    assert!(!c.has("hv-avic") && !c.has("hv-tlbflush"));
    assert_eq!(c.vcpus, Some(4));
}

#[test]
fn legacy_plus_minus_win_and_last_cpu_wins() {
    let c = cfg("qemu-system-x86_64 -cpu host,hv-time -cpu host,-hv-relaxed,hv-relaxed=on,hv_vapic=yes,+hv-synic,hv-synic=off,hv-ipi=false,hv-reset=true,hv-runtime=no");
    assert!(!c.has("hv-time"), "an earlier -cpu does not count");
    assert!(!c.has("hv-relaxed"), "-hv-relaxed wins over hv-relaxed=on");
    assert!(c.has("hv-synic"), "+hv-synic wins over hv-synic=off");
    assert!(c.has("hv-vapic") && c.has("hv-reset"));
    assert!(!c.has("hv-ipi") && !c.has("hv-runtime"));
}

#[test]
fn passthrough_hidden_and_globals() {
    let c = cfg("qemu-kvm -cpu host,hv-passthrough,hv-evmcs=off,-hypervisor,kvm=off,+vmx,+invtsc,tsc-frequency=2000000000 -overcommit mem-lock=off,cpu-pm=on");
    assert!(c.passthrough && c.has("hv-stimer") && c.has("hv-avic"));
    assert!(!c.has("hv-evmcs") && !c.has("hv-syndbg"));
    assert!(c.hypervisor_hidden && c.kvm_hidden && c.cpu_pm);
    assert_eq!((c.nested, c.invtsc), (Some(true), Some(true)));
    assert_eq!(c.tsc_frequency.as_deref(), Some("2000000000"));

    let g = cfg("qemu-system-x86_64 -cpu Skylake-Client,hypervisor=off -global Skylake-Client-x86_64-cpu.hv-stimer=on -global driver=host-x86_64-cpu,property=hv_synic,value=on -global driver=kvm-pit,property=lost_tick_policy,value=discard -machine q35,hpet=on");
    assert!(g.has("hv-stimer") && g.has("hv-synic") && g.hypervisor_hidden);
    assert_eq!(g.pit_policy.as_deref(), Some("discard"));
    assert_eq!(g.hpet, Some(true));
    // Explicit -cpu properties beat -global defaults.
    let o = cfg("qemu-system-x86_64 -global host-x86_64-cpu.hv-time=on -cpu host,hv-time=off");
    assert!(!o.has("hv-time"));
    assert!(cfg("qemu-system-x86_64 -cpu=host,hv-apicv").has("hv-avic"));
    assert_eq!(cfg(""), VmConfig::default());
}

const DOMAIN: &str = r#"<domstatus state='running' pid='4242'>
<domain type='kvm' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>win11</name>
  <metadata><libosinfo:libosinfo xmlns:libosinfo="http://libosinfo.org/xmlns/libvirt/domain/1.0">
    <libosinfo:os id="http://microsoft.com/win/11"/></libosinfo:libosinfo></metadata>
  <vcpu placement='static'>8</vcpu>
  <cputune><vcpupin vcpu='0' cpuset='2'/></cputune>
  <features>
    <acpi/>
    <hyperv mode='custom'>
      <relaxed state='on'/><vapic state='on'/><spinlocks state='on' retries='8191'/>
      <vpindex state='on'/><runtime state='on'/><synic state='on'/>
      <stimer state='on'><direct state='on'/></stimer>
      <reset state='on'/><vendor_id state='on' value='KVM Hv'/><frequencies state='on'/>
      <tlbflush state='on'><direct state='on'/><extended state='on'/></tlbflush>
      <ipi state='on'/><avic state='on'/><evmcs state='off'/>
    </hyperv>
    <kvm><hidden state='on'/></kvm>
  </features>
  <cpu mode='host-passthrough' check='none' migratable='on'>
    <feature policy='disable' name='hypervisor'/>
    <feature policy='require' name='invtsc'/>
    <feature policy='disable' name='vmx'/>
  </cpu>
  <clock offset='localtime'>
    <timer name='rtc' tickpolicy='catchup'/><timer name='pit' tickpolicy='delay'/>
    <timer name='hpet' present='no'/><timer name='hypervclock' present='yes'/>
  </clock>
  <on_crash>destroy</on_crash>
</domain></domstatus>"#;

#[test]
fn libvirt_domain_xml() {
    let c = parse_libvirt_xml(DOMAIN);
    assert_eq!(c.source, ConfigSource::Libvirt);
    for f in [
        "hv-relaxed",
        "hv-vapic",
        "hv-stimer",
        "hv-stimer-direct",
        "hv-tlbflush-direct",
        "hv-tlbflush-ext",
        "hv-avic",
        "hv-time",
        "hv-vendor-id",
        "hv-ipi",
    ] {
        assert!(c.has(f), "{f}");
    }
    assert!(!c.has("hv-evmcs"));
    assert_eq!(c.spinlocks, Some(8191));
    assert!(c.hypervisor_hidden && c.kvm_hidden);
    assert_eq!(
        (c.nested, c.invtsc, c.hpet),
        (Some(false), Some(true), Some(false))
    );
    assert_eq!(c.pit_policy.as_deref(), Some("delay"));
    assert_eq!(c.vcpus, Some(8));
    assert_eq!(c.pinned, Some(true));
    assert_eq!(c.on_crash.as_deref(), Some("destroy"));
    assert_eq!(c.os_hint.as_deref(), Some("http://microsoft.com/win/11"));
    assert_eq!(parse_libvirt_xml("<not xml"), VmConfig::default());
    // The command line keeps priority; the XML fills what it lacks.
    let m = cfg(&qemu("host,hv-avic=off")).merge(&c);
    assert!(!m.has("hv-avic") && m.has("hv-stimer-direct") && m.pinned == Some(true));
    let r = Fx::new(&qemu("host")).xml(DOMAIN).run(intel(true));
    assert!(r.guest.contains("libvirt"), "{}", r.guest);
}

#[test]
fn host_facts_from_fake_root() {
    let d = tempfile::tempdir().expect("tempdir");
    let w = |p: &str, s: &str| {
        let p = d.path().join(p);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, s).expect("write");
    };
    w("sys/module/kvm_intel/parameters/enable_apicv", "N\n");
    w("sys/module/kvm_intel/parameters/enable_ipiv", "Y\n");
    w("sys/module/kvm_intel/parameters/nested", "Y\n");
    w("sys/module/kvm/parameters/halt_poll_ns", "200000\n");
    w("proc/sys/kernel/osrelease", "6.8.0-45-generic\n");
    w("proc/cpuinfo", "processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: fpu vmx\nvmx flags\t: ept tsc_scaling\nprocessor\t: 1\n");
    w(
        "sys/devices/system/clocksource/clocksource0/current_clocksource",
        "tsc\n",
    );
    let h = HostFacts::read(d.path());
    assert_eq!(h.vendor, Some(Vendor::Intel));
    assert_eq!(
        (h.apicv, h.ipiv, h.nested),
        (Some(false), Some(true), Some(true))
    );
    assert_eq!(h.halt_poll_ns, Some(200_000));
    assert_eq!(h.kernel(), Some((6, 8)));
    assert_eq!(h.autoeoi_only_inhibit(), Some(true));
    assert_eq!((h.cpus, h.tsc_scaling), (Some(2), Some(true)));
    assert_eq!(h.clocksource.as_deref(), Some("tsc"));
    assert_eq!(h.x2avic, None, "an Intel host has no x2AVIC fact");
    let empty = HostFacts::read(&d.path().join("nothing"));
    assert_eq!(empty, HostFacts::default());
}

/// x2AVIC is read from cpuinfo on AMD hosts whose kernel reports it (≥ 6.0); on older
/// kernels its absence proves nothing.
#[test]
fn amd_x2avic_fact() {
    let facts = |kernel: &str, flags: &str| {
        let d = tempfile::tempdir().expect("tempdir");
        let w = |p: &str, s: &str| {
            let p = d.path().join(p);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(p, s).expect("write");
        };
        w("sys/module/kvm_amd/parameters/avic", "1\n");
        w("sys/module/kvm_amd/parameters/enable_ipiv", "N\n");
        w("proc/sys/kernel/osrelease", kernel);
        w(
            "proc/cpuinfo",
            &format!("processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu svm {flags}\n"),
        );
        HostFacts::read(d.path())
    };
    let zen4 = facts("6.8.0-45-generic\n", "avic x2avic");
    assert_eq!((zen4.apicv, zen4.x2avic), (Some(true), Some(true)));
    assert_eq!(zen4.ipiv, Some(false), "kvm_amd enable_ipiv is read on AMD");
    assert!(!zen4.avic_xapic_only());
    let zen3 = facts("6.8.0-45-generic\n", "avic");
    assert_eq!(zen3.x2avic, Some(false));
    assert!(zen3.avic_xapic_only());
    assert_eq!(facts("5.15.0-91-generic\n", "avic").x2avic, None);
}

#[test]
fn guest_os_id_decoding() {
    let win = |maj: u64, min: u64, build: u64| {
        (1u64 << 48) | (4 << 40) | (maj << 32) | (min << 24) | build
    };
    let g = decode_guest_os_id(win(10, 0, 22631));
    assert!(g.is_windows() && g.version.as_deref().unwrap_or("").starts_with("Windows 11"));
    assert!(decode_guest_os_id(win(10, 0, 19045))
        .version
        .unwrap_or_default()
        .starts_with("Windows 10"));
    assert!(decode_guest_os_id(win(6, 0, 6002)).is_nt6_legacy());
    assert!(decode_guest_os_id(win(6, 1, 7601)).is_nt6_legacy());
    assert!(!decode_guest_os_id(win(6, 2, 9200)).is_nt6_legacy());
    let linux = decode_guest_os_id((1 << 63) | (1 << 56) | (0x06_08_00 << 16));
    assert_eq!(linux.kind, GuestKind::Linux);
    assert_eq!(linux.version.as_deref(), Some("Linux 6.8.0"));
    // Behaviour: KVM PV MSRs ⇒ Linux.
    let r = Fx::new(&qemu("host"))
        .ev(ev::MSR_WRITE, 0, 0x4b56_4d01, 1, 0)
        .run(intel(true));
    assert!(r.guest.starts_with("Linux"), "{}", r.guest);
}

#[test]
fn names_tables() {
    use crate::advice::names::*;
    assert_eq!(msr_name(0x4000_0070).as_deref(), Some("HV_EOI"));
    assert_eq!(msr_name(0x4000_0093).as_deref(), Some("HV_SINT3"));
    assert_eq!(msr_name(0x4000_00b2).as_deref(), Some("HV_STIMER1_CONFIG"));
    assert_eq!(msr_name(0x830).as_deref(), Some("X2APIC_ICR"));
    assert_eq!(msr_name(0x80b).as_deref(), Some("X2APIC_EOI"));
    assert_eq!(msr_name(0x6e0).as_deref(), Some("IA32_TSC_DEADLINE"));
    assert_eq!(msr_name(0x4b56_4d04).as_deref(), Some("KVM_PV_EOI_EN"));
    assert_eq!(port_name(0x71), Some("RTC data"));
    assert!(is_pm_timer_port(0xb008) && is_pm_timer_port(0x608));
    assert_eq!(gpa_label(0xfed0_00f0), "HPET+0xf0 MAIN_COUNTER");
    assert_eq!(gpa_label(0xfed0_0128), "HPET+0x128 T1_COMPARATOR");
    assert_eq!(gpa_label(0xfee0_0300), "LAPIC+0x300 ICR");
    assert_eq!(gpa_label(0xfec0_0010), "IOAPIC+0x10 IOWIN");
    assert_eq!(hypercall_name(0x0008), Some("HvNotifyLongSpinWait"));
    assert_eq!(
        hypercall_name(0x1_0015),
        Some("HvSendSyntheticClusterIpiEx")
    );
    assert_eq!(vector_name(0xfd), Some("RESCHEDULE (KVM kick)"));
}

#[test]
fn inhibit_names_from_kernel_format() {
    let fmt = include_str!("../fixtures/kvm_apicv_inhibit_changed-6.18.format");
    let n = InhibitNames::from_format(fmt);
    assert_eq!(n.source, "kernel");
    assert_eq!(n.name(1), "HYPERV");
    assert_eq!(n.bit("PIT_REINJ"), Some(9));
    assert_eq!(n.mask(0b10_0000_0010), "HYPERV|PIT_REINJ");
    // Resolved numbers (no enum names in the format) and unreadable formats.
    let resolved = InhibitNames::from_format(
        r#"__print_flags(REC->inhibits, "|", { ((1UL) << (0)), "DISABLED" }, { ((1UL) << (1)), "HYPERV_X" })"#,
    );
    assert_eq!(resolved.name(1), "HYPERV_X");
    assert_eq!(
        InhibitNames::from_format("garbage"),
        InhibitNames::default()
    );
    assert_eq!(InhibitNames::default().name(12), "PHYSICAL_ID_TOO_BIG");
    assert_eq!(InhibitNames::default().name(40), "bit 40");
}

/// L01 names every dependency QEMU's docs list: hv-ipi and hv-tlbflush need hv-vpindex,
/// hv-evmcs needs hv-vapic (as do hv-tlbflush-direct).
#[test]
fn l01_names_ipi_tlbflush_and_evmcs_dependencies() {
    let win10 = (1u64 << 48) | (4 << 40) | (10 << 32) | 19045;
    let r = super::Fx::new(&super::qemu(
        "host,hv-time,hv-ipi,hv-tlbflush,hv-evmcs,+vmx",
    ))
    .once(profiler_common::ev::MSR_WRITE, 0, 0x4000_0000, win10)
    .run(super::intel(true));
    let l01 = super::get(&r, "L01");
    for dep in [
        "hv-ipi is on without hv-vpindex, which it needs",
        "hv-tlbflush is on without hv-vpindex, which it needs",
        "hv-evmcs is on without hv-vapic, which it needs",
    ] {
        assert!(
            l01.evidence.iter().any(|e| e == dep),
            "{dep}: {:?}",
            l01.evidence
        );
    }
}
