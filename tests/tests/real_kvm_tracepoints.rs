//! Real-KVM check that kvmprof uses the tracepoints the running kernel has, on each kernel
//! `cargo xtask vm-test` boots: it attaches exactly the programs whose tracepoint the kernel
//! lists (tracepoints.txt) and names each absent one with what is lost. Then the degrade run
//! (tests/vm/init.sh `degrade_run`): kvmprof reads a tracefs view without kvm_msr, as on a
//! kernel lacking it; it must leave ev_msr out, say that `advise` loses the MSR indexes, and
//! still count every exit exactly as the kernel's hist trigger does.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{ensure, Context, Result};
use kvmprof_tests::vm_runs::VmRun;
use kvmprof_tests::{parse_hist, parse_report, parse_result_line, read_file};

const REQUIRED: [(&str, &str); 2] = [("kvm_exit", "kvm:kvm_exit"), ("kvm_entry", "kvm:kvm_entry")];
/// The scheduler split's raw tracepoints: attached wherever the kernel has BTF of task_struct,
/// which both of Debian's kernels do (not through tracefs, so the degrade run has them too).
const SCHED: [&str; 2] = ["sched_switch", "sched_wakeup"];
const DG_VM: &str = "kvmprof-exerciser-dg";
const SVM: u32 = 2;

/// (program, tracepoint) of everything kvmprof attaches only where the kernel has it.
fn optional() -> Vec<(&'static str, String)> {
    profiler_common::ev::PROGRAMS
        .iter()
        .map(|(prog, event)| (*prog, format!("kvm:{event}")))
        .chain([
            ("kvm_userspace_exit", "kvm:kvm_userspace_exit".into()),
            ("sys_enter_ioctl", "syscalls:sys_enter_ioctl".into()),
        ])
        .collect()
}

#[test]
fn kvmprof_attaches_what_each_kernel_has_and_says_what_is_missing() {
    kvmprof_tests::vm_runs::each_kernel("real_kvm_tracepoints", check);
}

fn check(run: &VmRun) -> Result<()> {
    let dir = run.dir.as_path();
    let have: BTreeSet<String> = read_file(dir, "tracepoints.txt")?
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    for (_, tp) in REQUIRED {
        ensure!(
            have.contains(tp),
            "kernel {} lists no {tp}: {have:?}",
            run.kernel
        );
    }
    let absent: Vec<String> = optional()
        .into_iter()
        .map(|(_, tp)| tp)
        .filter(|tp| !have.contains(tp))
        .collect();
    println!(
        "kernel {}: kvmprof's optional tracepoints absent: {absent:?}",
        run.kernel
    );
    let mut errors = Vec::new();
    attached_as_listed(dir, "kvmprof", &have, &mut errors)?;

    let status = read_file(dir, "dg_status.txt")?;
    ensure!(
        status.trim() == "ok",
        "the degrade run in the guest: {}",
        status.trim()
    );
    let mut without_msr = have.clone();
    without_msr.remove("kvm:kvm_msr");
    attached_as_listed(dir, "dg_kvmprof", &without_msr, &mut errors)?;
    let stderr = read_file(dir, "dg_kvmprof.stderr")?;
    let notice =
        "tracepoint kvm:kvm_msr is absent on this kernel: `kvmprof advise` has no MSR indexes";
    if !stderr.contains(notice) {
        errors.push(format!("dg_kvmprof.stderr lacks {notice:?}:\n{stderr}"));
    }
    exact_counts(dir, &mut errors)?;
    ensure!(
        errors.is_empty(),
        "{} mismatch(es):\n  {}",
        errors.len(),
        errors.join("\n  ")
    );
    Ok(())
}

