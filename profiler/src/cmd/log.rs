//! `kvmprof report --every 1s -f csv`: a `kvm_stat -l`-style log. Every interval, one CSV
//! line per (VM, exit reason) that had exits, each line flushed as it is written, until
//! `--duration` or a signal; the first column is the interval's end (UTC, RFC 3339).

use std::{io::Write, time::Duration};

use anyhow::{bail, Context};

use crate::{
    cli::{Format, ReportArgs},
    model::{Model, View},
    report::csv,
    sample::Sample,
    session::Env,
    source::{drive, Stop},
};

pub fn log(env: &mut Env, a: &ReportArgs, every: Duration) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    match log_to(env, a, every, &mut stdout.lock()) {
        // `kvmprof report --every 1s | head`: the reader had enough.
        Err(e) if is_broken_pipe(&e) => Ok(()),
        r => r,
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    (e.downcast_ref::<std::io::Error>()).is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
}

/// The log, written to `out`.
pub fn log_to(
    env: &mut Env,
    a: &ReportArgs,
    every: Duration,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    if a.format != Format::Csv {
        bail!("--every logs one CSV line per interval and exit reason: add -f csv");
    }
    let mut src = env.open_live()?;
    let names = src.names();
    let first = src.sample()?.context("the live source gave no sample")?;
    if let Some(p) = &a.input.ready_file {
        std::fs::write(p, b"ready\n").with_context(|| format!("writing {}", p.display()))?;
    }
    writeln!(out, "time,{}", csv::COLUMNS.join(","))?;
    out.flush()?;
    let (mut model, mut view, mut prev) = (Model::new(), View::default(), first.clone());
    let stop = Stop::from_args(a.input.duration);
    drive(src.as_mut(), &first, stop, every, &mut |s: &Sample| {
        model.refresh(&mut view, &prev, s, &names);
        prev = s.clone();
        let time = jiff::Timestamp::from_millisecond(s.wall_ms as i64)
            .map_or_else(|_| String::new(), |t| t.to_string());
        for vm in view.vms.iter().filter(|v| {
            a.vm.as_ref()
                .is_none_or(|w| w.matches(v.pid, &v.name, v.uuid.as_deref()))
        }) {
            for r in vm
                .reasons
                .iter()
                .chain(&vm.userspace)
                .filter(|r| r.count > 0)
            {
                writeln!(out, "{time},{}", csv::row(vm.pid, &vm.name, "all", r))?;
            }
        }
        out.flush()?;
        Ok(())
    })?;
    Ok(())
}
