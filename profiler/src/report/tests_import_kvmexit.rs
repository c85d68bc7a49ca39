//! bcc `kvmexit` output read as exit counts: its three modes, several runs, no rows.

use super::*;

fn rows(t: &str) -> Vec<(String, u64)> {
    let imp = import(t).unwrap_or_else(|e| panic!("{e}\n{t}"));
    imp.sections
        .iter()
        .flat_map(|s| s.rows.iter())
        .map(|r| (r.name.clone(), r.samples))
        .collect()
}

fn r(name: &str, n: u64) -> (String, u64) {
    (name.to_string(), n)
}

/// bcc kvmexit, three modes: PID/TID columns with the `EXIT_REASON_` prefix (two VMs); one
/// PID collapsed (the PID from the banner); `TIDS` with the terminal's `^C` on the first row.
#[test]
fn bcc_kvmexit_counts() {
    let all = "Display kvm exit reasons and statistics for all threads after sleeping 6 secs.
PID      TID      KVM_EXIT_REASON                     COUNT
1273903  1273922  EXIT_REASON_HLT                     6043
1273903  1273923  EXIT_REASON_HLT                     100
1273551  1273568  EXIT_REASON_MSR_WRITE               2205
";
    let imp = import(all).unwrap();
    type PidRows = (Vec<u32>, Vec<(String, u64)>);
    let got: Vec<PidRows> = imp
        .sections
        .iter()
        .map(|s| {
            let rows = s.rows.iter().map(|r| (r.name.clone(), r.samples)).collect();
            (s.pids.clone(), rows)
        })
        .collect();
    assert_eq!(
        got,
        [
            (vec![1273903], vec![("HLT".to_string(), 6143)]),
            (vec![1273551], vec![("MSR_WRITE".to_string(), 2205)])
        ]
    );
    let one = "Display kvm exit reasons and statistics for PID 1273795 after sleeping 5 secs.
KVM_EXIT_REASON                     COUNT
MSR_WRITE                           13467
HLT                                 5060
";
    let imp = import(one).unwrap();
    assert_eq!(imp.sections[0].pids, vec![1273795]);
    assert_eq!(rows(one), [r("MSR_WRITE", 13467), r("HLT", 5060)]);
    let tids = "TIDS     KVM_EXIT_REASON                     COUNT
^C1273819  EXTERNAL_INTERRUPT                  300
1273819  HLT                                 13718
1273820  EXTERNAL_INTERRUPT                  212
";
    assert_eq!(rows(tids), [r("EXTERNAL_INTERRUPT", 512), r("HLT", 13718)]);
}

/// Two kvmexit runs are two tables; a header without rows is refused, naming its line.
#[test]
fn bcc_kvmexit_runs_and_empty_output() {
    let two =
        "KVM_EXIT_REASON COUNT\nHLT 300\n\n# ./kvmexit.py 5\nKVM_EXIT_REASON COUNT\nHLT 200\n";
    let imp = import(two).unwrap();
    assert_eq!(imp.sections.len(), 2);
    assert_eq!(
        (imp.sections[1].line, imp.sections[1].rows[0].samples),
        (5, 200)
    );
    let e = import("banner\nPID TID KVM_EXIT_REASON COUNT\n^C\n").unwrap_err();
    assert!(
        e.to_string()
            .starts_with("line 2: a kvmexit header with no rows"),
        "{e}"
    );
}

/// New perf's 40-column names push only the `( +- x% )` column past 80 columns.
#[test]
fn only_the_error_column_wrapped() {
    let t = "VM-EXIT Samples Samples% Time% Min Time Max Time Avg time
                          EPT_MISCONFIG     600    60.00%    60.00%      0.64us     65.42us      2.00us
( +-   0.11% )
                               HLT          400    40.00%    40.00%      0.48us     41.05us      2.00us
( +-   0.14% )
";
    let imp = import(t).unwrap();
    let errs: Vec<_> = imp.sections[0].rows.iter().map(|r| r.rel_err_pct).collect();
    assert_eq!(errs, [Some(0.11), Some(0.14)]);
    assert!(imp.warnings.is_empty(), "{:?}", imp.warnings);
}
