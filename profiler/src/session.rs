//! The session a command looks at, opened in one place from one set of arguments
//! ([`InputArgs`]): a kvmprof recording, a `perf kvm stat` text report, or a live collection
//! for a duration or until a signal. Commands ask it for the span (first and last sample)
//! or the series (every sample); the live probe comes from the caller, so tests run every
//! command on a fake source without root.

use std::{path::Path, time::Duration};

use anyhow::{bail, Context};

use crate::{
    advice::HostFacts,
    cli::{Global, InputArgs},
    decode::ExitNames,
    probe::ProbeOptions,
    report::{self, Data, PerfImport},
    sample::Sample,
    source::{drive, live::LiveSource, Source, Stop},
    store::Recording,
    text::printable,
};

/// Opens the live source for the global options.
pub type OpenLive = Box<dyn FnMut(&Global) -> anyhow::Result<Box<dyn Source>>>;

/// What a command needs from the world besides its arguments: the global options and how to
/// open the live source (the eBPF probe on a host, a fake in tests).
pub struct Env {
    pub global: Global,
    pub live: OpenLive,
}

impl Env {
    /// The real host: the probe, with its attach warnings printed.
    pub fn host(global: Global) -> Env {
        Env {
            global,
            live: Box::new(|g| Ok(Box::new(open_probe(g)?))),
        }
    }

    /// A fake live host for tests: `src` is what "live" reads.
    pub fn fake(global: Global, src: impl Source + Clone + 'static) -> Env {
        Env {
            global,
            live: Box::new(move |_| Ok(Box::new(src.clone()))),
        }
    }

    /// The live source, opened now.
    pub fn open_live(&mut self) -> anyhow::Result<Box<dyn Source>> {
        (self.live)(&self.global)
    }

    /// Sampling at the global interval, keeping the first and last sample.
    pub fn sampling(&self) -> Sampling {
        Sampling {
            every: self.global.interval,
            keep_all: false,
        }
    }
}

/// Attach the probe, printing what it could not attach.
fn open_probe(g: &Global) -> anyhow::Result<LiveSource> {
    let opts = ProbeOptions {
        tracefs: g.tracefs.clone(),
        max_keys: g.max_keys,
        allow_concurrent: g.allow_concurrent,
        slow: g.slow_cfg(),
        sched: !g.no_sched_split,
        ..Default::default()
    };
    let (src, warnings) = LiveSource::open(&opts)?;
    for w in warnings {
        warn(&w.to_string());
    }
    Ok(src)
}

pub struct Session {
    kind: Kind,
}

enum Kind {
    Recording(Recording),
    /// Boxed: an import holds two whole samples inline, far larger than the other kinds.
    Perf {
        shown: String,
        import: Box<PerfImport>,
    },
    Live(Live),
}

/// A live collection: the samples kept, and what the probe could not see.
struct Live {
    samples: Vec<Sample>,
    names: ExitNames,
    missing: Vec<String>,
    tracefs: Option<std::path::PathBuf>,
}

/// The session from its first sample to its last, with what is known about its host.
pub struct Span {
    /// `Sample::default()` for a one-sample recording: counts since attach.
    pub older: Sample,
    pub newer: Sample,
    pub names: ExitNames,
    /// The recording host's facts (this host's only when it is the same host), or this
    /// host's for a live session.
    pub host: HostFacts,
    /// Tracepoints the live probe lacked.
    pub missing: Vec<String>,
    pub tracefs: Option<std::path::PathBuf>,
}

/// How a live collection samples: how often, and whether to keep every sample (the series
/// `check` measures storms on) or only the first and the last.
#[derive(Clone, Copy, Debug)]
pub struct Sampling {
    pub every: Duration,
    pub keep_all: bool,
}

impl Session {
    /// Opens what `input` names. `verb` completes "say what to …" when it names nothing.
    pub fn open(
        input: &InputArgs,
        env: &mut Env,
        sampling: Sampling,
        verb: &str,
    ) -> anyhow::Result<Session> {
        if let Some(path) = &input.from_perf {
            return Ok(Session::perf(path)?);
        }
        if let Some(path) = &input.file {
            return Session::file(path);
        }
        if input.live_for().is_none() && !input.until_signal {
            bail!("say what to {verb}: a FILE, --from-perf FILE, --duration 10s, --once (1 s), or --until-signal (stop with Ctrl-C)");
        }
        Session::live(env.open_live()?, input, sampling)
    }

    /// Whether `input` asks for a live collection.
    pub fn is_live(input: &InputArgs) -> bool {
        input.file.is_none() && input.from_perf.is_none()
    }

