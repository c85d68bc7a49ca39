//! `kvmprof report` (perf's table, JSON or CSV of one session) and `kvmprof diff` (two).

use anyhow::bail;

use crate::{
    cli::{DiffArgs, Format, ReportArgs},
    report as rep,
    session::{warn, Env, Session},
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

pub fn diff(a: &DiffArgs) -> anyhow::Result<()> {
    crate::out::print(&render_diff(a)?)
}

/// The diff as text (a table or JSON).
pub fn render_diff(a: &DiffArgs) -> anyhow::Result<String> {
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
        Format::Csv => bail!("diff prints a table or JSON: use --format table or --format json"),
    })
}
