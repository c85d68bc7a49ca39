//! The terminal loop: a sampler thread owns the Source (and any recording) and sends owned
//! Samples; an input thread forwards key events; a signal thread turns SIGTERM/SIGHUP/SIGINT
//! into a quit; the UI thread blocks on all of them and redraws only when one arrives.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::Context;
use crossterm::event::{self, Event, KeyEventKind};
use ratatui::DefaultTerminal;

use super::sampler::{Ctl, Msg, Sampler};
use super::{Action, App};
use crate::{
    source::{replay::ReplaySource, Source},
    store::Header,
};

/// How long quitting waits for the sampler to finish a recording (it may sit in a slow read).
const FINISH_WAIT: Duration = Duration::from_secs(5);

/// How [`run_with`] runs.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Sampling interval of a live source (a replay uses the recording's).
    pub interval: Duration,
    /// Where `R` records; None: `kvmprof-<host>-<YYYYmmdd-HHMMSS>.kvmprof` (UTC) in the
    /// current directory. An existing file is never overwritten (`-2`, `-3`, ... is added).
    pub record_path: Option<PathBuf>,
    /// Start recording at once, as if `R` was pressed before the first sample.
    pub record_now: bool,
    /// Host fields of new recordings (tests); None: this host's.
    pub record_header: Option<Header>,
    /// A first status line (e.g. the damage a replayed recording survived).
    pub notice: Option<String>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            interval: Duration::from_secs(1),
            record_path: None,
            record_now: false,
            record_header: None,
            notice: None,
        }
    }
}

/// The TUI draws with escape codes and reads keys, so it needs a terminal on stdin and stdout:
/// from cron, systemd or a redirect it refuses in one line, naming the command that fits (`instead`).
pub fn require_terminal(instead: &str) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    let missing = match (
        std::io::stdin().is_terminal(),
        std::io::stdout().is_terminal(),
    ) {
        (true, true) => return Ok(()),
        (_, false) => "stdout",
        (false, true) => "stdin",
    };
    anyhow::bail!("the interactive view needs a terminal, and {missing} is not one: {instead}")
}

/// Runs the live TUI until the user quits. The terminal is restored on every exit path
/// (ratatui::init also installs a panic hook that restores it).
pub fn run(source: Box<dyn Source>, interval: Duration) -> anyhow::Result<()> {
    run_with(
        source,
        RunOptions {
            interval,
            ..Default::default()
        },
    )
}

/// Replays a recording in the same TUI, starting paused on nothing and playing at 1×.
pub fn run_replay(source: ReplaySource) -> anyhow::Result<()> {
    if source.is_empty() {
        anyhow::bail!(
            "{}: the recording holds no samples",
            source.recording().path().display()
        );
    }
    let interval = Duration::from_millis(source.header().interval_ms.max(1));
    let notice = (!source.warnings().is_empty()).then(|| source.warnings().join("; "));
    run_with(
        Box::new(source),
        RunOptions {
            interval,
            notice,
            ..Default::default()
        },
    )
}

