//! Messages the eBPF programs log (aya-log), collected for the UI instead of stderr: writing
//! to stderr under the TUI's alternate screen would garble it.

use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
pub struct Collector {
    pub lines: Arc<Mutex<Vec<String>>>,
}

impl log::Log for Collector {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }

    fn log(&self, record: &log::Record) {
        if let Ok(mut l) = self.lines.lock() {
            // Bounded: a misbehaving program must not grow our memory.
            if l.len() < 1000 {
                l.push(format!("{}: {}", record.level(), record.args()));
            }
        }
    }

    fn flush(&self) {}
}

impl Collector {
    pub fn drain(&self) -> Vec<String> {
        self.lines
            .lock()
            .map(|mut l| std::mem::take(&mut *l))
            .unwrap_or_default()
    }
}
