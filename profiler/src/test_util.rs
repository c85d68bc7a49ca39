//! Helpers shared by unit tests.

use std::time::Duration;

/// CPU time the calling thread has used. Complexity tests compare it across input sizes:
/// unlike the wall clock it does not grow while other tests or processes hold the CPU.
pub fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into the valid, exclusively borrowed `ts`.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "CLOCK_THREAD_CPUTIME_ID");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Allocations made by the calling thread so far (tests compare counts before and after).
/// Counted in the library's unit tests only; 0 elsewhere.
pub fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

use std::{
    alloc::{GlobalAlloc, Layout, System},
    cell::Cell,
};

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

/// The system allocator, counting each thread's allocations (for tests that a path does not
/// allocate per item).
#[cfg_attr(not(test), allow(dead_code))]
struct Counting;

#[cfg_attr(not(test), allow(dead_code))]
fn count() {
    // try_with: nothing to count into while the thread is being torn down.
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: every call is forwarded unchanged to the system allocator, which upholds the
// GlobalAlloc contract; counting touches only a const-initialised thread-local Cell, which
// never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller's layout is passed through as GlobalAlloc::alloc requires.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: as in alloc.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator (System) with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: `ptr` came from this allocator (System) with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Only in the library's own tests: the binary and other crates keep their allocator.
#[cfg(test)]
#[global_allocator]
static COUNTING: Counting = Counting;
