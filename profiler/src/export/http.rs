//! The exporter's HTTP/1 server: hyper on a single-threaded tokio runtime owned by one thread.
//!
//! Scrapers are untrusted network clients, so everything a client can make the server hold is
//! bounded: request headers (size and count, [`MAX_HEADER_BYTES`]), request bodies (never read:
//! any body is answered 413), open connections ([`HttpLimits::max_connections`]; a new one
//! evicts the least recently active, so held-open sockets cannot lock scrapers out), and time
//! (headers must arrive within `header_timeout`, a connection moving no bytes either way is
//! closed after `idle_timeout`, and none lives past `max_lifetime`). Each connection is a task,
//! not a thread: a client that never reads its replies stalls only itself.

use std::{
    collections::HashMap,
    convert::Infallible,
    io,
    net::SocketAddr,
    pin::Pin,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, RwLock,
    },
    task::{Context, Poll},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{body::Body, header, service::service_fn, Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{oneshot, Notify},
};

use super::{Exposition, Format};

/// Request line plus headers, at most (hyper answers 431 beyond; its floor is 8 KiB).
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
const MAX_HEADERS: usize = 64;

/// What one client can hold. The defaults suit Prometheus (one keep-alive connection per
/// scraper, a request every 15–60 s); tests shorten them.
#[derive(Clone, Debug)]
pub struct HttpLimits {
    /// Open connections; one more evicts the least recently active.
    pub max_connections: usize,
    /// A request's headers must arrive within this, counted from when the connection is ready
    /// for them (so it also closes keep-alive connections idle between requests).
    pub header_timeout: Duration,
    /// A connection that moves no byte in either direction for this long is closed (a client
    /// that stopped reading its replies, or one that says nothing).
    pub idle_timeout: Duration,
    /// After this, the connection finishes its current response and closes.
    pub max_lifetime: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_connections: 64,
            header_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(30),
            max_lifetime: Duration::from_secs(300),
        }
    }
}

/// The latest rendered exposition, swapped by the sampler.
pub type Shared = Arc<RwLock<Arc<Exposition>>>;

/// The running HTTP thread; stops on [`Http::stop`] or drop.
pub struct Http {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Http {
    /// Binds now (so errors reach the caller), then serves `text` from a new thread.
    pub fn start(
        listen: SocketAddr,
        limits: HttpLimits,
        text: Shared,
    ) -> anyhow::Result<(Http, SocketAddr)> {
        let cannot = |e: io::Error| {
            anyhow::anyhow!(
                "cannot listen on {listen}: {e}; choose another address with --listen ADDR:PORT"
            )
        };
        let listener = std::net::TcpListener::bind(listen).map_err(cannot)?;
        listener.set_nonblocking(true).map_err(cannot)?;
        let addr = listener.local_addr().map_err(cannot)?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .context("starting the HTTP runtime")?;
        let (stop_tx, stop_rx) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("kvmprof-http".into())
            .spawn(move || {
                rt.block_on(async move {
                    match TcpListener::from_std(listener) {
                        Ok(l) => accept_loop(l, limits, text, stop_rx).await,
                        Err(e) => eprintln!("kvmprof serve: cannot use {addr}: {e}"),
                    }
                });
                // Dropping the runtime here drops every connection task: all sockets close.
            })
            .context("starting the HTTP thread")?;
        Ok((
            Http {
                stop: Some(stop_tx),
                thread: Some(thread),
            },
            addr,
        ))
    }

