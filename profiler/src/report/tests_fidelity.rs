//! Import → print fidelity: every perf table of the corpus (profiler/tests/corpus), of the
//! perf ≥ 6.4 fixtures (profiler/tests/perf64) and of the golden files is imported, printed
//! again in its own layout for its own VM and vCPU, read back, and compared with its source
//! column by column: every number the source printed must come back with the same digits.
//!
//! perf's `( +- x% )` is compared too (kept as printed: an import has no sum of squares to
//! compute it from), and so are the times of MSR / IO port / MMIO tables (kept beside
//! kvmprof's counts of those accesses). A table its poster cut (a `........` line, rows left out:
//! its Samples% add up to less than 100 %) has shares of rows the text does not hold: only
//! its columns that do not depend on the other rows are compared (Samples, Min, Max, Avg,
//! Time (ns)).
//!
//! perf's own output of real exits (profiler/tests/perf-real) must come back byte for byte.

use std::collections::HashMap;

use super::{
    import_build,
    perf_import::{parse, PerfImport},
    perf_rows::{Column, PerfRow, Section},
    sub_times::named_key,
    *,
};
use crate::sample::Sample;

/// Whether the rows hold less than the whole table (their Samples% add up to less than 100 %,
/// beyond what rounding explains).
fn cut(sec: &Section) -> bool {
    let (sum, slack) = sec.rows.iter().fold((0.0, 0.0), |(s, k), r| {
        let whole = if sec.layout == PerfLayout::V6_4 {
            1.0
        } else {
            r.rounding.pct
        };
        (s + r.samples_pct.unwrap_or(0.0), k + whole)
    });
    sum + slack < 99.99
}

/// Every `.txt` of a directory, with corpus `## key: value` header lines dropped.
fn texts(dir: &str) -> Vec<(String, String)> {
    let dir = format!("{}/{dir}", env!("CARGO_MANIFEST_DIR"));
    let mut out: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "txt"))
        .map(|e| {
            let text = std::fs::read_to_string(e.path()).unwrap();
            let body: Vec<&str> = text.lines().skip_while(|l| l.starts_with("## ")).collect();
            let name = e.file_name().to_string_lossy().into_owned();
            (name, body.join("\n"))
        })
        .collect();
    out.sort();
    out
}

pub(super) fn all_sources() -> Vec<(String, String)> {
    let mut all = texts("tests/corpus");
    all.extend(texts("tests/perf64"));
    all.extend(texts("tests/perf-real"));
    all.extend(
        texts("src/report/golden")
            .into_iter()
            .filter(|(n, _)| n.starts_with("perf_") || n.starts_with("vmexit_")),
    );
    all
}

/// One table imported on its own, printed in its own layout for its own VM and vCPU.
pub(super) fn reprint(sec: &Section) -> String {
    let mut warnings = Vec::new();
    let built = import_build::samples(std::slice::from_ref(sec), &mut warnings)
        .expect("the table imported once imports alone");
    let imp = PerfImport {
        sections: vec![sec.clone()],
        older: Sample::default(),
        newer: built.sample,
        names: built.names,
        warnings: Vec::new(),
        rel_err: built.rel_err,
        sub_times: built.sub_times,
    };
    let data = Data::from_import(&imp, "source");
    // No VM or vCPU asked for: the table's own "Analyze events for" target is printed.
    let o = TableOptions {
        event: sec.event,
        layout: sec.layout,
        ..Default::default()
    };
    perf_table(&data, &o).unwrap()
}

fn value(r: &PerfRow, c: Column) -> Option<f64> {
    match c {
        Column::Samples => Some(r.samples as f64),
        Column::SamplesPct => r.samples_pct,
        Column::TimePct => r.time_pct,
        Column::Min => r.min_us,
        Column::Max => r.max_us,
        Column::Avg => r.avg_us,
        Column::TotalTime => r.total_us,
    }
}

/// The columns of `src` that differ in `again`, as "NAME column: source vs printed" lines.
pub(super) fn differences(src: &Section, again: &Section) -> Vec<String> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut out = Vec::new();
    let whole = !cut(src);
    for r in src.rows.iter().filter(|r| r.samples > 0) {
        let k = seen.entry(&r.name).or_insert(0);
        let Some(b) = again.rows.iter().filter(|b| b.name == r.name).nth(*k) else {
            out.push(format!("{}: not printed", r.name));
            continue;
        };
        *k += 1;
        // perf's `( +- x% )`, kept as printed (kvmprof cannot compute it for an import).
        if r.rel_err_pct.is_some() && r.rel_err_pct != b.rel_err_pct {
            out.push(format!(
                "{} ( +- ): source {:?}, printed {:?}",
                r.name, r.rel_err_pct, b.rel_err_pct
            ));
        }
        for &c in &src.columns {
            let shares = matches!(c, Column::SamplesPct | Column::TimePct);
            let compared = match c {
                Column::Samples => true,
                Column::SamplesPct => whole,
                _ => whole || !shares,
            };
            // Both sides were printed with the same number of decimals (the same layout),
            // so equal values are equal digits.
            if compared && value(r, c) != value(b, c) {
                out.push(format!(
                    "{} {c:?}: source {:?}, printed {:?}",
                    r.name,
                    value(r, c),
                    value(b, c)
                ));
            }
        }
    }
    out
}

