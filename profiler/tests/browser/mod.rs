//! Debian's chromium, headless, driven over the DevTools protocol on a pipe
//! (`--remote-debugging-pipe`: JSON messages separated by NUL on fds 3 and 4), so a test
//! sees what a reader's browser does with a page: its console and network errors, its
//! rendering (a screenshot) and its DOM. No network port, no crate beyond serde_json.

use std::{
    io::{BufRead, BufReader, Write},
    os::{fd::AsRawFd, unix::process::CommandExt},
    path::Path,
    process::{Child, Command, Stdio},
    sync::mpsc::{channel, Receiver},
    time::Duration,
};

use serde_json::{json, Value};

pub const CHROMIUM: &str = "/usr/bin/chromium";

/// Guards against a browser that hangs (never a measure of speed: a loaded 2-core box may
/// take tens of seconds to start chromium).
const HANG: Duration = Duration::from_secs(180);

/// The screen the pages are rendered on, CSS px at scale 1.
pub const SCREEN: (u32, u32) = (1280, 900);

pub struct Browser {
    child: Child,
    to: std::io::PipeWriter,
    from: Receiver<Value>,
    /// Events received while waiting for a command's answer.
    events: Vec<Value>,
    next_id: u64,
    _profile: tempfile::TempDir,
}

/// A page loaded in its own tab, and what the browser reported about it.
pub struct Page {
    session: String,
    /// Console errors, uncaught exceptions, and error log entries (failed loads, CSP
    /// violations), one line each.
    pub errors: Vec<String>,
}

impl Browser {
    /// Starts chromium; panics (failing the test) when it is not installed.
    pub fn launch() -> Browser {
        assert!(
            Path::new(CHROMIUM).exists(),
            "{CHROMIUM} is missing: run `cargo xtask setup` (it installs the tools the tests use)"
        );
        let profile = tempfile::tempdir().unwrap();
        let (in_r, in_w) = std::io::pipe().unwrap();
        let (out_r, out_w) = std::io::pipe().unwrap();
        let log = std::fs::File::create(profile.path().join("stderr.txt")).unwrap();
        let mut cmd = Command::new(CHROMIUM);
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--force-color-profile=srgb",
            "--hide-scrollbars",
            "--remote-debugging-pipe",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
        let (r, w) = (in_r.as_raw_fd(), out_w.as_raw_fd());
        // SAFETY: only async-signal-safe calls (fcntl, dup2) between fork and exec. The ends
        // are first moved above 9 so that neither can be overwritten by the other's dup2.
        unsafe {
            cmd.pre_exec(move || {
                let r = libc::fcntl(r, libc::F_DUPFD, 10);
                let w = libc::fcntl(w, libc::F_DUPFD, 10);
                if r < 0 || w < 0 || libc::dup2(r, 3) < 0 || libc::dup2(w, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("starting chromium");
        drop((in_r, out_w));
        let (tx, from) = channel();
        std::thread::spawn(move || {
            for msg in BufReader::new(out_r).split(0) {
                let Ok(msg) = msg else { break };
                let Ok(v) = serde_json::from_slice::<Value>(&msg) else {
                    continue;
                };
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        Browser {
            child,
            to: in_w,
            from,
            events: Vec::new(),
            next_id: 0,
            _profile: profile,
        }
    }

    fn recv(&mut self) -> Value {
        match self.from.recv_timeout(HANG) {
            Ok(v) => v,
            Err(e) => {
                let log = std::fs::read_to_string(self._profile.path().join("stderr.txt"))
                    .unwrap_or_default();
                panic!("chromium did not answer ({e}); its stderr:\n{log}")
            }
        }
    }

    /// Sends a command (to a page when `session` is given) and returns its result.
    fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        let mut bytes = serde_json::to_vec(&msg).unwrap();
        bytes.push(0);
        self.to.write_all(&bytes).expect("writing to chromium");
        loop {
            let v = self.recv();
            if v["id"] == json!(id) {
                assert!(v.get("error").is_none(), "{method}: {}", v["error"]);
                return v["result"].clone();
            }
            self.events.push(v);
        }
    }

    /// Opens `url` in a new tab at the size of [`SCREEN`] and waits until it has loaded.
    pub fn open(&mut self, url: &str) -> Page {
        let target = self.call(None, "Target.createTarget", json!({ "url": "about:blank" }));
        let attached = self.call(
            None,
            "Target.attachToTarget",
            json!({ "targetId": target["targetId"], "flatten": true }),
        );
        let session = attached["sessionId"].as_str().unwrap().to_string();
        let s = Some(session.as_str());
        for domain in ["Runtime.enable", "Log.enable", "Page.enable"] {
            self.call(s, domain, json!({}));
        }
        self.call(
            s,
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": SCREEN.0, "height": SCREEN.1, "deviceScaleFactor": 1, "mobile": false }),
        );
        self.call(s, "Page.navigate", json!({ "url": url }));
        while !self
            .events
            .iter()
            .any(|e| is(e, &session, "Page.loadEventFired"))
        {
            let v = self.recv();
            self.events.push(v);
        }
        // A round trip after the load: what the page logged while loading has arrived.
        self.call(s, "Runtime.evaluate", json!({ "expression": "1" }));
        let errors = self
            .events
            .iter()
            .filter(|e| e["sessionId"] == json!(session))
            .filter_map(error_line)
            .collect();
        Page { session, errors }
    }

    /// Evaluates `expr` in the page (as DevTools does: not subject to the page's CSP) and
    /// returns its value.
    pub fn eval(&mut self, page: &Page, expr: &str) -> Value {
        let r = self.call(
            Some(&page.session),
            "Runtime.evaluate",
            json!({ "expression": expr, "returnByValue": true }),
        );
        assert!(r.get("exceptionDetails").is_none(), "{expr}: {r}");
        r["result"]["value"].clone()
    }

    /// A PNG of the page's first screen.
    pub fn screenshot(&mut self, page: &Page) -> Vec<u8> {
        use base64::Engine;
        let r = self.call(
            Some(&page.session),
            "Page.captureScreenshot",
            json!({ "format": "png" }),
        );
        base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().unwrap())
            .unwrap()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn is(e: &Value, session: &str, method: &str) -> bool {
    e["sessionId"] == json!(session) && e["method"] == json!(method)
}

/// The event as an error line, when it reports one.
fn error_line(e: &Value) -> Option<String> {
    let p = &e["params"];
    match e["method"].as_str()? {
        "Runtime.consoleAPICalled" if matches!(p["type"].as_str(), Some("error" | "assert")) => {
            Some(format!("console.{}: {}", p["type"], p["args"]))
        }
        "Runtime.exceptionThrown" => Some(format!("exception: {}", p["exceptionDetails"])),
        "Log.entryAdded" if p["entry"]["level"] == json!("error") => Some(format!(
            "{}: {} {}",
            p["entry"]["source"], p["entry"]["text"], p["entry"]["url"]
        )),
        _ => None,
    }
}
