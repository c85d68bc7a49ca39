//! Replay and recording: the real Sampler driven step by step (no threads, no clock) against
//! an App, over a recording written by `store::Recorder` in a temp dir; and the threaded
//! sampler finishing a recording when the UI goes away.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::Duration;

use crossterm::event::KeyCode;

use super::run::{deliver, dispatch};
use super::sampler::{Ctl, Msg, Sampler};
use super::tests::{draw, feed, fixture, press};
use super::{Action, App, RecInfo};
use crate::{
    decode::ExitNames,
    model,
    sample::Sample,
    source::{replay::ReplaySource, FakeSource, Source},
    store::{Header, Recorder, Recording},
};

const START_MS: u64 = 1_709_210_096_000; // 2024-02-29 12:34:56 UTC
const FRAMES: u64 = 6;

pub(super) fn header() -> Header {
    Header {
        host: "rechost".into(),
        kernel: "6.8.0-test".into(),
        cpus: 8,
        names: ExitNames::builtin(),
        start_wall_ms: START_MS,
        interval_ms: 1000,
        written_by: "kvmprof test".into(),
    }
}

/// The fixture's samples with wall clocks one second apart from START_MS.
fn samples() -> Vec<Sample> {
    let mut s = fixture(FRAMES);
    for (i, x) in s.iter_mut().enumerate() {
        x.wall_ms = START_MS + i as u64 * 1000;
    }
    s
}

fn write_recording(dir: &Path) -> PathBuf {
    let path = dir.join("rec.kvmprof");
    let mut r = Recorder::create(&path, &header()).expect("create recording");
    for s in samples() {
        r.append(&s).expect("append");
    }
    r.finish().expect("finish");
    path
}

/// App and Sampler wired like `run` does, pumped by hand.
pub(super) struct Harness {
    pub(super) app: App,
    sampler: Sampler,
    rx: Receiver<Msg>,
    ctl: Sender<Ctl>,
    ctl_rx: Receiver<Ctl>,
}

impl Harness {
    pub(super) fn new(
        source: Box<dyn Source>,
        app: App,
        rec: Option<(PathBuf, Header)>,
    ) -> Harness {
        let (tx, rx) = mpsc::channel();
        let (ctl, ctl_rx) = mpsc::channel();
        let (path, h) = rec.map_or((None, None), |(p, h)| (Some(p), Some(h)));
        let sampler = Sampler::new(source, Duration::from_secs(1), tx).record_to(path, h);
        Harness {
            app,
            sampler,
            rx,
            ctl,
            ctl_rx,
        }
    }

    pub(super) fn replay(dir: &Path) -> Harness {
        let src = ReplaySource::open(write_recording(dir)).expect("open recording");
        let app =
            App::new(src.names(), src.describe()).with_replay(src.header().clone(), src.len());
        Harness::new(Box::new(src), app, None)
    }

    fn pump(&mut self) {
        while let Ok(c) = self.ctl_rx.try_recv() {
            assert!(self.sampler.control(c), "UI hung up");
        }
        while let Ok(m) = self.rx.try_recv() {
            deliver(&mut self.app, m);
        }
    }

    pub(super) fn tick(&mut self) {
        assert!(self.sampler.tick(), "UI hung up");
        self.pump();
    }

    pub(super) fn key(&mut self, code: KeyCode) -> Action {
        let a = press(&mut self.app, code);
        assert!(dispatch(a, &self.ctl), "quit");
        self.pump();
        a
    }

    pub(super) fn pos(&self) -> usize {
        self.app.replay.as_ref().map_or(usize::MAX, |r| r.pos)
    }

    /// The interval view must be the model's view of frames `pos - 1` → `pos`.
    fn assert_frame(&self, pos: usize) {
        assert_eq!(self.pos(), pos);
        let s = samples();
        let older = pos
            .checked_sub(1)
            .map_or_else(Sample::default, |p| s[p].clone());
        let mut want = model::compute(&older, &s[pos], &ExitNames::builtin());
        // The app keeps the vCPU rows of the VMs on its screens only.
        model::fold_view(&mut want, &self.app.shown);
        assert_eq!(self.app.interval_view, want, "frame {pos}");
    }
}

