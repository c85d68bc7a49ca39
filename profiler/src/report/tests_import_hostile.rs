//! perf text import against hostile and contradictory input: time linear in the text, short
//! errors, and tables whose numbers cannot all be true.

use std::time::Duration;

use super::*;

/// `perf kvm stat live` output of at least `bytes` bytes: one one-row interval after another
/// (many sections per megabyte), the rows named in turn from `distinct` names no kernel table
/// knows.
fn live(bytes: usize, distinct: usize) -> String {
    let mut t = String::with_capacity(bytes + 4096);
    let mut next = 0;
    while t.len() < bytes {
        t.push_str("\n\nAnalyze events for all VMs, all VCPUs:\n\n");
        t.push_str(&format!(
            "{:>40} {:>10} {:>9} {:>9} {:>11} {:>11} {:>16} \n\n",
            "VM-EXIT", "Samples", "Samples%", "Time%", "Min Time", "Max Time", "Avg time"
        ));
        let name = format!("NEW_EXIT_{}", next % distinct);
        next += 1;
        t.push_str(&format!(
            "{name:>40} {:>10} {:>8}% {:>8}% {:>9}us {:>9}us {:>9}us ( +- {:>6}% )\n",
            10, "100.00", "100.00", "1.00", "3.00", "2.00", "1.00"
        ));
        t.push_str("\nTotal Samples:10, Total events handled time:20.00us.\n\n");
    }
    t
}

fn import_time(text: &str, distinct: usize) -> Duration {
    let t0 = crate::test_util::thread_cpu();
    let d = Data::from_perf_text(text, "live.txt").expect("valid live output");
    assert_eq!(d.view.vms[0].reasons.len(), distinct);
    crate::test_util::thread_cpu() - t0
}

/// 4× the text, with 4× the sections and 4× the distinct names, takes about 4× the time, not
/// 16× (sections were compared with each other, and names looked up by scanning all names).
/// Timed in this thread's CPU time, the two sizes in turn, each keeping its fastest run, so
/// other tests and processes on a busy machine inflate neither side alone.
#[test]
fn import_time_is_linear_in_sections_and_names() {
    let (small, large) = (live(2 << 20, 50), live(8 << 20, 200));
    // Warm up the allocator and caches so the first measurement is not the slow one.
    import_time(&small, 50);
    let (mut a, mut b) = (Duration::MAX, Duration::MAX);
    for _ in 0..5 {
        a = a.min(import_time(&small, 50));
        b = b.min(import_time(&large, 200));
    }
    let ratio = b.as_secs_f64() / a.as_secs_f64().max(1e-6);
    eprintln!("2 MB: {a:?}, 8 MB: {b:?}");
    assert!(
        ratio < 6.0,
        "2 MB: {a:?}, 8 MB: {b:?}: {ratio:.1}× for 4× the text"
    );
}

/// A bad line of megabytes is quoted by its first 80 characters, not copied twice.
#[test]
fn a_huge_bad_line_gives_a_short_error() {
    let huge = format!(
        "VM-EXIT Samples Samples% Time% Min Time Max Time Avg time\n\nHLT 12x 1% 1% 1us 1us 1us{}\n",
        " 7".repeat(3_500_000)
    );
    let e = import(&huge).unwrap_err().to_string();
    assert!(
        e.len() < 300,
        "{} bytes: {}…",
        e.len(),
        &e[..300.min(e.len())]
    );
    assert!(e.starts_with("line 3: "), "{e}");
    assert!(e.contains("…"), "{e}");
    // Control characters of a quoted line are shown escaped, not sent to the terminal.
    let esc = "VM-EXIT Samples Samples% Time%\nHLT\u{1b}]0;pwned\u{7} 1x 1% 1%\n";
    let e = import(esc).unwrap_err().to_string();
    assert!(!e.chars().any(char::is_control), "{e:?}");
    assert!(e.contains("\\u{1b}]0;pwned"), "{e}");
}

const NAMES: [&str; 8] = [
    "EXCEPTION_NMI",
    "EXTERNAL_INTERRUPT",
    "CPUID",
    "HLT",
    "IO_INSTRUCTION",
    "MSR_READ",
    "MSR_WRITE",
    "EPT_MISCONFIG",
];

/// Eight rows of 100 samples of 2 µs (1–3 µs): 12.50 % each; rows start on line 5.
fn rows() -> Vec<String> {
    NAMES
        .iter()
        .map(|n| format!("{n} 100 12.50% 12.50% 1.00us 3.00us 2.00us ( +- 1.00% )"))
        .collect()
}

