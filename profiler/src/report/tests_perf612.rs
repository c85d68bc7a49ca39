//! kvmprof's perf ≥ 6.4 layout against perf 6.12 itself, and the importer's cases around it.

use super::{perf_screen::table64, *};

fn names(rows: &[perf_screen::Row64]) -> Vec<&str> {
    rows.iter().map(|(n, _)| n.as_str()).collect()
}

/// perf ≥ 6.4 keeps its entries in a tree ordered by name (kvm_hists__init sorts by
/// `ev_name`) and sorts them by `-k` stably: rows that tie on Samples print by name, whatever
/// order the source text had them in (perf 6.1's hash-table order printed 0x10:W first).
#[test]
fn tied_rows_print_by_name_in_the_6_4_layout() {
    let src = "Analyze events for pid(s) 243, all VCPUs:

          MSR Access    Samples  Samples%     Time%    Min Time    Max Time         Avg time 

              0x10:W       2000    50.00%    54.19%     21.45us   9698.17us     99.52us ( +-  10.53% )
              0x10:R       2000    50.00%    45.81%     22.47us   6134.73us     84.12us ( +-   9.00% )

Total Samples:4000, Total events handled time:367273.23us.
";
    let d = Data::from_perf_text(src, "msr").unwrap();
    let print = |layout| {
        let o = TableOptions {
            event: Event::Msr,
            layout,
            ..Default::default()
        };
        perf_table(&d, &o).unwrap()
    };
    let v64 = print(PerfLayout::V6_4);
    assert_eq!(names(&table64(&v64).2), ["0x10:R", "0x10:W"], "{v64}");
    // The classic layout prints back as its source did: W first.
    let classic = print(PerfLayout::Classic);
    let w = classic.find("0x10:W").unwrap();
    assert!(w < classic.find("0x10:R").unwrap(), "{classic}");
}

/// perf's screen heads an MMIO table `Event name`, like an MSR one: addresses that are no
/// MSR index (the local APIC's 0xfee000b0) make it MMIO Access; MSR indexes stay MSR Access.
#[test]
fn a_pasted_6_4_mmio_table_reads_as_mmio() {
    let table = |a: &str, b: &str| {
        format!(
            "Event name Samples Sample% Time (ns) Time% Max Time (ns) Min Time (ns) Mean Time (ns)
{a} 600 60.00% 6000 60.00% 20 5 10
{b} 400 40.00% 4000 40.00% 20 5 10
"
        )
    };
    let imp = import(&table("0xfee000b0:W", "0xfed000f0:R")).unwrap();
    assert_eq!(imp.sections[0].event, Event::Mmio);
    assert!(
        imp.warnings.iter().any(|w| w.msg.contains("0xfee000b0:W")),
        "{:?}",
        imp.warnings
    );
    // One row outside every MSR range is enough (0xc0000080 EFER is an MSR, 0xfebf1000 no).
    let imp = import(&table("0xc0000080:W", "0xfebf1000:R")).unwrap();
    assert_eq!(imp.sections[0].event, Event::Mmio);
    for (a, b) in [("0x6e0:W", "0x830:W"), ("0x40000070:W", "0xc0010015:R")] {
        let imp = import(&table(a, b)).unwrap();
        assert_eq!(imp.sections[0].event, Event::Msr, "{a} {b}");
    }
}

