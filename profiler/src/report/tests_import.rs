//! perf text import: real-looking outputs of several perf versions, pasted copies, kvmprof's
//! own tables read back, and hostile input.

use profiler_common::{ev, ISA_SVM, ISA_VMX};

use super::tests_table::fixture;
use super::*;
use crate::model::Row;

fn text(name: &str) -> String {
    let path = format!("{}/src/report/golden/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn row<'a>(v: &'a model::View, pid: u32, name: &str) -> &'a Row {
    let vm = v.vms.iter().find(|m| m.pid == pid).expect("vm");
    vm.reasons
        .iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("{name} missing"))
}

#[test]
fn new_perf_vmx_with_error_column() {
    let imp = import(&text("perf_new_vmx.txt")).unwrap();
    assert_eq!(imp.sections.len(), 1);
    let s = &imp.sections[0];
    assert_eq!((s.pids.len(), s.vcpu, s.rows.len()), (0, None, 8));
    assert_eq!(s.total_samples, Some(807_633));
    assert_eq!(s.rows[0].rel_err_pct, Some(0.42));
    assert!(imp.warnings.is_empty(), "{:?}", imp.warnings);
    let v = imp.view();
    assert_eq!(v.names_source, "perf text");
    assert_eq!(v.vms[0].name, "all VMs");
    let r = row(&v, 0, "EPT_MISCONFIG");
    assert_eq!(
        (r.isa, r.reason, r.count, r.timed),
        (ISA_VMX, 49, 412_036, 412_036)
    );
    assert_eq!((r.min_ns, r.max_ns), (1_410, 1_203_550));
    // Avg 5.12us: the mean lies within its rounding (Time% and the footer pick where).
    assert!((r.mean_ns - 5_120.0).abs() <= 5.0, "{}", r.mean_ns);
    assert_eq!((r.p50_ns, r.p99_ns, r.hist_total), (0, 0, 0));
    assert!(row(&v, 0, "HLT").hlt);
    // perf's UNKNOWN keeps its name under a synthetic code.
    let u = row(&v, 0, "UNKNOWN");
    assert_eq!((u.isa, u.reason, u.count), (ISA_VMX, 0xff00, 711));
}

#[test]
fn old_perf_20_columns_without_min_max() {
    let imp = import(&text("perf_old_20col.txt")).unwrap();
    let s = &imp.sections[0];
    assert_eq!(s.pids, vec![4321]);
    assert_eq!(s.rows.len(), 5);
    assert_eq!(s.rows[2].avg_us, Some(812.40));
    assert!(
        imp.warnings[0].msg.contains("no Min/Max"),
        "{:?}",
        imp.warnings
    );
    let v = imp.view();
    assert_eq!(v.vms[0].name, "pid 4321");
    let r = row(&v, 4321, "EPT_VIOLATION");
    assert_eq!((r.reason, r.count), (48, 1_544));
    // Avg 3.88us × 1544, within the Avg's rounding (±0.005us each).
    assert!(
        (1_544 * 3_875..=1_544 * 3_885).contains(&r.total_ns),
        "{}",
        r.total_ns
    );
}

#[test]
fn tabs_and_per_vcpu_sections_without_error_column() {
    let imp = import(&text("perf_tabs_vcpus.txt")).unwrap();
    assert_eq!(imp.sections.len(), 2);
    assert_eq!(imp.sections[1].vcpu, Some(1));
    assert_eq!(imp.sections[0].rows[0].rel_err_pct, None);
    let v = imp.view();
    let vm = &v.vms[0];
    assert_eq!(vm.vcpus.iter().map(|c| c.vcpu).collect::<Vec<_>>(), [0, 1]);
    let w = row(&v, 777, "MSR_WRITE");
    assert_eq!((w.count, w.min_ns, w.max_ns), (8_000, 500, 12_000));
    let (lo, hi) = (5_000 * 1_195 + 3_000 * 1_295, 5_000 * 1_205 + 3_000 * 1_305);
    assert!((lo..=hi).contains(&w.total_ns), "{}", w.total_ns);
}

#[test]
fn svm_names_including_spaces() {
    let v = import(&text("perf_svm.txt")).unwrap().view();
    let r = row(&v, 0, "npf");
    assert_eq!((r.isa, r.reason, r.count), (ISA_SVM, 0x400, 352_100));
    assert_eq!(row(&v, 0, "PF excp").reason, 0x4e);
    assert_eq!(row(&v, 0, "interrupt").reason, 0x60);
    assert!(row(&v, 0, "hlt").hlt);
}