const FOOTER: &str = "Total Samples:800, Total events handled time:1600.00us.";

fn text(rows: &[String], footer: &str) -> String {
    format!(
        "Analyze events for all VMs, all VCPUs:\n\n\
         VM-EXIT Samples Samples% Time% Min Time Max Time Avg time\n\n{}\n\n{footer}\n",
        rows.join("\n")
    )
}

/// `rows()` with row `i` (0-based, on line 5 + i) replaced.
fn with_row(i: usize, row: &str) -> String {
    let mut r = rows();
    r[i] = row.to_string();
    text(&r, FOOTER)
}

fn refused(t: &str) -> String {
    let e = Data::from_perf_text(t, "t.txt")
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(!e.contains('\n'), "{e}");
    assert!(e.contains("; fix: "), "{e}");
    e
}

#[test]
fn the_consistent_table_is_read_without_warnings() {
    let d = Data::from_perf_text(&text(&rows(), FOOTER), "t.txt").unwrap();
    assert!(d.warnings.is_empty(), "{:?}", d.warnings);
    assert_eq!(d.view.vms[0].reasons.len(), 8);
}

/// Rows that cannot be true are refused with their line, as "FILE: line N: what; fix: how".
#[test]
fn impossible_rows_are_refused_with_their_line() {
    let e = refused(&with_row(
        1,
        "EXTERNAL_INTERRUPT 100 151.00% 12.50% 1.00us 3.00us 2.00us",
    ));
    assert!(
        e.starts_with("t.txt: line 6: Samples% of 'EXTERNAL_INTERRUPT' is 151%"),
        "{e}"
    );
    let e = refused(&with_row(
        2,
        "CPUID 100 12.50% -12.50% 1.00us 3.00us 2.00us",
    ));
    assert!(
        e.starts_with("t.txt: line 7: Time% of 'CPUID' is -12.5%"),
        "{e}"
    );
    let e = refused(&with_row(3, "HLT 100 12.50% 12.50% 1.00us 3.00us 9.00us"));
    assert!(
        e.starts_with("t.txt: line 8: Avg time 9us of 'HLT' is above its Max Time 3us"),
        "{e}"
    );
    let e = refused(&with_row(
        4,
        "IO_INSTRUCTION 100 12.50% 12.50% 4.00us 3.00us 2.00us",
    ));
    assert!(
        e.starts_with("t.txt: line 9: Min Time 4us of 'IO_INSTRUCTION' is above its Max Time"),
        "{e}"
    );
    // Huge numbers are shown short.
    let e = refused(&with_row(
        5,
        "MSR_READ 100 1e300% 12.50% 1.00us 3.00us 2.00us",
    ));
    assert!(
        e.starts_with("t.txt: line 10: Samples% of 'MSR_READ' is 1e300%, but"),
        "{e}"
    );
    let e = refused(&with_row(
        5,
        "MSR_READ 100 12.50% 12.50% 2.50us 3.00us 2.00us",
    ));
    assert!(
        e.starts_with("t.txt: line 10: Min Time 2.5us of 'MSR_READ' is above its Avg time"),
        "{e}"
    );
}

/// A reason twice in one table is refused; before, the counts were added up.
#[test]
fn a_reason_twice_in_one_table_is_refused() {
    let e = refused(&with_row(6, &rows()[0]));
    assert!(
        e.starts_with("t.txt: line 11: 'EXCEPTION_NMI' appears twice in the VM-EXIT table of line 3 (first on line 5)"),
        "{e}"
    );
}

/// Sums over 100 % or over the footer's totals cannot come from one perf table.
#[test]
fn sums_beyond_the_totals_are_refused() {
    let e = refused(&with_row(
        0,
        "EXCEPTION_NMI 100 20.00% 12.50% 1.00us 3.00us 2.00us",
    ));
    assert!(
        e.starts_with(
            "t.txt: line 3: the Samples% column of the VM-EXIT table of line 3 adds up to 107.50 %"
        ),
        "{e}"
    );
    let e = refused(&text(
        &rows(),
        "Total Samples:700, Total events handled time:1600.00us.",
    ));
    assert!(e.starts_with("t.txt: line 14: the rows add up to 800 samples, more than the footer's Total Samples:700"), "{e}");
    let e = refused(&text(
        &rows(),
        "Total Samples:800, Total events handled time:1500.00us.",
    ));
    assert!(
        e.starts_with(
            "t.txt: line 14: the rows' Avg time × Samples add up to 1600.00us, more than"
        ),
        "{e}"
    );
}

