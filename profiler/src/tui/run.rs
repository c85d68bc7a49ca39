//! The terminal loop: a sampler thread owns the Source and sends owned Samples; an input
//! thread forwards key events; the UI thread blocks on both and redraws only when one arrives.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context;
use crossterm::event::{self, Event, KeyEventKind};
use ratatui::DefaultTerminal;

use super::{Action, App};
use crate::{sample::Sample, source::Source};

enum Msg {
    Sample(Sample),
    Error(String),
    /// The terminal cannot be read: nothing could quit the UI any more.
    InputFailed(String),
    End,
    Key(crossterm::event::KeyEvent),
    Redraw,
}

/// Runs the live TUI until the user quits. The terminal is restored on every exit path
/// (ratatui::init also installs a panic hook that restores it).
pub fn run(source: Box<dyn Source>, interval: Duration) -> anyhow::Result<()> {
    let app = App::new(source.names(), source.describe()).with_interval(interval);
    let (tx, rx) = mpsc::channel();
    let (ctl_tx, ctl_rx) = mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));

    let sampler_tx = tx.clone();
    thread::Builder::new()
        .name("kvmprof-sampler".into())
        .spawn(move || sampler(source, interval, sampler_tx, ctl_rx))
        .context("starting the sampler thread")?;
    let input_stop = stop.clone();
    let input = thread::Builder::new()
        .name("kvmprof-input".into())
        .spawn(move || input(tx, input_stop))
        .context("starting the input thread")?;

    let mut terminal = ratatui::init();
    let res = ui(&mut terminal, app, &rx, &ctl_tx);
    ratatui::restore();
    stop.store(true, Ordering::Relaxed);
    // The sampler may sit in a slow read; dropping ctl_tx ends it at its next wait.
    drop(ctl_tx);
    let _ = input.join();
    res
}

fn ui(
    terminal: &mut DefaultTerminal,
    mut app: App,
    rx: &mpsc::Receiver<Msg>,
    ctl: &mpsc::Sender<Duration>,
) -> anyhow::Result<()> {
    loop {
        terminal.draw(|f| f.render_widget(&app, f.area()))?;
        // Block until something happens, then take everything queued before redrawing.
        let Ok(first) = rx.recv() else {
            return Ok(());
        };
        for msg in std::iter::once(first).chain(rx.try_iter()) {
            match msg {
                Msg::Sample(s) => app.on_sample(s),
                Msg::Error(e) => app.on_error(e),
                Msg::InputFailed(e) => anyhow::bail!("terminal input: {e}"),
                Msg::End => app.on_end(),
                Msg::Redraw => {}
                Msg::Key(k) => match app.on_key(k) {
                    Action::Quit => return Ok(()),
                    Action::SetInterval(d) => {
                        let _ = ctl.send(d);
                    }
                    Action::None => {}
                },
            }
        }
    }
}

fn sampler(
    mut source: Box<dyn Source>,
    mut interval: Duration,
    tx: mpsc::Sender<Msg>,
    ctl: mpsc::Receiver<Duration>,
) {
    loop {
        let started = Instant::now();
        let msg = match source.sample() {
            Ok(Some(s)) => Msg::Sample(s),
            Ok(None) => {
                let _ = tx.send(Msg::End);
                return;
            }
            Err(e) => Msg::Error(format!("source: {e:#}")),
        };
        if tx.send(msg).is_err() {
            return;
        }
        // Kernel-side messages (aya-log) go to the status line, never to stderr.
        for n in source.notices() {
            let _ = tx.send(Msg::Error(format!("kernel: {n}")));
        }
        // Sleep out the interval, waking early to adopt a new one.
        loop {
            let left = (started + interval).saturating_duration_since(Instant::now());
            match ctl.recv_timeout(left) {
                Ok(d) => interval = d,
                Err(mpsc::RecvTimeoutError::Timeout) => break,
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
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
