//! The kernel's mmappable arrays (BPF_F_MMAPABLE), read through shared read-only mappings:
//! a refresh scans memory instead of copying every element out with syscalls.

use std::os::fd::{AsFd, AsRawFd};

use anyhow::{bail, Context};
use aya::{maps::Map, Ebpf, Pod};

pub struct Mapped<T> {
    ptr: *const T,
    len: usize,
    bytes: usize,
}

// SAFETY: the mapping is read-only, lives as long as the value, and is only read with volatile
// loads of plain integers (Pod); any thread may do that.
unsafe impl<T> Send for Mapped<T> {}
// SAFETY: as above; `&Mapped` only ever reads.
unsafe impl<T> Sync for Mapped<T> {}

impl<T: Pod> Mapped<T> {
    /// Map the array `name` (created with BPF_F_MMAPABLE) of `len` elements of `T`.
    pub fn map(ebpf: &Ebpf, name: &str) -> anyhow::Result<Mapped<T>> {
        let Some(Map::Array(data)) = ebpf.map(name) else {
            bail!("{name}: not an array map in the eBPF object");
        };
        let info = data.info().with_context(|| format!("{name}: map info"))?;
        let len = info.max_entries() as usize;
        if info.value_size() as usize != std::mem::size_of::<T>() {
            bail!(
                "{name}: value size {} in the kernel, {} here",
                info.value_size(),
                std::mem::size_of::<T>()
            );
        }
        let fd = data.fd().as_fd().as_raw_fd();
        let page = 4096usize;
        let bytes = (len * std::mem::size_of::<T>()).div_ceil(page).max(1) * page;
        // SAFETY: a fresh shared read-only mapping of the map's value area; the kernel checks
        // the flag and the length, and Drop unmaps exactly this range.
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
            let e = std::io::Error::last_os_error();
            bail!("mapping the kernel's {name} array: {e} (needs Linux ≥ 5.5)");
        }
        Ok(Mapped {
            ptr: ptr as *const T,
            len,
            bytes,
        })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Element `i` as it is now (the kernel may be writing it: see Row::gen for how rows are
    /// read consistently). None past the end.
    #[inline]
    pub fn get(&self, i: usize) -> Option<T> {
        // SAFETY: i < len, so the element lies inside the mapping; T is Pod, valid for any bit
        // pattern; volatile because the kernel writes it concurrently.
        (i < self.len).then(|| unsafe { std::ptr::read_volatile(self.ptr.add(i)) })
    }

    /// A u64 field of element `i` at byte offset `off` (8-aligned), read atomically: the
    /// sequence counters that tell whether an element changed.
    #[inline]
    pub fn u64_at(&self, i: usize, off: usize) -> u64 {
        assert!(i < self.len && off + 8 <= std::mem::size_of::<T>() && off.is_multiple_of(8));
        // SAFETY: in bounds (asserted), 8-aligned (elements are 8-aligned Pod structs and off
        // is a multiple of 8); an aligned 8-byte load is atomic on the hosts KVM runs on.
        let p = unsafe { (self.ptr.add(i) as *const u8).add(off) } as *const u64;
        // SAFETY: as above.
        unsafe { std::ptr::read_volatile(p) }
    }
}

impl<T> Drop for Mapped<T> {
    fn drop(&mut self) {
        // SAFETY: exactly the range `map` created, unmapped once.
        unsafe {
            libc::munmap(self.ptr as *mut libc::c_void, self.bytes);
        }
    }
}
