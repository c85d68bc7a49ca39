//! kvmprof: live eBPF profiler of KVM VM exits.
pub mod app;
pub mod cli;
pub mod decode;
pub mod exerciser;
pub mod probe;
pub mod sample;
pub mod source;
pub mod vm;
pub mod model;
pub mod tui;
