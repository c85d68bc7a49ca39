//! BPF_MAP_LOOKUP_BATCH through the raw bpf() syscall (aya 0.14 has no batch API): one
//! syscall per few thousand rows instead of two per row (get_next_key + lookup).

use std::os::fd::{AsFd, AsRawFd};

use anyhow::{bail, Context};
use aya::{
    maps::{Map, MapData},
    Ebpf, Pod,
};

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

pub(super) fn map_fd(ebpf: &Ebpf, name: &str) -> anyhow::Result<i32> {
    Ok(map_data(ebpf, name)?.fd().as_fd().as_raw_fd())
}

fn map_data<'a>(ebpf: &'a Ebpf, name: &str) -> anyhow::Result<&'a MapData> {
    let map = ebpf
        .map(name)
        .with_context(|| format!("{name} map missing"))?;
    Ok(match map {
        Map::Array(d)
        | Map::HashMap(d)
        | Map::LruHashMap(d)
        | Map::PerCpuHashMap(d)
        | Map::PerCpuArray(d)
        | Map::PerCpuLruHashMap(d)
        | Map::Queue(d) => d,
        _ => bail!("{name}: unexpected map type"),
    })
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

const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;

/// The `elem` member of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct ElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_MAP_DELETE_ELEM: libc::c_long = 3;

/// Pushes `value` onto queue `fd`.
pub(super) fn push<V: Pod>(fd: i32, value: &V) -> std::io::Result<()> {
    let mut attr = ElemAttr {
        map_fd: fd as u32,
        value: value as *const V as u64,
        ..Default::default()
    };
    // SAFETY: attr is a valid bpf_attr prefix for BPF_MAP_UPDATE_ELEM with no key (a queue's
    // push); the value buffer is of the queue's value size (the caller's V).
    unsafe { sys_bpf(BPF_MAP_UPDATE_ELEM, &mut attr) }
}

const BPF_MAP_DELETE_BATCH: libc::c_long = 27;

/// Deletes `keys` from hash `fd` in one syscall (Linux 5.6, as the batch lookup), key by key
/// from where the batch stopped (a key gone already stops it).
pub(super) fn delete_all<K: Pod>(fd: i32, keys: &[K]) -> std::io::Result<()> {
    let mut attr = BatchAttr {
        keys: keys.as_ptr() as u64,
        count: keys.len() as u32,
        map_fd: fd as u32,
        ..Default::default()
    };
    // SAFETY: attr is a valid bpf_attr prefix for BPF_MAP_DELETE_BATCH; `keys` holds `count`
    // keys of the map's key size (the caller's K), read by the kernel during the call.
    let done = match unsafe { sys_bpf(BPF_MAP_DELETE_BATCH, &mut attr) } {
        Ok(()) => return Ok(()),
        Err(_) => (attr.count as usize).min(keys.len()),
    };
    keys[done..].iter().try_for_each(|k| delete(fd, k))
}

/// Deletes `key` from hash `fd` (gone already is not an error).
pub(super) fn delete<K: Pod>(fd: i32, key: &K) -> std::io::Result<()> {
    let mut attr = ElemAttr {
        map_fd: fd as u32,
        key: key as *const K as u64,
        ..Default::default()
    };
    // SAFETY: attr is a valid bpf_attr prefix for BPF_MAP_DELETE_ELEM; the key buffer is of
    // the map's key size (the caller's K).
    match unsafe { sys_bpf(BPF_MAP_DELETE_ELEM, &mut attr) } {
        Err(e) if e.raw_os_error() != Some(libc::ENOENT) => Err(e),
        _ => Ok(()),
    }
}

/// The value of `key` in (non-per-CPU) map `fd`; None when it is not there.
fn lookup<K: Pod, V: Pod>(fd: i32, key: &K) -> std::io::Result<Option<V>> {
    let mut v = std::mem::MaybeUninit::<V>::zeroed();
    let mut attr = ElemAttr {
        map_fd: fd as u32,
        key: key as *const K as u64,
        value: v.as_mut_ptr() as u64,
        ..Default::default()
    };
    // SAFETY: attr is a valid bpf_attr prefix for BPF_MAP_LOOKUP_ELEM; the key and value
    // buffers are of the map's key and value sizes (the caller's K and V), valid for the call.
    match unsafe { sys_bpf(BPF_MAP_LOOKUP_ELEM, &mut attr) } {
        // SAFETY: the kernel wrote a whole V, and V is Pod.
        Ok(()) => Ok(Some(unsafe { v.assume_init() })),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// A hash read every refresh whose keys seldom change (EVIDENCE). A batch read walks
/// every bucket of the map, empty or not (32 768 in EVIDENCE); the kernel tells of each key it
/// adds (`learn`) or counts the ones it could not tell of (`unlogged`), so while that count
/// stands still the keys known are all there are, and they are looked up one by one instead,
/// as long as that is cheaper than the walk.
#[derive(Default)]
pub struct KnownKeys<K> {
    /// Sorted and without repeats after each read; the ones learned since at the end.
    keys: Vec<K>,
    /// `unlogged` as read before the last walk (None: not counted, walk every time).
    at: Option<u64>,
    /// The map's buckets (its capacity, to the next power of two), asked once.
    buckets: Option<usize>,
    /// Walks and key-by-key reads so far (the tests check which one a refresh took).
    pub walks: u64,
    pub lookups: u64,
}

/// A key lookup costs about as much as walking this many empty buckets (one syscall each,
/// against one syscall for the whole walk).
const BUCKETS_PER_LOOKUP: usize = 32;

impl<K: Pod + Ord> KnownKeys<K> {
    /// A key the kernel added (and so is in the map now, unless forgotten since).
    pub fn learn(&mut self, key: K) {
        self.keys.push(key);
    }

    /// Every (key, value) of hash `name`. `unlogged`: the kernel's count of keys it added
    /// without telling, read before the keys it told of were learned.
    pub fn read<V: Pod>(
        &mut self,
        ebpf: &Ebpf,
        name: &str,
        unlogged: Option<u64>,
    ) -> anyhow::Result<(Vec<K>, Vec<V>)> {
        let buckets = match self.buckets {
            Some(b) => b,
            None => {
                let info = map_data(ebpf, name)?.info()?;
                *self
                    .buckets
                    .insert((info.max_entries() as usize).next_power_of_two())
            }
        };
        self.keys.sort_unstable();
        self.keys.dedup();
        if unlogged.is_some()
            && self.at == unlogged
            && self.keys.len() * BUCKETS_PER_LOOKUP < buckets
        {
            let fd = map_fd(ebpf, name)?;
            let mut vals = Vec::with_capacity(self.keys.len());
            let mut err = None;
            // Keys gone (userspace forgot their VM, or the LRU pushed them out) drop out.
            self.keys.retain(|k| match lookup::<K, V>(fd, k) {
                Ok(Some(v)) => {
                    vals.push(v);
                    true
                }
                Ok(None) => false,
                Err(e) => {
                    err.get_or_insert(e);
                    false
                }
            });
            if let Some(e) = err {
                self.at = None;
                bail!("BPF_MAP_LOOKUP_ELEM on {name}: {e}");
            }
            self.lookups += 1;
            return Ok((self.keys.clone(), vals));
        }
        let (keys, vals, _) = read_all::<K, V>(ebpf, name, false)?;
        self.keys.clone_from(&keys);
        self.at = unlogged;
        self.walks += 1;
        Ok((keys, vals))
    }
}
