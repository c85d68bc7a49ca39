//! Where samples come from: the live kernel maps, a recording, or a scripted fake (tests).
//! The TUI and every other consumer see only this trait.

pub mod live;
pub mod replay;

use crate::{decode::ExitNames, sample::Sample, store::Header};

pub trait Source: Send {
    /// Read a sample now (cumulative). `Ok(None)` means the source is exhausted (end of a
    /// replay); live sources never return None.
    fn sample(&mut self) -> anyhow::Result<Option<Sample>>;
    /// The exit-name tables in force for this source.
    fn names(&self) -> ExitNames;
    /// One line for the header, e.g. "live: host (6.18.44)" or "demo".
    fn describe(&self) -> String;
    /// Messages for the user since the last call (e.g. the kernel side reporting a full map).
    fn notices(&mut self) -> Vec<String> {
        Vec::new()
    }
    /// For seekable sources (a recording): (index of the sample the next `sample()` returns,
    /// number of samples). None for live sources. Named apart from `ReplaySource::position`,
    /// whose inherent method would otherwise shadow this one.
    fn timeline(&self) -> Option<(usize, usize)> {
        None
    }
    /// Make sample `i` the next one returned. `Ok(false)`: this source cannot seek.
    fn seek_to(&mut self, _i: usize) -> anyhow::Result<bool> {
        Ok(false)
    }
    /// Where and when the samples were recorded, when the source is a recording.
    fn origin(&self) -> Option<Header> {
        None
    }
}

/// Replays a fixed list of samples, one per call. For tests and snapshot fixtures.
pub struct FakeSource {
    pub samples: std::collections::VecDeque<Sample>,
    pub names: ExitNames,
    pub label: String,
}

impl FakeSource {
    pub fn new(samples: Vec<Sample>) -> Self {
        FakeSource {
            samples: samples.into(),
            names: ExitNames::builtin(),
            label: "fake".into(),
        }
    }
}

impl Source for FakeSource {
    fn sample(&mut self) -> anyhow::Result<Option<Sample>> {
        Ok(self.samples.pop_front())
    }
    fn names(&self) -> ExitNames {
        self.names.clone()
    }
    fn describe(&self) -> String {
        self.label.clone()
    }
}
