//! Arbitrary bytes as `perf kvm stat` text (UTF-8-lossy, as `kvmprof report` reads a file):
//! the importer returns a one-line error or data, never panics, and what it imports renders
//! back as perf tables (every event, both layouts, per VM, with percentile columns) and CSV.
#![no_main]

use kvmprof::report::{self, perf_import, Data, Event, PerfLayout, TableOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let imp = match perf_import::import(&text) {
        Ok(imp) => imp,
        Err(e) => {
            // One line, and short whatever the input (lines are quoted by 80 chars).
            let msg = e.to_string();
            assert!(!msg.contains('\n') && msg.len() < 2048, "{msg}");
            return;
        }
    };
    for w in &imp.warnings {
        assert!(!w.msg.contains('\n'), "{}", w.msg);
    }
    let _ = imp.view();
    let d = Data::from_perf_text(&text, "fuzz").expect("text that imported imports again");
    for event in [Event::Vmexit, Event::Msr, Event::Ioport, Event::Mmio] {
        for layout in [PerfLayout::Classic, PerfLayout::V6_4] {
            for (per_vm, percentiles) in [(false, false), (true, true)] {
                let o = TableOptions {
                    event,
                    layout,
                    per_vm,
                    percentiles,
                    ..Default::default()
                };
                let _ = report::perf_table(&d, &o);
            }
        }
    }
    let _ = report::csv::render(&d.view);
});