    /// A live collection from a source already opened, for as long as `input` says.
    pub fn live(
        src: Box<dyn Source>,
        input: &InputArgs,
        sampling: Sampling,
    ) -> anyhow::Result<Session> {
        let stop = Stop::from_args(input.live_for());
        let live = collect(src, stop, sampling, input.ready_file.as_deref())?;
        Ok(Session {
            kind: Kind::Live(live),
        })
    }

    /// A recording or a perf text file, whichever `path` holds (regular files only; the
    /// file is opened once and read as a recording when its bytes say so).
    pub fn file(path: &Path) -> anyhow::Result<Session> {
        let wanted = "give the path of a .kvmprof recording or of perf kvm stat report text";
        let file = crate::store::open_regular(path, wanted)?;
        let recording = crate::store::is_recording(path, &file)
            .with_context(|| format!("{}: cannot read", path.display()))?;
        if !recording {
            drop(file);
            return Ok(Session::perf(path)?);
        }
        let rec = Recording::from_file(path, file)?;
        if rec.is_empty() {
            return Err(rec.no_samples().into());
        }
        for w in rec.warnings() {
            warn(&w.to_string());
        }
        Ok(Session {
            kind: Kind::Recording(rec),
        })
    }

    fn perf(path: &Path) -> Result<Session, report::ReportError> {
        let (shown, import) = report::import_perf_file(path)?;
        for w in &import.warnings {
            warn(&format!("{shown}: {w}"));
        }
        Ok(Session {
            kind: Kind::Perf {
                shown,
                import: Box::new(import),
            },
        })
    }

    /// The perf text import, when the session is one (exit reasons only).
    pub fn perf_import(&self) -> Option<&PerfImport> {
        match &self.kind {
            Kind::Perf { import, .. } => Some(import),
            _ => None,
        }
    }

    /// First and last sample. A perf import's are its two synthetic samples.
    pub fn span(&self) -> anyhow::Result<Span> {
        Ok(match &self.kind {
            Kind::Recording(rec) => {
                let last = rec.sample(rec.len() - 1)?;
                // A one-sample recording is "since attach": counts with no span.
                let older = if rec.len() == 1 {
                    Sample::default()
                } else {
                    rec.sample(0)?
                };
                Span {
                    older,
                    newer: last,
                    names: self.names(),
                    host: self.host(),
                    missing: Vec::new(),
                    tracefs: None,
                }
            }
            Kind::Perf { import, .. } => Span {
                older: import.older.clone(),
                newer: import.newer.clone(),
                names: self.names(),
                host: self.host(),
                missing: Vec::new(),
                tracefs: None,
            },
            Kind::Live(l) => Span {
                older: l.samples.first().cloned().unwrap_or_default(),
                newer: l.samples.last().cloned().unwrap_or_default(),
                names: self.names(),
                host: self.host(),
                missing: l.missing.clone(),
                tracefs: l.tracefs.clone(),
            },
        })
    }

    /// Whether the samples carry the slow-exit log: recordings of format 4 and later, live
    /// collections (the probe's log is on unless `--slow off`, which the caller knows).
    pub fn has_slow_log(&self) -> bool {
        match &self.kind {
            Kind::Recording(rec) => rec.version() >= 4,
            Kind::Perf { .. } => false,
            Kind::Live(_) => true,
        }
    }

    /// Every sample, in order (none for perf text, which has no time axis).
    pub fn series(&self) -> anyhow::Result<Vec<Sample>> {
        Ok(match &self.kind {
            Kind::Recording(rec) => rec.samples().collect::<Result<Vec<_>, _>>()?,
            Kind::Perf { .. } => Vec::new(),
            Kind::Live(l) => l.samples.clone(),
        })
    }

    /// Every sample, in order, one at a time: a recording is read frame by frame rather than
    /// held whole (none for perf text).
    pub fn samples(&self) -> Box<dyn Iterator<Item = anyhow::Result<Sample>> + '_> {
        match &self.kind {
            Kind::Recording(rec) => Box::new(rec.samples().map(|s| Ok(s?))),
            Kind::Perf { .. } => Box::new(std::iter::empty()),
            Kind::Live(l) => Box::new(l.samples.iter().cloned().map(Ok)),
        }
    }

    /// The exit-name tables of the session.
    pub fn names(&self) -> ExitNames {
        match &self.kind {
            Kind::Recording(rec) => rec.header().names.clone(),
            Kind::Perf { import, .. } => import.names.clone(),
            Kind::Live(l) => l.names.clone(),
        }
    }

    /// The session as the report and diff see it (labelled with its path, or "live").
    pub fn data(&self) -> anyhow::Result<Data> {
        let label = match &self.kind {
            Kind::Perf { shown, import } => return Ok(Data::from_import(import, shown)),
            Kind::Recording(rec) => rec.path().display().to_string(),
            Kind::Live(_) => "live".to_string(),
        };
        let s = self.span()?;
        Ok(Data::from_samples(&s.older, &s.newer, &s.names, &label))
    }

    /// What is known of the session's host: the recording host's facts (this host's only
    /// when it is the same host and kernel), none for perf text, this host's when live.
    pub fn host(&self) -> HostFacts {
        match &self.kind {
            Kind::Recording(rec) => {
                let h = rec.header();
                HostFacts::of_recording(&h.host, &h.kernel, h.cpus)
            }
            Kind::Perf { .. } => HostFacts::default(),
            Kind::Live(_) => HostFacts::local(),
        }
    }
}

