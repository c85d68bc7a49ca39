//! The sampler thread: it owns the Source and the Recorder, so every sample it reads is
//! appended, obeys the UI's control messages (interval, replay pause/step/seek, record), and
//! finishes the recording however it ends (UI quit, UI gone, panic: see `Drop`).

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossterm::event::KeyEvent;

use super::fmt;
use crate::{
    sample::Sample,
    source::{live, Source},
    store::{Header, Recorder, StoreError},
};

/// Everything the UI thread waits on.
pub(super) enum Msg {
    Sample(Box<Sample>),
    /// A replay moved to a frame that does not follow the shown one: (sample before it, it).
    /// Boxed: two samples would make every message that big.
    Jump(Box<(Option<Sample>, Sample)>),
    /// A replay shows frame `.0` of `.1`.
    Position(usize, usize),
    /// The recording now in progress, or none.
    Rec(Option<RecInfo>),
    Info(String),
    Error(String),
    /// The terminal cannot be read: nothing could quit the UI any more.
    InputFailed(String),
    End,
    Key(KeyEvent),
    Redraw,
    /// SIGTERM, SIGHUP or SIGINT: quit as if `q` was pressed (the recording is finished).
    Signal(&'static str),
}

/// What the UI asks of the sampler.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Ctl {
    Interval(Duration),
    /// Replay: stop or resume reading frames (a live pause only freezes the UI).
    Pause(bool),
    /// Replay: pause and move this many frames from the shown one.
    Step(i64),
    /// Replay: show frame i.
    Seek(usize),
    /// Start or stop recording.
    Record,
}

/// The recording indicator's numbers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecInfo {
    pub path: PathBuf,
    pub frames: u64,
    pub bytes: u64,
}

impl RecInfo {
    fn of(r: &Recorder) -> RecInfo {
        RecInfo {
            path: r.path().to_path_buf(),
            frames: r.frames(),
            bytes: r.bytes_written(),
        }
    }
}

pub(super) struct Sampler {
    source: Box<dyn Source>,
    tx: Sender<Msg>,
    interval: Duration,
    paused: bool,
    /// Replay: index of the frame on screen.
    shown: Option<usize>,
    rec: Option<Recorder>,
    /// Where `R` records; None: kvmprof-<host>-<time>.kvmprof in the current directory.
    rec_path: Option<PathBuf>,
    /// Host fields for new recordings; None: this host's, read when recording starts.
    header: Option<Header>,
}

impl Sampler {
    pub(super) fn new(source: Box<dyn Source>, interval: Duration, tx: Sender<Msg>) -> Sampler {
        Sampler {
            source,
            tx,
            interval,
            paused: false,
            shown: None,
            rec: None,
            rec_path: None,
            header: None,
        }
    }

    pub(super) fn record_to(mut self, path: Option<PathBuf>, header: Option<Header>) -> Sampler {
        self.rec_path = path;
        self.header = header;
        self
    }

