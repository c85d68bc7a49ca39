//! Where samples come from: the live kernel maps, a recording, or a scripted fake (tests).
//! The TUI and every other consumer see only this trait.

mod drive;
pub mod live;
mod lost;
pub mod replay;
mod signals;

pub use drive::{drive, Stop};
pub use signals::first_stop_signal;

use crate::{decode::ExitNames, sample::Sample, store::Header};

pub trait Source: Send {
    /// Read a sample now (cumulative). `Ok(None)` means the source is exhausted (end of a
    /// replay); live sources never return None.
    fn sample(&mut self) -> anyhow::Result<Option<Sample>>;
    /// The exit-name tables in force for this source.
    /// Between the first and the last sample of a consumer that keeps only those two (a
    /// report): what must not wait for the last one (slow exits drained before their ring
    /// fills, the VMs seen, so that one gone by then keeps its name). Default: a sample.
    fn keep_up(&mut self) -> anyhow::Result<Option<Sample>> {
        self.sample()
    }
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
    /// Tracepoints this kernel lacks (live only): the advice says what it could not see.
    fn missing(&self) -> Vec<String> {
        Vec::new()
    }
    /// The tracefs in use (live only): APICv inhibit names are read from it.
    fn tracefs(&self) -> Option<std::path::PathBuf> {
        None
    }
}

/// Replays a fixed list of samples, one per call. For tests and snapshot fixtures.
#[derive(Clone)]
pub struct FakeSource {
    pub samples: std::collections::VecDeque<Sample>,
    pub names: ExitNames,
    pub label: String,
    /// Keep returning the last sample instead of ending (stands in for a live host).
    pub repeat_last: bool,
}

impl FakeSource {
    pub fn new(samples: Vec<Sample>) -> Self {
        FakeSource {
            samples: samples.into(),
            names: ExitNames::builtin(),
            label: "fake".into(),
            repeat_last: false,
        }
    }

    /// A fake live host: the samples in turn, then the last one for ever.
    pub fn live(samples: Vec<Sample>) -> Self {
        FakeSource {
            repeat_last: true,
            ..Self::new(samples)
        }
    }
}

impl Source for FakeSource {
    fn sample(&mut self) -> anyhow::Result<Option<Sample>> {
        if self.repeat_last && self.samples.len() == 1 {
            return Ok(self.samples.front().cloned());
        }
        Ok(self.samples.pop_front())
    }
    fn names(&self) -> ExitNames {
        self.names.clone()
    }
    fn describe(&self) -> String {
        self.label.clone()
    }
}