/// Rounding of the printed digits is no contradiction: 3 × 33.33 % is 100 %.
#[test]
fn rounding_is_tolerated() {
    let r: Vec<String> = ["CPUID", "HLT", "MSR_WRITE"]
        .iter()
        .map(|n| format!("{n} 1 33.33% 33.33% 0.33us 0.34us 0.33us"))
        .collect();
    let d = Data::from_perf_text(
        &text(&r, "Total Samples:3, Total events handled time:1.00us."),
        "t.txt",
    );
    assert!(
        d.as_ref().is_ok_and(|d| d.warnings.is_empty()),
        "{:?}",
        d.map(|d| d.warnings)
    );
}

/// A table cut short is read, with a warning saying how much is missing.
#[test]
fn tables_cut_short_are_read_with_a_warning() {
    let cut = text(&rows()[..6], "");
    let d = Data::from_perf_text(&cut, "t.txt").unwrap();
    assert_eq!(d.view.vms[0].reasons.len(), 6);
    assert!(
        d.warnings.iter().any(|w| w.starts_with(
            "t.txt: line 3: the Samples% column adds up to 75.00 %: rows holding 25.00 %"
        )),
        "{:?}",
        d.warnings
    );
    // With a footer, its total says how much (once, not again from the Samples%).
    let cut = text(&rows()[..6], FOOTER);
    let d = Data::from_perf_text(&cut, "t.txt").unwrap();
    assert_eq!(
        d.warnings,
        [
            "t.txt: line 12: the rows add up to 600 samples but the footer says 800: \
          200 samples are not in this table (cut short?)"
        ]
    );
}

/// One junk line after the second row used to end the table and drop the six rows after it.
#[test]
fn a_junk_line_inside_a_table_loses_no_rows() {
    let mut r = rows();
    r.insert(2, "junk".into());
    let d = Data::from_perf_text(&text(&r, FOOTER), "t.txt").unwrap();
    let mut got: Vec<&str> = d.view.vms[0]
        .reasons
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    got.sort();
    let mut want = NAMES.to_vec();
    want.sort();
    assert_eq!(got, want);
    assert_eq!(
        d.view.vms[0].reasons.iter().map(|r| r.count).sum::<u64>(),
        800
    );
    assert!(
        d.warnings.iter().any(|w| w.starts_with(
            "t.txt: line 7: inside the VM-EXIT table of line 3, 'junk' is not a row: skipped"
        )),
        "{:?}",
        d.warnings
    );
    // A row wrapped by a mail program is two lines that are not rows: both skipped, named,
    // and the footer says what they held (#11 may join them).
    let mut r = rows();
    r[2] = "CPUID\n100 12.50% 12.50% 1.00us 3.00us 2.00us ( +- 1.00% )".into();
    let d = Data::from_perf_text(&text(&r, FOOTER), "t.txt").unwrap();
    assert_eq!(d.view.vms[0].reasons.len(), 7);
    assert_eq!(
        d.warnings,
        [
            "t.txt: line 7: inside the VM-EXIT table of line 3, 2 lines (7–8, the first 'CPUID') \
             are not rows: skipped; the table goes on at line 9 (any damaged row among them is missing)",
            "t.txt: line 15: the rows add up to 700 samples but the footer says 800: \
             100 samples are not in this table (cut short?)"
        ]
    );
    // Prose after the last table is no part of it, and no warning.
    let prose = format!("{}\nThanks,\nBob\n", text(&rows()[..], FOOTER));
    assert!(Data::from_perf_text(&prose, "t.txt")
        .unwrap()
        .warnings
        .is_empty());
}

/// Unknown names get codes of their own, as many as fit (VMX codes above 0xffff would read
/// as flag bits and show another reason's name); one more is an error naming its line.
#[test]
fn unknown_names_keep_their_own_names_up_to_the_limit() {
    let table = |n: usize| {
        let r: Vec<String> = (0..n)
            .map(|i| format!("NEW_EXIT_{i} 1 0.39% 0.39% 1.00us 1.00us 1.00us"))
            .collect();
        text(&r, "")
    };
    let d = Data::from_perf_text(&table(256), "t.txt").unwrap();
    let reasons = &d.view.vms[0].reasons;
    assert_eq!(reasons.len(), 256);
    assert!(
        reasons.iter().all(|r| r.name.starts_with("NEW_EXIT_")),
        "{reasons:?}"
    );
    let e = Data::from_perf_text(&table(257), "t.txt")
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("t.txt: line 261: 'NEW_EXIT_256' is the 257th exit reason name"),
        "{e}"
    );
}
