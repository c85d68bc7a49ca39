//! Metric families → OpenMetrics text through prometheus-client's encoder (names, `_total`,
//! units, `# EOF`); label values are escaped here since the crate writes them verbatim.

use std::fmt::Write;

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabelValue, LabelValueEncoder, MetricEncoder, NoLabelSet},
    metrics::MetricType,
    registry::{Registry, Unit},
};

use crate::sample::Hist;

/// Upper bounds (`le`) of `kvmprof_exit_handling_seconds`, in ns: 250 ns to 1 s in 1-2.5-5
/// steps, then +Inf. Fixed so that series stay comparable across hosts and versions.
pub const LE_NS: [u64; 21] = [
    250,
    500,
    1_000,
    2_500,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
];

/// Re-buckets an HDR histogram onto [`LE_NS`]: each HDR bucket counts under the first bound at
/// or above its midpoint (the value our percentiles report; within 1/16 of any value in it).
/// Returns per-bucket (not cumulative) counts with +Inf last, as the encoder wants them.
pub fn rebucket(h: &Hist) -> Vec<(f64, u64)> {
    let mut counts = [0u64; LE_NS.len() + 1];
    for &(b, c) in &h.buckets {
        let (lo, hi) = (
            profiler_common::hist::lower(b as usize),
            profiler_common::hist::upper(b as usize),
        );
        let mid = if hi - lo <= 1 { lo } else { lo + (hi - lo) / 2 };
        let i = LE_NS
            .iter()
            .position(|le| mid <= *le)
            .unwrap_or(LE_NS.len());
        counts[i] += c;
    }
    LE_NS
        .iter()
        .map(|ns| *ns as f64 / 1e9)
        .chain([f64::MAX])
        .zip(counts)
        .collect()
}

/// A label value escaped for the text formats (`\\`, `\"`, `\n`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Esc(pub String);

impl Esc {
    /// The value as both text formats write it.
    pub fn escaped(&self) -> String {
        let mut out = String::with_capacity(self.0.len());
        for c in self.0.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out
    }
}

impl EncodeLabelValue for Esc {
    fn encode(&self, enc: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        enc.write_str(&self.escaped())
    }
}

pub type Labels = Vec<(&'static str, Esc)>;

pub fn labels(pairs: &[(&'static str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (*k, Esc((*v).to_string())))
        .collect()
}

#[derive(Clone, Debug)]
pub enum Value {
    /// An integer counter (exits, runs, drops).
    Count(u64),
    /// A float counter (seconds).
    Counter(f64),
    Gauge(f64),
    /// sum (s), count, per-bucket counts with +Inf (f64::MAX) last.
    Histogram(f64, u64, Vec<(f64, u64)>),
}

/// One metric family: name without unit or `_total` suffix (the encoder adds them).
#[derive(Clone, Debug)]
pub struct Family {
    pub name: &'static str,
    pub help: &'static str,
    pub seconds: bool,
    pub kind: MetricType,
    pub series: Vec<(Labels, Value)>,
}

impl Family {
    pub fn new(name: &'static str, help: &'static str, kind: MetricType, seconds: bool) -> Self {
        Family {
            name,
            help,
            seconds,
            kind,
            series: Vec::new(),
        }
    }
}

#[derive(Debug)]
struct Families(Vec<Family>);

impl Collector for Families {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let seconds = Unit::Seconds;
        for f in &self.0 {
            let unit = f.seconds.then_some(&seconds);
            let mut m = enc.encode_descriptor(f.name, f.help, unit, f.kind)?;
            for (l, v) in &f.series {
                // A series without labels is written `name value`, not `name{} value`.
                match l.is_empty() {
                    true => value(&mut m, v)?,
                    false => value(&mut m.encode_family(l)?, v)?,
                }
            }
        }
        Ok(())
    }
}

fn value(s: &mut MetricEncoder, v: &Value) -> Result<(), std::fmt::Error> {
    match v {
        Value::Count(c) => s.encode_counter::<NoLabelSet, _, u64>(c, None),
        Value::Counter(c) => s.encode_counter::<NoLabelSet, _, f64>(c, None),
        Value::Gauge(g) => s.encode_gauge(g),
        Value::Histogram(sum, count, b) => s.encode_histogram::<NoLabelSet>(*sum, *count, b, None),
    }
}

/// The OpenMetrics exposition of `families`, ending in `# EOF`.
pub fn render(families: Vec<Family>) -> String {
    let mut reg = Registry::default();
    reg.register_collector(Box::new(Families(families)));
    let mut out = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &reg) {
        // Only a fmt::Error of String writing, which cannot happen; say so rather than panic.
        out = format!("# kvmprof: encoding failed: {e}\n# EOF\n");
    }
    out
}
