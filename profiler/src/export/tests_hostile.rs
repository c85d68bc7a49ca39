//! The exporter's HTTP server against hostile and careless clients (issue #10, items 3, 4, 16):
//! the real [`Server`] on 127.0.0.1:0, clients scripted over raw sockets, every wait bounded.

use std::{
    io::{self, BufRead, BufReader, ErrorKind, Read, Write},
    net::{SocketAddr, TcpStream},
    time::{Duration, Instant},
};

use super::{tests::pair, HttpLimits, ServeOpts, Server};
use crate::source::FakeSource;

const WAIT: Duration = Duration::from_secs(5);
const SCRAPE: &[u8] = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";

/// A server whose /metrics already holds the scripted sample's series.
fn start(http: HttpLimits) -> Server {
    let (a, b) = pair();
    let opts = ServeOpts {
        listen: "127.0.0.1:0".parse().unwrap(),
        interval: Duration::from_millis(20),
        advice_window: None,
        http,
        ..Default::default()
    };
    let server = Server::start(Box::new(FakeSource::new(vec![a, b])), opts).expect("start");
    let deadline = Instant::now() + WAIT;
    while !scrape(server.addr()).contains("kvmprof_exits_total{") {
        assert!(Instant::now() < deadline, "no metrics within {WAIT:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    server
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.set_write_timeout(Some(WAIT)).unwrap();
    s
}

/// One scrape on a fresh connection; whatever arrived within [`WAIT`].
fn scrape(addr: SocketAddr) -> String {
    let mut s = connect(addr);
    let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// Reads one response (status line, body); None when the server closed the connection.
fn response(r: &mut BufReader<TcpStream>) -> io::Result<Option<(String, String)>> {
    let mut status = String::new();
    if r.read_line(&mut status)? == 0 {
        return Ok(None);
    }
    let mut len = 0;
    loop {
        let mut line = String::new();
        r.read_line(&mut line)?;
        if line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().expect("Content-Length");
            }
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body)?;
    Ok(Some((status, String::from_utf8_lossy(&body).into())))
}

/// True once the server has closed `s` (EOF or reset), false if it is open after [`WAIT`].
fn closed_by_server(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false
            }
            Err(_) => return true,
        }
    }
}

/// A client that pipelines scrapes and never reads the replies, until its writes block
/// because the server stopped reading (it cannot send the replies), or 16 MiB were sent to a
/// server that queues requests. An error if the server closed the connection first.
fn stalled_client(addr: SocketAddr) -> io::Result<TcpStream> {
    let mut s = connect(addr);
    s.set_write_timeout(Some(Duration::from_millis(250)))
        .unwrap();
    // ~1 KiB requests, so the socket buffers fill after a few thousand.
    let pad = "p".repeat(1000);
    let req = format!("GET /metrics HTTP/1.1\r\nHost: x\r\nX-Pad: {pad}\r\n\r\n").repeat(16);
    for _ in 0..1_000 {
        match s.write_all(req.as_bytes()) {
            Ok(()) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Ok(s)
            }
            Err(e) => return Err(e),
        }
    }
    Ok(s)
}

#[test]
fn a_huge_content_length_is_refused_unread_and_serving_goes_on() {
    let server = start(HttpLimits::default());
    for req in [
        "GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n",
        "POST /metrics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
    ] {
        let mut s = connect(server.addr());
        s.write_all(req.as_bytes()).unwrap();
        let mut r = BufReader::new(s);
        let (status, body) = response(&mut r).expect("a response").expect("not closed");
        assert!(status.starts_with("HTTP/1.1 413"), "{req:?}: {status}");
        assert!(body.contains("bodies are not accepted"), "{body}");
        // The announced body is never waited for: the connection ends.
        assert!(closed_by_server(r.get_mut()), "{req:?}: left open");
    }
    let after = scrape(server.addr());
    assert!(after.starts_with("HTTP/1.1 200") && after.contains("kvmprof_exits_total{"));
}

