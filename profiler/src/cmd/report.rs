//! `kvmprof report`: perf's table, JSON or CSV of one session.

use crate::{
    cli::{Format, ReportArgs},
    report as rep,
    session::{Env, Session},
};

pub fn report(env: &mut Env, a: &ReportArgs) -> anyhow::Result<()> {
    crate::out::println(&render(env, a)?)
}

/// The report as text (a table, JSON or CSV).
pub fn render(env: &mut Env, a: &ReportArgs) -> anyhow::Result<String> {
    let sampling = env.sampling();
    let data = Session::open(&a.input, env, sampling, "analyse")?.data()?;
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
                layout: a.perf_layout,
            },
        )?,
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
