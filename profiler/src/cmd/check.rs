//! `kvmprof check`: the load-test gate. Measures a session, compares it with thresholds,
//! exits 0 pass / 1 fail / 2 could not measure.

use std::time::SystemTime;

use anyhow::{bail, Context};

use crate::{
    advice::{self, AdviceSummary, HostFacts, Input},
    check::{self, CheckReport, Thresholds},
    cli::{AdviseFormat, CheckArgs},
    model,
    sample::Sample,
    session::{Env, Sampling, Session},
};

/// Returns the process exit code: 0 pass, 1 a threshold failed, 2 could not measure.
pub fn check(env: &mut Env, a: &CheckArgs) -> anyhow::Result<u8> {
    let (code, text) = run(env, a)?;
    crate::out::print(&text)?;
    Ok(code)
}

/// The exit code and what to print (the JUnit file, if asked for, is written).
pub fn run(env: &mut Env, a: &CheckArgs) -> anyhow::Result<(u8, String)> {
    if a.example {
        return Ok((0, check::EXAMPLE_TOML.to_string()));
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
    let sampling = Sampling {
        every: a.sample_every,
        keep_all: true,
    };
    let session = if Session::is_live(&a.input) {
        if a.input.live_for().is_none() && !a.input.until_signal {
            bail!(
                "say what to check: --duration 30s (live), a recording FILE, or --from-perf FILE"
            );
        }
        let wants_slow = t.max_slow_per_s.is_some()
            || t.max_slow_dropped.is_some()
            || t.reasons.iter().any(|r| r.max_slow_per_s.is_some());
        if wants_slow && env.global.slow_cfg().threshold_ns == 0 {
            bail!("slow-exit thresholds need the slow-exit log: drop --slow off (or give --slow TIME, default 500us)");
        }
        let wants_wait =
            t.max_wait_pct.is_some() || t.reasons.iter().any(|r| r.max_wait_pct.is_some());
        if wants_wait && env.global.no_sched_split {
            bail!("wait thresholds (max_wait_pct) need the scheduler split: drop --no-sched-split");
        }
        let src = env.open_live()?;
        // Names in the thresholds are checked against this kernel's tables before the run.
        t.validate(&src.names())?;
        match Session::live(src, &a.input, sampling) {
            Ok(s) => s,
            // Attached, then failed: could not measure (exit 2, with the reason in JUnit).
            Err(e) => {
                let r = CheckReport::could_not_measure(&format!("{e:#}"), &t, &a.vm);
                return finish(a, &r);
            }
        }
    } else {
        Session::open(&a.input, env, sampling, "check")?
    };
    let (view, series, advice, slow) = if let Some(imp) = session.perf_import() {
        // A paste from another host: none of this host's facts.
        let adv = wants_advice
            .then(|| AdviceSummary::from(&advice::analyze(&Input::from_perf(imp, None))));
        (session.data()?.view, Vec::new(), adv, None)
    } else {
        let names = session.names();
        t.validate(&names)?;
        let host = session.host();
        let samples = session.series()?;
        let slow = session
            .has_slow_log()
            .then(|| check::SlowCounts::of(&samples));
        let (view, series, adv) = summarise(&samples, &names, wants_advice.then_some(host));
        (view, series, adv, slow)
    };
    let r = check::evaluate(&view, &series, &t, &a.vm, advice.as_ref(), slow.as_ref());
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

fn finish(a: &CheckArgs, r: &CheckReport) -> anyhow::Result<(u8, String)> {
    let text = match a.format {
        AdviseFormat::Text => check::summary(r),
        AdviseFormat::Json => check::to_json(r) + "\n",
    };
    if let Some(path) = a.junit.as_ref() {
        let xml = check::junit(
            r,
            &check::timestamp_utc(SystemTime::now()),
            &crate::source::live::hostname(),
        );
        std::fs::write(path, xml).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok((u8::try_from(r.exit_code()).unwrap_or(2), text))
}
