//! The live host: kernel maps + /proc discovery, read when the consumer asks.

use crate::{
    decode::ExitNames,
    probe::{Probe, ProbeError, ProbeOptions},
    sample::Sample,
    source::Source,
    vm::Discovery,
};

/// Samples a process must have been gone for before its rows are deleted from the maps.
const FORGET_AFTER: u32 = 10;

pub struct LiveSource {
    probe: Probe,
    /// Exited processes still in the maps: tgid → consecutive samples seen dead.
    dead: std::collections::BTreeMap<u32, u32>,
    discovery: Discovery,
    names: ExitNames,
    label: String,
}

impl LiveSource {
    pub fn open(opts: &ProbeOptions) -> Result<(LiveSource, Vec<String>), ProbeError> {
        let probe = Probe::load(opts)?;
        let (names, mut warnings) = ExitNames::load(&probe.tracefs);
        for m in &probe.missing {
            warnings.push(super::lost::notice(m));
        }
        if !probe.measures_cost() {
            warnings.push(crate::caps::NO_COST.into());
        }
        if !probe.filled().in_kernel {
            warnings.push(crate::caps::FILL_BY_SYSCALLS.into());
        }
        let label = format!("live: {} ({})", hostname(), kernel_release());
        Ok((
            LiveSource {
                probe,
                dead: Default::default(),
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

    /// A VM that exited stays visible for FORGET_AFTER samples, then its rows leave the maps.
    /// `vms`: this refresh's discovery, which names every pid of `pids` (one it could not read
    /// as exited), so liveness costs no syscall of its own.
    fn forget_exited(
        &mut self,
        pids: &[u32],
        vms: &std::collections::BTreeMap<u32, crate::sample::VmInfo>,
    ) -> anyhow::Result<()> {
        let alive = |pid: u32| vms.get(&pid).is_some_and(|v| !v.exited);
        self.dead.retain(|pid, _| pids.contains(pid));
        let mut gone = Vec::new();
        for &pid in pids {
            if alive(pid) {
                self.dead.remove(&pid);
                continue;
            }
            let n = self.dead.entry(pid).or_insert(0);
            *n += 1;
            if *n >= FORGET_AFTER {
                gone.push(pid);
            }
        }
        if !gone.is_empty() {
            self.probe.forget(&gone)?;
            for pid in gone {
                self.dead.remove(&pid);
            }
        }
        Ok(())
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
        let d = &mut self.discovery;
        let (root, lines) = (&d.proc_root, &d.stat_lines);
        s.vm_cpu = crate::vm::cpu::read_all(root, &mut d.kthreads, &d.threads, lines, &s);
        self.forget_exited(&pids, &s.vms)?;
        Ok(Some(s))
    }

    /// The slow exits and the VMs only: no exit table, evidence, program statistics or CPU
    /// figures (the last sample reads them whole), no VM re-read once known, nothing forgotten
    /// (a VM gone before the last sample keeps its rows for it).
    fn keep_up(&mut self) -> anyhow::Result<Option<Sample>> {
        let mut s = Sample {
            mono_ns: crate::probe::mono_ns(),
            wall_ms: crate::probe::wall_ms(),
            ..Default::default()
        };
        let pids = self.probe.keep_up(&mut s.slow);
        let vms = self.discovery.learn(&pids);
        s.vms = vms.into_iter().map(|v| (v.pid, v)).collect();
        Ok(Some(s))
    }

    fn names(&self) -> ExitNames {
        self.names.clone()
    }

    fn describe(&self) -> String {
        self.label.clone()
    }

    fn notices(&mut self) -> Vec<String> {
        self.probe.notices()
    }

    fn missing(&self) -> Vec<String> {
        self.probe.missing.clone()
    }

    fn tracefs(&self) -> Option<std::path::PathBuf> {
        Some(self.probe.tracefs.clone())
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
