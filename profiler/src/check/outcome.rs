//! What measuring one threshold gave: used by measure.rs, which makes it, and by plan.rs,
//! which turns it into a result (its own file so neither imports the other back).

/// A measured value and what it is made of.
#[derive(Debug, Default)]
pub(crate) struct Measured {
    pub value: f64,
    pub worst_vcpu: Option<u32>,
    pub worst_reason: Option<String>,
    pub detail: String,
}

pub(crate) enum Outcome {
    Value(Measured),
    /// Nothing to measure (e.g. a latency limit on a reason that never happened).
    Skip(String),
    /// Could not measure.
    Error(String),
}
