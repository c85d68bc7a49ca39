//! The slow-exit pane (`S`): live samples with logged exits, the filter, one event in full,
//! what was lost, a hostile VM name, and a replay stepping back over a real recording.

use crossterm::event::KeyCode;
use profiler_common::{counter::SLOW_DROPPED, ev};

use super::tests::{draw, feed, fixture, press, SEC};
use super::tests_session::{header, Harness};
use super::{App, Screen};
use crate::{
    decode::ExitNames,
    sample::{Sample, SlowEvent},
    source::{replay::ReplaySource, Source},
    store::Recorder,
    text::testing::{assert_clean, EVIL},
};

const START_MS: u64 = 1_709_210_096_000; // 2024-02-29 12:34:56 UTC
const KERNEL_RIP: u64 = 0xffff_f800_0000_1234;

/// An `out` to port 0x70 on web-frontend's vCPU 1 that took `ms`, logged half a second before
/// the sample at `mono_ns`.
fn web_out(mono_ns: u64, ms: u64) -> SlowEvent {
    SlowEvent {
        exit_ns: mono_ns - SEC / 2,
        took_ns: ms * 1_000_000,
        tgid: 1234,
        tid: 4001,
        vcpu: 1,
        isa: 1,
        reason: 30,
        rip: KERNEL_RIP,
        exit_cpu: 3,
        entry_cpu: 5,
        // Fields added later (e.g. the scheduler split) stay at their defaults.
        ..SlowEvent {
            detail_kind: ev::PIO_OUT,
            detail_flags: 1,
            detail_a: 0x70,
            ..Default::default()
        }
    }
}

/// db's (SVM) MSR write of the TSC deadline, from guest user space (RIP in the lower half).
fn db_msr(mono_ns: u64) -> SlowEvent {
    SlowEvent {
        exit_ns: mono_ns - SEC / 4,
        took_ns: 700_000,
        tgid: 5678,
        tid: 5000,
        vcpu: 0,
        isa: 2,
        reason: 0x7c,
        rip: 0x40_1000,
        exit_cpu: 1,
        entry_cpu: 1,
        detail_kind: ev::MSR_WRITE,
        detail_a: 0x6e0,
        ..Default::default()
    }
}

/// The TUI fixture with wall clocks, frame i logging web's port write that took i+1 ms, and
/// frame 2 also db's MSR write.
fn samples(n: u64) -> Vec<Sample> {
    let mut out = fixture(n);
    for (i, s) in out.iter_mut().enumerate() {
        s.wall_ms = START_MS + i as u64 * 1000;
        s.slow = vec![web_out(s.mono_ns, i as u64 + 1)];
        if i == 2 {
            s.slow.push(db_msr(s.mono_ns));
        }
    }
    out
}

fn slow_app(samples: Vec<Sample>) -> App {
    let mut a = App::new(ExitNames::builtin(), "fake: 2 VMs".into());
    feed(&mut a, samples);
    press(&mut a, KeyCode::Char('S'));
    assert_eq!(a.level().screen, Screen::Slow);
    a
}

/// The took column of each listed event, top to bottom.
fn tooks(frame: &str) -> Vec<String> {
    frame
        .lines()
        .filter(|l| {
            let t = l.trim_matches('"').trim_start_matches(['▶', ' ']);
            t.len() > 8 && t.as_bytes()[2] == b':' && t.as_bytes()[5] == b':'
        })
        .filter_map(|l| {
            l.split_whitespace()
                .find(|w| w.ends_with("ms") || w.ends_with("µs"))
        })
        .map(String::from)
        .collect()
}