#[test]
fn a_client_that_never_reads_its_replies_stalls_only_itself() {
    // Default limits: the stalled client is not timed out within this test.
    let server = start(HttpLimits::default());
    let stalled = stalled_client(server.addr()).expect("pipelining");
    let t0 = Instant::now();
    let other = scrape(server.addr());
    assert!(
        other.starts_with("HTTP/1.1 200") && other.contains("kvmprof_exits_total{"),
        "a scrape beside a stalled client got {:?} after {:?}",
        other.lines().next(),
        t0.elapsed()
    );
    drop(stalled);
}

#[test]
fn a_client_that_stopped_reading_is_disconnected_after_the_idle_timeout() {
    let server = start(HttpLimits {
        idle_timeout: Duration::from_secs(1),
        ..Default::default()
    });
    // Closed with our requests unread, the server resets the connection: a write fails
    // instead of blocking on the full buffers.
    let deadline = Instant::now() + WAIT;
    let err = match stalled_client(server.addr()) {
        Err(e) => e,
        Ok(mut s) => loop {
            match s.write(&[b'x'; 1024]) {
                Err(e) if !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    break e
                }
                _ => assert!(Instant::now() < deadline, "still open after {WAIT:?}"),
            }
        },
    };
    assert!(
        matches!(
            err.kind(),
            ErrorKind::ConnectionReset | ErrorKind::BrokenPipe | ErrorKind::ConnectionAborted
        ),
        "{err}"
    );
}

#[test]
fn a_silent_connection_is_closed_after_the_idle_timeout() {
    let idle = Duration::from_millis(300);
    let server = start(HttpLimits {
        idle_timeout: idle,
        ..Default::default()
    });
    let t0 = Instant::now();
    let mut s = connect(server.addr());
    assert!(closed_by_server(&mut s), "open after {WAIT:?}");
    assert!(
        t0.elapsed() >= idle - Duration::from_millis(50),
        "closed too early"
    );
    // So is one idle after a keep-alive scrape.
    let mut s = connect(server.addr());
    s.write_all(SCRAPE).unwrap();
    let mut r = BufReader::new(s);
    let (status, _) = response(&mut r).unwrap().expect("a response");
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert!(closed_by_server(r.get_mut()), "open after {WAIT:?}");
}

#[test]
fn headers_that_never_end_are_cut_off_by_the_header_timeout() {
    let server = start(HttpLimits {
        header_timeout: Duration::from_millis(300),
        ..Default::default()
    });
    let mut s = connect(server.addr());
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\n").unwrap();
    // A header line every 50 ms keeps bytes moving, so only the header timeout can end it.
    let deadline = Instant::now() + WAIT;
    let mut buf = [0u8; 256];
    loop {
        assert!(
            Instant::now() < deadline,
            "headers still accepted after {WAIT:?}"
        );
        if s.write_all(b"X-Slow: 1\r\n").is_err() {
            break;
        }
        match s.read(&mut buf) {
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            // EOF, a reset or an error status: the server gave up on the request.
            _ => break,
        }
    }
}

#[test]
fn oversized_headers_are_refused() {
    let server = start(HttpLimits::default());
    let mut s = connect(server.addr());
    let big = "b".repeat(super::MAX_HEADER_BYTES);
    let req = format!("GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n");
    let _ = s.write_all(req.as_bytes());
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    assert!(out.starts_with("HTTP/1.1 431"), "{:?}", out.lines().next());
    assert!(scrape(server.addr()).starts_with("HTTP/1.1 200"));
}

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .count()
}

