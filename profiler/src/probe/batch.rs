//! BPF_MAP_LOOKUP_BATCH through the raw bpf() syscall (aya 0.14 has no batch API): one
//! syscall per few thousand rows instead of two per row (get_next_key + lookup).

use std::os::fd::{AsFd, AsRawFd};

use anyhow::{bail, Context};
use aya::{maps::Map, Ebpf, Pod};

use super::sys::sys_bpf;

const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;
/// Rows asked for per syscall (a hash bucket holding more would need more; we grow then).
const CHUNK: u32 = 4096;

/// The `batch` member of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

fn map_fd(ebpf: &Ebpf, name: &str) -> anyhow::Result<i32> {
    let map = ebpf
        .map(name)
        .with_context(|| format!("{name} map missing"))?;
    let data = match map {
        Map::Array(d)
        | Map::HashMap(d)
        | Map::LruHashMap(d)
        | Map::PerCpuHashMap(d)
        | Map::PerCpuArray(d)
        | Map::PerCpuLruHashMap(d) => d,
        _ => bail!("{name}: unexpected map type"),
    };
    Ok(data.fd().as_fd().as_raw_fd())
}

/// Every (key, value) of map `name`; `V` is one CPU's value and `per_cpu` says whether the
/// kernel returns one per possible CPU (then the values of a key are `cpus` consecutive V).
pub fn read_all<K: Pod, V: Pod>(
    ebpf: &Ebpf,
    name: &str,
    per_cpu: bool,
) -> anyhow::Result<(Vec<K>, Vec<V>, usize)> {
    let fd = map_fd(ebpf, name)?;
    let cpus = if per_cpu {
        aya::util::nr_cpus().map_err(|(_, e)| e)?
    } else {
        1
    };
    // Per-CPU values are 8-byte aligned slots; ours are all multiples of 8 already.
    assert!(!per_cpu || std::mem::size_of::<V>().is_multiple_of(8));
    let mut keys: Vec<K> = Vec::new();
    let mut vals: Vec<V> = Vec::new();
    let mut token = [0u8; 8];
    let mut first = true;
    let mut chunk = CHUNK;
    loop {
        let start_k = keys.len();
        let start_v = vals.len();
        keys.reserve(chunk as usize);
        vals.reserve(chunk as usize * cpus);
        let mut out_token = [0u8; 8];
        let mut attr = BatchAttr {
            in_batch: if first { 0 } else { token.as_mut_ptr() as u64 },
            out_batch: out_token.as_mut_ptr() as u64,
            // SAFETY (for the syscall below): capacity reserved above, written by the kernel.
            keys: keys.as_mut_ptr().wrapping_add(start_k) as u64,
            values: vals.as_mut_ptr().wrapping_add(start_v) as u64,
            count: chunk,
            map_fd: fd as u32,
            ..Default::default()
        };
        // SAFETY: attr is a valid bpf_attr prefix for BPF_MAP_LOOKUP_BATCH; keys and values
        // have room for `count` keys and `count * cpus` values; the tokens are 8 bytes (the
        // kernel uses 4 for hash maps and the key size (4) for arrays).
        let err = unsafe { sys_bpf(BPF_MAP_LOOKUP_BATCH, &mut attr) }.err();
        let got = attr.count as usize;
        if let Some(e) = &err {
            match e.raw_os_error() {
                Some(libc::ENOENT) => {}
                // One hash bucket holds more than `chunk` keys: ask for more at once.
                Some(libc::ENOSPC) if got == 0 && chunk < 1 << 20 => {
                    chunk *= 4;
                    continue;
                }
                _ => bail!("BPF_MAP_LOOKUP_BATCH on {name}: {e}"),
            }
        }
        // SAFETY: the kernel wrote `got` keys and `got * cpus` values, all Pod.
        unsafe {
            keys.set_len(start_k + got);
            vals.set_len(start_v + got * cpus);
        }
        if err.is_some() {
            break; // ENOENT: that was the last batch.
        }
        token = out_token;
        first = false;
    }
    Ok((keys, vals, cpus))
}
