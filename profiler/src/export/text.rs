//! The two exposition formats and which one a scraper gets: the Prometheus text format 0.0.4
//! unless its `Accept` asks for OpenMetrics (issue #16). OpenMetrics comes from
//! prometheus-client's encoder ([`super::encode::render`]); 0.0.4 is written here from the same
//! families, with the same float text (dtoa), so `le` and values read alike in both.

use std::fmt::Write;

use prometheus_client::metrics::MetricType;

use super::encode::{Family, Labels, Value};

/// An exposition format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `text/plain; version=0.0.4`: what every Prometheus-compatible scraper reads.
    Prometheus,
    /// `application/openmetrics-text; version=1.0.0`, only when asked for.
    OpenMetrics,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }

    /// The format for a request's `Accept` header: OpenMetrics when it names
    /// `application/openmetrics-text` with a quality above 0 and at least that of any range
    /// matching `text/plain` (Prometheus asks `openmetrics-text;version=1.0.0,…,text/plain;
    /// version=0.0.4;q=0.5,*/*;q=0.1`); otherwise, and without the header, the text format.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let (mut om, mut text) = (0.0f32, 0.0f32);
        for range in accept.unwrap_or("").split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or("").to_ascii_lowercase();
            let mut q = 1.0f32;
            let mut version = None;
            for p in parts {
                let Some((k, v)) = p.split_once('=') else {
                    continue;
                };
                match k.trim().to_ascii_lowercase().as_str() {
                    // A malformed q counts as 0: the range asks for nothing.
                    "q" => q = v.trim().parse().unwrap_or(0.0),
                    "version" => version = Some(v.trim().to_string()),
                    _ => {}
                }
            }
            match media.as_str() {
                // We write OpenMetrics 1.0.0 (0.0.1 is its draft, with the same text).
                "application/openmetrics-text"
                    if version
                        .as_deref()
                        .is_none_or(|v| v == "1.0.0" || v == "0.0.1") =>
                {
                    om = om.max(q)
                }
                "text/plain" | "text/*" | "*/*" => text = text.max(q),
                _ => {}
            }
        }
        if om > 0.0 && om >= text {
            Format::OpenMetrics
        } else {
            Format::Prometheus
        }
    }
}

/// The Prometheus text format 0.0.4 of `families`: HELP and TYPE name the sample (a
/// counter's `_total` included), histogram buckets are cumulative, no UNIT and no `# EOF`.
pub fn render_text(families: &[Family]) -> String {
    let mut out = String::new();
    for f in families {
        let base = match f.seconds {
            true => format!("{}_seconds", f.name),
            false => f.name.to_string(),
        };
        let (name, kind) = match f.kind {
            MetricType::Counter => (format!("{base}_total"), "counter"),
            MetricType::Gauge => (base, "gauge"),
            MetricType::Histogram => (base, "histogram"),
            _ => (base, "untyped"),
        };
        let help = f.help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (l, v) in &f.series {
            match v {
                Value::Count(c) => sample(&mut out, &name, "", l, None, &c.to_string()),
                Value::Counter(x) | Value::Gauge(x) => {
                    sample(&mut out, &name, "", l, None, &num(*x))
                }
                Value::Histogram(sum, count, buckets) => {
                    let mut cum = 0u64;
                    for (le, c) in buckets {
                        cum += c;
                        let le = match *le == f64::MAX {
                            true => "+Inf".to_string(),
                            false => num(*le),
                        };
                        sample(&mut out, &name, "_bucket", l, Some(&le), &cum.to_string());
                    }
                    sample(&mut out, &name, "_sum", l, None, &num(*sum));
                    sample(&mut out, &name, "_count", l, None, &count.to_string());
                }
            }
        }
    }
    out
}

/// A float as prometheus-client writes it (`1.0`, `2.5e-7`), and the special values.
fn num(x: f64) -> String {
    if x.is_nan() {
        "NaN".into()
    } else if x.is_infinite() {
        if x > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        dtoa::Buffer::new().format(x).to_string()
    }
}

/// One sample line; labels are already escaped ([`super::encode::Esc`]).
fn sample(out: &mut String, name: &str, suffix: &str, l: &Labels, le: Option<&str>, v: &str) {
    out.push_str(name);
    out.push_str(suffix);
    let pairs = l
        .iter()
        .map(|(k, v)| (*k, v.escaped()))
        .chain(le.map(|le| ("le", le.to_string())));
    let mut first = true;
    for (k, v) in pairs {
        out.push(if first { '{' } else { ',' });
        first = false;
        let _ = write!(out, "{k}=\"{v}\"");
    }
    if !first {
        out.push('}');
    }
    out.push(' ');
    out.push_str(v);
    out.push('\n');
}
