//! kvmprof: live eBPF profiler of KVM VM exits.
pub mod decode;
pub mod sample;
pub mod source;
pub mod vm;