/// Attach, sample until `stop`, keep what `sampling` asks for.
fn collect(
    mut src: Box<dyn Source>,
    stop: Stop,
    sampling: Sampling,
    ready_file: Option<&Path>,
) -> anyhow::Result<Live> {
    let names = src.names();
    let first = src.sample()?.context("no sample")?;
    if let Some(p) = ready_file {
        std::fs::write(p, b"ready\n").with_context(|| format!("writing {}", p.display()))?;
    }
    let mut samples = vec![first.clone()];
    // Without every sample, the last one carries the slow exits of those dropped.
    let mut slow = Vec::new();
    let light = !sampling.keep_all;
    let mut last = drive(
        src.as_mut(),
        &first,
        stop,
        sampling.every,
        light,
        &mut |s| {
            if sampling.keep_all {
                samples.push(s.clone());
            } else {
                slow.extend_from_slice(&s.slow);
            }
            Ok(())
        },
    )?;
    if !sampling.keep_all {
        last.slow = slow;
    }
    // The last one carries the names of VMs that exited meanwhile.
    if sampling.keep_all {
        samples.pop();
    }
    samples.push(last);
    for n in src.notices() {
        eprintln!("kvmprof: kernel: {}", printable(&n));
    }
    Ok(Live {
        samples,
        names,
        missing: src.missing(),
        tracefs: src.tracefs(),
    })
}

/// One warning line on stderr, escaped (it may quote a file's text or a VM name).
pub fn warn(w: &str) {
    eprintln!("kvmprof: warning: {}", printable(w));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::{Key, Stat};

    /// A FILE is sniffed once: a recording reads from its first sample to its last with the
    /// recorder's names; anything else is perf text, whose errors name the file and line.
    #[test]
    fn file_sniffs_recordings_and_perf_text() {
        let dir = tempfile::tempdir().unwrap();
        let txt = dir.path().join("perf.txt");
        std::fs::write(
            &txt,
            "Analyze events for all VMs, all VCPUs:\n\n             VM-EXIT    Samples  Samples%     Time%    Min Time    Max Time         Avg time\n\n                 npf     100    100.00%   100.00%      1.00us      3.00us      2.00us ( +-   1.00% )\n\nTotal Samples:100, Total events handled time:200.00us.\n",
        )
        .unwrap();
        let d = Session::file(&txt).unwrap().data().unwrap();
        assert_eq!(d.view.vms[0].reasons[0].name, "npf");
        assert!(!d.has_hist);

        let bad = dir.path().join("bad.txt");
        std::fs::write(&bad, "VM-EXIT Samples Samples% Time%\nnpf 1x 1% 1%\n").unwrap();
        let e = format!("{:#}", Session::file(&bad).err().unwrap());
        assert!(
            e.starts_with(&format!("{}: line 2: ", bad.display())),
            "{e}"
        );

        let rec = dir.path().join("s.kvmprof");
        let header = crate::store::Header {
            names: ExitNames::builtin(),
            ..Default::default()
        };
        let mut w = crate::store::Recorder::create(&rec, &header).unwrap();
        for (secs, n) in [(10, 5), (12, 25)] {
            let mut s = Sample {
                mono_ns: secs * 1_000_000_000,
                ..Default::default()
            };
            let mut st = Stat::default();
            st.record(1_000, n);
            let k = Key {
                tgid: 9,
                vcpu: 0,
                isa: profiler_common::ISA_VMX,
                reason: 10,
            };
            s.stats.insert(k, st);
            w.append(&s).unwrap();
        }
        w.finish().unwrap();
        let session = Session::file(&rec).unwrap();
        let d = session.data().unwrap();
        assert!(d.has_hist);
        assert_eq!(d.view.duration_s, 2.0);
        let r = &d.view.vms[0].reasons[0];
        assert_eq!((r.name.as_str(), r.count), ("CPUID", 20));
        assert_eq!(session.series().unwrap().len(), 2);
    }
}
