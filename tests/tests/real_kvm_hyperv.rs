//! Real-KVM Hyper-V check: the exerciser's Hyper-V guest (`kvmprof exercise --ops h`: a Windows 11
//! GUEST_OS_ID, SynIC with an AutoEOI SINT, synthetic timer 0, synthetic-EOI writes and
//! TIME_REF_COUNT reads) under nested AMD SVM, profiled by `kvmprof report` and `kvmprof advise`,
//! against the guest kernel's hist triggers on kvm_exit, kvm_msr (ecx,write) and
//! kvm_hv_synic_set_msr (msr). The run is `cargo xtask vm-test` (tests/vm/init.sh, files hv_*),
//! which sets KVMPROF_VM_OUT.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use kvmprof::exerciser::hyperv as hv;
use kvmprof_tests::{
    parse_advice, parse_hist, parse_kv_lines, parse_report, parse_result_line, parse_tagged_line,
    read_file, Advice, Hist,
};

const VM_NAME: &str = "kvmprof-hyperv";
const SVM: u64 = 2;
const MSR: u64 = 0x7c;
const KVM_EXIT_IO: u64 = 2;
const KVM_EXIT_HYPERV: u64 = 27;

#[test]
fn hyperv_guest_matches_hist_triggers_and_advice() {
    kvmprof_tests::vm_runs::each_kernel("real_kvm_hyperv", |run| {
        check(&run.dir)?;
        inhibit_names(run)
    });
}

/// Collects mismatches so one run reports all of them.
#[derive(Default)]
struct Errors(Vec<String>);

impl Errors {
    fn expect(&mut self, ok: bool, msg: impl FnOnce() -> String) {
        if !ok {
            self.0.push(msg());
        }
    }
}

fn hist(dir: &Path, name: &str) -> Result<Hist> {
    parse_hist(&read_file(dir, name)?).with_context(|| name.to_string())
}