/// Like [`run`], with recording options; a seekable source (a recording) gets the replay
/// controls and timeline.
pub fn run_with(source: Box<dyn Source>, opts: RunOptions) -> anyhow::Result<()> {
    let mut app = App::new(source.names(), source.describe()).with_interval(opts.interval);
    if let (Some((_, len)), Some(h)) = (source.timeline(), source.origin()) {
        app = app.with_replay(h, len);
    }
    if let Some(n) = opts.notice {
        app.on_info(n);
    }
    let (tx, rx) = mpsc::channel();
    let (ctl_tx, ctl_rx) = mpsc::channel();
    if opts.record_now {
        // Queued before the thread starts: the first sample is recorded too.
        let _ = ctl_tx.send(Ctl::Record);
    }
    let sampler = Sampler::new(
        source,
        app.playback_interval().unwrap_or(opts.interval),
        tx.clone(),
    )
    .record_to(opts.record_path, opts.record_header);
    let handle = thread::Builder::new()
        .name("kvmprof-sampler".into())
        .spawn(move || sampler.run(ctl_rx))
        .context("starting the sampler thread")?;
    // Dropped on every way out of here, unwinding included: it lets the sampler finish.
    let mut guard = SamplerGuard {
        ctl: Some(ctl_tx),
        handle: Some(handle),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let input_stop = stop.clone();
    let input_tx = tx.clone();
    let input = thread::Builder::new()
        .name("kvmprof-input".into())
        .spawn(move || input(input_tx, input_stop))
        .context("starting the input thread")?;
    // Without it a `kill` would end the process before the recording is finished.
    let _ = thread::Builder::new()
        .name("kvmprof-signals".into())
        .spawn(move || signals(tx));

    let mut terminal = ratatui::try_init().context("cannot set up the terminal for the TUI")?;
    let res = match guard.ctl.as_ref() {
        Some(ctl) => ui(&mut terminal, &mut app, &rx, ctl),
        None => Ok(None),
    };
    ratatui::restore();
    stop.store(true, Ordering::Relaxed);
    guard.finish();
    let _ = input.join();
    if let Ok(Some(sig)) = &res {
        eprintln!("kvmprof: {sig}: quit");
    }
    // The sampler has finished the recording by now (or the wait gave up on it: it ends
    // with the process, and Drop still writes the end mark).
    if let Some(n) = app.quit_notice() {
        eprintln!("kvmprof: {n}");
    }
    res.map(|_| ())
}

/// Hangs up on the sampler and waits (bounded) for it to finish the recording.
struct SamplerGuard {
    ctl: Option<mpsc::Sender<Ctl>>,
    handle: Option<JoinHandle<()>>,
}

impl SamplerGuard {
    fn finish(&mut self) {
        self.ctl = None;
        let Some(h) = self.handle.take() else { return };
        let deadline = Instant::now() + FINISH_WAIT;
        while !h.is_finished() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
        if h.is_finished() {
            let _ = h.join();
        }
    }
}

impl Drop for SamplerGuard {
    fn drop(&mut self) {
        self.finish();
    }
}

/// What an App action asks of the sampler; false: quit.
pub(super) fn dispatch(a: Action, ctl: &mpsc::Sender<Ctl>) -> bool {
    let c = match a {
        Action::Quit => return false,
        Action::None => return true,
        Action::SetInterval(d) => Ctl::Interval(d),
        Action::Pause(p) => Ctl::Pause(p),
        Action::Step(n) => Ctl::Step(n),
        Action::Seek(i) => Ctl::Seek(i),
        Action::ToggleRecord => Ctl::Record,
    };
    let _ = ctl.send(c);
    true
}

/// Hands one sampler message to the App.
pub(super) fn deliver(app: &mut App, msg: Msg) {
    match msg {
        Msg::Sample(s) => app.on_sample(*s),
        Msg::Jump(j) => {
            let (prev, cur) = *j;
            app.on_jump(prev, cur)
        }
        Msg::Position(pos, len) => app.on_position(pos, len),
        Msg::Rec(r) => app.on_rec(r),
        Msg::Info(m) => app.on_info(m),
        Msg::Error(e) => app.on_error(e),
        Msg::End => app.on_end(),
        Msg::InputFailed(_) | Msg::Key(_) | Msg::Redraw | Msg::Signal(_) => {}
    }
}

fn ui(
    terminal: &mut DefaultTerminal,
    app: &mut App,
    rx: &mpsc::Receiver<Msg>,
    ctl: &mpsc::Sender<Ctl>,
) -> anyhow::Result<Option<&'static str>> {
    loop {
        terminal.draw(|f| f.render_widget(&*app, f.area()))?;
        // Block until something happens, then take everything queued before redrawing.
        let Ok(first) = rx.recv() else {
            return Ok(None);
        };
        for msg in std::iter::once(first).chain(rx.try_iter()) {
            match msg {
                Msg::InputFailed(e) => anyhow::bail!("terminal input: {e}"),
                Msg::Signal(sig) => return Ok(Some(sig)),
                Msg::Key(k) => {
                    if !dispatch(app.on_key(k), ctl) {
                        return Ok(None);
                    }
                }
                other => deliver(app, other),
            }
        }
    }
}

fn input(tx: mpsc::Sender<Msg>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        // Poll with a timeout only to notice `stop`; nothing is redrawn on this tick.
        let msg = match event::poll(Duration::from_millis(200)) {
            Ok(false) => continue,
            Ok(true) => match event::read() {
                Ok(Event::Key(k)) if k.kind != KeyEventKind::Release => Msg::Key(k),
                Ok(Event::Resize(..)) => Msg::Redraw,
                Ok(_) => continue,
                Err(e) => Msg::InputFailed(e.to_string()),
            },
            Err(e) => Msg::InputFailed(e.to_string()),
        };
        let fatal = matches!(msg, Msg::InputFailed(_));
        if tx.send(msg).is_err() || fatal {
            return;
        }
    }
}

/// Waits for SIGTERM, SIGHUP or SIGINT and asks the UI to quit. Left running after the UI
/// ends: the process exits right after.
fn signals(tx: mpsc::Sender<Msg>) {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return;
    };
    rt.block_on(async move {
        if let Ok(name) = crate::source::first_stop_signal().await {
            let _ = tx.send(Msg::Signal(name));
        }
    });
}