#[test]
fn msr_and_ioport_tables_become_evidence_counts() {
    let imp = import(&text("perf_msr_ioport.txt")).unwrap();
    let count = |kind, a| {
        imp.newer
            .evidence
            .iter()
            .find(|(k, _)| k.kind == kind && k.a == a)
            .map_or(0, |(_, v)| v.count)
    };
    assert_eq!(count(ev::MSR_WRITE, 0x6e0), 183_003);
    assert_eq!(count(ev::MSR_WRITE, 0x4000_0070), 30_110);
    assert_eq!(count(ev::MSR_READ, 0x1b), 3_301);
    assert_eq!(count(ev::PIO_OUT, 0x3f8), 11_022);
    assert_eq!(count(ev::PIO_IN, 0x71), 200);
    // Their times are kept beside the counts, and printed back.
    let t = imp.sub_times.values().find(|t| t.count == 11_022).unwrap();
    assert_eq!((t.min_ns, t.max_ns, t.rel_err), (1_300, 60_000, Some(0.5)));
    // And they render as kvmprof's sub-reason table.
    let d = Data::from_perf_text(&text("perf_msr_ioport.txt"), "perf").unwrap();
    let t = perf_table(
        &d,
        &TableOptions {
            event: Event::Msr,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(
        t.contains(&format!("{:>40} {:>10}", "0x6e0:W", 183_003)),
        "{t}"
    );
    // perf's keys stay perf's; the names kvmprof knows follow in a `# ` line (#16).
    assert!(
        t.contains("\n# MSR names: ") && t.contains("0x6e0 IA32_TSC_DEADLINE"),
        "{t}"
    );
}

#[test]
fn email_paste_with_quotes_crlf_nbsp_and_prose() {
    let imp = import(&text("perf_email.txt")).unwrap();
    assert_eq!(imp.sections.len(), 2);
    assert_eq!(imp.sections[0].pids, vec![1111]);
    assert_eq!(imp.sections[0].total_samples, None);
    assert_eq!(imp.sections[1].total_samples, Some(1_500));
    let v = imp.view();
    assert_eq!(row(&v, 1111, "EPT_MISCONFIG").count, 9_000);
    assert_eq!(row(&v, 2222, "CPUID").count, 300);
}

/// Our perf table → import → the same counts, extremes and means (to perf's 0.01 µs).
#[test]
fn round_trip_of_our_perf_tables() {
    let d = fixture();
    for per_vm in [false, true] {
        let o = TableOptions {
            per_vm,
            percentiles: true,
            ..Default::default()
        };
        let back = Data::from_perf_text(&perf_table(&d, &o).unwrap(), "rt").unwrap();
        let want = rows::merge(d.view.vms.iter().flat_map(|v| &v.reasons));
        let got = rows::merge(back.view.vms.iter().flat_map(|v| &v.reasons));
        assert_eq!(want.len(), got.len());
        for (w, g) in want.iter().zip(&got) {
            assert_eq!((&w.name, w.reason, w.count), (&g.name, g.reason, g.count));
            assert!(
                (w.mean_ns - g.mean_ns).abs() <= 5.0,
                "{}: {} {}",
                w.name,
                w.mean_ns,
                g.mean_ns
            );
            assert!(w.min_ns.abs_diff(g.min_ns) <= 5 && w.max_ns.abs_diff(g.max_ns) <= 5);
        }
        // Per-pid tables that add up to the all-VMs table replace it.
        let pids: Vec<u32> = back.view.vms.iter().map(|v| v.pid).collect();
        assert_eq!(pids, if per_vm { vec![1234, 2222] } else { vec![0] });
    }
    // Sub-reason tables too.
    let o = TableOptions {
        event: Event::Msr,
        ..Default::default()
    };
    let back = Data::from_perf_text(&perf_table(&d, &o).unwrap(), "rt").unwrap();
    assert_eq!(
        back.evidence.keyed(Event::Msr, None),
        d.evidence.keyed(Event::Msr, None)
    );
}

/// Imported data printed again keeps perf's `( +- x% )`, marks the percentiles it lacks, and
/// reads back the same.
#[test]
fn imported_tables_print_n_a_and_read_back() {
    let d = Data::from_perf_text(&text("perf_svm.txt"), "svm").unwrap();
    assert!(!d.has_hist);
    let o = TableOptions {
        percentiles: true,
        ..Default::default()
    };
    let t = perf_table(&d, &o).unwrap();
    assert!(t.contains("3.02us ( +-   0.51% )         n/a"), "{t}");
    assert!(t.contains("# n/a: no latency histogram"), "{t}");
    let again = import(&t).unwrap();
    assert_eq!(again.sections[0].rows[0].rel_err_pct, Some(0.51));
    assert_eq!(again.sections[0].rows[0].name, "npf");
    assert_eq!(again.sections[0].rows[0].samples, 352_100);
}

#[test]
fn errors_name_the_line() {
    let e = |t: &str| import(t).unwrap_err().to_string();
    assert_eq!(
        e("hello\nworld\n"),
        "no perf kvm stat table found: expected a header line like \
         'VM-EXIT  Samples  Samples%  Time%  Min Time  Max Time  Avg time'"
    );
    let bad = "Analyze events for all VMs, all VCPUs:\n\n\
               VM-EXIT Samples Samples% Time% Min Time Max Time Avg time\n\n\
               EPT_MISCONFIG 12x 3.00% 1.00% 1.00us 2.00us 1.50us ( +- 1.00% )\n";
    assert_eq!(
        e(bad),
        "line 5: '12x' is not a sample count (in 'EPT_MISCONFIG 12x 3.00% 1.00% 1.00us 2.00us 1.50us ( +- 1.00% )')"
    );
    let hdr = "Foo Access Samples Samples% Time%\n";
    assert!(
        e(hdr).starts_with("line 1: unknown table 'Foo Access'"),
        "{}",
        e(hdr)
    );
    let pid = "Analyze events for pid(s) abc, all VCPUs:\n";
    assert!(
        e(pid).starts_with("line 1: 'abc' is not a pid"),
        "{}",
        e(pid)
    );
    let key = "MSR Access Samples Samples%\n0x6e0:X 5 100.00%\n";
    assert!(
        e(key).starts_with("line 2: cannot read MSR Access key '0x6e0:X'"),
        "{}",
        e(key)
    );
    let huge = "VM-EXIT Samples Samples% Time% Min Time Max Time Avg time\n\
                HLT 18446744073709551615 1% 1% 1us 1us 1e300us\n";
    assert!(
        e(huge).starts_with("line 2: the counts or times add up"),
        "{}",
        e(huge)
    );
    let err = import(bad).unwrap_err().in_file("perf.txt").to_string();
    assert!(err.starts_with("perf.txt: line 5: "), "{err}");
    for msg in [e(bad), e(hdr), e(pid), e(key)] {
        assert!(!msg.contains('\n'), "{msg}");
    }
}

#[test]
fn footer_mismatch_is_a_warning() {
    let t = text("perf_new_vmx.txt").replace("Total Samples:807633", "Total Samples:900000");
    let imp = import(&t).unwrap();
    assert!(
        imp.warnings[0].msg.contains("footer says 900000"),
        "{:?}",
        imp.warnings
    );
}

/// Arbitrary edits of real tables never panic (xorshift, fixed seed), in either layout, read
/// and printed in both layouts and as every event.
#[test]
fn mangled_input_never_panics() {
    let perf64 = |name: &str| {
        let path = format!("{}/tests/perf64/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    };
    let bases: Vec<Vec<char>> = [
        [
            text("perf_new_vmx.txt"),
            text("perf_msr_ioport.txt"),
            text("perf_email.txt"),
        ]
        .concat(),
        [
            perf64("perf64-svm-vmexit.txt"),
            perf64("perf64-mmio.txt"),
            perf64("perf64-pid-vcpu.txt"),
        ]
        .concat(),
    ]
    .iter()
    .map(|t| t.chars().collect())
    .collect();
    let alphabet: Vec<char> = "0123456789.%:() +-±usnxX,\t\n\u{a0}AVMpid(s)eé9"
        .chars()
        .collect();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = |n: usize| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % n as u64) as usize
    };
    for i in 0..600 {
        let mut t = bases[i % bases.len()].clone();
        for _ in 0..1 + next(20) {
            let at = next(t.len());
            match next(3) {
                0 => {
                    t.remove(at);
                }
                1 => t.insert(at, alphabet[next(alphabet.len())]),
                _ => t[at] = alphabet[next(alphabet.len())],
            }
        }
        let s: String = t.into_iter().collect();
        if let Ok(d) = Data::from_perf_text(&s, "fuzz") {
            for event in [Event::Vmexit, Event::Msr, Event::Ioport, Event::Mmio] {
                for layout in [PerfLayout::Classic, PerfLayout::V6_4] {
                    let o = TableOptions {
                        event,
                        layout,
                        per_vm: true,
                        percentiles: true,
                        ..Default::default()
                    };
                    let _ = perf_table(&d, &o);
                }
            }
            let _ = csv::render(&d.view);
        }
    }
}
