//! `kvmprof record`: every sample goes to the file as it is taken (each frame flushed), so a
//! crash or kill -9 loses at most the last interval; SIGINT/SIGTERM finish the file cleanly.

use anyhow::Context;

use crate::{
    cli::RecordArgs,
    model::VmSelector,
    sample::Sample,
    session::Env,
    source::{drive, Stop},
};

pub fn record(env: &mut Env, a: &RecordArgs) -> anyhow::Result<()> {
    let mut src = env.open_live()?;
    let header = crate::store::Header {
        host: crate::source::live::hostname(),
        kernel: crate::source::live::kernel_release(),
        cpus: std::thread::available_parallelism().map_or(0, |n| n.get() as u32),
        names: src.names(),
        start_wall_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
        interval_ms: env.global.interval.as_millis() as u64,
        written_by: format!("kvmprof {}", env!("CARGO_PKG_VERSION")),
    };
    let mut rec = crate::store::Recorder::create(&a.output, &header)?;
    let first = src.sample()?.context("no sample")?;
    rec.append(&only_vms(&first, &a.vm))?;
    if let Some(p) = &a.ready_file {
        std::fs::write(p, b"ready\n").with_context(|| format!("writing {}", p.display()))?;
    }
    let stop = Stop::from_args(a.duration);
    drive(
        src.as_mut(),
        &first,
        stop,
        env.global.interval,
        false,
        &mut |s| {
            rec.append(&only_vms(s, &a.vm))?;
            Ok(())
        },
    )?;
    let (frames, bytes) = (rec.frames(), rec.bytes_written());
    rec.finish()?;
    eprintln!(
        "kvmprof: recorded {frames} samples to {} ({bytes} bytes)",
        a.output.display()
    );
    Ok(())
}

/// The sample restricted to the VMs `vms` name; all of it when empty. A VM is kept from the
/// first sample that names it (its metadata may arrive after its first exits).
fn only_vms(s: &Sample, vms: &[VmSelector]) -> Sample {
    if vms.is_empty() {
        return s.clone();
    }
    let keep = |tgid: u32| {
        vms.iter().any(|sel| match s.vms.get(&tgid) {
            Some(v) => sel.matches(tgid, &v.name, v.uuid.as_deref()),
            None => sel.matches(tgid, "", None),
        })
    };
    let mut out = s.clone();
    out.stats = s
        .stats
        .iter()
        .filter(|(k, _)| keep(k.tgid))
        .map(|(k, v)| (*k, v.clone()))
        .collect();
    out.in_flight.retain(|k, _| keep(k.tgid));
    out.evidence.retain(|k, _| keep(k.tgid));
    out.vms.retain(|pid, _| keep(*pid));
    out
}
