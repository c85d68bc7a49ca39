//! A recording as a `Source`: the recorded samples in order, with seeking for a replay UI.

use std::path::Path;

use crate::{
    decode::ExitNames,
    sample::Sample,
    source::Source,
    store::{Cursor, Header, Recording, StoreError},
};

pub struct ReplaySource {
    rec: Recording,
    cur: Cursor,
}

impl ReplaySource {
    /// Open a recording; damage it survived is in `warnings()`.
    pub fn open(path: impl AsRef<Path>) -> Result<ReplaySource, StoreError> {
        Ok(Self::new(Recording::open(path)?))
    }

    pub fn new(rec: Recording) -> ReplaySource {
        ReplaySource {
            rec,
            cur: Cursor::default(),
        }
    }

    pub fn header(&self) -> &Header {
        self.rec.header()
    }

    pub fn recording(&self) -> &Recording {
        &self.rec
    }

    pub fn warnings(&self) -> &[String] {
        self.rec.warnings()
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.rec.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rec.is_empty()
    }

    /// Index of the sample the next `sample()` returns (`len()` at the end).
    pub fn position(&self) -> usize {
        self.cur.position()
    }

    /// Make sample `i` the next one returned (clamped to `len()`). Costs at most one key
    /// interval of decoding.
    pub fn seek(&mut self, i: usize) -> Result<(), StoreError> {
        let i = i.min(self.len());
        self.rec.seek(&mut self.cur, i)
    }

    /// Sample `i` without moving the position.
    pub fn sample_at(&self, i: usize) -> Option<Sample> {
        self.rec.sample(i).ok()
    }
}

impl Source for ReplaySource {
    fn sample(&mut self) -> anyhow::Result<Option<Sample>> {
        Ok(self.rec.advance(&mut self.cur)?)
    }

    fn names(&self) -> ExitNames {
        self.rec.header().names.clone()
    }

    fn describe(&self) -> String {
        let h = self.rec.header();
        format!(
            "replay: {} ({}, {})",
            self.rec.path().display(),
            h.host,
            h.kernel
        )
    }

    fn timeline(&self) -> Option<(usize, usize)> {
        Some((self.cur.position(), self.len()))
    }

    fn seek_to(&mut self, i: usize) -> anyhow::Result<bool> {
        ReplaySource::seek(self, i)?;
        Ok(true)
    }

    fn origin(&self) -> Option<Header> {
        Some(self.rec.header().clone())
    }
}