fn check(dir: &Path) -> Result<()> {
    let status = read_file(dir, "hv_status.txt")?;
    if status.trim() != "ok" {
        let out = read_file(dir, "hv_exercise.txt").unwrap_or_default();
        bail!(
            "the Hyper-V run failed in the VM: {}; exerciser said: {}",
            status.trim(),
            out.trim()
        );
    }
    let info = parse_kv_lines(&read_file(dir, "info.txt")?);
    let exercise = read_file(dir, "hv_exercise.txt")?;
    let result = parse_result_line(&exercise)?;
    let hvline = parse_tagged_line(&exercise, "HYPERV")?;
    let num = |m: &BTreeMap<String, String>, k: &str| m.get(k).and_then(|v| v.parse::<u64>().ok());
    let n = num(&result, "iters").context("RESULT line has no iters=N")?;
    let exit_hist = hist(dir, "hv_kvm_exit.hist")?;
    let entry_hist = hist(dir, "hv_kvm_entry.hist")?;
    let msr_hist = hist(dir, "hv_kvm_msr.hist")?;
    let synic_hist = hist(dir, "hv_synic_msr.hist")?;
    let stimer_hist = hist(dir, "hv_stimer.hist").ok();
    let report = parse_report(&read_file(dir, "hv_kvmprof.json")?)?;
    let mut err = Errors::default();
    if let Err(e) = report.vm(VM_NAME) {
        err.0.push(format!("{e:#}"));
    }
    let vm = match report.vm(VM_NAME) {
        Ok(vm) => vm,
        Err(e) => report.vms.iter().max_by_key(|v| v.exits).ok_or(e)?,
    };

    // What the guest did, by construction (guest.rs), and what the kernel says it did.
    let l = hv::HvLayout::default();
    let want_msrs: Vec<((u64, u64), u64)> = vec![
        ((hv::GUEST_OS_ID.into(), 1), 1),
        ((hv::TIME_REF_COUNT.into(), 0), n + 1),
        ((hv::EOI.into(), 1), n),
        ((hv::SCONTROL.into(), 1), 1),
        ((hv::SIEFP.into(), 1), 1),
        ((hv::SIMP.into(), 1), 1),
        ((hv::EOM.into(), 1), 1),
        ((hv::sint(l.sint).into(), 1), 1),
        ((hv::STIMER0_CONFIG.into(), 1), 1),
        ((hv::STIMER0_COUNT.into(), 1), 1),
    ];
    let want_total = hv::msr_exits_per_batch(n);
    let kernel_msr_exits = exit_hist.buckets.get(&vec![SVM, MSR]).copied().unwrap_or(0);
    let kvmprof_msr = vm.row(SVM as u32, MSR);
    let kvmprof_msr_exits = kvmprof_msr.map_or(0, |r| r.count);
    let user = |reason: u64| {
        vm.userspace
            .iter()
            .find(|r| r.reason == reason)
            .map_or(0, |r| r.count)
    };

    println!(
        "\nreal-KVM Hyper-V run: iters={n}, kvmprof window {:.2} s, host {} avic={}",
        report.duration_s,
        info.get("kernel").map_or("?", String::as_str),
        info.get("kvm_amd.avic").map_or("?", String::as_str)
    );
    println!("VM {:?} pid {} exits {}", vm.name, vm.pid, vm.exits);
    println!(
        "SVM msr (0x7c) exits: kvmprof {kvmprof_msr_exits}, kvm_exit hist {kernel_msr_exits}, kvm_msr hist {}, expected {want_total}",
        msr_hist.total()
    );
    println!(
        "{:<12} {:<22} {:>5} {:>8} {:>8}",
        "msr", "name", "write", "kvm_msr", "expected"
    );
    for ((msr, write), want) in &want_msrs {
        let got = msr_hist
            .buckets
            .get(&vec![*msr, *write])
            .copied()
            .unwrap_or(0);
        println!(
            "{msr:<#12x} {:<22} {write:>5} {got:>8} {want:>8}",
            msr_name(*msr)
        );
    }
    println!("kvm_hv_synic_set_msr (msr, data, host):");
    for (k, hits) in &synic_hist.buckets {
        println!(
            "  {:#x} {:<14} data {:#x} host {} x{hits}",
            k[0],
            msr_name(k[0]),
            k[1],
            k[2]
        );
    }
    if let Some(s) = &stimer_hist {
        for (k, hits) in &s.buckets {
            println!(
                "kvm_hv_stimer_expiration timer {} direct {} send result {} x{hits}",
                k[0], k[1], k[2]
            );
        }
    }
    println!(
        "VMM: KVM_EXIT_HYPERV kvmprof {} / exerciser {:?}; KVM_EXIT_IO kvmprof {} / exerciser {:?}; {}",
        user(KVM_EXIT_HYPERV),
        num(&hvline, "hyperv_exits"),
        user(KVM_EXIT_IO),
        num(&result, "io"),
        hvline.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")
    );

    // (a) counts: kvmprof = kernel hist trigger = construction.
    err.expect(
        exit_hist.dropped.unwrap_or(0) == 0 && msr_hist.dropped.unwrap_or(0) == 0,
        || "a hist trigger dropped events".into(),
    );
    err.expect(kvmprof_msr_exits == kernel_msr_exits, || {
        format!("SVM msr exits: kvmprof {kvmprof_msr_exits} != kvm_exit hist trigger {kernel_msr_exits}")
    });
    err.expect(kernel_msr_exits == msr_hist.total(), || {
        format!(
            "kvm_exit msr {kernel_msr_exits} != kvm_msr events {}",
            msr_hist.total()
        )
    });
    err.expect(kernel_msr_exits == want_total, || {
        format!("kvm_exit msr {kernel_msr_exits} != 6 + 2×{n} + 3 = {want_total} by construction")
    });
    // kvmprof's own cost figures count every run of its programs: over the window, each
    // program ran once per hit of its tracepoint (the sampler asks the kernel for an evidence
    // program's statistics only when that program ran since the last ask: at 100 ms here).
    let mut hits = vec![
        ("kvm_exit", exit_hist.total()),
        ("kvm_entry", entry_hist.total()),
        ("ev_msr", msr_hist.total()),
        ("ev_synic_msr", synic_hist.total()),
    ];
    hits.extend(
        stimer_hist
            .as_ref()
            .map(|h| ("ev_stimer_expire", h.total())),
    );
    for (prog, want) in hits {
        let got = report.probe_cost.iter().find(|p| p.name == prog);
        let got = got.map(|p| p.events);
        println!("program {prog}: {got:?} runs, its tracepoint {want} hits");
        err.expect(got == Some(want), || {
            format!("{prog}: kvmprof says {got:?} runs, its tracepoint had {want} hits")
        });
    }
    if let Some(r) = kvmprof_msr {
        err.expect(r.name == "msr" && r.isa_name == "svm", || {
            format!(
                "reason 0x7c named {:?}/{:?}, expected \"msr\"/\"svm\"",
                r.name, r.isa_name
            )
        });
    }
    for ((msr, write), want) in &want_msrs {
        let got = msr_hist
            .buckets
            .get(&vec![*msr, *write])
            .copied()
            .unwrap_or(0);
        err.expect(got == *want, || {
            format!(
                "kvm_msr {} {msr:#x} ({}): {got} != {want}",
                if *write == 1 { "write" } else { "read" },
                msr_name(*msr)
            )
        });
    }
    // Every exit reason the kernel saw, kvmprof saw as often (only this guest ran).
    for (key, hits) in &exit_hist.buckets {
        let got = vm.row(key[0] as u32, key[1]).map_or(0, |r| r.count);
        err.expect(got == *hits, || {
            format!(
                "isa {} reason {:#x}: kvmprof {got} != hist trigger {hits}",
                key[0], key[1]
            )
        });
    }
    err.expect(report.counters.entries == entry_hist.total(), || {
        format!(
            "counters.entries {} != kvm_entry hist {}",
            report.counters.entries,
            entry_hist.total()
        )
    });
    // SynIC: the AutoEOI SINT write as KVM saw it, and the SynIC exits to the VMM.
    let sint_value = u64::from(l.vector) | hv::SINT_AUTO_EOI;
    let synic = |msr: u32, data: Option<u64>| -> u64 {
        synic_hist
            .buckets
            .iter()
            .filter(|(k, _)| k[0] == u64::from(msr) && k[2] == 0 && data.is_none_or(|d| k[1] == d))
            .map(|(_, n)| n)
            .sum()
    };
    err.expect(synic(hv::sint(l.sint), Some(sint_value)) == 1, || {
        format!(
            "kvm_hv_synic_set_msr: no guest write of SINT{} = {sint_value:#x} (AutoEOI)",
            l.sint
        )
    });
    for m in [hv::SCONTROL, hv::SIMP, hv::SIEFP, hv::EOM] {
        err.expect(synic(m, None) == 1, || {
            format!(
                "kvm_hv_synic_set_msr {m:#x}: {} guest writes, expected 1",
                synic(m, None)
            )
        });
    }
    let hvexits = num(&hvline, "hyperv_exits");
    err.expect(hvexits == Some(hv::SYNIC_EXITS_PER_BATCH), || {
        format!(
            "exerciser KVM_EXIT_HYPERV {hvexits:?} != {}",
            hv::SYNIC_EXITS_PER_BATCH
        )
    });
    err.expect(user(KVM_EXIT_HYPERV) == hv::SYNIC_EXITS_PER_BATCH, || {
        format!(
            "kvmprof userspace KVM_EXIT_HYPERV {} != {}",
            user(KVM_EXIT_HYPERV),
            hv::SYNIC_EXITS_PER_BATCH
        )
    });
    err.expect(num(&result, "other") == Some(0), || {
        format!("exerciser other exits {:?}", num(&result, "other"))
    });
    if let Some(s) = &stimer_hist {
        let fired: u64 = s
            .buckets
            .iter()
            .filter(|(k, _)| k[1] == 0 && k[2] == 0)
            .map(|(_, n)| n)
            .sum();
        err.expect(fired >= 1, || {
            "no message-mode stimer expiration was delivered (it wakes the guest's hlt)".into()
        });
    }

    // (b) advice.
    check_advice(dir, &info, &mut err)?;

    if !err.0.is_empty() {
        bail!("{} mismatch(es):\n  {}", err.0.len(), err.0.join("\n  "));
    }
    println!("real-KVM Hyper-V check: counts and advice as expected");
    Ok(())
}

