//! The TUI never hides its state (issue #16): the end of a replay, the cursor on a host
//! without kvm_exit, the header at 80 columns, a recording that cannot start, and where a
//! recording went. Snapshots after injected keys, as in tests.rs.

use crossterm::event::KeyCode;

use super::tests::{draw, feed, fixture, press};
use super::tests_session::{header, Harness};
use super::App;
use crate::{
    decode::ExitNames,
    sample::Sample,
    source::{FakeSource, Source},
};

fn first_line(frame: &str) -> String {
    frame.lines().next().unwrap_or_default().to_string()
}

/// A replay played to its end shows the whole recording and says how to get the last
/// interval back; seeking away (`{`, `0`) drops the end's notice and view.
#[test]
fn replay_end_shows_since_start_and_seeking_leaves_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut h = Harness::replay(dir.path());
    for _ in 0..7 {
        h.tick(); // six frames, then the end
    }
    let end = draw(&h.app, 100, 12);
    assert!(end.contains("■ END") && end.contains(" 6/6 "), "{end}");
    assert!(first_line(&end).contains("since start 5s"), "{end}");
    assert!(end.contains("(t: last interval)"), "{end}");
    insta::assert_snapshot!("replay_end_since_start", end);
    // `t` is the user's: the last interval, and the end stays the end.
    h.key(KeyCode::Char('t'));
    let last = draw(&h.app, 100, 12);
    assert!(first_line(&last).contains("last 1s"), "{last}");
    assert!(last.contains("■ END"), "{last}");
    assert!(
        last.contains("end of recording · space: play again"),
        "the notice no longer says since start: {last}"
    );
    h.key(KeyCode::Char('.')); // still the end: the view stays the user's
    assert!(first_line(&draw(&h.app, 100, 12)).contains("last 1s"));

    for back in ['{', '0'] {
        h.key(KeyCode::Char('}'));
        h.tick(); // the end again
        assert!(draw(&h.app, 100, 12).contains("end of recording"));
        h.key(KeyCode::Char(back));
        assert_eq!(h.pos(), 0);
        let start = draw(&h.app, 100, 12);
        assert!(start.contains(" 1/6 "), "{start}");
        assert!(
            !start.contains("end of recording") && !start.contains("■ END"),
            "{back}: {start}"
        );
        assert!(first_line(&start).contains("last "), "{back}: {start}");
    }
}

/// A host whose KVM emits no kvm_exit (PVM): only returns to the VMM, two VMs.
fn pvm_app() -> App {
    let mut samples = fixture(3);
    for s in &mut samples {
        s.stats = (s.stats.clone().into_iter())
            .filter(|(k, _)| k.isa == 0x100)
            .collect();
        s.in_flight.clear();
    }
    let mut a = App::new(ExitNames::builtin(), "live: pvm host".into());
    feed(&mut a, samples);
    a
}

/// The cursor shows which VM Enter opens, and that VM's screen says what the host can
/// measure instead of "0 vCPUs · 0 exits/s".
#[test]
fn pvm_vm_list_cursor_and_vm_view() {
    let mut a = pvm_app();
    let list = draw(&a, 80, 24);
    assert!(list.contains("▶ web-frontend"), "{list}");
    press(&mut a, KeyCode::Char('j'));
    let moved = draw(&a, 80, 24);
    assert!(
        moved.contains("▶ db") && !moved.contains("▶ web-frontend"),
        "{moved}"
    );
    insta::assert_snapshot!("pvm_vm_list_cursor", moved);
    press(&mut a, KeyCode::Enter);
    let vm = draw(&a, 80, 24);
    let summary = vm.lines().nth(1).unwrap_or_default();
    assert!(summary.contains(" db pid 5678 ·"), "{vm}");
    assert!(
        !summary.contains("0 vCPUs") && !summary.contains("exits/s"),
        "{vm}"
    );
    assert!(summary.contains("returns to VMM/s"), "{vm}");
    assert!(
        vm.contains("no kvm_exit seen") && vm.contains("KVM_EXIT_IO"),
        "{vm}"
    );
    insta::assert_snapshot!("pvm_vm_view", vm);
}

