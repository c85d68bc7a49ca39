//! Which Linux capabilities each command needs, and the lines that grant them. One table,
//! read by the probe's errors, by SECURITY.md's table (checked by a test) and by the
//! privileged test that runs every command with exactly its set (tests/tests/capabilities.rs).

use std::fmt::Write as _;

/// A capability kvmprof may need, with its bit in /proc/PID/status's CapEff.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Cap {
    DacReadSearch,
    SysPtrace,
    SysAdmin,
    SysResource,
    Perfmon,
    Bpf,
}

impl Cap {
    pub const fn bit(self) -> u32 {
        match self {
            Cap::DacReadSearch => 2,
            Cap::SysPtrace => 19,
            Cap::SysAdmin => 21,
            Cap::SysResource => 24,
            Cap::Perfmon => 38,
            Cap::Bpf => 39,
        }
    }

    /// As capabilities(7) and systemd name it: `CAP_BPF`.
    pub const fn name(self) -> &'static str {
        match self {
            Cap::DacReadSearch => "CAP_DAC_READ_SEARCH",
            Cap::SysPtrace => "CAP_SYS_PTRACE",
            Cap::SysAdmin => "CAP_SYS_ADMIN",
            Cap::SysResource => "CAP_SYS_RESOURCE",
            Cap::Perfmon => "CAP_PERFMON",
            Cap::Bpf => "CAP_BPF",
        }
    }

    /// As setcap(8) and setpriv(1) spell it: `bpf` (setcap adds the `cap_` prefix).
    pub fn short(self) -> String {
        self.name()["CAP_".len()..].to_ascii_lowercase()
    }

    /// What kvmprof does with it.
    pub const fn why(self) -> &'static str {
        match self {
            Cap::Bpf => "to create its BPF maps and load its programs",
            Cap::Perfmon => "to load tracing programs and attach them to the kvm tracepoints",
            Cap::DacReadSearch => {
                "to read tracefs, root's with mode 0700, and libvirt's status files, for VM names"
            }
            Cap::SysResource => "to raise RLIMIT_MEMLOCK for its BPF maps on kernels before 5.11",
            Cap::SysAdmin => "for BPF run-time statistics (the probes' own cost)",
            Cap::SysPtrace => "to see other users' processes when /proc is mounted with hidepid=",
        }
    }
}

/// What every live command needs: load and attach the probes, read tracefs.
pub const LIVE: &[Cap] = &[Cap::Bpf, Cap::Perfmon, Cap::DacReadSearch];

/// Needs beyond a command's set that only some hosts have, and what grants them instead.
pub const SOMETIMES: &[(Cap, &str)] = &[
    (
        Cap::SysResource,
        "kernels 5.8–5.10 only, and not if RLIMIT_MEMLOCK is already unlimited (systemd `LimitMEMLOCK=infinity`)",
    ),
    (
        Cap::SysAdmin,
        "only for the probes' own cost (`probes N ns/ev`, `kvmprof_probe_*` metrics); `sysctl kernel.bpf_stats_enabled=1` gives it without CAP_SYS_ADMIN",
    ),
    (
        Cap::SysPtrace,
        "only where /proc is mounted with `hidepid=`: otherwise other users' `/proc/PID/{stat,cmdline,task}` are world-readable",
    ),
];

/// The warning of a live command that cannot time its own probes.
pub const NO_COST: &str = "the probes' own cost is not measured (it reads 0): BPF run-time \
    statistics need CAP_SYS_ADMIN, or `sysctl kernel.bpf_stats_enabled=1` (no capability)";

/// The kernel could not run `kvmprof_fill` (BPF_PROG_TEST_RUN of raw tracepoint programs,
/// Linux ≥ 5.10): nothing is lost, the start is slower.
pub const FILL_BY_SYSCALLS: &str = "the exit table's free lists were filled by one syscall per \
    index (this kernel cannot test-run kvmprof's fill program: Linux 5.10 or later can): a \
    slower start, nothing lost";

/// Each command (as typed) and the capabilities it needs; the privileged test runs each live
/// one with exactly this set and with each capability removed in turn.
pub const COMMANDS: &[(&str, &[Cap], &str)] = &[
    ("kvmprof / kvmprof top", LIVE, ""),
    (
        "kvmprof demo",
        LIVE,
        "and read-write access to `/dev/kvm` (group `kvm` on Debian and Fedora), as any VMM",
    ),
    ("kvmprof record", LIVE, ""),
    ("kvmprof report --duration D", LIVE, ""),
    ("kvmprof advise --duration D", LIVE, ""),
    ("kvmprof check --duration D", LIVE, ""),
    ("kvmprof serve", LIVE, ""),
    (
        "kvmprof report FILE / --from-perf FILE",
        &[],
        "read access to FILE",
    ),
    ("kvmprof advise FILE / --from-perf FILE", &[], ""),
    ("kvmprof check FILE", &[], ""),
    ("kvmprof replay FILE", &[], ""),
    ("kvmprof diff A B …", &[], ""),
    ("kvmprof completions SHELL", &[], ""),
];