#[test]
fn held_open_connections_neither_lock_out_scrapes_nor_cost_threads() {
    let cap = 16;
    let server = start(HttpLimits {
        max_connections: cap,
        ..Default::default()
    });
    let before = threads();
    let held: Vec<TcpStream> = (0..200)
        .map(|i| {
            let mut s = connect(server.addr());
            if i % 2 == 0 {
                s.write_all(b"GET /metrics HTTP/1.1\r\n").unwrap();
            }
            s
        })
        .collect();
    // Time for a server with a thread per connection to start them.
    std::thread::sleep(Duration::from_millis(300));
    // Other tests run beside this one and start threads too: 200 connections must not add
    // anywhere near 200.
    let grown = threads().saturating_sub(before);
    assert!(grown < 40, "{grown} more threads with 200 connections held");
    // Past the cap the least recently active are closed; the newest `cap` stay.
    let deadline = Instant::now() + WAIT;
    let open = || {
        held.iter()
            .filter(|s| {
                s.set_nonblocking(true).unwrap();
                let r = (&**s).read(&mut [0u8; 64]);
                matches!(r, Err(ref e) if e.kind() == ErrorKind::WouldBlock)
            })
            .count()
    };
    while open() > cap {
        assert!(
            Instant::now() < deadline,
            "{} held connections open",
            open()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let got = scrape(server.addr());
    assert!(
        got.starts_with("HTTP/1.1 200") && got.contains("kvmprof_exits_total{"),
        "{:?}",
        got.lines().next()
    );
}

#[test]
fn a_connection_ends_after_its_lifetime_between_responses() {
    let server = start(HttpLimits {
        max_lifetime: Duration::from_millis(300),
        ..Default::default()
    });
    let s = connect(server.addr());
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut w = s;
    for n in 0..100 {
        std::thread::sleep(Duration::from_millis(50));
        if w.write_all(SCRAPE).is_err() {
            return;
        }
        match response(&mut r) {
            // Every response that starts is whole.
            Ok(Some((status, body))) => {
                assert!(status.starts_with("HTTP/1.1 200"), "{status}");
                // The text format's last family is the sample timestamp.
                let last = body.lines().last().unwrap_or("");
                assert!(
                    body.ends_with('\n')
                        && last.starts_with("kvmprof_last_sample_timestamp_seconds "),
                    "scrape {n}: cut short"
                );
            }
            Ok(None) => return,
            Err(e) => {
                assert_ne!(e.kind(), ErrorKind::UnexpectedEof, "a response cut short");
                assert!(!matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut
                ));
                return;
            }
        }
    }
    panic!("100 keep-alive scrapes over 5 s: the connection outlived its 300 ms lifetime");
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[test]
fn keep_alive_scrapes_are_as_fast_as_fresh_ones() {
    let server = start(HttpLimits::default());
    let fresh: Vec<Duration> = (0..20)
        .map(|_| {
            let t = Instant::now();
            assert!(scrape(server.addr()).starts_with("HTTP/1.1 200"));
            t.elapsed()
        })
        .collect();
    let s = connect(server.addr());
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut w = s;
    let kept: Vec<Duration> = (0..20)
        .map(|_| {
            let t = Instant::now();
            w.write_all(SCRAPE).unwrap();
            let (status, _) = response(&mut r).unwrap().expect("kept open");
            assert!(status.starts_with("HTTP/1.1 200"), "{status}");
            t.elapsed()
        })
        .collect();
    let (fresh, kept) = (median(fresh), median(kept));
    // Nagle's algorithm against the client's delayed ACK costs >= 40 ms per scrape; a
    // loaded machine slows both kinds alike.
    let bound = (fresh * 4).max(Duration::from_millis(20));
    assert!(
        kept < bound,
        "keep-alive median {kept:?}, fresh median {fresh:?}"
    );
}

#[test]
fn head_gets_headers_only_and_other_methods_are_refused() {
    let server = start(HttpLimits::default());
    let ask = |req: &str| {
        let mut s = connect(server.addr());
        s.write_all(req.as_bytes()).unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    };
    let head = ask("HEAD /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.ends_with("\r\n\r\n"), "a body after HEAD: {head}");
    let post = ask("DELETE /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(post.starts_with("HTTP/1.1 405"), "{post}");
    assert!(
        post.to_ascii_lowercase().contains("allow: get, head"),
        "{post}"
    );
    assert!(ask("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").contains("/metrics"));
}
