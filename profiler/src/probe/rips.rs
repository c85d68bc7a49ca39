//! The sampled guest RIPs: `RIPS`, a mapped array of (key, count) slots that a refresh scans
//! (96 KB; walking the hash it replaced cost ~1 ms a refresh when full), which the kernel finds
//! through `RIP_INDEX` and takes from `FREE_RIPS`. Userspace gives slots back: those of exited
//! VMs, and, when few are free, those whose count moved least lately (as the LRU hash pushed
//! out its least used keys, a guest with more RIPs than fit keeps the busy ones).

use anyhow::Context;
use aya::Ebpf;
use profiler_common::ev::{self, EvKey, RipSlot};

use super::{
    batch::{delete_all, map_fd, push},
    mapped::Mapped,
};

const COUNT_OFFSET: usize = std::mem::offset_of!(RipSlot, count);

pub struct Rips {
    slots: Mapped<RipSlot>,
    /// Per slot: its count at the last read, and the read it last moved at.
    seen: Vec<(u64, u64)>,
    reads: u64,
    /// Slots given back so far (the tests check eviction).
    pub freed: u64,
}

impl Rips {
    pub fn map(ebpf: &Ebpf) -> anyhow::Result<Rips> {
        let slots = Mapped::map_writable(ebpf, "RIPS")?;
        let seen = vec![(0, 0); slots.len()];
        Ok(Rips {
            slots,
            seen,
            reads: 0,
            freed: 0,
        })
    }

    /// The slots in use, with their index. The count is set once the key is published, and
    /// only userspace (this thread) takes a key back: a slot with a count holds its key.
    fn in_use(&self) -> impl Iterator<Item = (usize, RipSlot)> + '_ {
        (0..self.slots.len())
            .filter(|&i| self.slots.u64_at(i, COUNT_OFFSET) != 0)
            .filter_map(|i| Some((i, self.slots.get(i)?)))
            // Not a sampled RIP's: a stray bump of a slot given back.
            .filter(|(_, s)| s.key.kind == ev::GUEST_RIP)
    }

    /// Every key with a count. When fewer than an eighth of the slots are free, the ones that
    /// moved least lately are given back, down to a quarter free (they still count in this
    /// read; the next one no longer has them).
    pub fn read(&mut self, ebpf: &Ebpf) -> anyhow::Result<Vec<(EvKey, u64)>> {
        self.reads += 1;
        let (out, mut used): (Vec<(EvKey, u64)>, Vec<usize>) =
            self.in_use().map(|(i, s)| ((s.key, s.count), i)).unzip();
        for (&i, &(_, count)) in used.iter().zip(&out) {
            if self.seen[i].0 != count {
                self.seen[i] = (count, self.reads);
            }
        }
        let n = self.slots.len();
        if n - used.len() < n / 8 {
            // Oldest move first, then the smallest count.
            used.sort_by_key(|&i| (self.seen[i].1, self.seen[i].0));
            let give = used.len() - (n - n / 4);
            self.free(ebpf, &used[..give])?;
        }
        Ok(out)
    }

    /// Gives back the slots of the keys `dead` picks (an exited VM's).
    pub fn forget(&mut self, ebpf: &Ebpf, dead: impl Fn(&EvKey) -> bool) -> anyhow::Result<()> {
        let slots: Vec<usize> = (self.in_use())
            .filter(|(_, s)| dead(&s.key))
            .map(|(i, _)| i)
            .collect();
        self.free(ebpf, &slots)
    }

    /// Unpublishes each slot's key, zeroes the slot and puts it back on the free list, in
    /// that order: nothing finds a slot once it is free. (A program that found one just
    /// before may still bump it: the next key to take it starts one sample ahead.) One
    /// syscall for the keys, none for the slots (mapped), one per push.
    fn free(&mut self, ebpf: &Ebpf, slots: &[usize]) -> anyhow::Result<()> {
        let keys: Vec<EvKey> = (slots.iter())
            .filter_map(|&i| self.slots.get(i).map(|s| s.key))
            .collect();
        delete_all(map_fd(ebpf, "RIP_INDEX")?, &keys).context("RIP_INDEX: delete")?;
        let free = map_fd(ebpf, "FREE_RIPS")?;
        for &i in slots {
            self.slots.set(i, RipSlot::default());
            push(free, &(i as u32)).context("FREE_RIPS: push")?;
            self.seen[i] = (0, 0);
            self.freed += 1;
        }
        Ok(())
    }
}