    /// Closes the listener and every connection, and joins the thread.
    pub fn stop(&mut self) {
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Http {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One open connection, as the accept loop sees it.
struct Conn {
    /// Milliseconds since the server's epoch when a byte last moved either way.
    active_ms: AtomicU64,
    evict: Notify,
}

#[derive(Default)]
struct Registry {
    next_id: u64,
    open: HashMap<u64, Arc<Conn>>,
}

async fn accept_loop(
    listener: TcpListener,
    limits: HttpLimits,
    text: Shared,
    mut stop: oneshot::Receiver<()>,
) {
    let epoch = Instant::now();
    let registry = Arc::new(Mutex::new(Registry::default()));
    loop {
        let stream = tokio::select! {
            _ = &mut stop => return,
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                // Out of descriptors or an aborted handshake: both pass; retry shortly
                // rather than spin or give up serving.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Responses are written whole; without this, Nagle and the client's delayed ACK add
        // ~40 ms to every keep-alive scrape.
        let _ = stream.set_nodelay(true);
        let conn = Arc::new(Conn {
            active_ms: AtomicU64::new(epoch.elapsed().as_millis() as u64),
            evict: Notify::new(),
        });
        let id = {
            let mut r = registry.lock().unwrap_or_else(|p| p.into_inner());
            if r.open.len() >= limits.max_connections.max(1) {
                let oldest = r
                    .open
                    .iter()
                    .min_by_key(|(_, c)| c.active_ms.load(Ordering::Relaxed))
                    .map(|(id, _)| *id);
                if let Some(c) = oldest.and_then(|id| r.open.remove(&id)) {
                    c.evict.notify_one();
                }
            }
            r.next_id += 1;
            let id = r.next_id;
            r.open.insert(id, conn.clone());
            id
        };
        let (limits, text, registry) = (limits.clone(), text.clone(), registry.clone());
        tokio::spawn(async move {
            serve_connection(stream, conn, epoch, &limits, text).await;
            registry
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .open
                .remove(&id);
        });
    }
}

/// Serves one connection until the client closes it or a limit ends it (by dropping it).
async fn serve_connection(
    stream: TcpStream,
    conn: Arc<Conn>,
    epoch: Instant,
    limits: &HttpLimits,
    text: Shared,
) {
    let io = Tracked {
        io: stream,
        conn: conn.clone(),
        epoch,
    };
    let service = service_fn(move |req: Request<hyper::body::Incoming>| {
        let metrics = text.read().map(|g| g.clone()).unwrap_or_default();
        async move { Ok::<_, Infallible>(respond(&req, metrics)) }
    });
    let http = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(MAX_HEADER_BYTES)
        .max_headers(MAX_HEADERS)
        .serve_connection(TokioIo::new(io), service);
    tokio::pin!(http);
    let lifetime = tokio::time::sleep(limits.max_lifetime);
    tokio::pin!(lifetime);
    let mut closing = false;
    loop {
        let active = Duration::from_millis(conn.active_ms.load(Ordering::Relaxed));
        let idle_at = tokio::time::Instant::from_std(epoch + active + limits.idle_timeout);
        tokio::select! {
            _ = http.as_mut() => return,
            _ = conn.evict.notified() => return,
            _ = tokio::time::sleep_until(idle_at) => {
                // Still no byte moved since `active`: give the connection up.
                if conn.active_ms.load(Ordering::Relaxed) == active.as_millis() as u64 {
                    return;
                }
            }
            _ = &mut lifetime, if !closing => {
                http.as_mut().graceful_shutdown();
                closing = true;
            }
        }
    }
}

/// Answers from the request line and headers alone: a body is never read. `/metrics` is in
/// the format the `Accept` header asks for ([`Format::negotiate`]).
fn respond(
    req: &Request<hyper::body::Incoming>,
    metrics: Arc<Exposition>,
) -> Response<Full<Bytes>> {
    let text = "text/plain; charset=utf-8";
    let get = matches!(*req.method(), Method::GET | Method::HEAD);
    let (code, ctype, body) = if !req.body().is_end_stream() {
        // Content-Length > 0 or chunked: refused before a byte of it is read, so its size
        // costs nothing; the connection closes since the body is left unread.
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            text,
            Bytes::from_static(b"request bodies are not accepted: use GET without a body\n"),
        )
    } else {
        match (get, req.uri().path()) {
            (true, "/metrics") => {
                let accept = req.headers().get(header::ACCEPT);
                let format = Format::negotiate(accept.and_then(|a| a.to_str().ok()));
                (
                    StatusCode::OK,
                    format.content_type(),
                    Bytes::from_owner(Text(metrics, format)),
                )
            }
            (true, "/") => (
                StatusCode::OK,
                text,
                Bytes::from_static(b"kvmprof exporter: metrics at /metrics\n"),
            ),
            (true, _) => (
                StatusCode::NOT_FOUND,
                text,
                Bytes::from_static(b"not found: try /metrics\n"),
            ),
            (false, _) => (
                StatusCode::METHOD_NOT_ALLOWED,
                text,
                Bytes::from_static(b"use GET\n"),
            ),
        }
    };
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = code;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(ctype),
    );
    match code {
        StatusCode::PAYLOAD_TOO_LARGE => {
            h.insert(
                header::CONNECTION,
                header::HeaderValue::from_static("close"),
            );
        }
        StatusCode::METHOD_NOT_ALLOWED => {
            h.insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
        }
        // Caches must not hand one scraper's format to another.
        StatusCode::OK if req.uri().path() == "/metrics" => {
            h.insert(header::VARY, header::HeaderValue::from_static("Accept"));
        }
        _ => {}
    }
    resp
}

/// One format of the shared exposition as a response body, without copying it.
struct Text(Arc<Exposition>, Format);

impl AsRef<[u8]> for Text {
    fn as_ref(&self) -> &[u8] {
        self.0.get(self.1).as_bytes()
    }
}

/// A socket that notes when a byte last moved, for the idle timeout and eviction.
struct Tracked {
    io: TcpStream,
    conn: Arc<Conn>,
    epoch: Instant,
}

impl Tracked {
    fn touch(&self) {
        let now = self.epoch.elapsed().as_millis() as u64;
        self.conn.active_ms.store(now, Ordering::Relaxed);
    }
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.touch();
        }
        r
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