/// Exits/s of web-frontend as the VM list shows it.
fn web_rate(frame: &str) -> String {
    let line = frame
        .lines()
        .find(|l| l.contains("web-frontend"))
        .unwrap_or_default();
    // name, pid, vCPUs, exits/s
    let mut words = line.split_whitespace().skip_while(|w| *w != "web-frontend");
    words.nth(3).unwrap_or_default().to_string()
}

#[test]
fn replay_timeline_speed_and_end() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut h = Harness::replay(dir.path());
    for _ in 0..3 {
        h.tick();
    }
    let playing = draw(&h.app, 100, 12);
    assert!(
        playing.contains("REPLAY  rechost (6.8.0-test)"),
        "{playing}"
    );
    assert!(
        playing.contains("recorded 2024-02-29 12:34:56 UTC"),
        "{playing}"
    );
    assert!(playing.contains("▶ PLAY"), "{playing}");
    assert!(
        playing.contains(" 3/6 │ 2024-02-29 12:34:58 UTC (+2s)"),
        "{playing}"
    );
    insta::assert_snapshot!("replay_playing", playing);

    assert_eq!(
        h.key(KeyCode::Char('x')),
        Action::SetInterval(Duration::from_millis(250))
    );
    assert!(draw(&h.app, 100, 12).contains("speed 4× · a frame every 0.25s"));
    h.key(KeyCode::Char('x'));
    assert!(draw(&h.app, 100, 12).contains("speed 16×"));
    assert_eq!(
        h.key(KeyCode::Char('x')),
        Action::SetInterval(Duration::from_secs(1)),
        "16× wraps to 1×"
    );

    for _ in 0..4 {
        h.tick(); // frames 4..6, then the end
    }
    assert!(h.app.paused, "the end pauses");
    let end = draw(&h.app, 100, 12);
    assert!(end.contains("■ END"), "{end}");
    assert!(end.contains(" 6/6 "), "{end}");
    assert!(end.contains("end of recording"), "{end}");
    h.assert_frame(5);
    insta::assert_snapshot!("replay_end", end);

    // Playing again starts over.
    assert_eq!(h.key(KeyCode::Char(' ')), Action::Pause(false));
    h.assert_frame(0);
    assert!(!draw(&h.app, 100, 12).contains("END"));
}

#[test]
fn replay_seek_and_step_change_the_numbers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut h = Harness::replay(dir.path());
    for _ in 0..3 {
        h.tick();
    }
    h.assert_frame(2);
    // Interval i carries 1×, 1.5×, 2× the base load (i % 3): frame 2 is the busiest.
    let at2 = web_rate(&draw(&h.app, 100, 12));
    assert_eq!(at2, "4.02k");

    assert_eq!(h.key(KeyCode::Char(',')), Action::Step(-1));
    assert!(h.app.paused);
    h.assert_frame(1);
    let at1 = web_rate(&draw(&h.app, 100, 12));
    assert_eq!(at1, "3.01k");
    assert!(draw(&h.app, 100, 12).contains("❚❚ PAUSED"));

    h.key(KeyCode::Char('.'));
    h.assert_frame(2);
    assert_eq!(web_rate(&draw(&h.app, 100, 12)), at2);

    assert_eq!(h.key(KeyCode::Char('5')), Action::Seek(3));
    h.assert_frame(3);
    assert_eq!(web_rate(&draw(&h.app, 100, 12)), "2.01k");
    h.key(KeyCode::Char('{'));
    h.assert_frame(0);
    h.key(KeyCode::Char(']'));
    h.assert_frame(1);
    h.key(KeyCode::Char('}'));
    h.assert_frame(5);
    h.key(KeyCode::Char('['));
    h.assert_frame(4);
    // Since start stays since the recording's start after jumping around.
    let base = h.app.baseline.as_ref().map(|b| b.mono_ns);
    assert_eq!(base, Some(samples()[0].mono_ns));
    insta::assert_snapshot!("replay_after_seek", draw(&h.app, 100, 12));
}

