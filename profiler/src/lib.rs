//! kvmprof: live eBPF profiler of KVM VM exits.
pub mod app;
pub mod app_advise;
pub mod app_check;
pub mod cli;
pub mod decode;
pub mod exerciser;
pub mod probe;
pub mod sample;
pub mod source;
pub mod vm;
pub mod model;
pub mod tui;
pub mod store;
pub mod report;
pub mod advice;
pub mod check;
pub mod export;
