//! The PSLOTS array (one pending exit per thread slot) read through a read-only shared
//! mapping: counting exits in flight is then a 2 MiB memory scan, not 65536 map lookups in
//! the kernel (which cost ~15 ms a refresh on a 2-CPU host, far more under emulation).

use std::os::fd::{AsFd, AsRawFd};

use aya::{maps::Map, Ebpf};
use profiler_common::{Pending, PSLOTS};

pub struct SlotView {
    ptr: *const Pending,
    bytes: usize,
}

// SAFETY: the mapping is read-only, lives as long as the view, and is only read with volatile
// loads of plain integers; any thread may do that.
unsafe impl Send for SlotView {}
// SAFETY: as above; `&SlotView` only ever reads.
unsafe impl Sync for SlotView {}

impl SlotView {
    /// Map `PSLOTS_MAP` (created with BPF_F_MMAPABLE); None where the kernel refuses.
    pub fn map(ebpf: &Ebpf) -> Option<SlotView> {
        let Some(Map::Array(data)) = ebpf.map("PSLOTS_MAP") else {
            return None;
        };
        let fd = data.fd().as_fd().as_raw_fd();
        let page = 4096usize;
        let bytes = (PSLOTS as usize * std::mem::size_of::<Pending>()).div_ceil(page) * page;
        // SAFETY: a fresh shared read-only mapping of the map's value area; the kernel checks
        // the flag and the length, and we unmap exactly this range in Drop.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return None;
        }
        Some(SlotView {
            ptr: ptr as *const Pending,
            bytes,
        })
    }

    /// Every slot as it is now (the kernel may be writing; a torn slot only miscounts one exit
    /// in flight for one refresh).
    pub fn for_each(&self, mut f: impl FnMut(usize, &Pending)) {
        for i in 0..PSLOTS as usize {
            // SAFETY: i < PSLOTS, so the element lies inside the mapping; Pending is plain
            // integers, valid for any bit pattern; volatile because the kernel writes it.
            let p = unsafe { std::ptr::read_volatile(self.ptr.add(i)) };
            if p.ts != 0 || p.owner != 0 {
                f(i, &p);
            }
        }
    }
}

impl Drop for SlotView {
    fn drop(&mut self) {
        // SAFETY: exactly the range `map` created, unmapped once.
        unsafe {
            libc::munmap(self.ptr as *mut libc::c_void, self.bytes);
        }
    }
}