#[test]
fn recording_indicator_and_stop() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("live.kvmprof");
    let app = App::new(ExitNames::builtin(), "fake: 2 VMs".into());
    let src = FakeSource::new(fixture(4));
    let mut h = Harness::new(Box::new(src), app, Some((path.clone(), header())));
    h.tick();
    assert_eq!(h.key(KeyCode::Char('R')), Action::ToggleRecord);
    for _ in 0..3 {
        h.tick();
    }
    let frame = draw(&h.app, 100, 8);
    assert!(frame.contains("● REC live.kvmprof 3 frames"), "{frame}");
    h.key(KeyCode::Char('R'));
    let saved = draw(&h.app, 100, 8);
    assert!(!saved.contains("● REC"), "{saved}");
    assert!(saved.contains("recording saved"), "{saved}");
    let rec = Recording::open(&path).expect("open");
    assert!(rec.finished());
    let got: Vec<Sample> = rec.samples().map(|s| s.expect("sample")).collect();
    assert_eq!(got, fixture(4)[1..].to_vec());

    // The indicator with fixed numbers, for the snapshot.
    let mut a = App::new(ExitNames::builtin(), "fake: 2 VMs".into());
    feed(&mut a, fixture(3));
    a.on_rec(Some(RecInfo {
        path: "/tmp/kvmprof-host-20240229-123456.kvmprof".into(),
        frames: 42,
        bytes: 123_456,
    }));
    let frame = draw(&a, 100, 8);
    assert!(
        frame.contains("● REC kvmprof-host-20240229-123456.kvmprof 42 frames 121 KiB"),
        "{frame}"
    );
    insta::assert_snapshot!("recording_indicator", frame);
}

#[test]
fn replay_refuses_to_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut h = Harness::replay(dir.path());
    h.tick();
    h.key(KeyCode::Char('R'));
    assert!(h.app.rec.is_none());
    assert!(draw(&h.app, 100, 12).contains("R records live sessions"));
}

/// `R` pressed, samples flow, then the UI vanishes without stopping: the sampler thread
/// finishes the file with every sample in it.
#[test]
fn recording_survives_the_ui_going_away() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("kept.kvmprof");
    let (tx, rx) = mpsc::channel();
    let (ctl, ctl_rx) = mpsc::channel();
    let mut app = App::new(ExitNames::builtin(), "fake".into());
    // Pressed before the sampler starts, like `record_now`: every sample is recorded.
    assert!(dispatch(press(&mut app, KeyCode::Char('R')), &ctl));
    let src = FakeSource::new(fixture(5));
    let sampler = Sampler::new(Box::new(src), Duration::from_millis(1), tx)
        .record_to(Some(path.clone()), Some(header()));
    let t = std::thread::spawn(move || sampler.run(ctl_rx));
    loop {
        match rx
            .recv_timeout(Duration::from_secs(10))
            .expect("sampler alive")
        {
            Msg::End => break,
            m => deliver(&mut app, m),
        }
    }
    assert_eq!(app.rec.as_ref().map(|r| r.frames), Some(5));
    drop(app);
    drop(rx);
    drop(ctl);
    t.join().expect("sampler thread");
    let rec = Recording::open(&path).expect("open");
    assert!(rec.finished(), "end mark written");
    let got: Vec<Sample> = rec.samples().map(|s| s.expect("sample")).collect();
    assert_eq!(got, fixture(5));
}

/// The UI side disappears mid-stream (receiver dropped): what was recorded is finished.
#[test]
fn recording_finished_when_the_receiver_drops() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("cut.kvmprof");
    let (tx, rx) = mpsc::channel();
    let (ctl, ctl_rx) = mpsc::channel();
    assert!(dispatch(Action::ToggleRecord, &ctl));
    // Far more samples than are read before the hang-up (2 ms apart).
    let src = FakeSource::new(fixture(500));
    let sampler = Sampler::new(Box::new(src), Duration::from_millis(2), tx)
        .record_to(Some(path.clone()), Some(header()));
    let t = std::thread::spawn(move || sampler.run(ctl_rx));
    // The first recorded sample, then hang up without a word.
    while !matches!(rx.recv_timeout(Duration::from_secs(10)), Ok(Msg::Rec(Some(r))) if r.frames > 0)
    {
    }
    drop(rx);
    // Only the closed channel can end it: `ctl` is still open.
    for _ in 0..500 {
        if t.is_finished() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(t.is_finished(), "sampler still running after the UI left");
    t.join().expect("sampler thread");
    drop(ctl);
    let rec = Recording::open(&path).expect("open");
    assert!(rec.finished());
    let got: Vec<Sample> = rec.samples().map(|s| s.expect("sample")).collect();
    assert!(!got.is_empty());
    assert_eq!(got[..], fixture(got.len() as u64)[..]);
}
