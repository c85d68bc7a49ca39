//! `report --format html` and `diff --format html`: sessions, each with its advice, as one
//! page (report::html draws it); and where `-o` sends a report of any format.

use std::path::Path;

use crate::{
    advice, heatmap,
    model::VmSelector,
    report::{
        html::{self, Output},
        slow, Data,
    },
    session::{warn, Session},
};

/// A session of the page: its data and its advice (as `advise` computes them), narrowed to
/// one VM when `vm` names one. perf text's import warnings (also on stderr) go into the page.
pub fn part(
    session: &Session,
    data: Data,
    vm: Option<&VmSelector>,
) -> anyhow::Result<html::Session> {
    let mut data = data;
    if let Some(imp) = session.perf_import() {
        data.warnings
            .extend(imp.warnings.iter().map(|w| w.to_string()));
    }
    let mut input = super::advise::input(session, None)?;
    if let Some(sel) = vm {
        data.view = sel.narrow(std::mem::take(&mut data.view))?;
        input.view = sel.narrow(std::mem::take(&mut input.view))?;
    }
    let heat = heat_rows(session, &data)?;
    data.slow = slow_log(session)?;
    Ok(html::Session {
        data,
        advice: Some(advice::analyze(&input)),
        heat,
    })
}

/// The slow-exit log over the session's span (what its first sample carries came before it);
/// None when the session has none. Reads every frame.
pub fn slow_log(session: &Session) -> anyhow::Result<Option<slow::Log>> {
    if !session.has_slow_log() {
        return Ok(None);
    }
    let all = slow::Filter {
        min_ns: 0,
        pid: None,
        vcpu: None,
    };
    let mut log = slow::collect(session.samples(), &session.names(), &all)?;
    let start = session.span()?.older.mono_ns;
    log.lines.retain(|l| l.entry_mono_ns > start);
    Ok(Some(log))
}

/// The heatmap rows the page may draw: of the VMs in `data`, the reasons that cost most
/// (per VM and over all of them; the page picks its top ones among these). None for perf text.
fn heat_rows(session: &Session, data: &Data) -> anyhow::Result<Option<heatmap::Series>> {
    if session.perf_import().is_some() {
        return Ok(None);
    }
    // Twice the histograms a scope shows, so a diff's top reasons of another session are
    // likely among them too.
    const KEEP: usize = 6;
    let top = |rows: &mut Vec<(String, u64)>| {
        rows.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        rows.truncate(KEEP);
    };
    let mut names: Vec<String> = Vec::new();
    let mut all: Vec<(String, u64)> = Vec::new();
    for vm in &data.view.vms {
        let mut rows: Vec<(String, u64)> = Vec::new();
        for r in vm.reasons.iter().filter(|r| !r.hlt) {
            rows.push((r.name.to_string(), r.total_ns));
            match all.iter_mut().find(|(n, _)| *n == *r.name) {
                Some((_, t)) => *t += r.total_ns,
                None => all.push((r.name.to_string(), r.total_ns)),
            }
        }
        top(&mut rows);
        names.extend(rows.into_iter().map(|(n, _)| n));
    }
    top(&mut all);
    names.extend(all.into_iter().map(|(n, _)| n));
    names.sort();
    names.dedup();
    let filter = heatmap::Filter {
        pid: (data.view.vms.len() == 1).then(|| data.view.vms[0].pid),
        only: Some(names),
        ..Default::default()
    };
    Ok(Some(heatmap::collect(
        session.samples(),
        &session.names(),
        &filter,
    )?))
}

/// The page of one session.
pub fn report_page(
    session: &Session,
    data: Data,
    vm: Option<&VmSelector>,
) -> anyhow::Result<String> {
    let label = data.label.clone();
    Ok(html::render(&[(label, part(session, data, vm)?)])?)
}

/// The page of N recordings or perf texts, any mix, the first as the base: each named by
/// its label, or else by its path, and narrowed to a VM when one is given.
pub fn files_page(files: &[(&Path, Option<&str>, Option<&VmSelector>)]) -> anyhow::Result<String> {
    let mut parts = Vec::new();
    for &(path, label, vm) in files {
        let session = Session::file(path)?;
        let data = session.data()?;
        for w in &data.warnings {
            warn(w);
        }
        let label = label.map_or_else(|| data.label.clone(), str::to_string);
        parts.push((label, part(&session, data, vm)?));
    }
    Ok(html::render(&parts)?)
}

/// Where a report goes: stdout without `-o`, except for an HTML page, which needs `-o` (a page
/// on a terminal helps nobody). Checked before any work is done.
pub fn output(page: bool, arg: Option<&Path>) -> anyhow::Result<Output> {
    Ok(match (page, arg) {
        (true, _) | (_, Some(_)) => Output::of(arg)?,
        (false, None) => Output::Stdout,
    })
}

/// Writes the report where `out` says.
pub fn emit(out: &Output, text: &str) -> anyhow::Result<()> {
    match out {
        Output::Stdout => crate::out::print(text),
        Output::File(p) => Ok(html::write(p, text)?),
    }
}