/// At 80 columns the interval mode, sort key, filter and pause stay on the header; the
/// source's details make way.
#[test]
fn header_keeps_the_state_at_80_columns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut h = Harness::replay(dir.path());
    h.tick();
    h.tick();
    h.key(KeyCode::Char('/'));
    for c in "npf".chars() {
        h.key(KeyCode::Char(c));
    }
    h.key(KeyCode::Enter);
    let top = first_line(&draw(&h.app, 80, 12));
    assert!(
        top.contains("REPLAY") && top.contains("last 1s │ sort count │ filter \"npf\""),
        "{top}"
    );

    let long = "live: 12 VMs on hypervisor-rack-17-slot-04.example.internal";
    let mut a = App::new(ExitNames::builtin(), long.into());
    feed(&mut a, fixture(3));
    press(&mut a, KeyCode::Char('s'));
    press(&mut a, KeyCode::Char(' '));
    let top = first_line(&draw(&a, 80, 24));
    assert!(top.contains("last 1s │ sort time"), "{top}");
    assert!(top.contains(" PAUSED "), "{top}");
    assert!(
        top.contains(" live: 12 VMs on hypervisor-rack-17-slo… │ last 1s"),
        "shortened, not cut: {top}"
    );
    // Where it fits, all of it.
    assert!(first_line(&draw(&a, 160, 24)).contains(&format!("{long} │ elapsed 2s")));
}

/// `R` where no file can be created: the error stays on screen past the next samples.
#[test]
fn record_error_stays_visible() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"").expect("write");
    let path = file.join("rec.kvmprof"); // below a regular file: cannot be created
    let app = App::new(ExitNames::builtin(), "fake: 2 VMs".into());
    let src = FakeSource::new(fixture(4));
    let mut h = Harness::new(Box::new(src), app, Some((path, header())));
    h.tick();
    h.key(KeyCode::Char('R'));
    h.tick();
    h.tick();
    let frame = draw(&h.app, 100, 8);
    assert!(
        frame.contains("recording:") && frame.contains("cannot create the recording"),
        "{frame}"
    );
    assert!(!frame.contains("● REC"), "{frame}");
    // Seen once a key is pressed.
    h.key(KeyCode::Char('s'));
    assert!(!draw(&h.app, 100, 8).contains("recording:"));
    // A failed read is over once a read succeeds.
    h.app.on_error("source: reading stats map: EIO".into());
    h.tick();
    assert!(!draw(&h.app, 100, 8).contains("source: reading"));
}

/// Quitting while recording prints where the file is, as an absolute path.
#[test]
fn quit_names_the_recording() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("live.kvmprof");
    let app = App::new(ExitNames::builtin(), "fake: 2 VMs".into());
    let mut src = FakeSource::new(fixture(3));
    let first: Option<Sample> = src.sample().ok().flatten();
    let mut h = Harness::new(Box::new(src), app, Some((path.clone(), header())));
    if let Some(s) = first {
        h.app.on_sample(s);
    }
    assert_eq!(h.app.quit_notice(), None, "nothing recorded");
    h.key(KeyCode::Char('R'));
    h.tick();
    h.tick();
    let notice = h.app.quit_notice().expect("recording in progress");
    assert!(
        notice.starts_with(&format!("recording saved: {} (2 frames", path.display())),
        "{notice}"
    );
    // The default name is relative to where kvmprof ran: printed from the root.
    h.app.on_rec(Some(super::RecInfo {
        path: "kvmprof-host-20240229-123456.kvmprof".into(),
        frames: 1,
        bytes: 10,
    }));
    let cwd = std::env::current_dir().expect("cwd");
    let want = cwd.join("kvmprof-host-20240229-123456.kvmprof");
    assert_eq!(
        h.app.quit_notice().as_deref(),
        Some(format!("recording saved: {} (1 frames, 10 B)", want.display()).as_str())
    );
}

/// The VM view's vCPU rows carry each vCPU thread's host CPU and steal next to its exit
/// rate; a VM whose vhost kernel threads burn a core shows them in its header.
#[test]
fn vcpu_rows_show_cpu_and_steal() {
    let mut a = super::tests::app(5);
    press(&mut a, KeyCode::Enter);
    let frame = draw(&a, 120, 40);
    let row = |v: &str| {
        let line = frame.lines().skip_while(|l| !l.contains(" vCPUs ·"));
        let mut found = line.filter(|l| l.trim_start_matches(['"', ' ']).starts_with(v));
        found.next().unwrap_or_default().to_string()
    };
    assert!(frame.contains("Exits/s   CPU% Steal%   Ovh%"), "{frame}");
    // vCPU 0: 150 ms of CPU and 5 ms of wait a second; vCPU 2: 50 and 40.
    assert!(row("0 ").contains(" 15.0    0.5 "), "{frame}");
    assert!(row("2 ").contains("  5.0    4.0 "), "{frame}");
    assert!(frame.contains("+ VMM 4.0 + vhost 20.0)"), "{frame}");
}
