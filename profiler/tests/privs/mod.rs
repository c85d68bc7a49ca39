//! For the capability tests: a throwaway user, commands run as it with an exact capability
//! set (setpriv), a terminal for the interactive commands (tmux), children that never outlive
//! the test.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use kvmprof::caps::{Cap, CapSet};

/// Runs `c`, which must succeed; a missing tool fails naming what installs it.
fn ok(c: &mut Command) -> String {
    let o = c.output().unwrap_or_else(|e| match e.kind() {
        std::io::ErrorKind::NotFound => panic!(
            "{:?} is not installed: run `cargo xtask setup` (tmux, util-linux, passwd)",
            c.get_program()
        ),
        _ => panic!("{c:?}: {e}"),
    });
    assert!(
        o.status.success(),
        "{c:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// A system user made for one test (useradd), with a directory of its own holding a copy of
/// the binary (the build tree may not be reachable by other users); removed when dropped.
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    home: PathBuf,
}

impl User {
    pub fn create(tag: &str) -> User {
        let name = format!("kvmprof-{tag}-{}", std::process::id());
        ok(Command::new("useradd").args([
            "--system",
            "--user-group",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            &name,
        ]));
        let id = |flag: &str| ok(Command::new("id").args([flag, &name])).parse().unwrap();
        let (uid, gid) = (id("-u"), id("-g"));
        let home = std::env::temp_dir().join(&name);
        let _ = std::fs::remove_dir_all(&home);
        std::fs::create_dir(&home).unwrap();
        std::os::unix::fs::chown(&home, Some(uid), Some(gid)).unwrap();
        std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o755)).unwrap();
        let user = User {
            name,
            uid,
            gid,
            home,
        };
        // By cp, not std::fs::copy: a child forked meanwhile by another test thread would hold
        // our write descriptor until its exec, and exec of the copy would fail with ETXTBSY.
        ok(Command::new("cp")
            .arg(env!("CARGO_BIN_EXE_kvmprof"))
            .arg(user.bin()));
        user
    }

    /// The binary, without file capabilities: only the ambient set counts.
    pub fn bin(&self) -> PathBuf {
        self.home.join("kvmprof")
    }

    /// A directory the user may write.
    pub fn dir(&self) -> String {
        self.home.display().to_string()
    }

    /// `file` copied into the user's directory, readable by it.
    pub fn copy_in(&self, file: &str) -> String {
        let to = self.home.join(Path::new(file).file_name().unwrap());
        std::fs::copy(file, &to).unwrap();
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o644)).unwrap();
        to.display().to_string()
    }

    /// setpriv as this user (its own groups only) with exactly `caps` effective: they are
    /// inheritable and ambient, so they survive the execve of a binary without file caps.
    pub fn command_line(&self, caps: &[Cap], args: &[&str]) -> Vec<String> {
        let list: String = caps.iter().map(|c| format!(",+{}", c.short())).collect();
        let mut v: Vec<String> = vec![
            "setpriv".into(),
            format!("--reuid={}", self.name),
            format!("--regid={}", self.name),
            "--init-groups".into(),
            format!("--inh-caps=-all{list}"),
            format!("--ambient-caps=-all{list}"),
        ];
        v.push(self.bin().display().to_string());
        v.extend(args.iter().map(|a| a.to_string()));
        v
    }

    pub fn command(&self, caps: &[Cap]) -> Command {
        let line = self.command_line(caps, &[]);
        let mut c = Command::new(&line[0]);
        c.args(&line[1..])
            .current_dir(&self.home)
            .env("HOME", &self.home);
        c
    }

    pub fn run<S: AsRef<str>>(&self, caps: &[Cap], args: &[S]) -> Output {
        // The set the command gets is exactly `caps`: checked, not assumed.
        let line = self.command_line(caps, &[]);
        let got = ok(Command::new(&line[0])
            .args(&line[1..line.len() - 1])
            .args(["cat", "/proc/self/status"]));
        let want = caps.iter().fold(0u64, |a, c| a | (1u64 << c.bit()));
        assert_eq!(
            CapSet::from_status(&got),
            CapSet(want),
            "setpriv gave another set"
        );
        self.command(caps)
            .args(args.iter().map(|a| a.as_ref()))
            .stdin(Stdio::null())
            .output()
            .expect("setpriv (util-linux) runs")
    }

    /// /dev/kvm as Debian and Fedora set it up (root:kvm 0660), with this user's group as
    /// `kvm`; the old owner and mode come back when the guard drops.
    pub fn lend_dev_kvm(&self) -> DevKvm {
        let m = std::fs::metadata("/dev/kvm").expect("/dev/kvm exists");
        std::os::unix::fs::chown("/dev/kvm", None, Some(self.gid)).unwrap();
        std::fs::set_permissions("/dev/kvm", std::fs::Permissions::from_mode(0o660)).unwrap();
        DevKvm {
            gid: m.gid(),
            mode: m.mode() & 0o7777,
        }
    }
}

