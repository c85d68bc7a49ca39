//! `kvmprof report` (perf's table, JSON, CSV or HTML of one session) and `kvmprof diff` (two).

use anyhow::bail;

use crate::{
    cli::{DiffArgs, Format, ReportArgs},
    report as rep,
    session::{warn, Env, Session},
};

pub fn report(env: &mut Env, a: &ReportArgs) -> anyhow::Result<()> {
    let out = super::html::output(a.format, a.output.as_deref())?;
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

pub fn diff(a: &DiffArgs) -> anyhow::Result<()> {
    let out = super::html::output(a.format, a.output.as_deref())?;
    super::html::emit(&out, &render_diff(a)?)
}

/// The diff as text (a table, JSON or an HTML page).
pub fn render_diff(a: &DiffArgs) -> anyhow::Result<String> {
    if a.format == Format::Html {
        return super::html::diff_page(a);
    }
    let (da, db) = (Session::file(&a.a)?.data()?, Session::file(&a.b)?.data()?);
    for w in da.warnings.iter().chain(&db.warnings) {
        warn(w);
    }
    let d = rep::diff_with(
        &da,
        &db,
        &rep::DiffOptions {
            vm_a: a.vm_a.clone(),
            vm_b: a.vm_b.clone(),
        },
    )?;
    Ok(match a.format {
        Format::Json => rep::diff::render_json(&d)? + "\n",
        Format::Table => rep::diff::render_table(&d),
        Format::Csv | Format::Html => {
            bail!("diff prints a table, JSON or HTML: use --format table, json or html")
        }
    })
}
