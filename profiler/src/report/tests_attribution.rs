//! Tables of one VM (`-p PID`), of several pids, and of one vCPU (`--vcpu N`): their rows are
//! that VM's and that vCPU's, in the model and in the tables printed from it
//! (fixtures: profiler/tests/perf64/classic-*.txt).

use super::tests_fidelity::{differences, reprint};
use super::*;

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/perf64/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let body: Vec<&str> = text.lines().skip_while(|l| l.starts_with("## ")).collect();
    body.join("\n")
}

/// (vCPU, reason name) → count of the VM with `pid`.
fn per_vcpu(d: &Data, pid: u32) -> Vec<(u32, String, u64)> {
    let vm = d.view.vms.iter().find(|v| v.pid == pid).expect("the VM");
    let mut out: Vec<(u32, String, u64)> = vm
        .vcpus
        .iter()
        .flat_map(|c| {
            c.reasons
                .iter()
                .map(move |r| (c.vcpu, r.name.to_string(), r.count))
        })
        .collect();
    out.sort();
    out
}

#[test]
fn vcpu_tables_put_their_rows_on_their_vcpu() {
    let d = Data::from_perf_text(&fixture("classic-pid-vcpus.txt"), "f").unwrap();
    assert_eq!(d.view.vms.len(), 1);
    let rows = per_vcpu(&d, 4242);
    assert!(
        rows.contains(&(0, "EPT_MISCONFIG".into(), 41_203)),
        "{rows:?}"
    );
    assert!(rows.contains(&(1, "MSR_WRITE".into(), 6_712)), "{rows:?}");
    assert!(
        rows.contains(&(1, "PAUSE_INSTRUCTION".into(), 305)),
        "{rows:?}"
    );
    assert!(
        !rows.iter().any(|r| r.0 == 1 && r.1 == "EPT_MISCONFIG"),
        "{rows:?}"
    );
    // Printed without --vm/--vcpu: the VM the text was about, all of its vCPUs.
    let t = perf_table(&d, &TableOptions::default()).unwrap();
    assert!(
        t.contains("Analyze events for pid(s) 4242, all VCPUs:"),
        "{t}"
    );
    let t = perf_table(
        &d,
        &TableOptions {
            vcpu: Some(1),
            ..Default::default()
        },
    )
    .unwrap();
    assert!(t.contains("Analyze events for pid(s) 4242, VCPU 1:"), "{t}");
    assert!(!t.contains("EPT_MISCONFIG"), "{t}");
}

/// The all-VCPUs table and the VCPU tables of the same session: the VCPU tables add up to it,
/// so each exit goes to its vCPU (once), and the VM's table and each vCPU's print back to the
/// digits of their sources.
#[test]
fn vcpu_tables_that_add_up_win_over_the_all_vcpus_table() {
    let text = fixture("classic-pid-all-and-vcpus.txt");
    let imp = import(&text).unwrap();
    assert!(
        imp.warnings
            .iter()
            .any(|w| w.msg.starts_with("all-VCPUs table skipped")),
        "{:?}",
        imp.warnings
    );
    let d = Data::from_perf_text(&text, "f").unwrap();
    let rows = per_vcpu(&d, 4242);
    assert!(rows.contains(&(1, "MSR_WRITE".into(), 6_712)), "{rows:?}");
    assert!(rows.contains(&(0, "MSR_WRITE".into(), 20_134)), "{rows:?}");
    let total: u64 = rows.iter().map(|r| r.2).sum();
    assert_eq!(total, 92_357, "each exit once");
    // The whole VM and each vCPU printed again, digit by digit (`( +- )` of the VM's rows is
    // n/a: a row of two vCPUs' keys).
    for src in &imp.sections {
        let o = TableOptions {
            vcpu: src.vcpu,
            ..Default::default()
        };
        let t = perf_table(&d, &o).unwrap();
        let (again, _) = perf_import::parse(&t).unwrap();
        let diff: Vec<String> = differences(src, &again[0])
            .into_iter()
            .filter(|l| src.vcpu.is_some() || !l.contains("( +- )"))
            .collect();
        assert!(diff.is_empty(), "VCPU {:?}: {diff:?}\n{t}", src.vcpu);
    }
}

#[test]
fn a_table_of_several_pids_keeps_them() {
    let text = fixture("classic-pids.txt");
    let d = Data::from_perf_text(&text, "f").unwrap();
    assert_eq!(d.view.vms.len(), 1);
    assert_eq!(d.view.vms[0].name, "pid(s) 6161,6262");
    let t = perf_table(&d, &TableOptions::default()).unwrap();
    assert!(
        t.contains("Analyze events for pid(s) 6161,6262, all VCPUs:"),
        "{t}"
    );
    let sec = &import(&text).unwrap().sections[0];
    assert!(reprint(sec).contains("pid(s) 6161,6262, all VCPUs"));
}

#[test]
fn a_table_of_one_pid_is_that_vm() {
    let d = Data::from_perf_text(&fixture("classic-pid.txt"), "f").unwrap();
    assert_eq!(
        d.view
            .vms
            .iter()
            .map(|v| (v.pid, v.name.as_str()))
            .collect::<Vec<_>>(),
        [(5151, "pid 5151")]
    );
    for layout in [PerfLayout::Classic, PerfLayout::V6_4] {
        let o = TableOptions {
            layout,
            ..Default::default()
        };
        let t = perf_table(&d, &o).unwrap();
        assert!(
            t.contains("Analyze events for pid(s) 5151, all VCPUs:"),
            "{t}"
        );
    }
}

/// perf ≥ 6.4's report screen has no "Analyze events" line: the pasted command says whose
/// exits follow, and the table prints back for that VM and vCPU, its rows byte for byte.
#[test]
fn a_6_4_screen_is_the_vm_and_vcpu_of_its_command() {
    let text = fixture("perf64-pid-vcpu.txt");
    let d = Data::from_perf_text(&text, "f").unwrap();
    let rows = per_vcpu(&d, 4242);
    assert!(rows.iter().all(|r| r.0 == 1), "{rows:?}");
    assert!(rows.contains(&(1, "MSR_WRITE".into(), 6_712)), "{rows:?}");
    let o = TableOptions {
        layout: PerfLayout::V6_4,
        ..Default::default()
    };
    let t = perf_table(&d, &o).unwrap();
    assert!(t.contains("Analyze events for pid(s) 4242, VCPU 1:"), "{t}");
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with("$ "))
    {
        assert!(t.lines().any(|l| l == line), "{line:?} not in\n{t}");
    }
}

#[test]
fn pasted_perf_commands_name_their_target() {
    use super::perf_paste::command_target;
    let t = |l: &str| command_target(l);
    assert_eq!(t("$ perf kvm stat report"), Some((vec![], None)));
    assert_eq!(
        t("# ./perf kvm --guest stat report --vcpu=3 --pid 12,34 --stdio"),
        Some((vec![12, 34], Some(3)))
    );
    assert_eq!(t("sudo perf kvm stat live -p 777"), Some((vec![777], None)));
    assert_eq!(
        t("perf kvm stat report -p $(pgrep qemu)"),
        Some((vec![], None))
    );
    assert_eq!(t("sudo perf kvm stat record -p 777 -- sleep 15"), None);
    assert_eq!(t("KVM event statistics (7 entries)"), None);
}
