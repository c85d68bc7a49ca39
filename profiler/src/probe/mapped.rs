//! The kernel's mmappable arrays (BPF_F_MMAPABLE), read through shared read-only mappings:
//! a refresh scans memory instead of copying every element out with syscalls.

use std::os::fd::{AsFd, AsRawFd};

use anyhow::{bail, Context};
use aya::{maps::Map, Ebpf, Pod};

pub struct Mapped<T> {
    ptr: *const T,
    len: usize,
    bytes: usize,
    writable: bool,
}

// SAFETY: the mapping lives as long as the value and is only read with volatile loads of
// plain integers (Pod), or written with volatile byte stores (`clear_byte`); any thread may.
unsafe impl<T> Send for Mapped<T> {}
// SAFETY: as above; `&Mapped` only ever reads.
unsafe impl<T> Sync for Mapped<T> {}

impl<T: Pod> Mapped<T> {
    /// Map the array `name` (created with BPF_F_MMAPABLE) of `len` elements of `T`, read-only.
    pub fn map(ebpf: &Ebpf, name: &str) -> anyhow::Result<Mapped<T>> {
        Self::map_with(ebpf, name, false)
    }

    /// Map it for reading and for `clear_byte`.
    pub fn map_writable(ebpf: &Ebpf, name: &str) -> anyhow::Result<Mapped<T>> {
        Self::map_with(ebpf, name, true)
    }

    fn map_with(ebpf: &Ebpf, name: &str, writable: bool) -> anyhow::Result<Mapped<T>> {
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
        let prot = if writable {
            libc::PROT_READ | libc::PROT_WRITE
        } else {
            libc::PROT_READ
        };
        // SAFETY: a fresh shared mapping of the map's value area; the kernel checks the flag
        // and the length, and Drop unmaps exactly this range.
        let ptr = unsafe { libc::mmap(std::ptr::null_mut(), bytes, prot, libc::MAP_SHARED, fd, 0) };
        if ptr == libc::MAP_FAILED {
            let e = std::io::Error::last_os_error();
            bail!("mapping the kernel's {name} array: {e} (needs Linux ≥ 5.5)");
        }
        Ok(Mapped {
            ptr: ptr as *const T,
            len,
            bytes,
            writable,
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

impl<T: Pod> Mapped<T> {
    /// Element `i` := `v` (a mapping from `map_writable`), without a syscall.
    pub fn set(&self, i: usize, v: T) {
        assert!(self.writable && i < self.len);
        // SAFETY: in bounds (asserted) of a mapping created writable (asserted); T is Pod.
        unsafe { std::ptr::write_volatile(self.ptr.add(i) as *mut T, v) };
    }
}

impl Mapped<u64> {
    /// Zero byte `b` of the array (a mapping from `map_writable`): one byte store, so a
    /// program setting another byte of the same word meanwhile keeps its write.
    pub fn clear_byte(&self, b: usize) {
        assert!(self.writable && b < self.len * 8);
        // SAFETY: in bounds (asserted) of a mapping created writable (asserted).
        unsafe { std::ptr::write_volatile((self.ptr as *mut u8).add(b), 0) };
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
