//! Hostile VM and reason names through every text report: perf tables, the diff, `advise`
//! text and error messages. Nothing from a name may reach the terminal as a control
//! character, and a newline in a name must not start a line of its own.

use super::tests_diff::{all_features, no_features};
use super::tests_table::fixture;
use super::*;
use crate::advice::{self, config::VmConfig, HostFacts, Input};
use crate::text::testing::{assert_clean, EVIL, SHOWN};

fn hostile(mut d: Data) -> Data {
    for vm in &mut d.view.vms {
        vm.name = EVIL.into();
        vm.reasons[0].name = format!("R\u{202e}{EVIL}").into();
    }
    d
}

#[test]
fn perf_tables_escape_names() {
    let d = hostile(fixture());
    let all = TableOptions {
        per_vm: true,
        ..Default::default()
    };
    assert_clean("report table", &perf_table(&d, &all).unwrap());
    assert!(perf_table(&d, &all).unwrap().contains("R\\u{202e}evil"));
    for event in [Event::Msr, Event::Ioport, Event::Mmio] {
        let o = TableOptions {
            event,
            vm: Some("1234".into()),
            ..Default::default()
        };
        assert_clean("evidence table", &perf_table(&d, &o).unwrap());
    }
    // An unknown --vm lists the VMs: escaped too.
    let o = TableOptions {
        vm: Some("nope\x1b[2J".into()),
        ..Default::default()
    };
    let e = perf_table(&d, &o).unwrap_err().to_string();
    assert!(!e.contains('\x1b') && !e.contains('\n'), "{e:?}");
    assert!(e.contains(SHOWN), "{e}");
}

#[test]
fn diff_table_escapes_names_and_labels() {
    let (mut a, b) = (hostile(no_features()), hostile(all_features()));
    a.label = format!("{EVIL}.kvmprof");
    let d = diff(&a, &b);
    assert_clean("diff", &diff_table::render_table(&d));
    let o = diff_chart::ChartOptions::default();
    assert_clean("diff chart", &diff_chart::render_chart(&d, &o));
}

#[test]
fn advise_text_escapes_names_and_config_words() {
    let d = hostile(fixture());
    let mut input = Input::from_view(d.view, HostFacts::default());
    let argv: Vec<String> = ["qemu-system-x86_64", "-cpu", "host,hv-\x1b[2J,hv-relaxed"]
        .map(String::from)
        .into();
    input.configs.insert(1234, VmConfig::from_cmdline(&argv));
    let text = advice::render_text(&advice::analyze(&input));
    assert_clean("advise", &text);
    assert!(text.contains("hv-\\x1b[2j"), "{text}");
}