#[test]
fn every_table_prints_back_to_its_own_digits() {
    let (mut tables, mut whole) = (0, 0);
    let mut failures = Vec::new();
    for (file, text) in all_sources() {
        let Ok((sections, _)) = parse(&text) else {
            continue;
        };
        for src in &sections {
            // bcc kvmexit counts are not a perf table: there is no layout to print them in.
            if !src.columns.contains(&Column::SamplesPct) {
                continue;
            }
            tables += 1;
            whole += usize::from(!cut(src));
            let printed = reprint(src);
            let (again, _) = parse(&printed).unwrap_or_else(|e| panic!("{file}: {e}\n{printed}"));
            let again = again
                .first()
                .unwrap_or_else(|| panic!("{file}: no table printed\n{printed}"));
            // MSR / IO port / MMIO counts are kept per VM: their tables have no vCPU.
            let vcpu = src.vcpu.filter(|_| src.event == Event::Vmexit);
            assert_eq!(
                (&again.pids, again.vcpu, again.layout),
                (&src.pids, vcpu, src.layout),
                "{file} line {}: printed for another VM, vCPU or layout\n{printed}",
                src.line
            );
            let diff = differences(src, again);
            if !diff.is_empty() {
                failures.push(format!(
                    "{file} line {}:\n  {}\n{printed}",
                    src.line,
                    diff.join("\n  ")
                ));
            }
        }
    }
    println!("{tables} tables printed back, {whole} of them whole");
    assert!(
        tables >= 40 && whole >= 30,
        "only {tables} tables ({whole} whole) read"
    );
    assert!(
        failures.is_empty(),
        "{} tables do not print back:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// perf's screen heads an MMIO table "Event name" like an MSR one; kvmprof's 6.4-layout
/// table says which it is after its rows, so it reads back as MMIO, for every sub-reason event.
#[test]
fn sub_reason_tables_in_the_6_4_layout_keep_their_event() {
    let tables = [
        (Event::Mmio, "MMIO Access", "0xfed000f0:R", "0xfee000b0:W"),
        (Event::Msr, "MSR Access", "0x6e0:W", "0x1b:R"),
        (Event::Ioport, "IO Port Access", "0x70:POUT", "0x71:PIN"),
    ];
    for (event, header, a, b) in tables {
        let src = format!("{header} Samples Samples%\n{a} 300 75.00%\n{b} 100 25.00%\n");
        let d = Data::from_perf_text(&src, "src").unwrap();
        let o = TableOptions {
            event,
            layout: PerfLayout::V6_4,
            ..Default::default()
        };
        let printed = perf_table(&d, &o).unwrap();
        let imp = import(&printed).unwrap();
        assert_eq!(imp.sections[0].event, event, "{printed}");
        assert!(
            imp.warnings
                .iter()
                .all(|w| !w.msg.contains("read as an MSR")),
            "{printed}"
        );
        let rows: Vec<(&str, u64)> = imp.sections[0]
            .rows
            .iter()
            .map(|r| (r.name.as_str(), r.samples))
            .collect();
        // Known MSRs come back with their names (`0x6e0 IA32_TSC_DEADLINE:W`), the same
        // index and direction.
        let (na, nb) = (named_key(event, a), named_key(event, b));
        assert_eq!(rows, [(na.as_str(), 300), (nb.as_str(), 100)], "{printed}");
        let back = Data::from_perf_text(&printed, "back").unwrap();
        assert_eq!(back.evidence, d.evidence, "{printed}");
    }
}

/// perf's own tables of real exits (profiler/tests/perf-real, see its README): perf 6.1's
/// classic text, and perf 6.12's report screen of the same perf.data. Each is read and printed
/// again in its own layout: the classic text to the byte, up to kvmprof's own `# ` lines after
/// perf's footer; the screen from its title to its last row, to the byte on every line (up to
/// trailing blanks, which a terminal does not show: tmux drops them).
#[test]
fn perf_real_output_prints_back_byte_for_byte() {
    let files = texts("tests/perf-real");
    assert!(files.len() >= 8, "perf-real holds {} tables", files.len());
    let span = |t: &str| -> Vec<String> {
        let lines: Vec<String> = t.lines().map(|l| l.trim_end().to_string()).collect();
        let from = lines
            .iter()
            .position(|l| l.starts_with("KVM event statistics"));
        let from = from.unwrap_or_else(|| panic!("no title in\n{t}"));
        let rows = lines[from + 2..]
            .iter()
            .take_while(|l| !l.is_empty())
            .count();
        lines[from..from + 2 + rows].to_vec()
    };
    for (file, text) in files {
        let (sections, _) = parse(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(sections.len(), 1, "{file}");
        let d = Data::from_perf_text(&text, &file).unwrap();
        let o = TableOptions {
            event: sections[0].event,
            layout: sections[0].layout,
            ..Default::default()
        };
        let printed = perf_table(&d, &o).unwrap();
        if o.layout == PerfLayout::V6_4 {
            assert_eq!(
                span(&printed),
                span(&text),
                "{file} does not print back as perf showed it\n--- kvmprof:\n{printed}"
            );
            continue;
        }
        let ours = printed
            .find("\n# ")
            .map_or(&printed[..], |i| &printed[..i + 1]);
        assert_eq!(
            ours.trim_end(),
            text.trim_end(),
            "{file} does not print back as perf printed it\n--- kvmprof:\n{printed}"
        );
    }
}
