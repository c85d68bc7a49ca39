//! The heatmap screen drawn into a TestBackend from known intervals: shaded cells in the rows
//! of their bands and the columns of their intervals, the legend's counts, the switch to all
//! exits (HLT left out), and the history's bound.

use crossterm::event::KeyCode;
use ratatui::{backend::TestBackend, buffer::Buffer, style::Color, Terminal};

use super::tests::{feed, press};
use super::App;
use crate::{
    decode::ExitNames,
    sample::{Key, Sample, VmInfo},
};

const SEC: u64 = 1_000_000_000;

fn key(tgid: u32, vcpu: u32, reason: u32) -> Key {
    Key {
        tgid,
        vcpu,
        isa: 1,
        reason,
    }
}

/// `n` + 1 samples a second apart: every interval 10 IO exits of 1.5 µs and 5 HLTs of 4 ms;
/// the last also 1 IO exit of 100 µs and 3 CPUIDs of 700 ns.
fn samples(pid: u32, n: u64) -> Vec<Sample> {
    let mut s = Sample::default();
    s.vms.insert(
        pid,
        VmInfo {
            pid,
            name: "web".into(),
            start_time: 1,
            is_qemu: true,
            ..Default::default()
        },
    );
    let mut out = Vec::new();
    for i in 0..=n {
        s.mono_ns = (100 + i) * SEC;
        s.stats
            .entry(key(pid, 0, 30))
            .or_default()
            .record(1_500, 10);
        s.stats
            .entry(key(pid, 1, 12))
            .or_default()
            .record(4_000_000, 5);
        if i == n {
            s.stats
                .entry(key(pid, 0, 30))
                .or_default()
                .record(100_000, 1);
            s.stats.entry(key(pid, 1, 10)).or_default().record(700, 3);
        }
        out.push(s.clone());
    }
    out
}

fn frame(app: &App) -> Buffer {
    let mut t = Terminal::new(TestBackend::new(100, 30)).expect("test terminal");
    t.draw(|f| f.render_widget(app, f.area())).expect("draw");
    t.backend().buffer().clone()
}

fn line(buf: &Buffer, y: u16) -> String {
    (0..buf.area.width).map(|x| buf[(x, y)].symbol()).collect()
}

/// The row labelled `label` (a band's lower bound): its y.
fn row_of(buf: &Buffer, label: &str) -> u16 {
    let at = format!("{label} ┤");
    (0..buf.area.height)
        .find(|&y| line(buf, y).contains(&at))
        .unwrap_or_else(|| panic!("no row {label}"))
}

/// The shade glyphs of a row, from the axis on.
fn cells(buf: &Buffer, y: u16) -> String {
    line(buf, y)
        .chars()
        .skip(8)
        .filter(|c| "░▒▓█".contains(*c))
        .collect()
}

