//! The thread slots (`PSLOTS_MAP`, mapped) and the byte per slot that says it is in use
//! (`SLOT_USED`, mapped writable so freeing a slot can clear its byte).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use aya::Ebpf;
use profiler_common::Pending;

use super::mapped::Mapped;

pub struct Slots {
    pub pending: Mapped<Pending>,
    used: Mapped<u64>,
    /// `Pending::exits` and `entries` of the slots freed so far: their owners' events stay
    /// counted once the slot is wiped.
    freed_events: [AtomicU64; 2],
}

impl Slots {
    pub fn map(ebpf: &Ebpf) -> anyhow::Result<Slots> {
        Ok(Slots {
            pending: Mapped::map(ebpf, "PSLOTS_MAP")?,
            used: Mapped::map_writable(ebpf, "SLOT_USED")?,
            freed_events: Default::default(),
        })
    }

    /// Indexes of the slots claimed and not freed since, ascending: 8 192 words read, and a
    /// slot's fields only where its byte is set.
    pub fn in_use(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.used.len())
            .map(|w| (w, self.used.u64_at(w, 0)))
            .filter(|&(_, v)| v != 0)
            .flat_map(|(w, v)| {
                (0..8)
                    .filter(move |b| (v >> (8 * b)) & 0xff != 0)
                    .map(move |b| w * 8 + b)
            })
            .filter(|&i| i < self.pending.len())
    }

    /// Slot `i` freed, `p` its last contents: its owner's event counts kept (final: only an
    /// ended thread's slot is freed), its byte cleared (after the slot is wiped, before its
    /// claim is released, so a thread claiming it next sets the byte again).
    pub fn freed(&self, i: usize, p: &Pending) {
        self.freed_events[0].fetch_add(p.exits, Relaxed);
        self.freed_events[1].fetch_add(p.entries, Relaxed);
        self.used.clear_byte(i);
    }

    /// Slot `i`'s owner's (kvm_exit, kvm_entry) events so far (`i` from `in_use`).
    pub fn events(&self, i: usize) -> (u64, u64) {
        let (x, e) = (
            std::mem::offset_of!(Pending, exits),
            std::mem::offset_of!(Pending, entries),
        );
        (self.pending.u64_at(i, x), self.pending.u64_at(i, e))
    }

    /// The freed slots' (kvm_exit, kvm_entry) events.
    pub fn freed_events(&self) -> (u64, u64) {
        (
            self.freed_events[0].load(Relaxed),
            self.freed_events[1].load(Relaxed),
        )
    }
}