/// Effective capabilities from /proc/PID/status text (none if it cannot be read).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CapSet(pub u64);

impl CapSet {
    pub fn from_status(status: &str) -> CapSet {
        CapSet(
            status
                .lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
                .unwrap_or(0),
        )
    }

    /// This process's effective set.
    pub fn current() -> CapSet {
        CapSet::from_status(&std::fs::read_to_string("/proc/self/status").unwrap_or_default())
    }

    /// Whether the kernel lets us do what `cap` allows. Since 5.8 CAP_SYS_ADMIN still
    /// implies CAP_BPF and CAP_PERFMON (bpf_capable(), perfmon_capable()).
    pub fn has(self, cap: Cap) -> bool {
        let bit = |c: Cap| self.0 & (1u64 << c.bit()) != 0;
        bit(cap) || (matches!(cap, Cap::Bpf | Cap::Perfmon) && bit(Cap::SysAdmin))
    }

    /// Those of `need` this set lacks, in `need`'s order.
    pub fn missing(self, need: &[Cap]) -> Vec<Cap> {
        need.iter().copied().filter(|c| !self.has(*c)).collect()
    }
}

/// `setcap cap_bpf,cap_perfmon,cap_dac_read_search+ep $(which kvmprof)` for `caps`.
pub fn setcap_line(caps: &[Cap]) -> String {
    let list: Vec<String> = caps.iter().map(|c| format!("cap_{}", c.short())).collect();
    format!("setcap {}+ep $(which kvmprof)", list.join(","))
}

/// The systemd unit's line for `caps` (with `CapabilityBoundingSet=` the same list).
pub fn systemd_line(caps: &[Cap]) -> String {
    let list: Vec<&str> = caps.iter().map(|c| c.name()).collect();
    format!("AmbientCapabilities={}", list.join(" "))
}

/// The table SECURITY.md carries between its `caps-table` markers.
pub fn markdown_table() -> String {
    let mut s = String::from("| command | capabilities | also |\n|---|---|---|\n");
    for (command, caps, also) in COMMANDS {
        let caps = if caps.is_empty() {
            "none".to_string()
        } else {
            caps.iter()
                .map(|c| format!("`{}`", c.name()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(s, "| `{command}` | {caps} | {also} |");
    }
    s.push_str("\nOnly on some hosts, beyond the above:\n\n| capability | when |\n|---|---|\n");
    for (cap, when) in SOMETIMES {
        let _ = writeln!(s, "| `{}` | {when} |", cap.name());
    }
    let _ = write!(
        s,
        "\nGrant the live set to the binary with `{}`, or in a systemd unit with `{}` (and the same \
         `CapabilityBoundingSet=`).\n",
        setcap_line(LIVE),
        systemd_line(LIVE)
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(caps: &[Cap]) -> CapSet {
        CapSet(caps.iter().fold(0, |a, c| a | (1u64 << c.bit())))
    }

    #[test]
    fn capeff_is_read_and_sys_admin_implies_bpf_and_perfmon() {
        let root = CapSet::from_status("Name:\tx\nCapEff:\t000001ffffffffff\n");
        assert!(root.missing(LIVE).is_empty());
        assert_eq!(CapSet::from_status("garbage"), CapSet(0));
        assert_eq!(
            set(&[Cap::Bpf]).missing(LIVE),
            [Cap::Perfmon, Cap::DacReadSearch]
        );
        assert_eq!(
            set(&[Cap::SysAdmin]).missing(LIVE),
            [Cap::DacReadSearch],
            "CAP_SYS_ADMIN stands in for CAP_BPF and CAP_PERFMON"
        );
        assert!(!set(&[Cap::Bpf, Cap::Perfmon]).has(Cap::SysAdmin));
    }

    #[test]
    fn grant_lines_use_each_tools_spelling() {
        assert_eq!(
            setcap_line(LIVE),
            "setcap cap_bpf,cap_perfmon,cap_dac_read_search+ep $(which kvmprof)"
        );
        assert_eq!(
            systemd_line(LIVE),
            "AmbientCapabilities=CAP_BPF CAP_PERFMON CAP_DAC_READ_SEARCH"
        );
        assert_eq!(Cap::DacReadSearch.short(), "dac_read_search");
    }

    /// SECURITY.md's table is this module's, so the document cannot drift from what the
    /// privileged test checks.
    #[test]
    fn security_md_carries_the_table() {
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../SECURITY.md"))
            .expect("SECURITY.md");
        let start = "<!-- caps-table: generated from profiler/src/caps.rs -->\n";
        let end = "<!-- /caps-table -->";
        let inside = doc
            .split_once(start)
            .and_then(|(_, rest)| rest.split_once(end))
            .map(|(t, _)| t)
            .expect("SECURITY.md has the caps-table markers");
        assert_eq!(
            inside,
            markdown_table(),
            "SECURITY.md's capability table is stale: paste caps::markdown_table()'s output \
             between its markers"
        );
    }
}
