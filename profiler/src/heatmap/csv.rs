//! `kvmprof report --heatmap -f csv`: one line per non-empty cell of every heatmap row, RFC
//! 4180 quoting (names raw, as the other CSV keeps them), `\n` line ends.
//!
//! Columns, in this order (stable; new columns are only ever appended):
//!
//! | column          | meaning                                                              |
//! |-----------------|----------------------------------------------------------------------|
//! | `vm_pid`        | VMM process id                                                       |
//! | `vm_name`       | libvirt / QEMU name (or `pid N`)                                     |
//! | `vcpu`          | vCPU id (`--vcpu N`), or `all`: the VM's exits on every vCPU         |
//! | `isa`           | `vmx` or `svm`                                                       |
//! | `reason`        | exit code, decimal                                                   |
//! | `name`          | exit name as the kernel prints it                                    |
//! | `start_s`       | interval start, seconds since the session's first sample (3 decimals) |
//! | `end_s`         | interval end, likewise                                               |
//! | `start_unix_ms` | wall clock at the interval's start, ms since the Unix epoch; empty when unknown |
//! | `lo_ns`         | latency band's lower bound (inclusive), ns                           |
//! | `hi_ns`         | its upper bound (exclusive), ns; empty for the last band (≥ 2^36 ns) |
//! | `exits`         | timed exits of the row in that interval whose handling time is in the band |
//!
//! Bands are octaves (8 ns, 16 ns, ..., 1024 ns, ...; the first is 0–8 ns). Cells with no
//! exits are left out. Order: VMs by pid, reasons by (isa, code), intervals in time, bands
//! ascending. A VM's exits over all its reasons are the sum of its lines per interval and band.

use super::{band_lower, band_upper, Series};
use crate::report::csv::key_fields;

pub const COLUMNS: [&str; 12] = [
    "vm_pid",
    "vm_name",
    "vcpu",
    "isa",
    "reason",
    "name",
    "start_s",
    "end_s",
    "start_unix_ms",
    "lo_ns",
    "hi_ns",
    "exits",
];

/// The series as CSV, header line first.
pub fn render(s: &Series) -> String {
    let mut out = COLUMNS.join(",");
    out.push('\n');
    for (k, row) in &s.rows {
        let vcpu = k.vcpu.map_or_else(|| "all".to_string(), |v| v.to_string());
        let head = key_fields(
            k.pid,
            &row.vm_name,
            &vcpu,
            &row.isa_name,
            k.reason,
            &row.name,
        );
        for (i, cells) in &row.cols {
            let Some(iv) = s.intervals.get(*i as usize) else {
                continue;
            };
            let wall = match iv.start_unix_ms {
                0 => String::new(),
                ms => ms.to_string(),
            };
            for &(b, n) in cells {
                let hi = band_upper(b as usize).map_or_else(String::new, |h| h.to_string());
                out.push_str(&format!(
                    "{head},{:.3},{:.3},{wall},{},{hi},{n}\n",
                    iv.start_ns as f64 / 1e9,
                    iv.end_ns as f64 / 1e9,
                    band_lower(b as usize),
                ));
            }
        }
    }
    out
}
