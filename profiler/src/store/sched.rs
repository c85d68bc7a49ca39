//! Format 5's scheduler split: each changed stat's runnable (`wait_ns`) and asleep
//! (`blocked_ns`) growth, in the order of the frame's stat entries, and the same two fields of
//! each slow exit, in the order of the frame's slow exits. Absent (one byte) when a frame has
//! none, as on hosts or recordings without the split.

use serde::{Deserialize, Serialize};

use super::delta::{diff, CodecError};
use crate::sample::{SlowEvent, Stat};

#[derive(Serialize, Deserialize, Default, Debug, Clone, PartialEq, Eq)]
pub(crate) struct SchedColumns {
    stat_wait: Vec<i64>,
    stat_blocked: Vec<i64>,
    /// Whole values: slow exits are not cumulative.
    slow_wait: Vec<u64>,
    slow_blocked: Vec<u64>,
}

impl SchedColumns {
    /// `stats`: (old, new) of each stat entry of the frame, in entry order.
    pub(super) fn encode<'a>(
        stats: impl Iterator<Item = (&'a Stat, &'a Stat)>,
        slow: &[SlowEvent],
    ) -> Option<SchedColumns> {
        let mut c = SchedColumns::default();
        let mut any = false;
        for (o, n) in stats {
            let (w, b) = (diff(n.wait_ns, o.wait_ns), diff(n.blocked_ns, o.blocked_ns));
            any |= w | b != 0;
            c.stat_wait.push(w);
            c.stat_blocked.push(b);
        }
        if !any {
            c.stat_wait.clear();
            c.stat_blocked.clear();
        }
        if slow.iter().any(|e| e.wait_ns | e.blocked_ns != 0) {
            c.slow_wait = slow.iter().map(|e| e.wait_ns).collect();
            c.slow_blocked = slow.iter().map(|e| e.blocked_ns).collect();
            any = true;
        }
        any.then_some(c)
    }

    /// The stat entries' (wait, blocked) differences, if this frame has them for its `n`.
    pub(super) fn stat_split(
        &self,
        n: usize,
    ) -> Result<Option<impl Iterator<Item = (i64, i64)> + '_>, CodecError> {
        if self.stat_wait.is_empty() && self.stat_blocked.is_empty() {
            return Ok(None);
        }
        if [self.stat_wait.len(), self.stat_blocked.len()] != [n; 2] {
            return Err("scheduler columns disagree with the stat keys".into());
        }
        Ok(Some(
            self.stat_wait
                .iter()
                .copied()
                .zip(self.stat_blocked.iter().copied()),
        ))
    }

    /// Adds the split to the frame's slow exits (already decoded).
    pub(super) fn apply_slow(&self, slow: &mut [SlowEvent]) -> Result<(), CodecError> {
        if self.slow_wait.is_empty() && self.slow_blocked.is_empty() {
            return Ok(());
        }
        if [self.slow_wait.len(), self.slow_blocked.len()] != [slow.len(); 2] {
            return Err("scheduler columns disagree with the slow exits".into());
        }
        for ((e, w), b) in slow.iter_mut().zip(&self.slow_wait).zip(&self.slow_blocked) {
            e.wait_ns = *w;
            e.blocked_ns = *b;
        }
        Ok(())
    }
}
