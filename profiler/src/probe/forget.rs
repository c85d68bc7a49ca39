//! Forgetting exited VMs: their rows, octaves, reason tables and slots go back to the free
//! lists, so the maps do not fill up over days of VMs coming and going.

use anyhow::Context;
use aya::{
    maps::{Array, HashMap, MapData, Queue},
    Ebpf, Pod,
};
use profiler_common::{ev, Oct, OverflowKey, Pending, Row, StatKey, LINKS, REASON_SLOTS};

use super::{slots::Slots, table::Table};

fn array<'a, V: Pod>(ebpf: &'a mut Ebpf, name: &str) -> anyhow::Result<Array<&'a mut MapData, V>> {
    let map = ebpf
        .map_mut(name)
        .with_context(|| format!("{name} map missing"))?;
    Ok(Array::try_from(map)?)
}

pub(super) fn queue<'a>(
    ebpf: &'a mut Ebpf,
    name: &str,
) -> anyhow::Result<Queue<&'a mut MapData, u32>> {
    let map = ebpf
        .map_mut(name)
        .with_context(|| format!("{name} map missing"))?;
    Ok(Queue::try_from(map)?)
}

fn hash<'a, K: Pod, V: Pod>(
    ebpf: &'a mut Ebpf,
    name: &str,
) -> anyhow::Result<HashMap<&'a mut MapData, K, V>> {
    let map = ebpf
        .map_mut(name)
        .with_context(|| format!("{name} map missing"))?;
    Ok(HashMap::try_from(map)?)
}

/// Removes the entries of hash `name` that `dead` picks, found in one batch read: walking the
/// keys one syscall each cost 4 096 syscalls for a full hash of 4 096 keys, at every VM's exit.
fn remove_dead<K: Pod, V: Pod>(
    ebpf: &mut Ebpf,
    name: &str,
    dead: impl Fn(&K, &V) -> bool,
) -> anyhow::Result<()> {
    let (keys, vals, _) = super::batch::read_all::<K, V>(ebpf, name, false)?;
    let mut map = hash::<K, V>(ebpf, name)?;
    for (k, _) in keys.iter().zip(&vals).filter(|(k, v)| dead(k, v)) {
        let _ = map.remove(k);
    }
    Ok(())
}

/// Delete everything of these (exited) processes. Returns how many rows were freed.
pub fn forget(
    ebpf: &mut Ebpf,
    tgids: &[u32],
    table: &mut Table,
    slots: &Slots,
) -> anyhow::Result<usize> {
    if tgids.is_empty() {
        return Ok(0);
    }
    // The rows the table knows these processes by (every refresh since they exited has read
    // them), each checked against the mapped row, instead of a scan of the whole capacity.
    let rows = table.rows();
    let dead_rows: Vec<(u32, Row)> = (table.rows_of_tgids(tgids).into_iter())
        .filter_map(|i| rows.get(i as usize).map(|r| (i, r)))
        .filter(|(_, r)| r.key.tgid != 0 && tgids.contains(&r.key.tgid))
        .collect();
    let dead_idx: std::collections::HashSet<u32> = dead_rows.iter().map(|(i, _)| *i).collect();
    // Unpublish first: nothing may find a row once it is back on the free list.
    remove_dead::<StatKey, u32>(ebpf, "ROW_INDEX", |k, _| tgids.contains(&k.tgid))?;
    remove_dead::<OverflowKey, Oct>(ebpf, "OVERFLOW", |k, _| dead_idx.contains(&k.row))?;
    forget_slots(ebpf, tgids, slots)?;
    // Live threads may still point at these rows from a reason table (a reused tid): they check
    // the row's key before writing, so a row reused for another key is safe.
    let mut freed_octs = Vec::new();
    {
        let mut arr = array::<Row>(ebpf, "ROWS")?;
        for (i, r) in &dead_rows {
            freed_octs.extend(r.oct.iter().take((r.nlinks as usize).min(LINKS)).copied());
            arr.set(*i, Row::ZERO, 0)?;
            table.invalidate(*i as usize);
        }
    }
    {
        let mut arr = array::<Oct>(ebpf, "OCTS")?;
        for &o in &freed_octs {
            arr.set(o, Oct::default(), 0)?;
        }
    }
    let mut q = queue(ebpf, "FREE_OCTS")?;
    for o in freed_octs {
        q.push(o, 0)?;
    }
    let mut q = queue(ebpf, "FREE_ROWS")?;
    for (i, _) in &dead_rows {
        q.push(*i, 0)?;
    }
    remove_dead::<ev::ThreadEvKey, ev::EvValue>(ebpf, "EVIDENCE", |k, _| {
        tgids.contains(&k.key.tgid)
    })?;
    for name in ["PENDING", "UPENDING"] {
        remove_dead::<u32, Pending>(ebpf, name, |_, p| tgids.contains(&p.tgid))?;
    }
    Ok(dead_rows.len())
}

/// Free the slots (and reason tables) of dead threads: their tids may come back as others.
fn forget_slots(ebpf: &mut Ebpf, tgids: &[u32], slots: &Slots) -> anyhow::Result<()> {
    let dead: Vec<(u32, Pending)> = (slots.in_use())
        .filter_map(|i| slots.pending.get(i).map(|p| (i as u32, p)))
        .filter(|(_, p)| p.owner != 0 && tgids.contains(&p.tgid))
        .collect();
    {
        let mut tables = array::<[u32; REASON_SLOTS]>(ebpf, "VROWS")?;
        for (_, p) in dead.iter().filter(|(_, p)| p.vctx != 0) {
            tables.set(p.vctx - 1, [0u32; REASON_SLOTS], 0)?;
        }
    }
    {
        let mut arr = array::<Pending>(ebpf, "PSLOTS_MAP")?;
        for (i, _) in &dead {
            arr.set(*i, Pending::default(), 0)?;
        }
    }
    for (i, p) in &dead {
        slots.freed(*i as usize, p);
    }
    // Then release the claim (the programs' BPF_NOEXIST insert): in this order a thread
    // claiming meanwhile fails and uses the hash, instead of getting a slot we then wipe.
    {
        let mut owners = hash::<u32, u32>(ebpf, "PSLOT_OWNERS")?;
        for (i, _) in &dead {
            let _ = owners.remove(i);
        }
    }
    let mut q = queue(ebpf, "FREE_VCTX")?;
    for (_, p) in dead.iter().filter(|(_, p)| p.vctx != 0) {
        q.push(p.vctx - 1, 0)?;
    }
    Ok(())
}
