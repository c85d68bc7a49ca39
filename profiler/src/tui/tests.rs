//! Whole-app snapshots: samples from a FakeSource, keys injected, the frame drawn into a
//! TestBackend. Nothing here reads a clock, so frames are deterministic.

use std::collections::BTreeMap;
use std::time::Duration;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::{backend::TestBackend, Terminal};

use super::{Action, App};
use crate::{
    decode::ExitNames,
    sample::{Key, ProgStat, Sample, VmInfo},
    source::{FakeSource, Source},
};

pub(super) const SEC: u64 = 1_000_000_000;
const WEB: u32 = 1234;
const DB: u32 = 5678;
const MS: u64 = 1_000_000;

/// (pid, vcpu, isa, reason, exits per interval at i = 0, base latency ns)
const KEYS: [(u32, u32, u32, u32, u64, u64); 16] = [
    (WEB, 0, 1, 48, 900, 1_800),        // EPT_VIOLATION
    (WEB, 0, 1, 1, 400, 900),           // EXTERNAL_INTERRUPT
    (WEB, 1, 1, 48, 300, 2_100),        // EPT_VIOLATION
    (WEB, 1, 1, 32, 250, 700),          // MSR_WRITE
    (WEB, 1, 1, 30, 120, 14_000),       // IO_INSTRUCTION
    (WEB, 2, 1, 12, 40, 4_000_000),     // HLT
    (WEB, 2, 1, 0x4242, 2, 50_000),     // unknown code: its own row
    (WEB, 4001, 0x100, 2, 100, 30_000), // KVM_EXIT_IO (thread 4001 = vCPU 1)
    (WEB, 4002, 0x100, 6, 20, 90_000),  // KVM_EXIT_MMIO (thread 4002 = vCPU 2)
    (DB, 0, 2, 0x400, 700, 3_000),      // npf
    (DB, 0, 2, 0x7b, 500, 6_000),       // io
    (DB, 0, 2, 0x78, 80, 2_000_000),    // hlt
    (DB, 1, 2, 0x7c, 260, 1_100),       // msr
    (DB, 1, 2, 0x72, 30, 1_500),        // cpuid
    (DB, 1, 2, 0x60, 150, 600),         // intr
    (DB, 5001, 0x100, 2, 60, 25_000),   // KVM_EXIT_IO, thread not named
];

fn key(k: &(u32, u32, u32, u32, u64, u64)) -> Key {
    Key {
        tgid: k.0,
        vcpu: k.1,
        isa: k.2,
        reason: k.3,
    }
}

/// `n` cumulative samples one second apart; interval i adds a load that grows with i, with a
/// tail: 70 % at the base latency, 20 % at 2×, 9 % at 4×, 1 % at 20×.
pub(super) fn fixture(n: u64) -> Vec<Sample> {
    let mut s = Sample::default();
    s.vms.insert(
        WEB,
        vm(
            WEB,
            "web-frontend",
            Some("1c9e5d8a-0000-4000-8000-00000000c0de"),
        ),
    );
    s.vms.insert(DB, vm(DB, "db", None));
    if let Some(w) = s.vms.get_mut(&WEB) {
        w.vcpu_threads = BTreeMap::from([(4000, 0), (4001, 1), (4002, 2)]);
    }
    let mut out = Vec::new();
    for i in 0..n {
        s.mono_ns = (100 + i) * SEC;
        s.wall_ms = 0;
        let mut exits = 0;
        for k in &KEYS {
            let c = k.4 * (10 + (i % 3) * 5) / 10;
            let st = s.stats.entry(key(k)).or_default();
            let before = st.sum_ns;
            for (share, mul) in [(70, 1), (20, 2), (9, 4), (1, 20)] {
                let m = c * share / 100;
                if m == 0 {
                    continue;
                }
                let ns = k.5 * mul;
                st.record(ns, m);
                exits += m;
            }
            // The scheduler split (% waiting for a host CPU, % asleep): halted vCPUs mostly
            // asleep, port I/O partly asleep in the VMM, the rest preempted now and then.
            let (wait, asleep) = match k.3 {
                12 | 0x78 => (3, 85),
                30 | 0x7b => (6, 30),
                _ => (1, 0),
            };
            let added = st.sum_ns - before;
            st.wait_ns += added * wait / 100;
            st.blocked_ns += added * asleep / 100;
        }
        // Sampled guest RIPs of web's EPT_VIOLATION: mostly one kernel address.
        let flags = profiler_common::ev::rip_flags(1, 48).unwrap();
        for (rip, per) in [
            (0xffff_f803_1234_5678, 20),
            (0x7ff6_1234_0000, 5),
            (0xffff_f803_1234_9000, 2),
        ] {
            let k = crate::sample::EvKey {
                tgid: WEB,
                kind: profiler_common::ev::GUEST_RIP,
                flags,
                a: rip,
            };
            s.evidence.entry(k).or_default().count += per;
        }
        // Halted vCPUs waiting for their entry.
        s.in_flight.insert(key(&KEYS[5]), 1);
        s.in_flight.insert(key(&KEYS[11]), 1);
        let total = s.counters.get(5).copied().unwrap_or(0) + exits;
        s.counters = vec![2, 0, 3 * i, 0, 0, total, total, 0];
        s.progs = vec![
            prog("kvm_exit", total, 85),
            prog("kvm_entry", total, 60),
            prog("sched_switch", 4 * total, 40),
        ];
        // Host CPU: web about a third of a core, mostly its vCPU threads; db more than a core,
        // its vCPU threads unknown (a VMM that does not name them).
        let web = s.vm_cpu.entry(WEB).or_default();
        web.total_ns += (330 + 10 * (i % 3)) * MS;
        web.vcpu_ns += 300 * MS;
        web.guest_ns += 120 * MS;
        web.vcpu_threads = 3;
        // Its vCPU threads one by one (the third waits longest for a host CPU), and two vhost
        // kernel threads outside the process.
        for (v, (ms, wait)) in [(150, 5), (100, 10), (50, 40)].into_iter().enumerate() {
            let t = web.vcpus.entry(v as u32).or_default();
            t.cpu_ns += ms * MS;
            t.wait_ns = Some(t.wait_ns.unwrap_or(0) + wait * MS);
        }
        web.vhost.cpu_ns += 200 * MS;
        web.vhost.wait_ns += 2 * MS;
        (web.vhost.threads, web.vhost.waited) = (2, 2);
        let db = s.vm_cpu.entry(DB).or_default();
        db.total_ns += 1210 * MS;
        db.guest_ns += 900 * MS;
        out.push(s.clone());
    }
    out
}

