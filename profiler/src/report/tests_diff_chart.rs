//! The diff's terminal charts: bars proportional to the numbers, at the width asked for.

use std::collections::BTreeMap;

use super::diff_chart::{render_chart, ChartOptions};
use super::tests_diff::{all_features, no_features};
use super::*;

/// The bar lengths of the chart titled `title`: (reason, session tag) → cells of `█`, and
/// the value printed after each bar.
fn bars(chart: &str, title: &str) -> BTreeMap<(String, String), (usize, String)> {
    let mut out = BTreeMap::new();
    let mut name = String::new();
    let body = chart.split_once(&format!("{title}\n")).expect(title).1;
    for line in body.lines().take_while(|l| !l.starts_with("Exit")) {
        if line.is_empty() {
            continue;
        }
        // `NAME  T ████ value` or `      T ██ value`.
        let (label, rest) = line.split_once(" █").unwrap_or_else(|| {
            let (l, v) = line.rsplit_once(' ').unwrap();
            (l, v)
        });
        let (n, tag) = label.trim_end().rsplit_once(' ').unwrap();
        if !n.trim().is_empty() {
            name = n.trim().to_string();
        }
        let tag = tag.to_string();
        let len = if line.contains('█') {
            rest.chars().take_while(|c| *c == '█').count() + 1
        } else {
            0
        };
        let value = line.rsplit_once(' ').unwrap().1.to_string();
        out.insert((name.clone(), tag), (len, value));
    }
    out
}

/// A reason's name, its exits of A and B, and their handling times (None: not drawn).
type Expected = (&'static str, [f64; 2], Option<[f64; 2]>);

fn draw(width: u16) -> String {
    let d = diff(&no_features(), &all_features());
    let o = ChartOptions {
        width,
        ..ChartOptions::default()
    };
    render_chart(&d, &o)
}

/// Each bar is as long as its number makes it against the longest (within the one cell that
/// rounding to whole cells costs), and the chart keeps to the width.
#[test]
fn bars_are_proportional_to_the_numbers() {
    for width in [80u16, 132] {
        let chart = draw(width);
        for l in chart.lines() {
            assert!(l.chars().count() <= width as usize, "{width}: {l}");
        }
        // Per second (10 s sessions): (reason, exits of A and B, handling time of A and B:
        // n × ns / 10 s; HLT's is left out as idle).
        let want: [Expected; 6] = [
            ("EPT_MISCONFIG", [40e3, 2e3], Some([240e6, 12e6])),
            ("MSR_WRITE", [30e3, 15e3], Some([45e6, 21e6])),
            ("EXTERNAL_INTERRUPT", [10e3, 10e3], Some([7e6, 7e6])),
            ("VMCALL", [0.0, 7e3], Some([0.0, 16.331e6])),
            ("HLT (idle)", [5e3, 5e3], None),
            ("IO_INSTRUCTION", [1e3, 1e3], Some([2e6, 2e6])),
        ];
        let exits: Vec<(&str, [f64; 2])> = want.iter().map(|w| (w.0, w.1)).collect();
        let time: Vec<(&str, [f64; 2])> = want.iter().filter_map(|w| Some((w.0, w.2?))).collect();
        for (title, want) in [
            ("Exits per second, by reason", &exits),
            (
                "Exit-handling time per second, by reason (HLT excluded: idle)",
                &time,
            ),
        ] {
            let got = bars(&chart, title);
            assert_eq!(got.len(), want.len() * 2, "{title}\n{chart}");
            let longest = got.values().map(|b| b.0).max().unwrap();
            assert!(
                longest + 30 >= width as usize,
                "{width}: {longest}\n{chart}"
            );
            let max = want.iter().flat_map(|w| w.1).fold(0.0, f64::max);
            for (name, [a, b]) in want {
                for (tag, v) in [("A", a), ("B", b)] {
                    let key = (name.to_string(), tag.to_string());
                    let (len, _) = got.get(&key).unwrap_or_else(|| panic!("{key:?}\n{chart}"));
                    let exact = v / max * longest as f64;
                    assert!(
                        (*len as f64 - exact).abs() <= 1.0,
                        "{title} {key:?}: {len} cells for {v} (exact {exact:.2})\n{chart}"
                    );
                }
            }
        }
        let ex = bars(&chart, "Exits per second, by reason");
        let ept = &ex[&("EPT_MISCONFIG".to_string(), "A".to_string())];
        assert_eq!(ept.1, "40k/s");
        assert_eq!(
            ex[&("VMCALL".to_string(), "A".to_string())],
            (0, "0/s".into())
        );
    }
}

/// The legend names each session's bars, and the chart carries no terminal control unless
/// asked for colours.
#[test]
fn legend_and_plain_text() {
    let chart = draw(80);
    assert!(chart.starts_with("A no-enlightenments (10.0 s)\nB all-enlightenments (10.0 s)\n"));
    assert!(!chart.contains('\x1b'));
    let d = diff(&no_features(), &all_features());
    let colored = render_chart(
        &d,
        &ChartOptions {
            color: true,
            ..ChartOptions::default()
        },
    );
    assert!(colored.contains("\x1b[38;5;"));
}
