//! The subcommands' top-level flows: glue between the source, the model and the outputs.

use std::{
    process::{Child, Command as Proc},
    time::Duration,
};

use anyhow::{bail, Context};

use crate::{
    advice::HostFacts,
    cli::{DemoArgs, DiffArgs, ExerciseArgs, Format, Global, RecordArgs, ReportArgs},
    exerciser, model,
    probe::ProbeOptions,
    report as rep,
    sample::Sample,
    source::{live::LiveSource, Source},
    text::printable,
};

fn probe_options(g: &Global) -> ProbeOptions {
    ProbeOptions {
        tracefs: g.tracefs.clone(),
        max_keys: g.max_keys,
        allow_concurrent: g.allow_concurrent,
        ..Default::default()
    }
}

pub(crate) fn open_live(g: &Global) -> anyhow::Result<LiveSource> {
    let (src, warnings) = LiveSource::open(&probe_options(g))?;
    for w in warnings {
        eprintln!("kvmprof: warning: {}", printable(&w.to_string()));
    }
    Ok(src)
}

/// What to run instead of the live view without a terminal.
const LIVE_INSTEAD: &str =
    "without one, use `kvmprof report --duration 10s` or `kvmprof record -o FILE`";

pub fn top(g: &Global) -> anyhow::Result<()> {
    crate::tui::require_terminal(LIVE_INSTEAD)?;
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

pub fn demo(g: &Global, a: &DemoArgs) -> anyhow::Result<()> {
    crate::tui::require_terminal(LIVE_INSTEAD)?;
    // Attach first, so a missing privilege is reported before a guest starts.
    let src = open_live(g)?;
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
        })
        .err()
        .map(|e| format!("{e:#}"))
        .unwrap_or_else(|| format!("exited with {status}"));
        bail!("the demo guest stopped at once: {err}");
    }
    crate::tui::run(Box::new(src), g.interval)
}

pub fn report(g: &Global, a: &ReportArgs) -> anyhow::Result<()> {
    let data = if let Some(path) = a.file.as_ref() {
        rep::load(path)?
    } else if let Some(path) = a.from_perf.as_ref() {
        rep::load_perf(path)?
    } else {
        let l = collect_live_for(g, a.duration, a.until_signal, a.ready_file.as_deref())?;
        rep::Data::from_samples(&l.first, &l.last, &l.names, "live")
    };
    for w in &data.warnings {
        eprintln!("kvmprof: warning: {}", printable(&w.to_string()));
    }
    let out = match a.format {
        Format::Table => rep::perf_table(
            &data,
            &rep::TableOptions {
                event: a.event,
                vm: a.vm.clone(),
                vcpu: a.vcpu,
                sort: a.sort,
                percentiles: a.percentiles,
                per_vm: true,
            },
        )?,
        Format::Json => rep::json::render(&filter_vm(data.view, a.vm.as_deref())?)?,
        Format::Csv => rep::csv::render(&filter_vm(data.view, a.vm.as_deref())?),
    };
    crate::out::println(&out)
}

/// JSON and CSV keep the whole view's shape; `--vm` narrows it to one VM (name or pid).
fn filter_vm(mut view: model::View, vm: Option<&str>) -> anyhow::Result<model::View> {
    if let Some(want) = vm {
        view.vms.retain(|v| {
            v.name == want || v.pid.to_string() == want || format!("pid {}", v.pid) == want
        });
        if view.vms.is_empty() {
            bail!("no VM named `{want}` in this session: `kvmprof report` without --vm lists them");
        }
    }
    Ok(view)
}

/// A live collection: first and last samples plus what the advice needs to know about it.
pub(crate) struct LiveSession {
    pub first: Sample,
    pub last: Sample,
    pub names: crate::decode::ExitNames,
    pub missing: Vec<String>,
    pub tracefs: std::path::PathBuf,
}

