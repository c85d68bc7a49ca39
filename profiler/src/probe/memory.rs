//! Kernel memory of the loaded maps, as the kernel accounts it (`memlock` in the map fd's
//! fdinfo): what benchmarks report, measured rather than computed from our own layouts.

use std::os::fd::{AsFd, AsRawFd};

use aya::{maps::Map, Ebpf};

/// One map's kernel memory.
#[derive(Clone, Debug)]
pub struct MapMemory {
    pub name: String,
    pub bytes: u64,
    /// BPF_MAP_TYPE_PERCPU_*: its memory grows with the CPU count.
    pub per_cpu: bool,
}

pub fn maps(ebpf: &Ebpf) -> Vec<MapMemory> {
    let mut out = Vec::new();
    for (name, map) in ebpf.maps() {
        let data = match map {
            Map::Array(d)
            | Map::HashMap(d)
            | Map::LruHashMap(d)
            | Map::PerCpuHashMap(d)
            | Map::PerCpuArray(d)
            | Map::PerCpuLruHashMap(d)
            | Map::Queue(d)
            | Map::RingBuf(d) => d,
            _ => continue,
        };
        let fd = data.fd().as_fd().as_raw_fd();
        let Ok(info) = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")) else {
            continue;
        };
        let field = |k: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(k))
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        out.push(MapMemory {
            name: name.to_string(),
            bytes: field("memlock:").unwrap_or(0),
            // 5 = PERCPU_HASH, 6 = PERCPU_ARRAY, 10 = LRU_PERCPU_HASH, 21 = PERCPU_CGROUP_STORAGE.
            per_cpu: matches!(field("map_type:"), Some(5 | 6 | 10 | 21)),
        });
    }
    out
}
