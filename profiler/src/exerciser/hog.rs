//! For the scheduler-split test: the vCPU thread shares one host CPU with a busy thread, so it
//! waits for that CPU in the middle of its exits, and its own schedstat says how long.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread::JoinHandle,
};

use anyhow::{bail, Context, Result};

/// Pins the calling thread to `cpu` (also what tests and benchmarks use to put threads on
/// chosen CPUs).
pub fn pin_to(cpu: usize) -> Result<()> {
    if cpu >= libc::CPU_SETSIZE as usize {
        bail!("CPU {cpu}: no such CPU");
    }
    // SAFETY: a zeroed cpu_set_t is a valid empty set and CPU_SET writes within it (cpu is
    // below CPU_SETSIZE); sched_setaffinity(0, ...) reads it for the calling thread.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if rc != 0 {
        bail!(
            "cannot pin a thread to CPU {cpu}: {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// A thread spinning on `cpu` until dropped.
pub(super) struct Hog {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Hog {
    pub(super) fn start(cpu: usize) -> Result<Hog> {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::Builder::new()
            .name("hog".into())
            .spawn(move || {
                if pin_to(cpu).is_ok() {
                    while !s.load(Ordering::Relaxed) {
                        std::hint::spin_loop();
                    }
                }
            })
            .context("cannot spawn the hog thread")?;
        Ok(Hog {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Hog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The calling thread's run-queue delay so far (schedstat's second field), ns; None where
/// the kernel has no schedstat.
pub(super) fn run_delay_ns() -> Option<u64> {
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::gettid() };
    let s = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat")).ok()?;
    s.split_whitespace().nth(1)?.parse().ok()
}
