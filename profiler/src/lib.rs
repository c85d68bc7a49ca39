//! kvmprof: live eBPF profiler of KVM VM exits.
pub mod advice;
pub mod caps;
pub mod check;
pub mod chunk_map;
pub mod cli;
pub mod cmd;
pub mod decode;
pub mod exerciser;
pub mod export;
pub mod heatmap;
pub mod kernel;
pub mod model;
pub mod out;
pub mod probe;
pub mod report;
pub mod sample;
pub mod session;
pub mod settings;
pub mod source;
pub mod store;
/// Measurement helpers for tests and benchmarks.
#[doc(hidden)]
pub mod test_util;
pub mod text;
pub mod text_file;
pub mod tui;
pub mod vm;
