//! `kvmprof check` and `kvmprof serve`: the two ways kvmprof leaves the terminal.

use std::time::SystemTime;

use anyhow::{bail, Context};

use crate::{
    advice::{self, HostFacts, Input},
    app::{collect_series, open_live, open_recording_span_all},
    check::{self, AdviceSummary, CheckReport, Thresholds},
    cli::{AdviseFormat, CheckArgs, Global, ServeArgs},
    export, model, report,
    sample::Sample,
    source::Source,
    text::printable,
};

/// Returns the process exit code: 0 pass, 1 a threshold failed, 2 could not measure.
pub fn check(g: &Global, a: &CheckArgs) -> anyhow::Result<u8> {
    if a.example {
        crate::out::print(check::EXAMPLE_TOML)?;
        return Ok(0);
    }
    let mut t = match a.config.as_ref() {
        Some(p) => Thresholds::load(p)?,
        None => Thresholds::default(),
    };
    let mut flags = Thresholds::default();
    for kv in &a.thresholds {
        flags.set(kv)?;
    }
    if let Some(f) = a.fail_on.as_deref() {
        flags.set(&format!("fail_on={f}"))?;
    }
    t = t.merge(flags);
    let wants_advice = t.fail_on.is_some();

    let (view, series, advice) = if let Some(path) = a.from_perf.as_ref() {
        let data = report::load_perf(path)?;
        for w in &data.warnings {
            eprintln!("kvmprof: warning: {}", printable(&w.to_string()));
        }
        let adv = wants_advice.then(|| {
            // A paste from another host: none of this host's facts.
            AdviceSummary::from(&advice::analyze(&Input::from_view(
                data.view.clone(),
                HostFacts::default(),
            )))
        });
        (data.view, Vec::new(), adv)
    } else if let Some(path) = a.file.as_ref() {
        match open_recording_span_all(path)? {
            Some((samples, names, host)) => {
                t.validate(&names)?;
                summarise(&samples, &names, wants_advice.then_some(host))
            }
            None => {
                let data = report::load(path)?;
                for w in &data.warnings {
                    eprintln!("kvmprof: warning: {}", printable(&w.to_string()));
                }
                (data.view, Vec::new(), None)
            }
        }
    } else {
        let Some(d) = a.duration else {
            bail!(
                "say what to check: --duration 30s (live), a recording FILE, or --from-perf FILE"
            );
        };
        let mut src = open_live(g)?;
        let names = src.names();
        t.validate(&names)?;
        let samples = match collect_series(&mut src, d, a.sample_every) {
            Ok(s) => s,
            Err(e) => {
                let r = CheckReport::could_not_measure(&format!("{e:#}"), &t, &a.vm);
                return finish(a, &r);
            }
        };
        summarise(&samples, &names, wants_advice.then(HostFacts::local))
    };
    let r = check::evaluate(&view, &series, &t, &a.vm, advice.as_ref());
    finish(a, &r)
}

/// Whole-run view, per-interval views (storms, frame windows) and optional advice.
fn summarise(
    samples: &[Sample],
    names: &crate::decode::ExitNames,
    advice_host: Option<HostFacts>,
) -> (model::View, Vec<model::View>, Option<AdviceSummary>) {
    let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
        return (model::View::default(), Vec::new(), None);
    };
    let view = model::compute(first, last, names);
    let series = samples
        .windows(2)
        .map(|w| model::compute(&w[0], &w[1], names))
        .collect();
    let adv = advice_host.map(|host| {
        AdviceSummary::from(&advice::analyze(&Input::from_samples(
            first, last, names, host,
        )))
    });
    (view, series, adv)
}

fn finish(a: &CheckArgs, r: &CheckReport) -> anyhow::Result<u8> {
    match a.format {
        AdviseFormat::Text => crate::out::print(&check::summary(r))?,
        AdviseFormat::Json => crate::out::println(&check::to_json(r))?,
    }
    if let Some(path) = a.junit.as_ref() {
        let xml = check::junit(
            r,
            &check::timestamp_utc(SystemTime::now()),
            &crate::source::live::hostname(),
        );
        std::fs::write(path, xml).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(u8::try_from(r.exit_code()).unwrap_or(2))
}

pub fn serve(g: &Global, a: &ServeArgs) -> anyhow::Result<()> {
    let src = open_live(g)?;
    export::serve(
        Box::new(src),
        export::ServeOpts {
            listen: a.listen,
            interval: g.interval,
            export: export::ExportOpts {
                top_reasons: a.top_reasons,
                per_vcpu: a.per_vcpu,
                keep_exited: a.keep_exited,
            },
            advice_window: (!a.no_advice).then_some(std::time::Duration::from_secs(60)),
            ready_file: a.ready_file.clone(),
            http: export::HttpLimits::default(),
        },
    )
}