#[test]
fn lists_newest_first_with_decoded_fields() {
    let mut a = slow_app(samples(4));
    let frame = draw(&a, 160, 20);
    assert_eq!(
        tooks(&frame),
        ["4.00ms", "700µs", "3.00ms", "2.00ms", "1.00ms"],
        "{frame}"
    );
    for want in [
        "12:34:58.500000",
        "out port 0x70 (RTC index) size 1",
        "wrmsr 0x6e0 IA32_TSC_DEADLINE",
        "0xfffff80000001234 kernel",
        "0x401000 user",
        "3→5",
        "newest first",
    ] {
        assert!(frame.contains(want), "{want}: {frame}");
    }
    insta::assert_snapshot!("slow_pane_160x20", frame);
    // The header names the key once something is logged.
    assert!(
        frame
            .lines()
            .next()
            .is_some_and(|l| l.contains("S: 5 slow")),
        "{frame}"
    );

    // The cursor moves like any list and stays on its event when a new one arrives.
    press(&mut a, KeyCode::Char('j'));
    assert_eq!(a.slow_selected().map(|h| h.ev.took_ns), Some(700_000));
    let next = samples(5).pop().expect("fifth sample");
    a.on_sample(next);
    assert_eq!(a.slow_selected().map(|h| h.ev.took_ns), Some(700_000));
    assert_eq!(tooks(&draw(&a, 160, 20))[0], "5.00ms");
    press(&mut a, KeyCode::Char('G'));
    assert_eq!(a.slow_selected().map(|h| h.ev.took_ns), Some(1_000_000));
    press(&mut a, KeyCode::Char('g'));
    press(&mut a, KeyCode::PageDown);
    assert_eq!(a.slow_selected().map(|h| h.ev.took_ns), Some(1_000_000));
    press(&mut a, KeyCode::PageUp);
    assert_eq!(a.slow_selected().map(|h| h.ev.took_ns), Some(5_000_000));
    press(&mut a, KeyCode::Char('S'));
    assert_eq!(a.level().screen, Screen::Vms);
}

#[test]
fn enter_shows_one_event_in_full_and_esc_goes_back() {
    let mut a = slow_app(samples(4));
    press(&mut a, KeyCode::Down);
    press(&mut a, KeyCode::Enter);
    let frame = draw(&a, 110, 30);
    for want in [
        "2024-02-29 12:34:57.750000000 UTC",
        "db (pid 5678)",
        "0 (thread 5000)",
        "msr (svm 0x7c)",
        "700µs (700000 ns)",
        "wrmsr 0x6e0 IA32_TSC_DEADLINE",
        "0x0000000000401000 (guest user half)",
        "1 at the exit, 1 at the entry",
        "exit 101750000000 ns, entry 101750700000 ns",
    ] {
        assert!(frame.contains(want), "{want}: {frame}");
    }
    insta::assert_snapshot!("slow_event_detail", frame);
    press(&mut a, KeyCode::Esc);
    assert!(!draw(&a, 110, 30).contains("(thread 5000)"));
    assert_eq!(a.level().screen, Screen::Slow);
    press(&mut a, KeyCode::Esc);
    assert_eq!(a.level().screen, Screen::Vms);
}

#[test]
fn filter_keeps_matching_vm_reason_or_sub_reason() {
    let mut a = slow_app(samples(4));
    press(&mut a, KeyCode::Char('/'));
    for c in "db".chars() {
        press(&mut a, KeyCode::Char(c));
    }
    press(&mut a, KeyCode::Enter);
    let frame = draw(&a, 160, 20);
    assert_eq!(tooks(&frame), ["700µs"], "{frame}");
    assert!(frame.contains("1 of 5 (filter)"), "{frame}");
    press(&mut a, KeyCode::Char('/'));
    press(&mut a, KeyCode::Esc);
    press(&mut a, KeyCode::Char('/'));
    for c in "rtc index".chars() {
        press(&mut a, KeyCode::Char(c));
    }
    press(&mut a, KeyCode::Enter);
    assert_eq!(tooks(&draw(&a, 160, 20)).len(), 4);
}

/// An exit logged in a sample taken before discovery named its VM shows "pid N" only until a
/// sample names the VM; then the pane shows the name.
#[test]
fn an_exit_logged_before_its_vm_was_named_takes_the_name_later() {
    let mut ss = samples(3);
    ss[0].vms.remove(&1234);
    let mut a = App::new(ExitNames::builtin(), "fake: 2 VMs".into());
    feed(&mut a, ss[..1].to_vec());
    press(&mut a, KeyCode::Char('S'));
    let before = draw(&a, 160, 20);
    assert!(before.contains("pid 1234"), "{before}");
    feed(&mut a, ss[1..].to_vec());
    let after = draw(&a, 160, 20);
    assert!(!after.contains("pid 1234"), "{after}");
    assert_eq!(tooks(&after).len(), 4, "{after}");
}

#[test]
fn fits_80x24() {
    let a = slow_app(samples(4));
    let frame = draw(&a, 80, 24);
    assert_eq!(tooks(&frame).len(), 5, "{frame}");
    insta::assert_snapshot!("slow_pane_80x24", frame);
}

