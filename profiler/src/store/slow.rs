//! Format 4's slow exits in a frame: the events logged since the previous sample, stored whole
//! (they are not cumulative: a frame's events are its own, key frame or not), as columns of
//! differences between consecutive events so that zstd sees like next to like.

use serde::{Deserialize, Serialize};

use super::delta::{diff, undiff, CodecError};
use crate::sample::SlowEvent;

/// Most slow exits one frame may hold: 1000 per CPU and second (the default rate) on a
/// 1024-CPU host for 10 s is far below; bounds memory on hostile files.
const MAX_EVENTS: usize = 1 << 22;

#[derive(Serialize, Deserialize, Default, Debug, Clone, PartialEq, Eq)]
pub(crate) struct SlowColumns {
    /// Each field's difference from the previous event's (the first: from zero).
    exit_ns: Vec<i64>,
    took_ns: Vec<i64>,
    tgid: Vec<i64>,
    tid: Vec<i64>,
    vcpu: Vec<i64>,
    isa: Vec<i64>,
    reason: Vec<i64>,
    rip: Vec<i64>,
    exit_cpu: Vec<i64>,
    entry_cpu: Vec<i64>,
    detail_kind: Vec<i64>,
    detail_flags: Vec<i64>,
    detail_a: Vec<i64>,
}

/// An event as its 13 fields, in column order.
fn fields(e: &SlowEvent) -> [u64; 13] {
    [
        e.exit_ns,
        e.took_ns,
        e.tgid.into(),
        e.tid.into(),
        e.vcpu.into(),
        e.isa.into(),
        e.reason.into(),
        e.rip,
        e.exit_cpu.into(),
        e.entry_cpu.into(),
        e.detail_kind.into(),
        e.detail_flags.into(),
        e.detail_a,
    ]
}

impl SlowColumns {
    fn columns(&mut self) -> [&mut Vec<i64>; 13] {
        [
            &mut self.exit_ns,
            &mut self.took_ns,
            &mut self.tgid,
            &mut self.tid,
            &mut self.vcpu,
            &mut self.isa,
            &mut self.reason,
            &mut self.rip,
            &mut self.exit_cpu,
            &mut self.entry_cpu,
            &mut self.detail_kind,
            &mut self.detail_flags,
            &mut self.detail_a,
        ]
    }

    pub(super) fn encode(events: &[SlowEvent]) -> SlowColumns {
        let mut c = SlowColumns::default();
        let mut last = [0u64; 13];
        for e in events {
            let f = fields(e);
            for ((col, &v), l) in c.columns().into_iter().zip(&f).zip(&mut last) {
                col.push(diff(v, *l));
                *l = v;
            }
        }
        c
    }

    /// The frame's events (replacing the previous sample's).
    pub(super) fn decode(&self, out: &mut Vec<SlowEvent>) -> Result<(), CodecError> {
        out.clear();
        let n = self.exit_ns.len();
        if n > MAX_EVENTS {
            return Err(format!(
                "{n} slow exits in one frame (at most {MAX_EVENTS})"
            ));
        }
        let cols = [
            &self.exit_ns,
            &self.took_ns,
            &self.tgid,
            &self.tid,
            &self.vcpu,
            &self.isa,
            &self.reason,
            &self.rip,
            &self.exit_cpu,
            &self.entry_cpu,
            &self.detail_kind,
            &self.detail_flags,
            &self.detail_a,
        ];
        if cols.iter().any(|c| c.len() != n) {
            return Err("slow-exit columns disagree in length".into());
        }
        let mut v = [0u64; 13];
        let narrow = |x: u64| u32::try_from(x).map_err(|_| "slow-exit field out of range");
        for i in 0..n {
            for (f, col) in v.iter_mut().zip(&cols) {
                *f = undiff(*f, col[i]);
            }
            out.push(SlowEvent {
                exit_ns: v[0],
                took_ns: v[1],
                tgid: narrow(v[2])?,
                tid: narrow(v[3])?,
                vcpu: narrow(v[4])?,
                isa: narrow(v[5])?,
                reason: narrow(v[6])?,
                rip: v[7],
                exit_cpu: narrow(v[8])?,
                entry_cpu: narrow(v[9])?,
                detail_kind: u16::try_from(v[10]).map_err(|_| "slow-exit kind out of range")?,
                detail_flags: u16::try_from(v[11]).map_err(|_| "slow-exit flags out of range")?,
                detail_a: v[12],
                ..Default::default()
            });
        }
        Ok(())
    }
}
