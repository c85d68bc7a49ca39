use super::*;

const EXIT: &str = include_str!("fixtures/kvm_exit-6.18.format");
const UEXIT: &str = include_str!("fixtures/kvm_userspace_exit-6.18.format");
const EXIT_510: &str = include_str!("fixtures/kvm_exit-5.10.format");

#[test]
fn host_kernel_names() {
    let (n, warnings) = ExitNames::from_formats_warn(Some(EXIT), Some(UEXIT));
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(n.source, "kernel");
    for (isa, code, name) in [
        (ISA_VMX, 30, "IO_INSTRUCTION"),
        (ISA_VMX, 49, "EPT_MISCONFIG"),
        (ISA_VMX, 0, "EXCEPTION_NMI"),
        (ISA_SVM, 0x7b, "io"),
        (ISA_SVM, 0x7c, "msr"),
        (ISA_SVM, 0x400, "npf"),
        (ISA_SVM, 0x4e, "PF excp"),
        (ISA_SVM, 0x8000_0010, "vmgexit_page_state_change"),
        (ISA_SVM, -1i32 as u32, "invalid_guest_state"),
        (ISA_USERSPACE, 2, "KVM_EXIT_IO"),
        (ISA_USERSPACE, 30, "KVM_EXIT_X86_WRMSR"),
    ] {
        assert_eq!(n.name(isa, code), name, "isa {isa} code {code:#x}");
    }
}

#[test]
fn builtin_tables_match_this_hosts_kernel() {
    // The built-ins were copied from a 6.18 kernel: parsing its formats must change nothing.
    let kernel = ExitNames::from_formats(Some(EXIT), Some(UEXIT));
    let builtin = ExitNames::builtin();
    assert_eq!(kernel.vmx, builtin.vmx);
    assert_eq!(kernel.svm, builtin.svm);
    assert_eq!(kernel.user, builtin.user);
}

#[test]
fn older_kernel_overrides_and_gaps() {
    let (n, warnings) = ExitNames::from_formats_warn(Some(EXIT_510), None);
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(n.name(ISA_VMX, 7), "PENDING_INTERRUPT"); // kernel's name wins
    assert_eq!(n.name(ISA_VMX, 74), "BUS_LOCK"); // gap filled from built-in
    assert_eq!(n.name(ISA_VMX, 49), "EPT_MISCONFIG");
    assert_eq!(n.name(ISA_SVM, 0x4e), "PF excp");
    assert_eq!(n.name(ISA_SVM, 0x401), "avic_incomplete_ipi");
    assert_eq!(n.name(ISA_SVM, u32::MAX), "invalid_guest_state");
    assert_eq!(n.name(ISA_USERSPACE, 2), "KVM_EXIT_IO");
}

#[test]
fn single_table_is_classified_by_its_names() {
    let vmx = r#"print fmt: "%s", __print_symbolic(REC->exit_reason, { 12, "HLT" }, { 99, "NEW_THING" })"#;
    let n = ExitNames::from_formats(Some(vmx), None);
    assert_eq!(n.name(ISA_VMX, 99), "NEW_THING");
    assert_eq!(n.name(ISA_SVM, 0x999), "0x999");
    let svm = r#"print fmt: "%s", __print_symbolic(REC->exit_reason, { 0x78, "hlt" }, { 0x999, "new_thing" })"#;
    let (n, warnings) = ExitNames::from_formats_warn(Some(svm), None);
    assert_eq!(n.name(ISA_SVM, 0x999), "new_thing");
    assert_eq!(
        warnings,
        ["kvm_exit: no VMX name table in the print format; using built-in names"]
    );
}

#[test]
fn garbage_falls_back_to_builtin() {
    let (n, warnings) =
        ExitNames::from_formats_warn(Some("garbage"), Some("__print_symbolic(REC->reason"));
    assert_eq!(n, ExitNames::builtin());
    assert_eq!(warnings.len(), 3, "{warnings:?}");
    let partial = r#"__print_symbolic(REC->exit_reason & 0xffff, { 12, "HLT" }, { FOO, "X" })"#;
    let (_, warnings) = ExitNames::from_formats_warn(Some(partial), None);
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("1 VMX name entries could not be parsed")),
        "{warnings:?}"
    );
}