/// Attach, collect until `duration` or a signal.
pub(crate) fn collect_live_for(
    g: &Global,
    duration: Option<Duration>,
    until_signal: bool,
    ready_file: Option<&std::path::Path>,
) -> anyhow::Result<LiveSession> {
    if duration.is_none() && !until_signal {
        bail!("say what to analyse: a FILE, --from-perf FILE, --duration 10s, or --until-signal (stop with Ctrl-C)");
    }
    let mut src = open_live(g)?;
    let names = src.names();
    let first = src.sample()?.context("no sample")?;
    if let Some(p) = ready_file {
        std::fs::write(p, b"ready\n").with_context(|| format!("writing {}", p.display()))?;
    }
    let last = collect(&mut src, &first, duration, g.interval)?;
    for n in src.notices() {
        eprintln!("kvmprof: kernel: {}", printable(&n.to_string()));
    }
    Ok(LiveSession {
        first,
        last,
        names,
        missing: src.probe().missing.clone(),
        tracefs: src.probe().tracefs.clone(),
    })
}

/// Every sample of a live collection of `duration`, taken every `every` (the first right
/// after attaching): the series `check` measures storms and frame windows on.
pub(crate) fn collect_series(
    src: &mut dyn Source,
    duration: Duration,
    every: Duration,
) -> anyhow::Result<Vec<Sample>> {
    let first = src.sample()?.context("no sample")?;
    let mut all = vec![first.clone()];
    let last = collect_each(src, &first, Some(duration), every, &mut |s| {
        all.push(s.clone());
        Ok(())
    })?;
    // The last one carries the names of VMs that exited meanwhile.
    if let Some(l) = all.last_mut() {
        *l = last;
    }
    Ok(all)
}

/// Every sample of a kvmprof recording with its exit names; None when `path` is not a
/// recording.
pub(crate) fn open_recording_span_all(
    path: &std::path::Path,
) -> anyhow::Result<Option<(Vec<Sample>, crate::decode::ExitNames, HostFacts)>> {
    if !is_recording(path)? {
        return Ok(None);
    }
    let rec = open_nonempty(path)?;
    let samples = rec.samples().collect::<Result<Vec<_>, _>>()?;
    Ok(Some((
        samples,
        rec.header().names.clone(),
        recorded_host(&rec),
    )))
}

/// The facts of the host a recording was made on (see [`HostFacts::of_recording`]).
fn recorded_host(rec: &crate::store::Recording) -> HostFacts {
    let h = rec.header();
    HostFacts::of_recording(&h.host, &h.kernel, h.cpus)
}

/// Whether `path` is to be read as a recording (see `store::is_recording`); refuses anything
/// but a regular file.
fn is_recording(path: &std::path::Path) -> anyhow::Result<bool> {
    let wanted = "give the path of a .kvmprof recording or of perf kvm stat report text";
    let file = crate::store::open_regular(path, wanted)?;
    crate::store::is_recording(path, &file)
        .with_context(|| format!("{}: cannot read", path.display()))
}

/// Open a recording with samples, printing its warnings; without samples, the error carries
/// the warnings that explain why.
fn open_nonempty(path: &std::path::Path) -> anyhow::Result<crate::store::Recording> {
    let rec = crate::store::Recording::open(path)?;
    if rec.is_empty() {
        return Err(rec.no_samples().into());
    }
    for w in rec.warnings() {
        eprintln!("kvmprof: warning: {}", printable(&w.to_string()));
    }
    Ok(rec)
}

/// First and last samples of a kvmprof recording with its exit names; None when `path` is not
/// a recording (e.g. perf text).
pub(crate) fn open_recording_span(
    path: &std::path::Path,
) -> anyhow::Result<Option<(Sample, Sample, crate::decode::ExitNames, HostFacts)>> {
    if !is_recording(path)? {
        return Ok(None);
    }
    let rec = open_nonempty(path)?;
    let last = rec.sample(rec.len() - 1)?;
    let first = if rec.len() == 1 {
        Sample::default()
    } else {
        rec.sample(0)?
    };
    Ok(Some((
        first,
        last,
        rec.header().names.clone(),
        recorded_host(&rec),
    )))
}