    /// Until the UI hangs up. Controls queued before the start apply before the first read.
    pub(super) fn run(mut self, ctl: Receiver<Ctl>) {
        // When the last tick began; None: tick at once.
        let mut started: Option<Instant> = None;
        loop {
            loop {
                let msg = if self.paused {
                    ctl.recv().map_err(|_| RecvTimeoutError::Disconnected)
                } else {
                    // Recomputed per message: a new interval applies to the wait in progress.
                    let due = started.map_or_else(Instant::now, |s| s + self.interval);
                    ctl.recv_timeout(due.saturating_duration_since(Instant::now()))
                };
                match msg {
                    Ok(c) => {
                        let was_paused = self.paused;
                        if !self.control(c) {
                            return;
                        }
                        if was_paused && !self.paused {
                            started = Some(Instant::now());
                        }
                    }
                    Err(RecvTimeoutError::Timeout) => break,
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            }
            started = Some(Instant::now());
            if !self.tick() {
                return;
            }
        }
    }

    fn send(&self, m: Msg) -> bool {
        self.tx.send(m).is_ok()
    }

    /// One control message; false when the UI is gone.
    pub(super) fn control(&mut self, c: Ctl) -> bool {
        match c {
            Ctl::Interval(d) => self.interval = d,
            Ctl::Pause(p) => {
                self.paused = p;
                // Resuming at the end plays the recording again.
                let at_end = self.source.timeline().is_some_and(|(pos, len)| pos >= len);
                if !p && at_end {
                    return self.jump(0);
                }
            }
            Ctl::Step(n) => {
                self.paused = true;
                let at = self.shown.map_or(-1, |s| s as i64);
                return self.go(at.saturating_add(n).max(0) as usize);
            }
            Ctl::Seek(i) => return self.go(i),
            Ctl::Record => return self.toggle_record(),
        }
        true
    }

    /// Read, record and send the next sample; false when the UI is gone.
    pub(super) fn tick(&mut self) -> bool {
        let ok = match self.source.sample() {
            Ok(Some(s)) => {
                self.append(&s);
                let sent = self.send(Msg::Sample(Box::new(s)));
                sent && self.position()
            }
            Ok(None) => {
                self.paused = true;
                self.send(Msg::End)
            }
            Err(e) => self.send(Msg::Error(format!("source: {e:#}"))),
        };
        // Kernel-side messages (aya-log) go to the status line, never to stderr.
        for n in self.source.notices() {
            let _ = self.send(Msg::Error(format!("kernel: {n}")));
        }
        ok
    }

    /// Replay: note and report the shown frame (the one before the source's position).
    fn position(&mut self) -> bool {
        match self.source.timeline() {
            Some((pos, len)) => {
                self.shown = pos.checked_sub(1);
                self.send(Msg::Position(pos.saturating_sub(1), len))
            }
            None => true,
        }
    }

    /// Replay: show frame `i` (clamped to the last one).
    fn go(&mut self, i: usize) -> bool {
        let Some((pos, len)) = self.source.timeline() else {
            return true;
        };
        let Some(last) = len.checked_sub(1) else {
            return self.send(Msg::End);
        };
        let i = i.min(last);
        if self.shown == Some(i) {
            return i != last || self.send(Msg::End);
        }
        if self.shown.map(|s| s + 1) == Some(i) && pos == i {
            // The next frame: read on, so the rate history goes on too.
            return self.tick();
        }
        self.jump(i)
    }

    fn jump(&mut self, i: usize) -> bool {
        let src = &mut self.source;
        let read = (|| -> anyhow::Result<(Option<Sample>, Option<Sample>)> {
            src.seek_to(i.saturating_sub(1))?;
            let prev = if i > 0 { src.sample()? } else { None };
            Ok((prev, src.sample()?))
        })();
        match read {
            Ok((prev, Some(cur))) => self.send(Msg::Jump(Box::new((prev, cur)))) && self.position(),
            Ok((_, None)) => self.send(Msg::End),
            Err(e) => self.send(Msg::Error(format!("seek: {e:#}"))),
        }
    }

    fn append(&mut self, s: &Sample) {
        let Some(r) = self.rec.as_mut() else { return };
        match r.append(s) {
            Ok(()) => {
                let info = RecInfo::of(r);
                let _ = self.send(Msg::Rec(Some(info)));
            }
            Err(e) => {
                // A full disk must not end the session; what was written stays readable.
                if let Some(r) = self.rec.take() {
                    let _ = r.finish();
                }
                let _ = self.send(Msg::Error(format!("recording stopped: {e}")));
                let _ = self.send(Msg::Rec(None));
            }
        }
    }

    fn toggle_record(&mut self) -> bool {
        if let Some(r) = self.rec.take() {
            let info = RecInfo::of(&r);
            let msg = match r.finish() {
                Ok(()) => Msg::Info(format!(
                    "recording saved: {} ({} frames, {})",
                    info.path.display(),
                    info.frames,
                    fmt::bytes(info.bytes)
                )),
                Err(e) => Msg::Error(format!("recording: {e}")),
            };
            return self.send(msg) && self.send(Msg::Rec(None));
        }
        if self.source.timeline().is_some() {
            return self.send(Msg::Info(
                "this is a replay: R records live sessions".into(),
            ));
        }
        let header = self.new_header();
        let path = self
            .rec_path
            .clone()
            .unwrap_or_else(|| default_path(&header));
        match fresh(&path).and_then(|p| Recorder::create(p, &header)) {
            Ok(r) => {
                let info = RecInfo::of(&r);
                self.rec = Some(r);
                self.send(Msg::Rec(Some(info)))
            }
            Err(e) => self.send(Msg::Error(format!("recording: {e}"))),
        }
    }

    fn new_header(&self) -> Header {
        let base = self.header.clone().unwrap_or_else(|| Header {
            host: live::hostname(),
            kernel: live::kernel_release(),
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get() as u32),
            written_by: format!("kvmprof {}", env!("CARGO_PKG_VERSION")),
            ..Header::default()
        });
        Header {
            names: self.source.names(),
            start_wall_ms: now_ms(),
            interval_ms: self.interval.as_millis() as u64,
            ..base
        }
    }
}

impl Drop for Sampler {
    /// Quit, a vanished UI (closed channel) or a panic: the recording still gets its end mark.
    fn drop(&mut self) {
        if let Some(r) = self.rec.take() {
            let _ = r.finish();
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// kvmprof-<host>-<YYYYmmdd-HHMMSS>.kvmprof (UTC) in the current directory.
fn default_path(h: &Header) -> PathBuf {
    let host: String = h
        .host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    PathBuf::from(format!(
        "kvmprof-{host}-{}.kvmprof",
        fmt::stamp(h.start_wall_ms)
    ))
}

/// `path`, or `stem-2.ext`, `stem-3.ext`, ...: the first name that is free, created empty here
/// with O_EXCL, so a second recording never truncates the first and nothing is written through
/// a symlink planted at a predictable name (O_EXCL also fails on a dangling one).
fn fresh(path: &Path) -> Result<PathBuf, StoreError> {
    let stem = path
        .file_stem()
        .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
    let ext = path
        .extension()
        .map_or_else(String::new, |e| format!(".{}", e.to_string_lossy()));
    let names = (2..10_000).map(|n| path.with_file_name(format!("{stem}-{n}{ext}")));
    let io = |path, action, cause| StoreError::Io {
        path,
        action,
        cause,
    };
    for p in std::iter::once(path.to_path_buf()).chain(names) {
        let new = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&p);
        match new {
            Ok(_) => return Ok(p),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io(p, "create the recording", e)),
        }
    }
    let taken = std::io::ErrorKind::AlreadyExists.into();
    Err(io(
        path.to_path_buf(),
        "find a free name for the recording",
        taken,
    ))
}

#[cfg(test)]
mod tests {
    /// A symlink planted at the predictable name, even a dangling one, is not written through.
    #[test]
    fn fresh_never_follows_a_planted_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kvmprof-host-20260101-000000.kvmprof");
        let victim = dir.path().join("victim");
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        let got = super::fresh(&path).unwrap();
        assert_eq!(
            got,
            dir.path().join("kvmprof-host-20260101-000000-2.kvmprof")
        );
        assert!(!victim.exists(), "created through the symlink");
        assert_eq!(std::fs::symlink_metadata(&got).unwrap().len(), 0);
        // Reserved: the next recording gets the next name.
        assert!(super::fresh(&path)
            .unwrap()
            .ends_with("kvmprof-host-20260101-000000-3.kvmprof"));
    }
}
