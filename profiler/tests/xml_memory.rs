//! Hostile libvirt XML costs little memory: both libvirt parsers on a 30 000-level nesting
//! (the old tag scanner copied the tag stack per tag: quadratic, 22+ GB here). A counting
//! allocator measures the peak heap growth; past a budget it refuses, so a regression aborts
//! this test binary instead of exhausting the machine.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static LIMITED: AtomicBool = AtomicBool::new(false);
/// Refused above this many live bytes while `LIMITED`.
const BUDGET: usize = 256 << 20;

// SAFETY: every call is forwarded to the system allocator unchanged (or refused with null,
// which GlobalAlloc allows); the counters are only bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let now = LIVE.fetch_add(l.size(), SeqCst) + l.size();
        if LIMITED.load(SeqCst) && now > BUDGET {
            LIVE.fetch_sub(l.size(), SeqCst);
            return std::ptr::null_mut();
        }
        PEAK.fetch_max(now, SeqCst);
        // SAFETY: same layout contract as our caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), SeqCst);
        // SAFETY: `p` came from System.alloc with this layout.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static A: Counting = Counting;

/// Peak live-heap growth while running `f`.
fn peak_growth(f: impl FnOnce()) -> usize {
    let base = LIVE.load(SeqCst);
    PEAK.store(base, SeqCst);
    LIMITED.store(true, SeqCst);
    f();
    LIMITED.store(false, SeqCst);
    PEAK.load(SeqCst) - base
}

#[test]
fn deep_nesting_is_refused_in_bounded_memory() {
    let depth = 30_000;
    let xml = format!(
        "<domstatus pid='42'><domain type='kvm'><name>deep</name>{}\
         <features><hyperv><synic state='on'/></hyperv></features>{}</domain></domstatus>",
        "<a>".repeat(depth),
        "</a>".repeat(depth)
    );
    assert!(xml.len() < 300_000);
    let grew = peak_growth(|| {
        let cfg = kvmprof::advice::parse_libvirt_xml(&xml);
        assert_eq!(cfg, Default::default(), "a finding from a refused file");
        assert_eq!(kvmprof::vm::libvirt::parse_status(&xml), None);
    });
    // A linear parser of 300 KB needs a few MB at most; the bound is generous on purpose.
    assert!(grew < 64 << 20, "peak heap growth {grew} bytes");
}