#[test]
fn says_what_was_dropped_or_forgotten() {
    let mut s = samples(2);
    let last = s.last_mut().expect("two samples");
    last.counters.resize(SLOW_DROPPED as usize + 1, 0);
    last.counters[SLOW_DROPPED as usize] = 42;
    // More events in one interval than the pane keeps.
    let base = last.mono_ns - SEC;
    last.slow = (0..super::slow::CAP as u64 + 7)
        .map(|i| SlowEvent {
            exit_ns: base + i,
            ..web_out(last.mono_ns, 1)
        })
        .collect();
    let a = slow_app(s);
    let frame = draw(&a, 160, 12);
    assert!(
        frame.contains("42 dropped by the rate limit, see --slow-rate"),
        "{frame}"
    );
    // The first sample's event and the 7 oldest of the flood.
    assert!(frame.contains("8 older ones forgotten"), "{frame}");
    assert_eq!(a.slow.len(), super::slow::CAP);
}

/// The kernel sends an event when its exit ends: a long exit comes after a shorter one that
/// began later. Both are listed, by exit time.
#[test]
fn events_sent_out_of_exit_order_are_all_listed() {
    let mut s = samples(2);
    let t = s[1].mono_ns;
    let long = SlowEvent {
        exit_ns: t - SEC / 2,
        took_ns: 300_000_000,
        ..web_out(t, 1)
    };
    let short = SlowEvent {
        exit_ns: t - SEC / 4,
        ..web_out(t, 2)
    };
    s[1].slow = vec![short, long];
    let a = slow_app(s);
    assert_eq!(tooks(&draw(&a, 160, 20)), ["2.00ms", "300ms", "1.00ms"]);
}

#[test]
fn paused_live_view_loses_no_events() {
    let s = samples(4);
    let mut a = App::new(ExitNames::builtin(), "fake".into());
    feed(&mut a, s[..2].to_vec());
    press(&mut a, KeyCode::Char('p'));
    feed(&mut a, s[2..].to_vec());
    press(&mut a, KeyCode::Char('S'));
    assert_eq!(tooks(&draw(&a, 160, 20)).len(), 2);
    press(&mut a, KeyCode::Char('p'));
    assert_eq!(tooks(&draw(&a, 160, 20)).len(), 5);
}

#[test]
fn hostile_vm_name_is_escaped() {
    let mut s = samples(3);
    for x in &mut s {
        for vm in x.vms.values_mut() {
            vm.name = EVIL.into();
        }
    }
    let mut a = slow_app(s);
    assert_clean("slow pane", &draw(&a, 300, 20));
    press(&mut a, KeyCode::Enter);
    assert_clean("slow event", &draw(&a, 120, 30));
}

#[test]
fn replay_shows_events_up_to_its_position() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("slow.kvmprof");
    let mut r = Recorder::create(&path, &header()).expect("create recording");
    for s in samples(6) {
        r.append(&s).expect("append");
    }
    r.finish().expect("finish");
    let src = ReplaySource::open(&path).expect("open recording");
    let app = App::new(src.names(), src.describe()).with_replay(src.header().clone(), src.len());
    let mut h = Harness::new(Box::new(src), app, None);
    for _ in 0..4 {
        h.tick();
    }
    h.key(KeyCode::Char('S'));
    let frame = |h: &Harness| draw(&h.app, 160, 20);
    assert_eq!(
        tooks(&frame(&h)),
        ["4.00ms", "700µs", "3.00ms", "2.00ms", "1.00ms"]
    );
    // Stepping back forgets the frame left: its event is the future now.
    h.key(KeyCode::Char(','));
    assert_eq!(tooks(&frame(&h)), ["700µs", "3.00ms", "2.00ms", "1.00ms"]);
    h.key(KeyCode::Char(','));
    assert_eq!(tooks(&frame(&h)), ["2.00ms", "1.00ms"]);
    h.key(KeyCode::Char('{'));
    assert_eq!(tooks(&frame(&h)), ["1.00ms"]);
    // A step forward reads the next frame: nothing missing.
    h.key(KeyCode::Char('.'));
    assert_eq!(tooks(&frame(&h)), ["2.00ms", "1.00ms"]);
    assert!(!frame(&h).contains("a seek skipped"));
    // Jumping to the end skips frames 2..=3: said, not hidden.
    h.key(KeyCode::Char('}'));
    let end = frame(&h);
    assert_eq!(
        tooks(&end),
        ["6.00ms", "5.00ms", "2.00ms", "1.00ms"],
        "{end}"
    );
    assert!(end.contains("a seek skipped frames"), "{end}");
    insta::assert_snapshot!("slow_pane_replay_after_seek", end);
    // Back to the start: the history is whole again.
    h.key(KeyCode::Char('{'));
    assert!(!frame(&h).contains("a seek skipped"));
    assert_eq!(tooks(&frame(&h)), ["1.00ms"]);
}