fn vm(pid: u32, name: &str, uuid: Option<&str>) -> VmInfo {
    VmInfo {
        pid,
        name: name.into(),
        uuid: uuid.map(Into::into),
        start_time: 1,
        is_qemu: true,
        ..Default::default()
    }
}

fn prog(name: &str, n: u64, ns: u64) -> ProgStat {
    ProgStat {
        name: name.into(),
        run_cnt: n,
        run_time_ns: n * ns,
    }
}

pub(super) fn feed(app: &mut App, samples: Vec<Sample>) {
    let mut src = FakeSource::new(samples);
    while let Ok(Some(s)) = src.sample() {
        app.on_sample(s);
    }
}

pub(super) fn app(n: u64) -> App {
    let mut app = App::new(ExitNames::builtin(), "fake: 2 VMs".into());
    feed(&mut app, fixture(n));
    app
}

pub(super) fn press(app: &mut App, code: KeyCode) -> Action {
    app.on_key(KeyEvent::new(code, KeyModifiers::NONE))
}

fn typed(app: &mut App, text: &str) {
    for c in text.chars() {
        press(app, KeyCode::Char(c));
    }
}

pub(super) fn draw(app: &App, w: u16, h: u16) -> String {
    let mut t = Terminal::new(TestBackend::new(w, h)).expect("test terminal");
    t.draw(|f| f.render_widget(app, f.area())).expect("draw");
    t.backend().to_string()
}

#[test]
fn vm_list() {
    let a = app(5);
    let small = draw(&a, 80, 24);
    let big = draw(&a, 120, 40);
    // Sorted by exits: web-frontend (more exits) above db.
    let (w, d) = (
        small.find("web-frontend"),
        small.find("│ db").or(small.find(" db ")),
    );
    assert!(w.is_some() && d.is_some() && w < d, "{small}");
    assert!(small.contains("stats_map_full 3"), "drop counter in footer");
    // Host CPU: total at 80 columns, its VMM part where there is room; unknown is "-".
    assert!(small.contains("CPU%") && !small.contains("VMM%"), "{small}");
    assert!(
        big.contains("   54.0    4.0   20.0 ") && big.contains("    121      -      - "),
        "{big}"
    );
    insta::assert_snapshot!("vm_list_80x24", small);
    insta::assert_snapshot!("vm_list_120x40", big);
}

