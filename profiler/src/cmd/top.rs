//! The TUI commands: `top` (the default), `demo` (a built-in guest shown live) and `replay`.

use std::{
    process::{Child, Command as Proc},
    time::Duration,
};

use anyhow::{bail, Context};

use crate::{
    cli::{DemoArgs, ReplayArgs},
    exerciser,
    session::Env,
};

/// What to run instead of the live view without a terminal.
const LIVE_INSTEAD: &str =
    "without one, use `kvmprof report --duration 10s` or `kvmprof record -o FILE`";

pub fn top(env: &mut Env) -> anyhow::Result<()> {
    crate::tui::require_terminal(LIVE_INSTEAD)?;
    let src = env.open_live()?;
    crate::tui::run(src, env.global.interval)
}

/// Kills the demo guest however the TUI ends (quit, error or panic unwinding through here).
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The demo guest must not outlive kvmprof, however kvmprof ends (kill -9 included, where no
/// destructor runs): the kernel sends it SIGKILL when the thread that spawned it exits.
fn die_with_parent(cmd: &mut Proc) {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs in the forked child before exec and makes only async-signal-safe
    // calls (prctl, getppid, _exit) on a value copied in; it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before the prctl: then nobody would kill us.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
}

pub fn demo(env: &mut Env, a: &DemoArgs) -> anyhow::Result<()> {
    crate::tui::require_terminal(LIVE_INSTEAD)?;
    // Attach first, so a missing privilege is reported before a guest starts.
    let src = env.open_live()?;
    let exe = std::env::current_exe().context("finding the kvmprof executable")?;
    let mut cmd = Proc::new(exe);
    cmd.args(["exercise", "--forever", "--iters"])
        .arg(a.iters.to_string())
        .arg("--pause")
        .arg(format!("{}ms", a.pause.as_millis()))
        .args(["--", "-name", "guest=kvmprof-demo"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    die_with_parent(&mut cmd);
    let child = cmd.spawn().context("starting the demo guest")?;
    let mut guard = ChildGuard(child);
    std::thread::sleep(Duration::from_millis(200));
    if let Ok(Some(status)) = guard.0.try_wait() {
        // Re-run in the foreground to get its one-line error (e.g. no /dev/kvm).
        let err = exerciser::run(&exerciser::ExerciseOpts {
            iters: 1,
            ops: "o".into(),
            forever: false,
            pause: Duration::ZERO,
            delay_every: 0,
            delay_for: Duration::ZERO,
            hog_cpu: None,
        })
        .err()
        .map(|e| format!("{e:#}"))
        .unwrap_or_else(|| format!("exited with {status}"));
        bail!("the demo guest stopped at once: {err}");
    }
    crate::tui::run(src, env.global.interval)
}

/// `kvmprof replay FILE`: the recording in the live TUI, through the same model code.
pub fn replay(a: &ReplayArgs) -> anyhow::Result<()> {
    crate::tui::require_terminal(&format!(
        "without one, use `kvmprof report {}`",
        a.file.display()
    ))?;
    let src = crate::source::replay::ReplaySource::open(&a.file)?;
    if src.is_empty() {
        return Err(src.recording().no_samples().into());
    }
    crate::tui::run_replay(src)
}
