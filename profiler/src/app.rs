//! The subcommands' top-level flows: glue between the source, the model and the outputs.

use std::{
    process::{Child, Command as Proc},
    time::Duration,
};

use anyhow::{bail, Context};

use crate::{
    cli::{DemoArgs, ExerciseArgs, Format, Global, ReportArgs},
    exerciser, model,
    probe::ProbeOptions,
    sample::Sample,
    source::{live::LiveSource, Source},
};

fn probe_options(g: &Global) -> ProbeOptions {
    ProbeOptions {
        tracefs: g.tracefs.clone(),
        max_keys: g.max_keys,
        allow_concurrent: g.allow_concurrent,
        ..Default::default()
    }
}

fn open_live(g: &Global) -> anyhow::Result<LiveSource> {
    let (src, warnings) = LiveSource::open(&probe_options(g))?;
    for w in warnings {
        eprintln!("kvmprof: warning: {w}");
    }
    Ok(src)
}

pub fn top(g: &Global) -> anyhow::Result<()> {
    let src = open_live(g)?;
    crate::tui::run(Box::new(src), g.interval)
}

/// Kills the demo guest however the TUI ends (quit, error or panic unwinding through here).
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn demo(g: &Global, a: &DemoArgs) -> anyhow::Result<()> {
    // Attach first, so a missing privilege is reported before a guest starts.
    let src = open_live(g)?;
    let exe = std::env::current_exe().context("finding the kvmprof executable")?;
    let child = Proc::new(exe)
        .args(["exercise", "--forever", "--iters"])
        .arg(a.iters.to_string())
        .arg("--pause")
        .arg(format!("{}ms", a.pause.as_millis()))
        .args(["--", "-name", "guest=kvmprof-demo"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .context("starting the demo guest")?;
    let mut guard = ChildGuard(child);
    std::thread::sleep(Duration::from_millis(200));
    if let Ok(Some(status)) = guard.0.try_wait() {
        // Re-run in the foreground to get its one-line error (e.g. no /dev/kvm).
        let err = exerciser::run(&exerciser::ExerciseOpts {
            iters: 1,
            ops: "o".into(),
            forever: false,
            pause: Duration::ZERO,
        })
        .err()
        .map(|e| format!("{e:#}"))
        .unwrap_or_else(|| format!("exited with {status}"));
        bail!("the demo guest stopped at once: {err}");
    }
    crate::tui::run(Box::new(src), g.interval)
}

pub fn report(g: &Global, a: &ReportArgs) -> anyhow::Result<()> {
    if a.duration.is_none() && !a.until_signal {
        bail!("say how long to collect: --duration 10s, or --until-signal (stop with Ctrl-C)");
    }
    let mut src = open_live(g)?;
    let names = src.names();
    let first = src.sample()?.context("no sample")?;
    if let Some(p) = &a.ready_file {
        std::fs::write(p, b"ready\n").with_context(|| format!("writing {}", p.display()))?;
    }
    let last = collect(&mut src, &first, a.duration, g.interval)?;
    for n in src.notices() {
        eprintln!("kvmprof: kernel: {n}");
    }
    let view = model::compute(&first, &last, &names);
    match a.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&view)?),
    }
    Ok(())
}

/// Sample every `interval` until `duration` passes or SIGINT/SIGTERM arrives; returns the
/// last sample. Sampling while waiting lets discovery see short-lived VMs alive, and their
/// names are kept once they exit.
fn collect(
    src: &mut dyn Source,
    first: &Sample,
    duration: Option<Duration>,
    interval: Duration,
) -> anyhow::Result<Sample> {
    use tokio::signal::unix::{signal, SignalKind};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        // Registered once, before the first wait, so no signal falls between two waits.
        let mut int = signal(SignalKind::interrupt())?;
        let mut term = signal(SignalKind::terminate())?;
        let end = duration.map(|d| tokio::time::Instant::now() + d);
        let mut vms = first.vms.clone();
        loop {
            let step = end.map_or(interval, |e| {
                e.saturating_duration_since(tokio::time::Instant::now())
                    .min(interval)
            });
            let signalled = tokio::select! {
                _ = tokio::time::sleep(step) => false,
                _ = int.recv() => true,
                _ = term.recv() => true,
            };
            let mut s = src.sample()?.context("the source ended")?;
            for (pid, vm) in &s.vms {
                match vms.get_mut(pid) {
                    // Same process gone: keep what we knew, mark it exited.
                    Some(old) if vm.exited => old.exited = true,
                    _ => {
                        vms.insert(*pid, vm.clone());
                    }
                }
            }
            let done = signalled || end.is_some_and(|e| tokio::time::Instant::now() >= e);
            if done {
                s.vms = vms;
                return Ok(s);
            }
        }
    })
}

pub fn exercise(a: &ExerciseArgs) -> anyhow::Result<()> {
    let opts = exerciser::ExerciseOpts {
        iters: a.iters,
        ops: a.ops.clone(),
        forever: a.forever,
        pause: a.pause,
    };
    let r = exerciser::run(&opts)?;
    println!(
        "RESULT iters={} ops={} kvm_runs={} io={} hlt={} other={} elapsed_ms={}",
        a.iters,
        a.ops,
        r.kvm_runs,
        r.io,
        r.hlt,
        r.other,
        r.elapsed.as_millis()
    );
    if r.other != 0 {
        bail!("the guest made {} unexpected exits", r.other);
    }
    Ok(())
}