fn msr_name(msr: u64) -> String {
    kvmprof::advice::names::msr_name(msr).unwrap_or_else(|| "?".into())
}

fn check_advice(dir: &Path, info: &BTreeMap<String, String>, err: &mut Errors) -> Result<()> {
    let stderr = read_file(dir, "hv_advise.stderr").unwrap_or_default();
    if stderr.contains("no advise subcommand") {
        println!("ADVICE NOT CHECKED: this kvmprof has no `advise` subcommand yet");
        return Ok(());
    }
    let advice: Advice = parse_advice(&read_file(dir, "hv_advise.json")?)
        .with_context(|| format!("advise stderr: {}", stderr.trim()))?;
    let vm = advice.vm(VM_NAME)?;
    println!(
        "advice for {:?}: guest {:?}, profile {:?}, config {:?}",
        vm.name, vm.guest, vm.profile, vm.config
    );
    for f in &vm.findings {
        println!("  [{}] {} {}", f.severity, f.rule, f.title);
        for e in &f.evidence {
            println!("      evidence: {e}");
        }
        if !f.qemu().is_empty() {
            println!("      qemu: {}", f.qemu());
        }
    }
    for n in vm.notes.iter().chain(&advice.notes) {
        println!("  note: {n}");
    }
    // The guest is recognised from its GUEST_OS_ID write.
    let id = format!("{:#018x}", hv::WINDOWS_11_GUEST_OS_ID);
    err.expect(
        vm.guest.contains("Windows 11") && vm.guest.contains(&id),
        || {
            format!(
                "advice guest {:?}: expected Windows 11 from GUEST_OS_ID {id}",
                vm.guest
            )
        },
    );
    let all: Vec<String> = vm
        .findings
        .iter()
        .map(|f| f.text())
        .chain(vm.notes.iter().cloned())
        .collect();
    let says = |s: &str| all.iter().any(|t| t.contains(s));
    // The SINT's AutoEOI is reported, by MSR name.
    let sint = msr_name(hv::sint(hv::HvLayout::default().sint).into());
    err.expect(says("AutoEOI") && says(&sint), || {
        format!(
            "the advice does not report the guest's AutoEOI write to {sint} (kvm_hv_synic_set_msr saw it; \
             profile {:?}): on a host without AVIC it should still say AutoEOI is in use, e.g. an \
             info-level R07 (harmless now, inhibits APICv once AVIC is enabled)",
            vm.profile
        )
    });
    let apicv = info.get("kvm_amd.avic").map(String::as_str);
    let r07 = vm.findings.iter().find(|f| f.rule == "R07");
    if apicv == Some("N") {
        // No AVIC on this host: AutoEOI inhibits nothing, and hv-avic would be useless (L04).
        for f in &vm.findings {
            let q = f.qemu();
            err.expect(
                f.rule != "L02"
                    && !(q.contains("hv-avic")
                        && !q.contains("only if")
                        && !q.contains("no hv-avic")),
                || format!("{} advises hv-avic on a host without AVIC: {q}", f.rule),
            );
        }
        if let Some(f) = r07 {
            err.expect(f.severity == "info", || {
                format!("R07 is {} on a host without AVIC", f.severity)
            });
        }
    } else {
        err.expect(r07.is_some(), || {
            "no R07 although a SINT uses AutoEOI and the host has AVIC".into()
        });
    }
    Ok(())
}