/// `kvmprof replay FILE`: the recording in the live TUI, through the same model code.
pub fn replay(a: &crate::cli::ReplayArgs) -> anyhow::Result<()> {
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

/// `kvmprof record`: every sample goes to the file as it is taken (each frame flushed), so a
/// crash or kill -9 loses at most the last interval; SIGINT/SIGTERM finish the file cleanly.
pub fn record(g: &Global, a: &RecordArgs) -> anyhow::Result<()> {
    let mut src = open_live(g)?;
    let header = crate::store::Header {
        host: crate::source::live::hostname(),
        kernel: crate::source::live::kernel_release(),
        cpus: std::thread::available_parallelism().map_or(0, |n| n.get() as u32),
        names: src.names(),
        start_wall_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
        interval_ms: g.interval.as_millis() as u64,
        written_by: format!("kvmprof {}", env!("CARGO_PKG_VERSION")),
    };
    let mut rec = crate::store::Recorder::create(&a.output, &header)?;
    let first = src.sample()?.context("no sample")?;
    rec.append(&only_vms(&first, &a.vm))?;
    if let Some(p) = &a.ready_file {
        std::fs::write(p, b"ready\n").with_context(|| format!("writing {}", p.display()))?;
    }
    collect_each(&mut src, &first, a.duration, g.interval, &mut |s| {
        rec.append(&only_vms(s, &a.vm))?;
        Ok(())
    })?;
    let (frames, bytes) = (rec.frames(), rec.bytes_written());
    rec.finish()?;
    eprintln!(
        "kvmprof: recorded {frames} samples to {} ({bytes} bytes)",
        a.output.display()
    );
    Ok(())
}

/// The sample restricted to VMs named (or pid-numbered) in `vms`; all of it when empty.
fn only_vms(s: &Sample, vms: &[String]) -> Sample {
    if vms.is_empty() {
        return s.clone();
    }
    let keep = |tgid: u32| {
        s.vms.get(&tgid).is_some_and(|v| vms.contains(&v.name))
            || vms.iter().any(|n| *n == tgid.to_string())
    };
    let mut out = s.clone();
    out.stats.retain(|k, _| keep(k.tgid));
    out.in_flight.retain(|k, _| keep(k.tgid));
    out.evidence.retain(|k, _| keep(k.tgid));
    out.vms.retain(|pid, _| keep(*pid));
    out
}

pub fn diff(a: &DiffArgs) -> anyhow::Result<()> {
    let (da, db) = (rep::load(&a.a)?, rep::load(&a.b)?);
    for w in da.warnings.iter().chain(&db.warnings) {
        eprintln!("kvmprof: warning: {}", printable(&w.to_string()));
    }
    let d = rep::diff_with(
        &da,
        &db,
        &rep::DiffOptions {
            vm_a: a.vm_a.clone(),
            vm_b: a.vm_b.clone(),
        },
    )?;
    match a.format {
        Format::Json => crate::out::println(&rep::diff::render_json(&d)?)?,
        Format::Table => crate::out::print(&rep::diff::render_table(&d))?,
        Format::Csv => bail!("diff prints a table or JSON: use --format table or --format json"),
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
    collect_each(src, first, duration, interval, &mut |_| Ok(()))
}

/// `collect`, calling `each` with every sample taken (in order).
fn collect_each(
    src: &mut dyn Source,
    first: &Sample,
    duration: Option<Duration>,
    interval: Duration,
    each: &mut dyn FnMut(&Sample) -> anyhow::Result<()>,
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
            each(&s)?;
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
        ops: if a.hyperv {
            exerciser::HYPERV_OPS.into()
        } else {
            a.ops.clone()
        },
        forever: a.forever,
        pause: a.pause,
    };
    let r = exerciser::run(&opts)?;
    crate::out::println(&format!(
        "RESULT iters={} ops={} kvm_runs={} io={} hlt={} other={} elapsed_ms={}",
        a.iters,
        a.ops,
        r.kvm_runs,
        r.io,
        r.hlt,
        r.other,
        r.elapsed.as_millis()
    ))?;
    if r.other != 0 {
        bail!("the guest made {} unexpected exits", r.other);
    }
    Ok(())
}
