//! Fixed-width number formats: every duration fits 6 columns, every rate 7.

use crate::model::HostCpu;

/// 850ns, 9.99µs, 99.9µs, 999µs, 1.23ms, ..., 12.3s.
pub fn dur(ns: u64) -> String {
    durf(ns as f64)
}

pub fn durf(ns: f64) -> String {
    for (scale, unit) in [(1e9, "s"), (1e6, "ms"), (1e3, "µs")] {
        // 999.9µs rounds to 1000µs: move to the next unit before that.
        if ns >= scale * 0.9995 {
            return three(ns / scale, unit);
        }
    }
    format!("{}ns", ns.round() as u64)
}

/// Three significant digits (fewer decimals as the value grows).
fn three(v: f64, unit: &str) -> String {
    if v < 9.995 {
        format!("{v:.2}{unit}")
    } else if v < 99.95 {
        format!("{v:.1}{unit}")
    } else {
        format!("{v:.0}{unit}")
    }
}

/// Event counts: exact up to 7 digits, then k/M/G.
pub fn count(n: u64) -> String {
    if n < 10_000_000 {
        n.to_string()
    } else {
        si(n as f64)
    }
}

/// Per-second rates.
pub fn rate(r: f64) -> String {
    if r == 0.0 {
        "0".into()
    } else if r < 10.0 {
        format!("{r:.2}")
    } else if r < 1000.0 {
        format!("{r:.1}")
    } else {
        si(r)
    }
}

fn si(v: f64) -> String {
    for (scale, unit) in [(1e9, "G"), (1e6, "M"), (1e3, "k")] {
        if v >= scale * 0.9995 {
            return three(v / scale, unit);
        }
    }
    format!("{v:.0}")
}

/// Percentages with two decimals, in 6 columns.
pub fn pct(p: f64) -> String {
    if p >= 99.995 {
        "100.0".into()
    } else {
        format!("{p:.2}")
    }
}

/// % of one core: one decimal below 100, whole above (a busy VM can use several cores).
pub fn cpu(p: f64) -> String {
    if p < 99.95 {
        format!("{p:.1}")
    } else {
        format!("{p:.0}")
    }
}

/// Seconds for the header: 0.25s, 1s, 2m05s, 1h02m.
pub fn secs(s: f64) -> String {
    if s < 10.0 && s.fract() != 0.0 {
        format!("{s:.2}s")
    } else if s < 120.0 {
        format!("{}s", s.round() as u64)
    } else if s < 7200.0 {
        let t = s as u64;
        format!("{}m{:02}s", t / 60, t % 60)
    } else {
        let t = s as u64;
        format!("{}h{:02}m", t / 3600, t % 3600 / 60)
    }
}

/// Wall-clock ms since the epoch as "2024-05-01 12:00:41" (UTC: no time-zone database here).
pub fn utc(ms: u64) -> String {
    civil(ms, "%Y-%m-%d %H:%M:%S")
}

/// The same instant for file names: "20240501-120041".
pub fn stamp(ms: u64) -> String {
    civil(ms, "%Y%m%d-%H%M%S")
}

/// `ms` formatted in UTC; a time past jiff's range (years -9999..=9999, e.g. from a damaged
/// recording) says so instead.
fn civil(ms: u64, format: &str) -> String {
    i64::try_from(ms)
        .ok()
        .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
        .map_or_else(
            || format!("(time out of range: {ms} ms)"),
            |t| t.strftime(format).to_string(),
        )
}

/// File sizes: 812 B, 34.5 KiB, 1.20 MiB.
pub fn bytes(n: u64) -> String {
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    for unit in ["KiB", "MiB", "GiB"] {
        if v < 1023.5 || unit == "GiB" {
            return three(v, &format!(" {unit}"));
        }
        v /= 1024.0;
    }
    format!("{n} B")
}

/// "host CPU 54.0% (guest 12.0 + exits 18.0 + VMM 4.0 + vhost 20.0)": the guest, its vCPU
/// threads outside it, the VMM's other threads, its vhost workers, as far as they are known;
/// empty when nothing is.
pub fn host_cpu(c: Option<HostCpu>) -> String {
    let Some(c) = c else {
        return String::new();
    };
    let f = cpu;
    let mut parts = match (c.guest_pct, c.vcpu_pct.zip(c.vmm_pct)) {
        (Some(g), Some((v, o))) => vec![
            format!("guest {}", f(g)),
            format!("exits {}", f(v - g)),
            format!("VMM {}", f(o)),
        ],
        (None, Some((v, o))) => vec![format!("vCPU {}", f(v)), format!("VMM {}", f(o))],
        (Some(g), None) => vec![format!("guest {}", f(g))],
        (None, None) => Vec::new(),
    };
    parts.extend(c.vhost_pct.map(|v| format!("vhost {}", f(v))));
    let split = match parts.is_empty() {
        true => String::new(),
        false => format!(" ({})", parts.join(" + ")),
    };
    let wait = c
        .vcpu_wait_pct
        .map(|w| format!(", vCPU wait {}%", f(w)))
        .unwrap_or_default();
    format!("host CPU {}%{split}{wait}", cpu(c.all_pct))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_and_units() {
        assert_eq!(dur(850), "850ns");
        assert_eq!(dur(1_234), "1.23µs");
        assert_eq!(dur(99_940), "99.9µs");
        assert_eq!(dur(123_456), "123µs");
        assert_eq!(dur(1_500_000), "1.50ms");
        assert_eq!(dur(12_300_000_000), "12.3s");
        assert_eq!(rate(0.5), "0.50");
        assert_eq!(rate(12_345.0), "12.3k");
        assert_eq!(count(12_345_678), "12.3M");
        assert_eq!(pct(100.0), "100.0");
        assert_eq!(secs(0.25), "0.25s");
        assert_eq!(secs(125.0), "2m05s");
        assert_eq!(utc(1_709_210_096_000), "2024-02-29 12:34:56");
        assert_eq!(stamp(0), "19700101-000000");
        assert_eq!(
            utc(u64::MAX),
            format!("(time out of range: {} ms)", u64::MAX)
        );
        assert_eq!(bytes(812), "812 B");
        assert_eq!(bytes(35_328), "34.5 KiB");
        assert_eq!(bytes(1_258_291), "1.20 MiB");
        for ns in [
            0,
            9,
            999,
            9_999,
            99_999,
            999_999,
            9_999_999,
            99_999_999,
            999_999_999,
        ] {
            assert!(dur(ns).chars().count() <= 6, "{}", dur(ns));
        }
    }
}
