//! kvmprof: live eBPF profiler of KVM VM exits.
pub mod advice;
pub mod app;
pub mod app_advise;
pub mod app_check;
pub mod check;
pub mod cli;
pub mod decode;
pub mod exerciser;
pub mod export;
pub mod model;
pub mod probe;
pub mod report;
pub mod sample;
pub mod source;
pub mod store;
pub mod tui;
pub mod vm;