#[test]
fn heatmap_cells_legend_and_switch() {
    let mut a = App::new(ExitNames::builtin(), "fake".into());
    let s = samples(1234, 3);
    feed(&mut a, s[..1].to_vec());
    press(&mut a, KeyCode::Enter); // the VM: its history starts
    feed(&mut a, s[1..].to_vec());
    press(&mut a, KeyCode::Char('m')); // on the first reason row: IO_INSTRUCTION
    let buf = frame(&a);
    let all: String = (0..30).map(|y| line(&buf, y) + "\n").collect();
    assert!(
        all.contains("IO_INSTRUCTION") && all.contains("last 3 intervals"),
        "{all}"
    );
    // 1.5 µs: 10 exits in each of the 3 intervals, the fullest cells; 3 columns 3 wide.
    let low = row_of(&buf, "1.02µs");
    assert_eq!(cells(&buf, low), "█".repeat(9), "{all}");
    assert_eq!(buf[(99, low)].fg, Color::Red);
    assert_eq!(
        buf[(91, low)].symbol(),
        "█",
        "oldest interval, column 91–93\n{all}"
    );
    // 100 µs: one exit, in the last interval only.
    let high = row_of(&buf, "65.5µs");
    assert_eq!(cells(&buf, high), "▒▒▒", "{all}");
    assert_eq!(buf[(97, high)].symbol(), "▒");
    assert_eq!(buf[(96, high)].symbol(), " ");
    assert_eq!(high + 6, low, "one row per octave, longest on top\n{all}");
    for y in high + 1..low {
        assert_eq!(cells(&buf, y), "", "row {y}\n{all}");
    }
    assert!(
        all.contains("▒ 1–2") && all.contains("▓ 3–5") && all.contains("█ 6–10"),
        "{all}"
    );
    assert!(all.contains("+0s ─ time ─ +3s"), "{all}");

    // m: all exits but HLT: CPUID's 700 ns joins, HLT's 4 ms does not.
    press(&mut a, KeyCode::Char('m'));
    let buf = frame(&a);
    let all: String = (0..30).map(|y| line(&buf, y) + "\n").collect();
    assert!(all.contains("all exits (HLT left out)"), "{all}");
    assert_eq!(cells(&buf, row_of(&buf, "512ns")), "▓▓▓", "{all}");
    assert!(!all.contains("ms ┤"), "HLT's band is drawn\n{all}");
    press(&mut a, KeyCode::Char('m'));
    assert!(line(&frame(&a), 1).contains("IO_INSTRUCTION"));
    press(&mut a, KeyCode::Esc);
    let buf = frame(&a);
    assert!((0..30).any(|y| line(&buf, y).contains("VM-EXIT · web")));
}

/// The history keeps the last HISTORY intervals of the VM on screen, restarts for another
/// VM, and collects nothing on the VM list.
#[test]
fn heatmap_history_is_bounded_and_per_vm() {
    let mut a = App::new(ExitNames::builtin(), "fake".into());
    let s = samples(1234, 80);
    feed(&mut a, s[..1].to_vec());
    press(&mut a, KeyCode::Enter);
    feed(&mut a, s[1..].to_vec());
    let t = super::heat::HeatTarget {
        pid: 1234,
        vcpu: None,
        reason: Some((1, 30)),
        all: false,
    };
    let g = a.heat.grid(&t);
    assert_eq!(g.len(), super::spark::HISTORY);
    assert_eq!(g.last().map(|c| (c.0, c.1)), Some((179 * SEC, 180 * SEC)));
    let other = super::heat::HeatTarget { pid: 99, ..t };
    assert!(a.heat.grid(&other).is_empty());

    let mut b = App::new(ExitNames::builtin(), "fake".into());
    feed(&mut b, s[..5].to_vec());
    assert!(b.heat.grid(&t).is_empty(), "the VM list keeps no heatmap");
}

/// On a vCPU's screen the history is that vCPU's: its own exits only, from when it opened.
#[test]
fn heatmap_of_one_vcpu() {
    let mut a = App::new(ExitNames::builtin(), "fake".into());
    let s = samples(1234, 4);
    feed(&mut a, s[..2].to_vec());
    press(&mut a, KeyCode::Enter); // the VM
    feed(&mut a, s[2..3].to_vec()); // one interval of the VM only
    press(&mut a, KeyCode::End); // its last vCPU row: vCPU 1 (HLT, then CPUID)
    press(&mut a, KeyCode::Enter);
    feed(&mut a, s[3..].to_vec());
    press(&mut a, KeyCode::Char('m'));
    let buf = frame(&a);
    let all: String = (0..30).map(|y| line(&buf, y) + "\n").collect();
    assert!(
        all.contains("web › vCPU 1 › ") && all.contains("last 2 intervals"),
        "{all}"
    );
    // Its first row, CPUID: 3 exits of 700 ns in the last interval only.
    assert!(all.contains("CPUID"), "{all}");
    assert_eq!(cells(&buf, row_of(&buf, "512ns")), "███", "{all}");
    // vCPU 0's IO exits (1.5 µs, 100 µs) are not vCPU 1's.
    assert!(
        !all.contains("1.02µs ┤") && !all.contains("65.5µs ┤"),
        "{all}"
    );
}
