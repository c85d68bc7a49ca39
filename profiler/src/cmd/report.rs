//! `kvmprof report`: perf's table, JSON, CSV or HTML of one session.

use crate::{
    cli::{Format, ReportArgs},
    report as rep,
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
    let sampling = env.sampling();
    let session = Session::open(&a.input, env, sampling, "analyse")?;
    let data = session.data()?;
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
