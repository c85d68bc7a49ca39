//! The live host: kernel maps + /proc discovery, read when the consumer asks.

use crate::{
    decode::ExitNames,
    probe::{Probe, ProbeError, ProbeOptions},
    sample::Sample,
    source::Source,
    vm::Discovery,
};

pub struct LiveSource {
    probe: Probe,
    discovery: Discovery,
    names: ExitNames,
    label: String,
}

impl LiveSource {
    pub fn open(opts: &ProbeOptions) -> Result<(LiveSource, Vec<String>), ProbeError> {
        let probe = Probe::load(opts)?;
        let (names, mut warnings) = ExitNames::load(&probe.tracefs);
        for m in &probe.missing {
            warnings.push(format!("tracepoint {m} is absent on this kernel"));
        }
        let label = format!("live: {} ({})", hostname(), kernel_release());
        Ok((
            LiveSource {
                probe,
                discovery: Discovery::host(),
                names,
                label,
            },
            warnings,
        ))
    }

    pub fn probe(&self) -> &Probe {
        &self.probe
    }
}

impl Source for LiveSource {
    fn sample(&mut self) -> anyhow::Result<Option<Sample>> {
        let mut s = self.probe.sample()?;
        let mut pids: Vec<u32> = s.stats.keys().map(|k| k.tgid).collect();
        pids.extend(s.in_flight.keys().map(|k| k.tgid));
        pids.sort_unstable();
        pids.dedup();
        s.vms = self
            .discovery
            .refresh(&pids)
            .into_iter()
            .map(|v| (v.pid, v))
            .collect();
        Ok(Some(s))
    }

    fn names(&self) -> ExitNames {
        self.names.clone()
    }

    fn describe(&self) -> String {
        self.label.clone()
    }
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "host".into())
}

pub fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown kernel".into())
}