/// Where the advice took the APICv inhibit bits' names: 6.12's kvm_apicv_inhibit_changed format
/// names them; 6.1's prints a bare number, and its bits differ from 6.3+'s (bit 8 is PIT_REINJ,
/// not IRQWIN), so kvmprof reads them from the kernel's BTF and says so.
fn inhibit_names(run: &kvmprof_tests::vm_runs::VmRun) -> Result<()> {
    let advice = parse_advice(&read_file(&run.dir, "hv_advise.json")?)?;
    let btf = advice
        .notes
        .iter()
        .any(|n| n.starts_with("APICv inhibit names from the kernel's BTF"));
    let want = run.line == "6.1";
    anyhow::ensure!(
        btf == want,
        "kernel {}: advice note on inhibit names from BTF present={btf}, expected {want} (notes: {:?})",
        run.kernel,
        advice.notes
    );
    Ok(())
}

/// Without a VM: the exerciser's GUEST_OS_ID is what the advice engine decodes as Windows 11.
#[test]
fn exerciser_guest_os_id_decodes_as_windows_11() {
    let g = kvmprof::advice::decode_guest_os_id(hv::WINDOWS_11_GUEST_OS_ID);
    assert!(g.is_windows(), "{g:?}");
    assert_eq!(g.nt, Some((10, 0, 22631)), "{g:?}");
    assert!(g.describe().starts_with("Windows 11"), "{}", g.describe());
    assert_eq!(
        kvmprof::advice::names::msr_name(hv::sint(2).into()).as_deref(),
        Some("HV_SINT2")
    );
}
