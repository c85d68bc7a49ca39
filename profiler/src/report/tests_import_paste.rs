//! Tables as people paste them (tests/corpus/README.md lists the real ones): one small
//! synthetic snippet per quirk, each asserting the rows read and what was lost.

use super::*;

/// (name, samples, avg µs) of every row of every table.
fn rows(t: &str) -> Vec<(String, u64, Option<f64>)> {
    let imp = import(t).unwrap_or_else(|e| panic!("{e}\n{t}"));
    imp.sections
        .iter()
        .flat_map(|s| s.rows.iter())
        .map(|r| (r.name.clone(), r.samples, r.avg_us))
        .collect()
}

fn r(name: &str, n: u64, avg: Option<f64>) -> (String, u64, Option<f64>) {
    (name.to_string(), n, avg)
}

fn warnings(t: &str) -> Vec<String> {
    import(t)
        .unwrap()
        .warnings
        .iter()
        .map(|w| w.to_string())
        .collect()
}

/// A 72-column mail client: "Max" / "Time  Avg time", and Max/Avg of each row on the next line.
#[test]
fn header_and_rows_wrapped_at_72_columns() {
    let t = "Analyze events for all VMs, all VCPUs:
             VM-EXIT    Samples  Samples%     Time%    Min Time    Max
Time         Avg time
  EXTERNAL_INTERRUPT        600    60.00%    68.58%      0.64us
65.42us      2.34us ( +-   0.11% )
           MSR_WRITE        400    40.00%    31.42%      0.48us
41.05us      1.56us ( +-   0.14%

Total Samples:1000, Total events handled time:2028.00us.
";
    assert_eq!(
        rows(t),
        [
            r("EXTERNAL_INTERRUPT", 600, Some(2.34)),
            r("MSR_WRITE", 400, Some(1.56))
        ]
    );
    let imp = import(t).unwrap();
    assert_eq!(imp.sections[0].rows[0].max_us, Some(65.42));
    assert_eq!(imp.sections[0].rows[1].rel_err_pct, Some(0.14));
    assert!(imp.warnings.is_empty(), "{:?}", imp.warnings);
}

/// An 80-column wrap (bugzilla mail): the header's "Avg time" and each row's Avg time on
/// the next line, with trailing spaces; no "Analyze events" line and no footer.
#[test]
fn rows_wrapped_at_80_columns_with_trailing_spaces() {
    let t = "             VM-EXIT    Samples  Samples%     Time%    Min Time    Max Time    \n    Avg time \n\n               vmrun      71298    50.00%     2.61%      1.07us  46197.83us    \n19.09us ( +-   9.11% )\n                 msr      71298    50.00%     1.24%      0.61us  31213.68us    \n 9.04us ( +-  10.45% )\n";
    assert_eq!(
        rows(t),
        [r("vmrun", 71298, Some(19.09)), r("msr", 71298, Some(9.04))]
    );
}

/// Quoted twice, each row wrapped inside its `( +-` column.
#[test]
fn quoted_rows_wrapped_inside_the_error_column() {
    let t = "> > MSR Access Samples  Samples% Time%  Min Time Max Time  Avg time
> >
> >   0x6e0:W   900  90.00%   90.00%  0.59us   10.69us  0.90us ( +-
> > 0.10% )
> >   0x830:W    100  10.00%   10.00%  0.53us  108.34us  0.82us ( +-
> > 11.02% )
";
    let imp = import(t).unwrap();
    let s = &imp.sections[0];
    assert_eq!(s.rows.len(), 2);
    assert_eq!(
        (s.rows[1].name.as_str(), s.rows[1].samples),
        ("0x830:W", 100)
    );
    assert_eq!(s.rows[1].rel_err_pct, Some(11.02));
}

/// Outlook's no-break spaces as separators, sometimes next to an ordinary space in a field.
#[test]
fn no_break_spaces_between_columns() {
    let t = "\u{a0}\u{a0} VM-EXIT\u{a0}\u{a0} Samples\u{a0} Samples%\u{a0} Time%\u{a0} Min Time\u{a0} Max Time\u{a0}\u{a0} Avg time
\u{a0}\u{a0}\u{a0} io\u{a0}\u{a0} 600\u{a0}\u{a0} 60.00%\u{a0} \u{a0}\u{a0}50.00%\u{a0}\u{a0} 0.68us\u{a0} 100.62us\u{a0} 7.47us ( +-\u{a0}\u{a0} 0.13% )
\u{a0} \u{a0}hlt\u{2007}\u{2007}400\u{3000}40.00%\u{a0}\u{a0}50.00%\u{a0}\u{a0}0.43us \u{a0}3791.74us\u{a0}\u{a0}11.21us ( +- \u{a0}0.12% )\u{a0}\u{a0}
";
    assert_eq!(
        rows(t),
        [r("io", 600, Some(7.47)), r("hlt", 400, Some(11.21))]
    );
}

/// `........`: the poster cut the table; the rows above are read, the cut is reported.
#[test]
fn a_cut_table_says_where_it_was_cut() {
    let t = "             VM-EXIT    Samples  Samples%     Time%    Min Time    Max Time         Avg time
                  io     344654    68.29%     1.10%      0.67us   2132.72us      7.01us ( +-   0.19% )
avic_incomplete_ipi      19679     3.90%     0.03%      0.38us     22.67us      3.66us ( +-   0.71% )
\t..........              \n";
    assert_eq!(
        rows(t),
        [
            r("io", 344654, Some(7.01)),
            r("avic_incomplete_ipi", 19679, Some(3.66))
        ]
    );
    let w = warnings(t);
    assert!(
        w.iter()
            .any(|w| w.starts_with("line 4: ") && w.contains("cut here")),
        "{w:?}"
    );
}

/// `perf kvm stat live`: a time stamp line, perf's stderr between rows, fenced in markdown.
#[test]
fn live_paste_with_timestamp_stderr_and_fence() {
    let t = "```
15:52:35.709821

Analyze events for all VMs, all VCPUs:

             VM-EXIT    Samples  Samples%     Time%    Min Time    Max Time         Avg time 

              INVLPG        600    60.00%     4.34%      0.73us 104499.10us     45.88us ( +-  13.51% )
unknown kvm exit code:131072 on VMX
             UNKNOWN        300    30.00%    86.12%      0.34us 1663159.36us   4765.94us ( +-  18.58% )
             UNKNOWN        100    10.00%     9.54%      0.85us  72083.56us    502.57us ( +-  12.41% )
```
";
    assert_eq!(rows(t).len(), 3);
    let w = warnings(t);
    assert!(
        w.iter()
            .any(|w| w.starts_with("line 9: ") && w.contains("unknown kvm exit code")),
        "{w:?}"
    );
}

/// Max Time running into the next column: `0.43us901000.66us`.
#[test]
fn glued_times_are_two_columns() {
    let t = "VM-EXIT Samples Samples% Time% Min Time Max Time Avg time
HLT 100 100.00% 100.00% 0.43us901000.66us 310.88us ( +- 8.46% )
";
    let imp = import(t).unwrap();
    let row = &imp.sections[0].rows[0];
    assert_eq!((row.min_us, row.max_us), (Some(0.43), Some(901000.66)));
}

/// A hand-compacted table: `9us`, `(+- 3.41%)`, single spaces, no footer.
#[test]
fn hand_compacted_values() {
    let t = "IO Port Access  Samples Samples%  Time%  Min Time  Max Time  Avg time
0x70:POUT        86     30.99%    74.59%   9us      29us    10.75us (+- 3.41%)
0xcf8:POUT     1119     2.60%     2.12%   2.79us    56.83us 3.41us (+- 2.23%)
";
    let imp = import(t).unwrap();
    let s = &imp.sections[0];
    assert_eq!(
        (s.rows[0].min_us, s.rows[0].rel_err_pct),
        (Some(9.0), Some(3.41))
    );
    assert_eq!(s.rows[1].samples, 1119);
}

/// Rows quoted without their header are read by their shape, and say so; a row wrapped
/// without a header too.
#[test]
fn rows_without_a_header() {
    let t = "> The hrtimer flood hits on this:
> 
>            MSR_WRITE     338793    56.54%     5.51%      0.33us     34.44us      0.44us ( +-   0.20% )
>    PENDING_INTERRUPT     168431    28.11%     2.52%      0.36us     32.06us      0.40us ( +-   0.28% )
> 
> PENDING_INTERRUPT is the big missing thing in your list.
";
    assert_eq!(
        rows(t),
        [
            r("MSR_WRITE", 338793, Some(0.44)),
            r("PENDING_INTERRUPT", 168431, Some(0.40))
        ]
    );
    assert!(warnings(t)[0].starts_with("line 3: no header line"));
    let wrapped = "KVM stat live output:

        APIC_ACCESS      11491    60.00%     5.12%      1.82us   5021.41us     
9.41us ( +-   9.87% )
       EPT_MISCONFIG       8007    40.00%    17.51%     11.25us  11003.56us    
46.18us ( +-   8.59% )
";
    assert_eq!(
        rows(wrapped),
        [
            r("APIC_ACCESS", 11491, Some(9.41)),
            r("EPT_MISCONFIG", 8007, Some(46.18))
        ]
    );
    // Prose with numbers is not a table.
    assert!(import("We ran 12 VMs at 50% load for 3 hours.\n").is_err());
}

/// A wrapped row whose rest never comes is refused, naming its line.
#[test]
fn a_wrapped_row_without_its_rest_is_refused() {
    let t = "VM-EXIT Samples Samples% Time% Min Time Max Time Avg time
HLT 100 50.00% 50.00% 0.43us 9.00us
CPUID 100 50.00% 50.00% 0.43us 9.00us 1.00us ( +- 1.00% )
";
    let e = import(t).unwrap_err().to_string();
    assert!(
        e.starts_with("line 2: expected a name and 6 columns"),
        "{e}"
    );
}

/// perf ≥ 6.4: `Event name … Time (ns) … Mean Time (ns)`, integer ns; boxed by a doc
/// author; and trimmed to five columns.
#[test]
fn perf_6_4_layouts() {
    let boxed = "KVM event statistics (2 entries)
+-----------+---------+---------+--------------+--------+---------------+---------------+-----------------+
|Event name | Samples | Sample% |    Time (ns) |  Time% | Max Time (ns) | Min Time (ns) | Mean Time (ns)  |
+-----------+---------+---------+--------------+--------+---------------+---------------+-----------------+
| idle-halt |  150000 |  95.00% | 159738246175 | 99.00% |      37789103 |          3435 |        1064921  |
|       msr |    7900 |   5.00% |    131930697 |  1.00% |        221743 |           441 |          16700  |
+-----------+---------+---------+--------------+--------+---------------+---------------+-----------------+
";
    let imp = import(boxed).unwrap();
    let s = &imp.sections[0];
    assert_eq!(s.rows.len(), 2);
    let h = &s.rows[0];
    assert_eq!((h.name.as_str(), h.samples), ("idle-halt", 150_000));
    assert_eq!((h.min_us, h.max_us), (Some(3.435), Some(37789.103)));
    assert_eq!(h.total_us, Some(159738246.175));
    assert!((h.avg_us.unwrap() - 1064.921).abs() < 1e-9);
    assert!(imp.warnings.is_empty(), "{:?}", imp.warnings);
    // An 8-column header wrapped twice, as an arm64 paste shows it.
    let wrapped = "Event name Samples Sample% Time (ns) Time% Max Time (ns)
Min Time (ns)
Mean Time (ns)
msr 10 100.00% 1000 100.00% 200 50 100
";
    let row = &import(wrapped).unwrap().sections[0].rows[0];
    assert_eq!((row.min_us, row.avg_us), (Some(0.05), Some(0.1)));
    let five = "             Event name     Samples   Sample%       Time%   Mean Time (ns)
         IO_INSTRUCTION        6747    63.00%       0.00%            11081
                    HLT        3750    35.00%      99.00%          3945206
";
    assert_eq!(
        rows(five),
        [
            r("IO_INSTRUCTION", 6747, Some(11.081)),
            r("HLT", 3750, Some(3945.206))
        ]
    );
    // Whole percents (64.3 % printed as 63.00%) are not rows missing.
    let w = warnings(five);
    assert!(w.iter().all(|w| !w.contains("adds up")), "{w:?}");
}

/// Counts without times are shown as counts: the report makes up no 0.00us times.
#[test]
fn counts_without_times_render_without_time_columns() {
    let t = "KVM_EXIT_REASON COUNT\nHLT 300\nMSR_WRITE 100\n";
    let d = Data::from_perf_text(t, "kvmexit.txt").unwrap();
    let table = perf_table(&d, &TableOptions::default()).unwrap();
    assert!(!table.contains("us"), "{table}");
    let header = table.lines().find(|l| l.contains("VM-EXIT")).unwrap();
    assert!(!header.contains("Time%"), "{table}");
    assert!(
        table.contains(&format!("{:>40} {:>10}    75.00%", "HLT", 300)),
        "{table}"
    );
    assert!(table.contains("Total Samples:400.\n"), "{table}");
    // A table trimmed to its shares (no Min/Max/Avg, no footer) has no times either.
    let four = "VM-EXIT Samples Samples% Time%\nHLT 300 75.00% 90.00%\nCPUID 100 25.00% 10.00%\n";
    let d = Data::from_perf_text(four, "four.txt").unwrap();
    let table = perf_table(&d, &TableOptions::default()).unwrap();
    assert!(!table.contains("0.00us"), "{table}");
}

/// perf ≥ 6.4 heads `--event=ioport` and `--event=msr` tables `Event name` too: the rows tell
/// which; a footer's time in ns is read as ns.
#[test]
fn perf_6_4_sub_reason_tables_and_ns_footer() {
    let io = "Event name Samples Sample% Time (ns) Time% Max Time (ns) Min Time (ns) Mean Time (ns)
0x70:POUT 600 60.00% 6000 60.00% 20 5 10
0x71:PIN 400 40.00% 4000 40.00% 20 5 10

Total Samples:1000, Total events handled time:10000ns.
";
    let imp = import(io).unwrap();
    let s = &imp.sections[0];
    assert_eq!(s.event, Event::Ioport);
    assert_eq!(s.total_time_us, Some(10.0));
    assert!(
        imp.warnings.iter().all(|w| !w.msg.contains("is off")),
        "{:?}",
        imp.warnings
    );
    let msr = io
        .replace("0x70:POUT", "0x6e0:W")
        .replace("0x71:PIN", "0x830:W");
    let imp = import(&msr).unwrap();
    assert_eq!(imp.sections[0].event, Event::Msr);
    assert!(imp.warnings.iter().any(|w| w.msg.contains("MMIO Access")));
}

/// The refusal reaches the user once, as one line (main prints the error chain with `{:#}`).
#[test]
fn a_refusal_is_printed_once() {
    let e = Data::from_perf_text("VM-EXIT Samples Samples% Time%\nHLT 1x 1% 1%\n", "p.txt")
        .map(|_| ())
        .unwrap_err();
    let chain = format!("{:#}", anyhow::Error::from(e));
    assert_eq!(chain.matches("line 2").count(), 1, "{chain}");
}