/// `<stem>.json`'s attached programs are the required ones plus each optional one whose
/// tracepoint is in `have`; `<stem>.stderr` names exactly the optional ones not in it.
fn attached_as_listed(
    dir: &Path,
    stem: &str,
    have: &BTreeSet<String>,
    errors: &mut Vec<String>,
) -> Result<()> {
    let report = parse_report(&read_file(dir, &format!("{stem}.json"))?)?;
    let stderr = read_file(dir, &format!("{stem}.stderr")).unwrap_or_default();
    // Both kernels test-run kvmprof_fill: the free lists were filled in the kernel.
    if stderr.contains(kvmprof::caps::FILL_BY_SYSCALLS) {
        errors.push(format!(
            "{stem}.stderr: free lists filled by syscalls:\n{stderr}"
        ));
    }
    let attached: BTreeSet<&str> = report.probe_cost.iter().map(|p| p.name.as_str()).collect();
    let optional = optional();
    for (prog, tp) in REQUIRED
        .iter()
        .map(|(p, t)| (*p, t.to_string()))
        .chain(optional.iter().cloned())
    {
        let present = have.contains(&tp);
        if attached.contains(prog) != present {
            errors.push(format!(
                "{stem}: program {prog} attached={} but the tracepoint view has {tp}={present}",
                attached.contains(prog)
            ));
        }
        let said = stderr.contains(&format!("tracepoint {tp} is absent on this kernel: "));
        if said == present {
            errors.push(format!(
                "{stem}.stderr: notice that {tp} is absent {}, but it is {}:\n{stderr}",
                if said { "given" } else { "missing" },
                if present { "there" } else { "absent" }
            ));
        }
    }
    for prog in SCHED {
        if !attached.contains(prog) {
            errors.push(format!(
                "{stem}: {prog} not attached on a kernel with BTF (the scheduler split):\n{stderr}"
            ));
        }
    }
    let known: BTreeSet<&str> = REQUIRED
        .iter()
        .map(|r| r.0)
        .chain(optional.iter().map(|o| o.0))
        .chain(SCHED)
        .collect();
    for prog in attached.difference(&known) {
        errors.push(format!(
            "{stem}: attached {prog}, which is not one of kvmprof's programs"
        ));
    }
    Ok(())
}

/// The degrade run's counts: every (isa, reason) as often as the hist trigger saw it, and the
/// exerciser's known numbers (N io, N cpuid, 2N msr, 1 hlt).
fn exact_counts(dir: &Path, errors: &mut Vec<String>) -> Result<()> {
    let result = parse_result_line(&read_file(dir, "dg_exercise.txt")?)?;
    let n: u64 = result
        .get("iters")
        .and_then(|v| v.parse().ok())
        .context("dg_exercise.txt: RESULT line has no iters=N")?;
    let hist = parse_hist(&read_file(dir, "dg_kvm_exit.hist")?).context("dg_kvm_exit.hist")?;
    let report = parse_report(&read_file(dir, "dg_kvmprof.json")?)?;
    let vm = report.vm(DG_VM)?;
    ensure!(
        hist.dropped.unwrap_or(0) == 0,
        "the kvm_exit hist trigger dropped events"
    );
    ensure!(
        report.counters.exits == hist.total(),
        "counters.exits {} != hist {}",
        report.counters.exits,
        hist.total()
    );
    for (key, hits) in &hist.buckets {
        let got = vm.row(key[0] as u32, key[1]).map_or(0, |r| r.count);
        if got != *hits {
            errors.push(format!(
                "degrade run: isa {} reason {:#x}: kvmprof {got} != hist trigger {hits}",
                key[0], key[1]
            ));
        }
    }
    for r in &vm.reasons {
        let hits = hist
            .buckets
            .get(&vec![r.isa as u64, r.reason])
            .copied()
            .unwrap_or(0);
        if hits != r.count {
            errors.push(format!(
                "degrade run: kvmprof {} ({:#x}) {} but hist trigger {hits}",
                r.name, r.reason, r.count
            ));
        }
    }
    for (reason, name, want) in [
        (0x7b, "io", n),
        (0x72, "cpuid", n),
        (0x7c, "msr", 2 * n),
        (0x78, "hlt", 1),
    ] {
        let got = vm.row(SVM, reason).map_or(0, |r| r.count);
        if got != want {
            errors.push(format!(
                "degrade run: {name}: kvmprof {got} != expected {want}"
            ));
        }
    }
    Ok(())
}
