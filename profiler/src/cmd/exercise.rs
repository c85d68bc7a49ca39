//! `kvmprof exercise` (hidden): the built-in guest the demo and the real-KVM test run.

use anyhow::bail;

use crate::{cli::ExerciseArgs, exerciser};

pub fn exercise(a: &ExerciseArgs) -> anyhow::Result<()> {
    let opts = exerciser::ExerciseOpts {
        iters: a.iters,
        ops: if a.hyperv {
            exerciser::HYPERV_OPS.into()
        } else {
            a.ops.clone()
        },
        forever: a.forever,
        pause: a.pause,
        delay_every: a.delay_every,
        delay_for: a.delay_for,
        hog_cpu: a.hog_cpu,
    };
    let r = exerciser::run(&opts)?;
    crate::out::println(&format!(
        "RESULT iters={} ops={} kvm_runs={} io={} hlt={} other={} elapsed_ms={} delayed={} out_rip={:#x} run_delay_ns={}",
        a.iters,
        a.ops,
        r.kvm_runs,
        r.io,
        r.hlt,
        r.other,
        r.elapsed.as_millis(),
        r.delayed,
        exerciser::out_rip(&opts.ops).unwrap_or(0),
        r.run_delay_ns.map_or("-".into(), |d| d.to_string()),
    ))?;
    if r.other != 0 {
        bail!("the guest made {} unexpected exits", r.other);
    }
    Ok(())
}
