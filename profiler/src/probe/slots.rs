//! The thread slots (`PSLOTS_MAP`, mapped) and the byte per slot that says it is in use
//! (`SLOT_USED`, mapped writable so freeing a slot can clear its byte).

use aya::Ebpf;
use profiler_common::Pending;

use super::mapped::Mapped;

pub struct Slots {
    pub pending: Mapped<Pending>,
    used: Mapped<u64>,
}

impl Slots {
    pub fn map(ebpf: &Ebpf) -> anyhow::Result<Slots> {
        Ok(Slots {
            pending: Mapped::map(ebpf, "PSLOTS_MAP")?,
            used: Mapped::map_writable(ebpf, "SLOT_USED")?,
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

    /// Slot `i` freed: its byte cleared (after the slot is wiped, before its claim is
    /// released, so a thread claiming it next sets the byte again).
    pub fn freed(&self, i: usize) {
        self.used.clear_byte(i);
    }
}
