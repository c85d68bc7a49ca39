//! `kvmprof report --every 1s -f csv`: a `kvm_stat -l`-style log. Every interval, one CSV
//! line per (VM, exit reason) that had exits, flushed at the end of each interval, until
//! `--duration` or a signal; the first column is the interval's end (UTC, RFC 3339).

use std::{io::Write, time::Duration};

use anyhow::{bail, Context};

use crate::{
    cli::{Format, ReportArgs},
    model::{Model, View},
    out::write_to,
    report::csv,
    sample::Sample,
    session::Env,
    source::{drive, Stop},
};

/// The log on stdout (`| head` ends it quietly, as `out` does for every command).
pub fn log(env: &mut Env, a: &ReportArgs, every: Duration) -> anyhow::Result<()> {
    log_to(env, a, every, &mut std::io::stdout().lock())
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
    write_to(out, &format!("time,{}\n", csv::COLUMNS.join(",")))?;
    // VM rows only: no vCPU rows to fill.
    let (mut model, mut view, mut prev) = (Model::folded(), View::default(), first.clone());
    let stop = Stop::from_args(a.input.live_for());
    drive(
        src.as_mut(),
        &first,
        stop,
        every,
        false,
        &mut |s: &Sample| {
            model.refresh(&mut view, &prev, s, &names);
            prev = s.clone();
            let time = jiff::Timestamp::from_millisecond(s.wall_ms as i64)
                .map_or_else(|_| String::new(), |t| t.to_string());
            let mut lines = String::new();
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
                    lines.push_str(&format!(
                        "{time},{}\n",
                        csv::row(
                            vm.pid,
                            &vm.name,
                            "all",
                            r,
                            view.sched_split,
                            csv::vm_cpu(vm)
                        )
                    ));
                }
            }
            write_to(out, &lines)
        },
    )?;
    Ok(())
}