/// perf before 6.4 (`%20s` names) walks its events in hash-bucket order (exit code & 4095)
/// into a tree where ties go right: tied rows print by exit code (EXTERNAL_INTERRUPT, 1, before
/// EPT_VIOLATION, 48), and a table of that perf prints back so. perf ≥ 6.4's tables (`%40s`,
/// and the 6.4 layout) order the same tie by name.
#[test]
fn tied_exit_rows_print_in_the_order_of_the_perf_that_made_the_table() {
    let old = "Analyze events for all VMs, all VCPUs:

             VM-EXIT    Samples  Samples%     Time%    Min Time    Max Time         Avg time 

  EXTERNAL_INTERRUPT        500    50.00%    50.00%      1.00us      3.00us      2.00us ( +-   1.00% )
       EPT_VIOLATION        500    50.00%    50.00%      1.00us      3.00us      2.00us ( +-   1.00% )

Total Samples:1000, Total events handled time:2000.00us.
";
    let first = |text: &str, layout| {
        let d = Data::from_perf_text(text, "t").unwrap();
        let o = TableOptions {
            layout,
            ..Default::default()
        };
        let t = perf_table(&d, &o).unwrap();
        let (e, x) = (t.find("EPT_VIOLATION"), t.find("EXTERNAL_INTERRUPT"));
        if e.unwrap() < x.unwrap() {
            "EPT_VIOLATION"
        } else {
            "EXTERNAL_INTERRUPT"
        }
    };
    assert_eq!(first(old, PerfLayout::Classic), "EXTERNAL_INTERRUPT");
    assert_eq!(first(old, PerfLayout::V6_4), "EPT_VIOLATION");
    // The same table as perf ≥ 6.4's print_result (`%40s` names).
    let new: String = old
        .lines()
        .map(|l| match l.strip_prefix(' ') {
            Some(_) if !l.trim().is_empty() => format!("{:>20}{l}", ""),
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(first(&new, PerfLayout::Classic), "EPT_VIOLATION", "{new}");
}

fn perf_real(name: &str) -> String {
    let path = format!("{}/tests/perf-real/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let body: Vec<&str> = text.lines().skip_while(|l| l.starts_with("## ")).collect();
    body.join("\n")
}

/// perf 6.12's own report screen of one real run (profiler/tests/perf-real/perf612-*.txt)
/// against kvmprof's `--perf-layout 6.4` of perf 6.1's classic text of the same perf.data:
/// the same title, header, rows in the same order, Samples, Sample% and Time%; Time (ns), Max,
/// Min and Mean within the classic text's rounding (perf_screen.rs says how far).
#[test]
fn perf612_screen_equals_kvmprofs_6_4_layout_of_the_same_run() {
    for ev in [Event::Vmexit, Event::Ioport, Event::Msr, Event::Mmio] {
        let screen = perf_real(&format!("perf612-svm-{}.txt", ev.arg()));
        let classic = perf_real(&format!("perf61-svm-{}.txt", ev.arg()));
        let diff = perf_screen::screen_differences(&screen, &classic, ev).unwrap();
        assert!(
            diff.is_empty(),
            "{}: kvmprof's 6.4 layout differs from perf 6.12's screen:\n  {}\n{screen}",
            ev.arg(),
            diff.join("\n  ")
        );
    }
}

/// perf's `--event mmio` table of a guest that made no MMIO has its time columns and a
/// footer with a time: printed back so, not as a counts-only table; in the 6.4 layout as
/// perf 6.12's screen shows it (title with 0 entries, all seven column headers).
#[test]
fn an_empty_perf_table_prints_back_as_perf_printed_it() {
    let classic = perf_real("perf61-svm-mmio.txt");
    let d = Data::from_perf_text(&classic, "mmio").unwrap();
    let print = |layout| {
        let o = TableOptions {
            event: Event::Mmio,
            layout,
            ..Default::default()
        };
        perf_table(&d, &o).unwrap()
    };
    let back = print(PerfLayout::Classic);
    assert!(back.starts_with(classic.trim_end()), "{back}");
    let screen = perf_real("perf612-svm-mmio.txt");
    let (title, header, rows) = table64(&print(PerfLayout::V6_4));
    assert_eq!((title, header, rows), {
        let (t, h, r) = table64(&screen);
        (t, h, r)
    });
}

/// README's `--perf-layout 6.4` example is what kvmprof prints for that fixture (line ends
/// trimmed: the header's last cell ends in perf's two blanks).
#[test]
fn readme_perf_layout_example_is_true() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    let cmd = "$ kvmprof report --from-perf perf61-svm-vmexit.txt --perf-layout 6.4\n";
    let at = readme.find(cmd).expect("the example in README.md") + cmd.len();
    let shown = &readme[at..at + readme[at..].find("```").unwrap()];
    let d = Data::from_perf_text(&perf_real("perf61-svm-vmexit.txt"), "t").unwrap();
    let o = TableOptions {
        layout: PerfLayout::V6_4,
        ..Default::default()
    };
    let printed = perf_table(&d, &o).unwrap();
    fn trim(t: &str) -> Vec<&str> {
        t.trim_end().lines().map(str::trim_end).collect()
    }
    assert_eq!(trim(shown), trim(&printed));
}

/// The comparison is not blind: a screen whose Time% is a percent off, whose Max is 100 ns
/// off, or whose rows come in another order differs from kvmprof's table.
#[test]
fn the_screen_comparison_sees_a_wrong_cell() {
    let classic = perf_real("perf61-svm-vmexit.txt");
    let screen = perf_real("perf612-svm-vmexit.txt");
    let differs = |s: &str| {
        !perf_screen::screen_differences(s, &classic, Event::Vmexit)
            .unwrap()
            .is_empty()
    };
    assert!(!differs(&screen));
    let io = "                                      io          2000        24.00%     321268580";
    assert!(differs(&screen.replace(
        &format!("{io}        43.00%"),
        &format!("{io}        42.00%")
    )));
    assert!(differs(&screen.replace("12521016", "12521116")));
    let lines: Vec<&str> = screen.lines().collect();
    let (cpuid, io) = (lines[3], lines[4]);
    assert!(differs(
        &screen
            .replace(cpuid, "X")
            .replace(io, cpuid)
            .replace("X", io)
    ));
}

/// A session without exits prints perf's whole header in both layouts (perf prints Min Time
/// and Max Time, or all seven screen columns, whatever the rows).
#[test]
fn an_empty_exit_table_has_perfs_whole_header() {
    let d = Data::default();
    let classic = perf_table(&d, &TableOptions::default()).unwrap();
    assert!(classic.contains("    Min Time    Max Time         Avg time \n\n\nTotal Samples:0, Total events handled time:0.00us."), "{classic}");
    let o = TableOptions {
        layout: PerfLayout::V6_4,
        ..Default::default()
    };
    let (title, header, rows) = table64(&perf_table(&d, &o).unwrap());
    let screen = perf_real("perf612-svm-mmio.txt");
    assert_eq!((title, header, rows), table64(&screen));
}
