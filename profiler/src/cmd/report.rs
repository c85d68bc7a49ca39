//! `kvmprof report`: perf's table, JSON, CSV or HTML of one session.

use anyhow::bail;

use crate::{
    cli::{Format, ReportArgs},
    heatmap, report as rep,
    session::{Env, Session},
};

pub fn report(env: &mut Env, a: &ReportArgs) -> anyhow::Result<()> {
    if let Some(every) = a.every {
        return super::log::log(env, a, every);
    }
    let out = super::html::output(a.format == Format::Html, a.output.as_deref())?;
    let mut text = render(env, a)?;
    if !text.ends_with('\n') {
        text.push('\n');
    }
    super::html::emit(&out, &text)
}

/// The report as text (a table, JSON, CSV or an HTML page).
pub fn render(env: &mut Env, a: &ReportArgs) -> anyhow::Result<String> {
    let mut sampling = env.sampling();
    if let Some(min) = a.global.slow {
        return slow(env, a, min);
    }
    if a.format == Format::PerfLive {
        bail!("-f perf-live prints perf's slow-exit lines: add --slow TIME (e.g. --slow 1ms)");
    }
    if a.heatmap {
        if a.format != Format::Csv {
            bail!("--heatmap prints CSV: add -f csv (the HTML report, -f html, draws the heatmaps itself)");
        }
        if a.event != rep::Event::Vmexit {
            bail!("--heatmap is of exits: leave out --event (MSR, port and MMIO accesses have no handling times)");
        }
        // Every interval is a column of the heatmap.
        sampling.keep_all = true;
    }
    let session = Session::open(&a.input, env, sampling, "analyse")?;
    let data = session.data()?;
    if a.heatmap {
        return heatmap_csv(&session, &data, a);
    }
    let out = match a.format {
        Format::Html => super::html::report_page(&session, data, a.vm.as_ref())?,
        Format::Table => rep::perf_table(
            &data,
            &rep::TableOptions {
                event: a.event,
                vm: a.vm.clone(),
                vcpu: a.vcpu,
                sort: a.sort,
                percentiles: a.percentiles,
                per_vm: true,
                layout: a.perf_layout,
            },
        )?,
        Format::PerfLive => unreachable!("refused above"),
        // MSR, port and MMIO accesses: their own rows (report/access.rs).
        Format::Json | Format::Csv if a.event != rep::Event::Vmexit => {
            let pid = match &a.vm {
                Some(sel) => Some(sel.find(&data.view)?.pid),
                None => None,
            };
            let rows = rep::access::accesses(&data, a.event, pid, a.vcpu)?;
            if a.format == Format::Json {
                rep::access::json(a.event, &rows)?
            } else {
                rep::access::csv(&rows)
            }
        }
        // JSON and CSV keep the whole view's shape; `--vm` narrows it to one VM.
        Format::Json | Format::Csv => {
            let view = match &a.vm {
                Some(sel) => sel.narrow(data.view)?,
                None => data.view,
            };
            if a.format == Format::Json {
                rep::json::render(&view)?
            } else {
                rep::csv::render(&view)
            }
        }
    };
    Ok(out)
}

/// `--heatmap -f csv`: the session's heatmap rows, narrowed as `--vm`, `--vcpu`, `--reason` say.
fn heatmap_csv(session: &Session, data: &rep::Data, a: &ReportArgs) -> anyhow::Result<String> {
    if session.perf_import().is_some() {
        bail!("{}: perf text has no intervals, only totals: --heatmap needs a kvmprof recording (kvmprof record) or a live collection (--duration)", crate::text::printable(&data.label));
    }
    let pid = match &a.vm {
        Some(sel) => Some(sel.find(&data.view)?.pid),
        None => None,
    };
    let filter = heatmap::Filter {
        pid,
        vcpu: a.vcpu,
        reason: a.reason.clone(),
        only: None,
    };
    let series = heatmap::collect(session.samples(), &session.names(), &filter)?;
    if series.intervals.is_empty() {
        bail!(
            "{}: one sample, no interval: a heatmap needs a recording of at least two samples",
            crate::text::printable(&data.label)
        );
    }
    Ok(heatmap::csv::render(&series))
}

/// `--slow TIME`: the logged exits of at least TIME, one per line.
fn slow(env: &mut Env, a: &ReportArgs, min: std::time::Duration) -> anyhow::Result<String> {
    if min.is_zero() {
        bail!("--slow off asks for no slow exits: give the least handling time to print, e.g. --slow 1ms");
    }
    if a.heatmap || a.format == Format::Html {
        bail!("--slow prints the slow-exit log as a table, -f json, -f csv or -f perf-live");
    }
    let session = Session::open(&a.input, env, env.sampling(), "analyse")?;
    if session.perf_import().is_some() {
        bail!("perf text holds no slow-exit log: --slow needs a kvmprof recording (format 4, kvmprof ≥ 0.1 with --slow) or a live collection (--duration)");
    }
    // The whole session's view only to find the VM `--vm` names.
    let pid = match &a.vm {
        Some(sel) => Some(sel.find(&session.data()?.view)?.pid),
        None => None,
    };
    let filter = rep::slow::Filter {
        min_ns: u64::try_from(min.as_nanos()).unwrap_or(u64::MAX),
        pid,
        vcpu: a.vcpu,
    };
    let log = rep::slow::collect(session.samples(), &session.names(), &filter)?;
    Ok(match a.format {
        Format::Json => rep::slow::json(&log)?,
        Format::Csv => rep::slow::csv(&log),
        Format::PerfLive => rep::slow::perf_live(&log),
        _ => rep::slow::table(&log, &filter),
    })
}
