//! `kvmprof diff`: two or more sessions against the first, as a table, JSON, CSV, charts or
//! an HTML page.

use std::path::Path;

use anyhow::bail;

use crate::{
    cli::{DiffArgs, DiffFormat},
    model::VmSelector,
    report::{self as rep, diff_chart::ChartOptions},
    session::{warn, Session},
};

pub fn diff(a: &DiffArgs) -> anyhow::Result<()> {
    let out = super::html::output(a.format == DiffFormat::Html, a.output.as_deref())?;
    super::html::emit(&out, &render_diff(a)?)
}

/// The diff as text (a table, JSON, CSV, charts or an HTML page).
pub fn render_diff(a: &DiffArgs) -> anyhow::Result<String> {
    let labels = labels(a)?;
    let vms = vm_picks(a);
    if a.format == DiffFormat::Html {
        rep::diff::vm_count_fits(vms.len(), a.files.len())?;
        let files: Vec<_> = (a.files.iter().zip(&labels).enumerate())
            .map(|(i, (p, l))| {
                let vm = vms.get(i).or(vms.first()).and_then(Option::as_ref);
                (p.as_path(), Some(l.as_str()), vm)
            })
            .collect();
        return super::html::files_page(&files);
    }
    let mut data = Vec::with_capacity(a.files.len());
    for (path, label) in a.files.iter().zip(labels) {
        let session = Session::file(path)?;
        let mut d = session.data()?;
        d.slow = super::html::slow_log(&session)?;
        for w in &d.warnings {
            warn(w);
        }
        d.label = label;
        data.push(d);
    }
    let refs: Vec<&rep::Data> = data.iter().collect();
    let d = rep::diff_with(&refs, &rep::DiffOptions { vms })?;
    Ok(match a.format {
        DiffFormat::Json => rep::diff_table::render_json(&d)? + "\n",
        // (HTML returned its page above.)
        DiffFormat::Table | DiffFormat::Html => rep::diff_table::render_table(&d),
        DiffFormat::Csv => rep::diff_table::render_csv(&d),
        DiffFormat::Chart => rep::diff_chart::render_chart(&d, &chart_options(a.width)),
    })
}

/// `--label`s, or each file's stem.
fn labels(a: &DiffArgs) -> anyhow::Result<Vec<String>> {
    if a.label.is_empty() {
        return Ok(a.files.iter().map(|p| stem(p)).collect());
    }
    if a.label.len() != a.files.len() {
        bail!(
            "{} --label for {} files: give one --label per FILE, in order, or none (each \
             session is then named by its file)",
            a.label.len(),
            a.files.len()
        );
    }
    Ok(a.label.clone())
}

fn stem(p: &Path) -> String {
    p.file_stem().map_or_else(
        || p.display().to_string(),
        |s| s.to_string_lossy().into_owned(),
    )
}

/// `--vm` per session; the old `--vm-a` / `--vm-b` name the first two.
fn vm_picks(a: &DiffArgs) -> Vec<Option<VmSelector>> {
    if a.vm_a.is_none() && a.vm_b.is_none() {
        return a.vm.iter().map(|p| p.0.clone()).collect();
    }
    let mut v = vec![None; a.files.len()];
    (v[0], v[1]) = (a.vm_a.clone(), a.vm_b.clone());
    v
}

/// Chart width: `--width`, else $COLUMNS, else the terminal's, else 80; colours on a terminal
/// unless NO_COLOR is set.
fn chart_options(width: Option<u16>) -> ChartOptions {
    use std::io::IsTerminal;
    let tty = std::io::stdout().is_terminal();
    let columns = || std::env::var("COLUMNS").ok()?.trim().parse::<u16>().ok();
    let terminal = || {
        tty.then(crossterm::terminal::size)
            .and_then(Result::ok)
            .map(|(w, _)| w)
    };
    ChartOptions {
        width: width
            .or_else(columns)
            .or_else(terminal)
            .filter(|w| *w > 0)
            .unwrap_or(80),
        color: tty && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        ..ChartOptions::default()
    }
}
