//! The exporter's process: a sampler thread feeding [`Exporter`] and publishing the rendered
//! text, and an HTTP thread ([`super::http`]) serving the latest text. They share only an
//! `Arc<Exposition>` (both formats) swapped under a lock held for the swap, so a slow scrape
//! never delays sampling.

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{
        atomic::{AtomicBool, Ordering},
        mpsc, Arc, RwLock,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::Context;

use super::{
    http::{Http, HttpLimits},
    ExportOpts, Exporter, Exposition,
};
use crate::{
    advice::{self, AdviceSummary, HostFacts},
    sample::Sample,
    source::Source,
};

/// Default listen address: loopback only (put a reverse proxy or `--listen` in front for a
/// fleet). Port 9477 is not used by Prometheus, Alertmanager, Pushgateway or the common
/// exporters (node 9100, blackbox 9115, ...); if it is taken, `--listen` picks another.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9477";

#[derive(Clone, Debug)]
pub struct ServeOpts {
    pub listen: SocketAddr,
    /// Sampling interval (1 s is plenty: Prometheus computes rates itself).
    pub interval: Duration,
    pub export: ExportOpts,
    /// Advice recomputed over windows of this length (None: no advice metrics).
    pub advice_window: Option<Duration>,
    /// Created once the server listens (for scripts and systemd `ExecStartPost`).
    pub ready_file: Option<PathBuf>,
    /// What one HTTP client can hold (connections, header size, time).
    pub http: HttpLimits,
}

impl Default for ServeOpts {
    fn default() -> Self {
        ServeOpts {
            listen: DEFAULT_LISTEN
                .parse()
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 9477))),
            interval: Duration::from_secs(1),
            export: ExportOpts::default(),
            advice_window: Some(Duration::from_secs(60)),
            ready_file: None,
            http: HttpLimits::default(),
        }
    }
}

/// A running exporter; stops (and joins its threads) on [`Server::stop`] or drop.
pub struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    wake: Option<mpsc::Sender<()>>,
    http: Http,
    threads: Vec<JoinHandle<()>>,
}

impl Server {
    /// Binds `opts.listen` and starts sampling `source`. Bind errors are one line with the fix.
    pub fn start(mut source: Box<dyn Source>, opts: ServeOpts) -> anyhow::Result<Server> {
        let text = Arc::new(RwLock::new(Arc::new(Exposition {
            text: String::new(),
            openmetrics: String::from("# EOF\n"),
        })));
        let (http, addr) = Http::start(opts.listen, opts.http.clone(), text.clone())?;
        let stop = Arc::new(AtomicBool::new(false));
        let (wake_tx, wake_rx) = mpsc::channel::<()>();

        let mut exporter = Exporter::new(source.names(), opts.export.clone());
        let names = source.names();
        let (t, st) = (text.clone(), stop.clone());
        let interval = opts.interval.max(Duration::from_millis(10));
        let advice_window = opts.advice_window;
        let sampler = std::thread::Builder::new()
            .name("kvmprof-sampler".into())
            .spawn(move || {
                let host = advice_window.map(|_| HostFacts::local());
                let mut advice_base: Option<Sample> = None;
                let mut exhausted = false;
                while !st.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    if !exhausted {
                        match source.sample() {
                            Ok(Some(s)) => {
                                if let (Some(w), Some(h)) = (advice_window, &host) {
                                    let base = advice_base.get_or_insert_with(|| s.clone());
                                    let due = s.mono_ns.saturating_sub(base.mono_ns)
                                        >= w.as_nanos() as u64;
                                    if due {
                                        let input = advice::Input::from_samples(
                                            base,
                                            &s,
                                            &names,
                                            h.clone(),
                                        );
                                        let report = advice::analyze(&input);
                                        exporter.set_advice(&AdviceSummary::from(&report));
                                        advice_base = Some(s.clone());
                                    }
                                }
                                exporter.observe(s);
                            }
                            // A replay ran out: keep serving the final values.
                            Ok(None) => exhausted = true,
                            Err(e) => {
                                exporter.observe_error();
                                eprintln!("kvmprof serve: reading a sample failed: {e:#}");
                            }
                        }
                        for n in source.notices() {
                            eprintln!("kvmprof serve: {n}");
                        }
                        let rendered = Arc::new(exporter.expositions());
                        if let Ok(mut g) = t.write() {
                            *g = rendered;
                        }
                    }
                    let left = interval.saturating_sub(started.elapsed());
                    // Sleeps, but wakes at once on stop.
                    if let Err(mpsc::RecvTimeoutError::Disconnected) = wake_rx.recv_timeout(left) {
                        break;
                    }
                }
            })
            .context("starting the sampler thread")?;

        let server = Server {
            addr,
            stop,
            wake: Some(wake_tx),
            http,
            threads: vec![sampler],
        };
        if let Some(p) = &opts.ready_file {
            std::fs::write(p, addr.to_string())
                .with_context(|| format!("writing the ready file {}", p.display()))?;
        }
        Ok(server)
    }

    /// The bound address (useful with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.wake.take();
        self.http.stop();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Runs the exporter until SIGINT or SIGTERM. Blocking.
pub fn serve(source: Box<dyn Source>, opts: ServeOpts) -> anyhow::Result<()> {
    let server = Server::start(source, opts)?;
    eprintln!(
        "kvmprof serve: metrics at http://{}/metrics (Ctrl-C to stop)",
        server.addr()
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the signal runtime")?;
    let res: anyhow::Result<()> = rt.block_on(async {
        crate::source::first_stop_signal()
            .await
            .context("waiting for a stop signal")?;
        Ok(())
    });
    server.stop();
    res
}
