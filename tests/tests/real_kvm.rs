//! Real-KVM check: kvmprof's counts against the guest kernel's own hist triggers for one run of
//! the exerciser under nested AMD SVM. The run itself is `cargo xtask vm-test`, which sets
//! KVMPROF_VM_OUT to the directory holding kvmprof.json, kvm_exit.hist, kvm_entry.hist and
//! exercise.txt.

use anyhow::{bail, ensure, Context, Result};
use kvmprof_tests::{parse_hist, parse_report, parse_result_line, read_file};

const VM_NAME: &str = "kvmprof-exerciser";
const SVM: u32 = 2;
const IO: u64 = 0x7b;
const CPUID: u64 = 0x72;
const MSR: u64 = 0x7c;
const HLT: u64 = 0x78;

#[test]
fn kvmprof_matches_guest_kernel_hist_triggers() {
    kvmprof_tests::vm_runs::each_kernel("real_kvm", |run| check(&run.dir));
}

fn check(dir: &std::path::Path) -> Result<()> {
    let result = parse_result_line(&read_file(dir, "exercise.txt")?)?;
    let n: u64 = result
        .get("iters")
        .and_then(|v| v.parse().ok())
        .context("RESULT line has no iters=N")?;
    let exit_hist = parse_hist(&read_file(dir, "kvm_exit.hist")?).context("kvm_exit.hist")?;
    let entry_hist = parse_hist(&read_file(dir, "kvm_entry.hist")?).context("kvm_entry.hist")?;
    let report = parse_report(&read_file(dir, "kvmprof.json")?)?;
    // A wrong name is reported with the rest; the numbers are still checked on the busiest VM.
    let name_error = report.vm(VM_NAME).err().map(|e| format!("{e:#}"));
    let vm = match report.vm(VM_NAME) {
        Ok(vm) => vm,
        Err(e) => report.vms.iter().max_by_key(|v| v.exits).ok_or(e)?,
    };
    let c = &report.counters;

    println!(
        "\nreal-KVM run: iters={n}, kvmprof window {:.2} s, names from {}",
        report.duration_s, report.names_source
    );
    println!("VM {:?} pid {} exits {}", vm.name, vm.pid, vm.exits);
    println!(
        "{:>4} {:>6} {:<12} {:>8} {:>8} {:>9} {:>6} {:>8} {:>10} {:>10}",
        "isa",
        "reason",
        "name",
        "hist_trg",
        "kvmprof",
        "in_flight",
        "timed",
        "hist_tot",
        "p50_ns",
        "p99_ns"
    );
    for (key, hits) in &exit_hist.buckets {
        let (isa, reason) = (
            key.first().copied().unwrap_or(0) as u32,
            key.get(1).copied().unwrap_or(0),
        );
        let row = vm.row(isa, reason);
        println!(
            "{:>4} {:>6} {:<12} {:>8} {:>8} {:>9} {:>6} {:>8} {:>10} {:>10}",
            isa,
            format!("{reason:#x}"),
            row.map_or("-", |r| r.name.as_str()),
            hits,
            row.map_or(0, |r| r.count),
            row.map_or(0, |r| r.in_flight),
            row.map_or(0, |r| r.timed),
            row.map_or(0, |r| r.hist_total),
            row.map_or(0, |r| r.p50_ns),
            row.map_or(0, |r| r.p99_ns),
        );
    }
    let in_flight: u64 = vm.reasons.iter().map(|r| r.in_flight).sum();
    println!(
        "kvm_exit hist total {} (dropped {:?}), kvm_entry hist total {}; kvmprof counters: exits {} entries {} \
         in_flight {} orphan_entry {} unpaired_exit {} userspace_exits {} map_full {}/{} read_error {}",
        exit_hist.total(),
        exit_hist.dropped,
        entry_hist.total(),
        c.exits,
        c.entries,
        in_flight,
        c.orphan_entry,
        c.unpaired_exit,
        c.userspace_exits,
        c.stats_map_full,
        c.pending_map_full,
        c.read_error
    );
    println!(
        "exerciser RESULT: {}",
        result
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    );

    let mut errors = Vec::new();
    let mut expect = |ok: bool, msg: String| {
        if !ok {
            errors.push(msg);
        }
    };
    expect(name_error.is_none(), name_error.clone().unwrap_or_default());
    ensure!(
        exit_hist.keys == ["isa", "exit_reason"],
        "kvm_exit hist keys are {:?}",
        exit_hist.keys
    );
    expect(
        exit_hist.dropped.unwrap_or(0) == 0,
        "the kvm_exit hist trigger dropped events".into(),
    );
    expect(
        !exit_hist.buckets.is_empty(),
        "the kvm_exit hist trigger saw no exits".into(),
    );
    // Every (isa, reason) the kernel saw, kvmprof saw exactly as often, and nothing else.
    for (key, hits) in &exit_hist.buckets {
        let (isa, reason) = (key[0] as u32, key[1]);
        let got = vm.row(isa, reason).map_or(0, |r| r.count);
        expect(
            got == *hits,
            format!("isa {isa} reason {reason:#x}: kvmprof {got} != hist trigger {hits}"),
        );
    }
    for r in &vm.reasons {
        let hits = exit_hist
            .buckets
            .get(&vec![r.isa as u64, r.reason])
            .copied()
            .unwrap_or(0);
        expect(
            hits == r.count,
            format!(
                "kvmprof row {} ({:#x}) count {} but hist trigger {hits}",
                r.name, r.reason, r.count
            ),
        );
        expect(
            r.hist_total + r.in_flight == r.count,
            format!(
                "{}: hist_total {} != count {} - in_flight {}",
                r.name, r.hist_total, r.count, r.in_flight
            ),
        );
        expect(
            r.timed + r.in_flight == r.count,
            format!(
                "{}: timed {} + in_flight {} != count {}",
                r.name, r.timed, r.in_flight, r.count
            ),
        );
    }
    // The exerciser's known numbers, and their names.
    for (reason, name, want) in [
        (IO, "io", n),
        (CPUID, "cpuid", n),
        (MSR, "msr", 2 * n),
        (HLT, "hlt", 1),
    ] {
        match vm.row(SVM, reason) {
            Some(r) => {
                expect(
                    r.count == want,
                    format!("{name}: kvmprof count {} != expected {want}", r.count),
                );
                expect(
                    r.name == name,
                    format!("reason {reason:#x} named {:?}, expected {name:?}", r.name),
                );
                expect(
                    r.isa_name == "svm",
                    format!("{name}: isa_name {:?}, expected \"svm\"", r.isa_name),
                );
            }
            None => expect(
                false,
                format!("kvmprof has no {name} ({reason:#x}) row for {VM_NAME}"),
            ),
        }
    }
    // Entries pair with exits.
    let diff = c.entries.abs_diff(c.exits);
    expect(
        diff <= in_flight,
        format!(
            "counters: entries {} vs exits {} differ by more than in_flight {in_flight}",
            c.entries, c.exits
        ),
    );
    expect(
        c.entries == entry_hist.total(),
        format!(
            "counters.entries {} != kvm_entry hist total {}",
            c.entries,
            entry_hist.total()
        ),
    );
    expect(
        c.exits == exit_hist.total(),
        format!(
            "counters.exits {} != kvm_exit hist total {}",
            c.exits,
            exit_hist.total()
        ),
    );
    expect(
        entry_hist.total() == exit_hist.total(),
        format!(
            "kvm_entry hist {} != kvm_exit hist {}",
            entry_hist.total(),
            exit_hist.total()
        ),
    );
    for (what, v) in [
        ("stats_map_full", c.stats_map_full),
        ("pending_map_full", c.pending_map_full),
        ("read_error", c.read_error),
    ] {
        expect(v == 0, format!("counters.{what} = {v}"));
    }
    // The VMM side agrees with what the guest was told to do.
    let num = |k: &str| result.get(k).and_then(|v| v.parse::<u64>().ok());
    expect(
        num("io") == Some(n),
        format!("exerciser io {:?} != {n}", num("io")),
    );
    expect(
        num("hlt") == Some(1),
        format!("exerciser hlt {:?} != 1", num("hlt")),
    );

    if !errors.is_empty() {
        bail!("{} mismatch(es):\n  {}", errors.len(), errors.join("\n  "));
    }
    println!("real-KVM check: all counts match");
    Ok(())
}