#[test]
fn unknown_codes_are_numbers_each_its_own() {
    let n = ExitNames::builtin();
    assert_eq!(n.name(ISA_VMX, 0x7777), "0x7777");
    assert_eq!(n.name(ISA_VMX, 0x7778), "0x7778");
    assert_eq!(n.name(ISA_SVM, 0x999), "0x999");
    assert_eq!(n.name(ISA_USERSPACE, 99), "0x63");
    assert_eq!(n.name(7, 5), "0x5");
    assert!(!n.name(ISA_SVM, 0x42).contains("UNKNOWN"));
}

#[test]
fn vmx_flags_and_userspace_errors() {
    let n = ExitNames::builtin();
    assert_eq!(n.name(ISA_VMX, 0x8000_0021), "INVALID_STATE FAILED_VMENTRY");
    assert_eq!(n.name(ISA_VMX, 0x1000_0030), "EPT_VIOLATION 0x10000000");
    assert_eq!(n.name(ISA_USERSPACE, UEXIT_RESTART), "restart");
    assert_eq!(n.name(ISA_USERSPACE, UEXIT_ERROR), "error");
}

#[test]
fn hlt_and_isa_names() {
    let n = ExitNames::default();
    assert!(n.is_hlt(ISA_VMX, 12) && n.is_hlt(ISA_SVM, 0x78) && n.is_hlt(ISA_SVM, 0xa6));
    assert!(n.is_hlt(ISA_USERSPACE, 5));
    assert!(!n.is_hlt(ISA_VMX, 0x8000_000c) && !n.is_hlt(ISA_SVM, 12) && !n.is_hlt(9, 12));
    assert_eq!(
        [ISA_VMX, ISA_SVM, ISA_USERSPACE, 3].map(isa_name),
        ["vmx", "svm", "user", "isa?"]
    );
    assert_eq!(n.code(ISA_SVM, "npf"), Some(0x400));
    assert_eq!(n.code(ISA_VMX, "nope"), None);
}

#[test]
fn serde_round_trip_and_old_recordings() {
    let n = ExitNames::from_formats(Some(EXIT_510), Some(UEXIT));
    let json = serde_json::to_string(&n).unwrap();
    assert_eq!(serde_json::from_str::<ExitNames>(&json).unwrap(), n);
    // A recording without tables still names known codes (built-in fallback).
    let empty: ExitNames = serde_json::from_str("{}").unwrap();
    assert_eq!(empty.name(ISA_VMX, 30), "IO_INSTRUCTION");
}

#[test]
fn load_from_tracefs() {
    let dir = tempfile::tempdir().unwrap();
    let (n, warnings) = ExitNames::load(dir.path());
    assert_eq!(n.source, "built-in");
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(
        warnings[0].contains("events/kvm/kvm_exit/format"),
        "{warnings:?}"
    );
    for (event, text) in [("kvm_exit", EXIT), ("kvm_userspace_exit", UEXIT)] {
        let d = dir.path().join("events/kvm").join(event);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("format"), text).unwrap();
    }
    let (n, warnings) = ExitNames::load(dir.path());
    assert!(warnings.is_empty(), "{warnings:?}");
    assert!(n.source.starts_with("kernel"), "{}", n.source);
    assert_eq!(n.name(ISA_SVM, 0x7c), "msr");
}

#[test]
fn real_tracefs_when_present() {
    let root = Path::new("/sys/kernel/tracing");
    let present = ["kvm_exit", "kvm_userspace_exit"]
        .iter()
        .all(|e| root.join("events/kvm").join(e).join("format").exists());
    if !present {
        return; // No kvm tracepoints visible (not root, or kvm not loaded): nothing to check.
    }
    let (n, warnings) = ExitNames::load(root);
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(n.name(ISA_VMX, 30), "IO_INSTRUCTION");
}
