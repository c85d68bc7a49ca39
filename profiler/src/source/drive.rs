//! The one sampling loop of the headless commands: sample every interval until a duration
//! passes or a stop signal (SIGINT, SIGTERM, SIGHUP) arrives.

use std::time::Duration;

use anyhow::Context;

use super::Source;
use crate::sample::Sample;

/// When a collection ends (a signal always ends it too).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    After(Duration),
    OnSignal,
}

impl Stop {
    pub fn from_args(duration: Option<Duration>) -> Stop {
        duration.map_or(Stop::OnSignal, Stop::After)
    }
}

/// Samples `src` every `interval` after `first` until `stop`, calling `each` with every
/// sample taken (in order); returns the last one. Sampling while waiting lets discovery see
/// short-lived VMs alive: the last sample keeps the names of VMs that exited meanwhile.
/// `light`: the consumer keeps only the first and the last sample, so the ones between are
/// `Source::keep_up`'s (what cannot wait for the last), not whole samples.
pub fn drive(
    src: &mut dyn Source,
    first: &Sample,
    stop: Stop,
    interval: Duration,
    light: bool,
    each: &mut dyn FnMut(&Sample) -> anyhow::Result<()>,
) -> anyhow::Result<Sample> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        // Registered once, at the first wait, so no signal falls between two waits.
        let stop_signal = super::first_stop_signal();
        tokio::pin!(stop_signal);
        let end = match stop {
            Stop::After(d) => Some(tokio::time::Instant::now() + d),
            Stop::OnSignal => None,
        };
        let mut vms = first.vms.clone();
        loop {
            let step = end.map_or(interval, |e| {
                e.saturating_duration_since(tokio::time::Instant::now())
                    .min(interval)
            });
            let signalled = tokio::select! {
                _ = tokio::time::sleep(step) => false,
                r = &mut stop_signal => {
                    r?;
                    true
                }
            };
            let done = signalled || end.is_some_and(|e| tokio::time::Instant::now() >= e);
            let s = match light && !done {
                true => src.keep_up()?,
                false => src.sample()?,
            };
            let mut s = s.context("the source ended")?;
            each(&s)?;
            for (pid, vm) in &s.vms {
                match vms.get_mut(pid) {
                    // Same process gone: keep what we knew, mark it exited.
                    Some(old) if vm.exited => old.exited = true,
                    _ => {
                        vms.insert(*pid, vm.clone());
                    }
                }
            }
            if done {
                s.vms = vms;
                return Ok(s);
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{sample::VmInfo, source::FakeSource};

    /// A VM seen alive and then gone keeps its name in the last sample, marked exited.
    #[test]
    fn exited_vms_keep_their_names() {
        let vm = |exited| VmInfo {
            pid: 7,
            name: "short-lived".into(),
            exited,
            ..Default::default()
        };
        let mut alive = Sample::default();
        alive.vms.insert(7, vm(false));
        let mut gone = Sample::default();
        gone.vms.insert(7, vm(true));
        let mut src = FakeSource::live(vec![alive.clone(), gone]);
        let mut seen = 0;
        let last = drive(
            &mut src,
            &alive,
            // Thirty intervals: a loaded machine (the CI runs tests on two CPUs) once stalled
            // this thread past a three-interval window after the first sample.
            Stop::After(Duration::from_millis(300)),
            Duration::from_millis(10),
            false,
            &mut |_| {
                seen += 1;
                Ok(())
            },
        )
        .expect("drive");
        assert!(seen >= 2, "sampled {seen} times");
        let v = &last.vms[&7];
        assert!(v.exited && v.name == "short-lived", "{v:?}");
    }

    /// Counts its whole samples and its keep-ups.
    struct Counting {
        full: usize,
        light: usize,
    }

    impl Source for Counting {
        fn sample(&mut self) -> anyhow::Result<Option<Sample>> {
            self.full += 1;
            Ok(Some(Sample {
                mono_ns: 1,
                ..Default::default()
            }))
        }
        fn keep_up(&mut self) -> anyhow::Result<Option<Sample>> {
            self.light += 1;
            Ok(Some(Sample::default()))
        }
        fn names(&self) -> crate::decode::ExitNames {
            crate::decode::ExitNames::builtin()
        }
        fn describe(&self) -> String {
            "counting".into()
        }
    }

    /// A consumer of the first and the last sample gets keep-ups between them and a whole
    /// sample last; one that keeps all gets whole samples throughout.
    #[test]
    fn light_sampling_keeps_up_between_and_samples_last() {
        for light in [true, false] {
            let mut src = Counting { full: 0, light: 0 };
            let mut seen = Vec::new();
            let stop = Stop::After(Duration::from_millis(200));
            let last = drive(
                &mut src,
                &Sample::default(),
                stop,
                Duration::from_millis(10),
                light,
                &mut |s| {
                    seen.push(s.mono_ns);
                    Ok(())
                },
            )
            .expect("drive");
            assert_eq!(
                last.mono_ns, 1,
                "the last sample is a whole one (light: {light})"
            );
            assert!(seen.len() >= 3, "sampled {} times", seen.len());
            let (full, kept) = (src.full, src.light);
            match light {
                true => assert_eq!((full, kept), (1, seen.len() - 1)),
                false => assert_eq!((full, kept), (seen.len(), 0)),
            }
        }
    }
}
