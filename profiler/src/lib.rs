//! kvmprof: live eBPF profiler of KVM VM exits.
