//! One QEMU/TCG boot of a Debian kernel with an initramfs (the VM test's and bench-vm's).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::tail;

/// One boot of the Debian kernel with an initramfs under QEMU/TCG (2 vCPUs, `-cpu max`: nested
/// SVM), serial console to `log`, until the guest powers off.
pub(crate) struct Qemu<'a> {
    pub kroot: &'a Path,
    pub ver: &'a str,
    pub initrd: &'a Path,
    pub memory: &'a str,
    pub append: &'a str,
    /// Seconds before the guest is killed.
    pub timeout: u64,
    pub log: &'a Path,
}

impl Qemu<'_> {
    /// Boot and wait; `poll(elapsed)` runs every `every` meanwhile. Returns the wall time.
    pub fn run(&self, every: Duration, mut poll: impl FnMut(Duration)) -> Result<Duration> {
        let log = self.log;
        let serial = std::fs::File::create(log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        let mut qemu = Command::new("qemu-system-x86_64");
        qemu.args([
            // One host thread for both vCPUs: with multi-threaded TCG, the guest kernel's live
            // code patching (text_poke with int3, e.g. KVM toggling the preempt-notifier static
            // key in __schedule on every VM create/destroy) races with the other vCPU's cached
            // translation and the guest dies of an unhandled int3 now and then.
            "-accel",
            "tcg,thread=single",
            "-cpu",
            "max",
            "-m",
            self.memory,
            "-smp",
            "2",
            "-nographic",
            "-no-reboot",
        ])
        .arg("-kernel")
        .arg(self.kroot.join(format!("boot/vmlinuz-{}", self.ver)))
        .arg("-initrd")
        .arg(self.initrd)
        .args(["-append", self.append])
        .stdin(Stdio::null())
        .stdout(serial.try_clone()?)
        .stderr(serial);
        let t0 = Instant::now();
        let mut child = qemu
            .spawn()
            .context("cannot start qemu-system-x86_64 (apt-get install qemu-system-x86)")?;
        let deadline = t0 + Duration::from_secs(self.timeout);
        loop {
            if let Some(status) = child.try_wait()? {
                if !status.success() {
                    bail!("qemu exited with {status}; serial log {}", log.display());
                }
                return Ok(t0.elapsed());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                let text = std::fs::read_to_string(log).unwrap_or_default();
                bail!(
                    "QEMU did not power off within {} s (raise --timeout); serial log {}:\n{}",
                    self.timeout,
                    log.display(),
                    tail(&text, 20)
                );
            }
            poll(t0.elapsed());
            std::thread::sleep(every);
        }
    }
}