#[test]
fn vm_detail_each_sort_key() {
    let mut a = app(5);
    press(&mut a, KeyCode::Enter);
    let mut firsts = Vec::new();
    for label in ["count", "time", "max", "mean", "p99", "name"] {
        let frame = draw(&a, 80, 24);
        assert!(frame.contains(&format!("sort {label}")), "{frame}");
        assert!(frame.contains("── idle: % of all"), "HLT apart: {frame}");
        assert!(frame.contains("returns to VMM"), "{frame}");
        // The first row under the table's header (the VM's header above it is one line or two).
        let mut lines = frame.lines().skip_while(|l| !l.contains("  Reason"));
        firsts.push(lines.nth(1).unwrap_or_default().to_string());
        insta::assert_snapshot!(format!("vm_detail_sort_{label}"), frame);
        press(&mut a, KeyCode::Char('s'));
    }
    assert!(firsts[0].contains("EPT_VIOLATION"), "{firsts:?}");
    assert!(
        firsts[3].contains("0x4242"),
        "slowest mean first: {firsts:?}"
    );
    assert!(firsts[5].contains("0x4242"), "names ascending: {firsts:?}");
    insta::assert_snapshot!("vm_detail_120x40", {
        press(&mut a, KeyCode::Char('s'));
        draw(&a, 120, 40)
    });
}

#[test]
fn vcpu_drill_down_and_back() {
    let mut a = app(5);
    press(&mut a, KeyCode::Enter);
    press(&mut a, KeyCode::End); // last item: the last vCPU
    press(&mut a, KeyCode::Up); // vCPU 1
    press(&mut a, KeyCode::Enter);
    let frame = draw(&a, 80, 24);
    assert!(frame.contains("web-frontend › vCPU 1"), "{frame}");
    assert!(frame.contains("IO_INSTRUCTION"), "{frame}");
    assert!(
        !frame.contains("EXTERNAL_INTERRUPT"),
        "vCPU 0 only: {frame}"
    );
    assert!(
        frame.contains("KVM_EXIT_IO"),
        "thread 4001 is vCPU 1: {frame}"
    );
    insta::assert_snapshot!("vcpu_detail", frame);
    press(&mut a, KeyCode::Esc);
    assert!(draw(&a, 80, 24).contains("VM-EXIT · web-frontend ·"));
    press(&mut a, KeyCode::Esc);
    assert!(draw(&a, 80, 24).contains(" VMs (2)"));
}

#[test]
fn histogram_view() {
    let mut a = app(8);
    press(&mut a, KeyCode::Enter); // web-frontend
    press(&mut a, KeyCode::Enter); // its top reason: EPT_VIOLATION, all vCPUs
    let frame = draw(&a, 80, 24);
    assert!(frame.contains("EPT_VIOLATION (vmx 0x30)"), "{frame}");
    assert!(frame.contains("◀ p50"), "{frame}");
    assert!(frame.contains("p99"), "{frame}");
    assert!(frame.contains("last 7 intervals"), "{frame}");
    insta::assert_snapshot!("histogram_80x24", frame);
    insta::assert_snapshot!("histogram_120x40", draw(&a, 120, 40));
}

#[test]
fn filter_by_reason_name() {
    let mut a = app(3);
    press(&mut a, KeyCode::Char('/'));
    typed(&mut a, "NPF");
    let editing = draw(&a, 80, 24);
    assert!(editing.contains("filter: NPF"), "{editing}");
    insta::assert_snapshot!("filter_editing", editing);
    press(&mut a, KeyCode::Enter);
    let frame = draw(&a, 80, 24);
    assert!(frame.contains("filter \"NPF\""), "{frame}");
    assert!(
        frame.contains(" VMs (1)") && !frame.contains("web-frontend"),
        "{frame}"
    );
    press(&mut a, KeyCode::Enter);
    let detail = draw(&a, 80, 24);
    assert!(detail.contains("▶ npf"), "{detail}");
    let next = (detail.lines())
        .skip_while(|l| !l.contains("▶ npf"))
        .nth(1)
        .unwrap_or_default();
    assert!(
        next.trim_matches([' ', '"']).is_empty(),
        "only npf: {detail}"
    );
    insta::assert_snapshot!("filter_applied_detail", detail);
    press(&mut a, KeyCode::Esc);
    press(&mut a, KeyCode::Esc); // clears the filter on the VM list
    assert!(draw(&a, 80, 24).contains(" VMs (2)"));
}

#[test]
fn help_overlay() {
    let mut a = app(3);
    press(&mut a, KeyCode::Char('?'));
    let frame = draw(&a, 80, 24);
    for k in ["cycle sort", "filter", "freeze", "refresh interval", "quit"] {
        assert!(frame.contains(k), "{k}: {frame}");
    }
    // Every key and every legend line fits an 80x24 terminal, none cut short.
    for (k, d) in super::draw::KEYS.iter().chain(super::draw::LEGEND) {
        assert!(frame.contains(k) && frame.contains(d), "{k} {d}: {frame}");
    }
    insta::assert_snapshot!("help", frame);
    assert_eq!(press(&mut a, KeyCode::Char('x')), Action::None);
    assert!(!draw(&a, 80, 24).contains("any key closes"));
}