impl Drop for User {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.home);
        // userdel refuses while a process of the user is still exiting (a TUI killed with
        // its tmux server): try again for a while.
        for _ in 0..50 {
            let done = Command::new("userdel")
                .arg(&self.name)
                .output()
                .is_ok_and(|o| o.status.success());
            if done {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        eprintln!("could not remove the test user {}", self.name);
    }
}

pub struct DevKvm {
    gid: u32,
    mode: u32,
}

impl Drop for DevKvm {
    fn drop(&mut self) {
        let _ = std::os::unix::fs::chown("/dev/kvm", None, Some(self.gid));
        let _ = std::fs::set_permissions("/dev/kvm", std::fs::Permissions::from_mode(self.mode));
    }
}

/// A child killed with the test, whatever happens.
pub struct Kill(Option<Child>);

impl Kill {
    pub fn spawn(c: &mut Command) -> Kill {
        Kill(Some(c.spawn().unwrap_or_else(|e| panic!("{c:?}: {e}"))))
    }

    pub fn id(&self) -> u32 {
        self.0.as_ref().map_or(0, |c| c.id())
    }

    /// SIGTERM (as systemd stops a service), then its exit.
    pub fn term(mut self) -> Output {
        let child = self.0.take().unwrap();
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        child.wait_with_output().unwrap()
    }
}

impl Drop for Kill {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// An interactive command in a detached tmux pane of its own server, kept after it exits
/// (remain-on-exit) so its last screen can be read. Its exit status comes from the shell that
/// runs it, written to a file: tmux's own record of a dead pane lags under load.
pub struct Tmux {
    sock: String,
    line: String,
    status: PathBuf,
}

impl Tmux {
    pub fn start(line: &[String]) -> Tmux {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let sock = format!("kvmprof-caps-{}-{n}", std::process::id());
        let status = std::env::temp_dir().join(format!("{sock}.status"));
        let _ = std::fs::remove_file(&status);
        let t = Tmux {
            sock,
            line: line.join(" "),
            status,
        };
        let mut c = Command::new("tmux");
        c.args(["-L", &t.sock, "-f", "/dev/null", "start-server", ";"])
            .args(["set-option", "-g", "remain-on-exit", "on", ";"])
            .args(["new-session", "-d", "-x", "160", "-y", "50"])
            .args([
                "sh",
                "-c",
                "s=$1; shift; \"$@\"; echo $? > \"$s.new\"; mv \"$s.new\" \"$s\"",
            ])
            .arg("sh")
            .arg(&t.status)
            .args(line);
        ok(&mut c);
        t
    }

    fn tmux(&self, args: &[&str]) -> String {
        ok(Command::new("tmux").args(["-L", &self.sock]).args(args))
    }

    /// The pane's text with its history, wrapped lines joined.
    pub fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-J", "-S", "-"])
    }

    /// The exit status once the command ended.
    fn status(&self) -> Option<i32> {
        let s = std::fs::read_to_string(&self.status).ok()?;
        Some(s.trim().parse().unwrap_or(-1))
    }

    /// Waits for the command to end; its exit status.
    pub fn exit_status(&self) -> i32 {
        self.until_dead(|| {})
    }

    /// Presses q until the command ends (a key typed before the TUI reads keys can be lost);
    /// its exit status.
    pub fn quit(&self) -> i32 {
        self.until_dead(|| {
            let _ = Command::new("tmux")
                .args(["-L", &self.sock, "send-keys", "q"])
                .output();
        })
    }

    fn until_dead(&self, mut nudge: impl FnMut()) -> i32 {
        let t0 = Instant::now();
        loop {
            if let Some(code) = self.status() {
                return code;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "{} still running: {}",
                self.line,
                self.screen()
            );
            nudge();
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.sock, "kill-server"])
            .output();
        let _ = std::fs::remove_file(&self.status);
    }
}

/// HTTP/1.0 GET on loopback: the body, or None if nothing answered.
pub fn get(addr: &str, path: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    Some(body)
}
