//! The exporter's process: a sampler thread feeding [`Exporter`] and publishing the rendered
//! text, and an HTTP thread serving the latest text. They share only an `Arc<String>` swapped
//! under a lock held for the swap, so a slow scrape never delays sampling.

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

use super::{ExportOpts, Exporter, CONTENT_TYPE};
use crate::{
    advice::{self, HostFacts},
    check::AdviceSummary,
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
        }
    }
}

/// A running exporter; stops (and joins its threads) on [`Server::stop`] or drop.
pub struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    wake: Option<mpsc::Sender<()>>,
    http: Arc<tiny_http::Server>,
    threads: Vec<JoinHandle<()>>,
}

impl Server {
    /// Binds `opts.listen` and starts sampling `source`. Bind errors are one line with the fix.
    pub fn start(mut source: Box<dyn Source>, opts: ServeOpts) -> anyhow::Result<Server> {
        let http = tiny_http::Server::http(opts.listen).map_err(|e| {
            anyhow::anyhow!(
                "cannot listen on {}: {e}; choose another address with --listen ADDR:PORT",
                opts.listen
            )
        })?;
        let addr = http
            .server_addr()
            .to_ip()
            .context("the HTTP server has no IP address")?;
        let http = Arc::new(http);
        let stop = Arc::new(AtomicBool::new(false));
        let text = Arc::new(RwLock::new(Arc::new(String::from("# EOF\n"))));
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
                        let rendered = Arc::new(exporter.render());
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

        let (h, st) = (http.clone(), stop.clone());
        let server = std::thread::Builder::new()
            .name("kvmprof-http".into())
            .spawn(move || {
                while !st.load(Ordering::Relaxed) {
                    let req = match h.recv() {
                        Ok(r) => r,
                        Err(_) => break,
                    };
                    let body = text.read().map(|g| g.clone()).unwrap_or_default();
                    respond(req, &body);
                }
            })
            .context("starting the HTTP thread")?;

        if let Some(p) = &opts.ready_file {
            std::fs::write(p, addr.to_string())
                .with_context(|| format!("writing the ready file {}", p.display()))?;
        }
        Ok(Server {
            addr,
            stop,
            wake: Some(wake_tx),
            http,
            threads: vec![sampler, server],
        })
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
        self.http.unblock();
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

fn respond(req: tiny_http::Request, metrics: &str) {
    use tiny_http::{Header, Method, Response};
    let header = |v: &str| Header::from_bytes("Content-Type", v).ok();
    let path = req.url().split('?').next().unwrap_or("").to_string();
    let get = matches!(req.method(), Method::Get | Method::Head);
    let (code, ctype, body) = match (get, path.as_str()) {
        (true, "/metrics") => (200, CONTENT_TYPE, metrics.to_string()),
        (true, "/") => (
            200,
            "text/plain; charset=utf-8",
            "kvmprof exporter: metrics at /metrics\n".to_string(),
        ),
        (true, _) => (
            404,
            "text/plain; charset=utf-8",
            "not found: try /metrics\n".into(),
        ),
        (false, _) => (405, "text/plain; charset=utf-8", "use GET\n".into()),
    };
    let mut resp = Response::from_string(body).with_status_code(code);
    if let Some(h) = header(ctype) {
        resp = resp.with_header(h);
    }
    // A client that hung up is not our problem.
    let _ = req.respond(resp);
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
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("installing the SIGTERM handler")?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.context("waiting for SIGINT")?,
            _ = term.recv() => {}
        }
        Ok(())
    });
    server.stop();
    res
}
