//! What can stop the probes from running, each with the fix a user needs.

use std::path::PathBuf;

/// The least privilege that runs every probe-using command (see SECURITY.md).
pub const SETCAP: &str = "setcap cap_bpf,cap_perfmon,cap_dac_read_search+ep $(which kvmprof)";

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error(
        "kvmprof needs root or CAP_BPF+CAP_PERFMON (it loads eBPF programs) and \
         CAP_DAC_READ_SEARCH (it reads tracefs): run it with sudo, or `{}`",
        SETCAP
    )]
    NotPrivileged,
    #[error(
        "{} is not readable by this user (tracefs is root's, mode 0700): run kvmprof as root, \
         or give it CAP_DAC_READ_SEARCH too: `{}`",
        .0.display(),
        SETCAP
    )]
    TracefsDenied(PathBuf),
    #[error(
        "{} is not a tracefs mount (it has no events/ directory): give the tracefs mount point \
         with --tracefs DIR, or mount it there with `mount -t tracefs nodev {}`",
        .0.display(),
        .0.display()
    )]
    NotTracefs(PathBuf),
    #[error(
        "tracefs is not mounted (looked in /sys/kernel/tracing and /sys/kernel/debug/tracing): \
         run `mount -t tracefs nodev /sys/kernel/tracing`"
    )]
    NoTracefs,
    #[error(
        "the kvm tracepoints are absent ({0} missing): load KVM with `modprobe kvm_intel` or \
         `modprobe kvm_amd` (or `modprobe kvm`)"
    )]
    NoKvmTracepoints(PathBuf),
    #[error("cannot read the {event} tracepoint format: {why}")]
    Format { event: String, why: String },
    #[error("this kvmprof was built without its eBPF programs: build it with `cargo xtask run` (or `cargo build --features ebpf` after `cargo xtask setup`)")]
    NoObject,
    #[error("this build has no test programs (BPF_PROG_TEST_RUN entry, empty baselines): build with `--features kvmprof/ebpf-test`, as `cargo xtask test` and `cargo xtask bench` do")]
    NoTestObject,
    #[error("the kernel verifier rejected program {program}: {error}\nverifier log (last lines):\n{log}")]
    Verifier {
        program: String,
        error: String,
        log: String,
    },
    #[error("another kvmprof (pid {pid}) is already profiling this host: stop it first, or pass --allow-concurrent (each instance costs probe time on every exit)")]
    Busy { pid: String },
    #[error("{what}: {why}")]
    Other { what: String, why: String },
}

impl ProbeError {
    pub fn other(what: impl Into<String>, why: impl std::fmt::Display) -> Self {
        ProbeError::Other {
            what: what.into(),
            why: why.to_string(),
        }
    }
}

/// Effective capabilities from /proc/self/status: CAP_SYS_ADMIN (21), or CAP_BPF (39) together
/// with CAP_PERFMON (38), are what loading tracing programs needs.
pub fn check_privileges(status: &str) -> Result<(), ProbeError> {
    let cap_eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    let has = |bit: u32| cap_eff & (1u64 << bit) != 0;
    if has(21) || (has(39) && has(38)) {
        Ok(())
    } else {
        Err(ProbeError::NotPrivileged)
    }
}

/// Keep the verifier log readable in one terminal screen: its tail names the failing insn.
pub fn tail_lines(log: &str, n: usize) -> String {
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn privileges_from_capeff() {
        let root = "Name:\tx\nCapEff:\t000001ffffffffff\n";
        assert!(check_privileges(root).is_ok());
        let bpf_perfmon = format!("CapEff:\t{:016x}\n", (1u64 << 39) | (1u64 << 38));
        assert!(check_privileges(&bpf_perfmon).is_ok());
        let only_bpf = format!("CapEff:\t{:016x}\n", 1u64 << 39);
        assert!(matches!(
            check_privileges(&only_bpf),
            Err(ProbeError::NotPrivileged)
        ));
        assert!(check_privileges("CapEff:\t0000000000000000\n").is_err());
        assert!(check_privileges("garbage").is_err());
    }

    #[test]
    fn messages_name_the_fix() {
        assert!(ProbeError::NoTracefs
            .to_string()
            .contains("mount -t tracefs"));
        let e = ProbeError::NoKvmTracepoints("/sys/kernel/tracing/events/kvm".into());
        assert!(e.to_string().contains("modprobe kvm_intel"));
        assert!(!ProbeError::NotPrivileged.to_string().contains('\n'));
    }

    #[test]
    fn verifier_tail() {
        let log = (0..100)
            .map(|i| format!("{i}: insn"))
            .collect::<Vec<_>>()
            .join("\n");
        let t = tail_lines(&log, 3);
        assert_eq!(t, "97: insn\n98: insn\n99: insn");
    }
}