#[test]
fn paused_view_holds() {
    let mut samples = fixture(4);
    let last = samples.pop().expect("4 samples");
    let mut a = App::new(ExitNames::builtin(), "fake: 2 VMs".into());
    feed(&mut a, samples);
    let before = draw(&a, 80, 24);
    press(&mut a, KeyCode::Char(' '));
    a.on_sample(last);
    let paused = draw(&a, 80, 24);
    assert!(paused.contains("PAUSED (1 new)"), "{paused}");
    // Same numbers as before pausing (only the header differs).
    assert_eq!(
        before.lines().skip(1).collect::<Vec<_>>(),
        paused.lines().skip(1).collect::<Vec<_>>()
    );
    insta::assert_snapshot!("paused", paused);
    press(&mut a, KeyCode::Char('p'));
    let resumed = draw(&a, 80, 24);
    assert!(!resumed.contains("PAUSED"));
    assert_ne!(
        before.lines().skip(1).collect::<Vec<_>>(),
        resumed.lines().skip(1).collect::<Vec<_>>()
    );
}

#[test]
fn no_exits_screen() {
    let mut a = App::new(ExitNames::builtin(), "live: host".into());
    assert!(draw(&a, 80, 24).contains("Waiting for the first sample"));
    let s = |t| Sample {
        mono_ns: t * SEC,
        counters: vec![0; 8],
        ..Default::default()
    };
    feed(&mut a, vec![s(1), s(2)]);
    let frame = draw(&a, 80, 24);
    assert!(frame.contains("No KVM exits seen yet"), "{frame}");
    assert!(frame.contains("kvmprof demo"), "{frame}");
    insta::assert_snapshot!("no_exits", frame);
}

#[test]
fn userspace_only_screen() {
    // A PVM-like host: only kvm_userspace_exit keys.
    let mut samples = fixture(3);
    for s in &mut samples {
        s.stats = s
            .stats
            .clone()
            .into_iter()
            .filter(|(k, _)| k.isa == 0x100)
            .collect();
        s.in_flight.clear();
    }
    let mut a = App::new(ExitNames::builtin(), "live: pvm host".into());
    feed(&mut a, samples);
    let frame = draw(&a, 80, 24);
    assert!(
        frame.contains("Only returns to the VMM are visible"),
        "{frame}"
    );
    assert!(
        frame.contains("KVM_EXIT_MMIO") && frame.contains("db"),
        "{frame}"
    );
    assert!(!frame.contains("No KVM exits seen yet"), "{frame}");
    // The host CPU is shown here too: on such hosts it is the only cost visible.
    assert!(
        frame.contains("    host CPU 55.0%   ")
            && frame.contains("    guest 12.0 + exits 18.0 + VMM 5.0   ")
            && frame.contains("    + vhost 20.0   "),
        "{frame}"
    );
    insta::assert_snapshot!("userspace_only", frame);
}

#[test]
fn since_start_and_source_error() {
    let mut a = app(4);
    press(&mut a, KeyCode::Char('t'));
    a.on_error("source: reading stats map: EPERM".into());
    let frame = draw(&a, 80, 24);
    assert!(frame.contains("since start 3s"), "{frame}");
    assert!(
        frame.contains("source: reading stats map: EPERM"),
        "{frame}"
    );
    insta::assert_snapshot!("since_start_error", frame);
}

#[test]
fn interval_and_quit_keys() {
    let mut a = app(2).with_interval(Duration::from_secs(1));
    assert_eq!(
        press(&mut a, KeyCode::Char('+')),
        Action::SetInterval(Duration::from_secs(2))
    );
    for _ in 0..10 {
        press(&mut a, KeyCode::Char('-'));
    }
    assert_eq!(a.interval, Duration::from_millis(250));
    assert_eq!(
        press(&mut a, KeyCode::Char('-')),
        Action::None,
        "0.25 s is the floor"
    );
    for _ in 0..10 {
        press(&mut a, KeyCode::Char('+'));
    }
    assert_eq!(a.interval, Duration::from_secs(10));
    assert_eq!(press(&mut a, KeyCode::Char('q')), Action::Quit);
    let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
    assert_eq!(a.on_key(ctrl_c), Action::Quit);
}

#[test]
fn cursor_follows_the_row_not_the_position() {
    let mut a = app(2);
    press(&mut a, KeyCode::Enter);
    press(&mut a, KeyCode::Down);
    let before = a.selected();
    press(&mut a, KeyCode::Char('s')); // resort by time: rows move
    assert_eq!(a.selected(), before);
}
