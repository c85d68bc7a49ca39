//! The one signal handler: SIGINT, SIGTERM and SIGHUP all mean "stop cleanly" (finish the
//! recording, print the report, close the exporter), for every loop — the headless driver,
//! `serve` and the TUI.

use tokio::signal::unix::{signal, SignalKind};

/// Waits for the first of SIGINT, SIGTERM or SIGHUP and names it. The handlers are
/// registered on the first poll; from then on none of the three ends the process.
pub async fn first_stop_signal() -> std::io::Result<&'static str> {
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut hup = signal(SignalKind::hangup())?;
    Ok(tokio::select! {
        _ = int.recv() => "SIGINT",
        _ = term.recv() => "SIGTERM",
        _ = hup.recv() => "SIGHUP",
    })
}
