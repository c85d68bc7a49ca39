//! What can stop the probes from running, each with the fix a user needs.

use std::path::{Path, PathBuf};

use crate::caps::{self, Cap, CapSet};

/// The least privilege that runs every probe-using command (see SECURITY.md).
pub fn setcap() -> String {
    caps::setcap_line(caps::LIVE)
}

/// How to get `caps`, for the end of an error line: root, the binary's file capabilities
/// (always the whole live set: setcap replaces what the file had) or the systemd unit's.
fn grant() -> String {
    format!(
        "run it as root (sudo), or grant the live set: `{}` (systemd: `{}`)",
        setcap(),
        caps::systemd_line(caps::LIVE)
    )
}

fn needs(missing: &[Cap]) -> String {
    let each: Vec<String> = missing
        .iter()
        .map(|c| format!("{} ({})", c.name(), c.why()))
        .collect();
    each.join(" and ")
}

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("this process lacks {}, which kvmprof needs: {}", needs(.0), grant())]
    MissingCaps(Vec<Cap>),
    #[error(
        "{} is not readable by this user (tracefs is root's, mode 0700): kvmprof needs \
         CAP_DAC_READ_SEARCH to read it: {}",
        .0.display(),
        grant()
    )]
    TracefsDenied(PathBuf),
    #[error(
        "creating the BPF map {map} was refused (EPERM) although kvmprof has CAP_BPF: kernels \
         before 5.11 charge BPF maps to RLIMIT_MEMLOCK ({limit}), which it cannot raise without \
         CAP_SYS_RESOURCE: `{}` (systemd: `LimitMEMLOCK=infinity`), or `ulimit -l unlimited` first",
        caps::setcap_line(&[Cap::Bpf, Cap::Perfmon, Cap::DacReadSearch, Cap::SysResource])
    )]
    Memlock { map: String, limit: String },
    #[error(
        "{what} was refused ({errno}) although kvmprof has {held}: kernel lockdown \
         (/sys/kernel/security/lockdown) or a security module (SELinux, AppArmor) forbids it"
    )]
    Refused {
        what: String,
        errno: std::io::Error,
        held: &'static str,
    },
    #[error("{0}")]
    KernelTooOld(String),
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

/// Before anything is loaded: the kernel is new enough, and this process holds what the
/// probes need: CAP_BPF and CAP_PERFMON, and CAP_DAC_READ_SEARCH if tracefs turned it away
/// (a tracefs mounted with a group or mode that lets the user in needs none). All missing
/// capabilities are named at once.
pub fn check_privileges(
    release: &str,
    caps: CapSet,
    tracefs: &Result<PathBuf, ProbeError>,
) -> Result<(), ProbeError> {
    crate::kernel::check_release(release).map_err(ProbeError::KernelTooOld)?;
    let mut missing = caps.missing(&[Cap::Bpf, Cap::Perfmon]);
    if matches!(tracefs, Err(ProbeError::TracefsDenied(_))) && !caps.has(Cap::DacReadSearch) {
        missing.push(Cap::DacReadSearch);
    }
    match missing.as_slice() {
        // Only tracefs: its own error, which names the directory.
        [] | [Cap::DacReadSearch] => Ok(()),
        _ => Err(ProbeError::MissingCaps(missing)),
    }
}

/// Where the kernel said no, for [`refused`].
#[derive(Clone, Copy, Debug)]
pub enum Stage<'a> {
    /// Creating a map (the loader, BPF_MAP_CREATE).
    Map(&'a str),
    /// Loading a program (BPF_PROG_LOAD).
    Load(&'a str),
    /// Attaching a program: perf_event_open on the tracepoint, then the BPF link.
    Attach(&'a str),
    /// Reading a tracefs file (a tracepoint's id or format).
    Tracefs(&'a Path),
}

/// The errno anywhere in an error's source chain (aya wraps io::Errors a few levels deep).
pub fn errno(e: &(dyn std::error::Error + 'static)) -> Option<i32> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(code) = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.raw_os_error())
        {
            return Some(code);
        }
        cur = err.source();
    }
    None
}

/// A permission error at `stage` as the capability it lacks, when the kernel refused with
/// EPERM/EACCES although [`check_privileges`] passed (or a capability was dropped since).
/// `kernel` is the running (major, minor): memlock limits BPF maps only before 5.11. None: not
/// a permission error, the caller reports it as it is.
pub fn refused(
    stage: Stage,
    errno: Option<i32>,
    caps: CapSet,
    kernel: Option<(u32, u32)>,
    memlock: &str,
) -> Option<ProbeError> {
    let errno = errno.filter(|e| *e == libc::EPERM || *e == libc::EACCES)?;
    let lacking = |need: &[Cap]| Some(caps.missing(need)).filter(|m| !m.is_empty());
    let other = |what: String, held: &'static str| ProbeError::Refused {
        what,
        errno: std::io::Error::from_raw_os_error(errno),
        held,
    };
    Some(match stage {
        Stage::Map(map) => match lacking(&[Cap::Bpf]) {
            Some(m) => ProbeError::MissingCaps(m),
            None if errno == libc::EPERM && kernel.is_none_or(|k| k < (5, 11)) => {
                ProbeError::Memlock {
                    map: map.into(),
                    limit: memlock.into(),
                }
            }
            None => other(format!("creating the BPF map {map}"), "CAP_BPF"),
        },
        // EACCES from BPF_PROG_LOAD is the verifier's verdict, not a capability.
        Stage::Load(_) if errno == libc::EACCES => return None,
        Stage::Load(prog) => match lacking(&[Cap::Bpf, Cap::Perfmon]) {
            Some(m) => ProbeError::MissingCaps(m),
            None => other(format!("loading program {prog}"), "CAP_BPF and CAP_PERFMON"),
        },
        Stage::Attach(event) => match lacking(&[Cap::Perfmon]) {
            Some(m) => ProbeError::MissingCaps(m),
            None => other(format!("attaching to {event}"), "CAP_PERFMON"),
        },
        Stage::Tracefs(path) => match lacking(&[Cap::DacReadSearch]) {
            Some(_) => ProbeError::TracefsDenied(path.to_path_buf()),
            None => other(format!("reading {}", path.display()), "CAP_DAC_READ_SEARCH"),
        },
    })
}

/// An attach error: reading the tracepoint's id from tracefs, or perf_event_open and the
/// link, each named by the capability it needs when the kernel refused.
pub(super) fn attach_error(
    what: &str,
    dir: &Path,
    e: aya::programs::ProgramError,
    denied: &dyn Fn(Stage, &(dyn std::error::Error + 'static)) -> Option<ProbeError>,
) -> ProbeError {
    let stage = match &e {
        aya::programs::ProgramError::TracePointError(_) => Stage::Tracefs(dir),
        _ => Stage::Attach(what),
    };
    denied(stage, &e).unwrap_or_else(|| ProbeError::other(format!("attaching to {what}"), e))
}

/// RLIMIT_MEMLOCK now, as an error message shows it.
pub(super) fn memlock_limit() -> String {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the valid rlimit struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut r) } != 0 {
        return "unknown".into();
    }
    match r.rlim_cur {
        libc::RLIM_INFINITY => "unlimited".into(),
        n => format!("{} KiB", n / 1024),
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

    fn set(caps: &[Cap]) -> CapSet {
        CapSet(caps.iter().fold(0, |a, c| a | (1u64 << c.bit())))
    }

    const NEW: &str = "6.12.0";

    #[test]
    fn each_missing_capability_is_named_with_the_grant_lines() {
        let tracefs_ok = Ok(PathBuf::from("/sys/kernel/tracing"));
        let denied = Err(ProbeError::TracefsDenied("/sys/kernel/tracing".into()));
        assert!(check_privileges(NEW, set(caps::LIVE), &denied).is_ok());
        assert!(check_privileges(NEW, set(&[Cap::SysAdmin]), &tracefs_ok).is_ok());
        let only_bpf = check_privileges(NEW, set(&[Cap::Bpf]), &tracefs_ok).unwrap_err();
        assert!(matches!(&only_bpf, ProbeError::MissingCaps(m) if m == &[Cap::Perfmon]));
        let none = check_privileges(NEW, CapSet(0), &denied)
            .unwrap_err()
            .to_string();
        for cap in caps::LIVE {
            assert!(none.contains(cap.name()), "{none}");
        }
        assert!(!none.contains('\n'), "{none}");
        assert!(none.contains(&setcap()) && none.contains("AmbientCapabilities=CAP_BPF"));
        // Only tracefs refused: left to tracefs's own error, which names the directory.
        assert!(check_privileges(NEW, set(&[Cap::Bpf, Cap::Perfmon]), &denied).is_ok());
        let e = ProbeError::TracefsDenied("/sys/kernel/tracing".into()).to_string();
        assert!(
            e.contains("CAP_DAC_READ_SEARCH") && e.contains(&setcap()),
            "{e}"
        );
        let old = check_privileges("5.4.0", set(caps::LIVE), &tracefs_ok).unwrap_err();
        assert!(old.to_string().contains("needs Linux 5.8"), "{old}");
    }

    #[test]
    fn kernel_refusals_name_the_capability_of_their_stage() {
        let all = set(caps::LIVE);
        let eperm = Some(libc::EPERM);
        let r = |stage, errno, caps, kernel| refused(stage, errno, caps, kernel, "8 MiB");
        let no_bpf = set(&[Cap::Perfmon, Cap::DacReadSearch]);
        let no_perfmon = set(&[Cap::Bpf, Cap::DacReadSearch]);
        assert!(matches!(
            r(Stage::Map("ROWS"), eperm, no_bpf, Some((6, 1))),
            Some(ProbeError::MissingCaps(m)) if m == [Cap::Bpf]
        ));
        // CAP_BPF held on 5.10: the memlock limit, and how to lift it.
        let e = r(Stage::Map("ROWS"), eperm, all, Some((5, 10))).unwrap();
        assert!(matches!(e, ProbeError::Memlock { .. }));
        let e = e.to_string();
        assert!(
            e.contains("cap_sys_resource") && e.contains("LimitMEMLOCK=infinity"),
            "{e}"
        );
        assert!(e.contains("ROWS") && e.contains("8 MiB"), "{e}");
        assert!(matches!(
            r(Stage::Map("ROWS"), eperm, all, Some((6, 1))),
            Some(ProbeError::Refused { .. })
        ));
        assert!(matches!(
            r(Stage::Load("kvm_exit"), eperm, no_perfmon, None),
            Some(ProbeError::MissingCaps(m)) if m == [Cap::Perfmon]
        ));
        assert!(r(Stage::Load("kvm_exit"), Some(libc::EACCES), all, None).is_none());
        assert!(matches!(
            r(Stage::Attach("kvm:kvm_exit"), Some(libc::EACCES), no_perfmon, None),
            Some(ProbeError::MissingCaps(m)) if m == [Cap::Perfmon]
        ));
        let e = r(Stage::Attach("kvm:kvm_exit"), eperm, all, None)
            .unwrap()
            .to_string();
        assert!(e.contains("lockdown") && e.contains("kvm:kvm_exit"), "{e}");
        let id = Path::new("/sys/kernel/tracing/events/kvm/kvm_exit/id");
        assert!(matches!(
            r(Stage::Tracefs(id), Some(libc::EACCES), no_perfmon, None),
            Some(ProbeError::Refused { .. })
        ));
        assert!(matches!(
            r(Stage::Tracefs(id), Some(libc::EACCES), set(&[Cap::Bpf]), None),
            Some(ProbeError::TracefsDenied(p)) if p == id
        ));
        assert!(r(Stage::Map("ROWS"), Some(libc::EINVAL), no_bpf, None).is_none());
        assert!(r(Stage::Map("ROWS"), None, no_bpf, None).is_none());
    }

    #[test]
    fn errno_is_found_in_the_source_chain() {
        let io = std::io::Error::from_raw_os_error(libc::EPERM);
        let wrapped = aya::maps::MapError::CreateError {
            name: "ROWS".into(),
            io_error: io,
        };
        let top = aya::EbpfError::MapError(wrapped);
        assert_eq!(errno(&top), Some(libc::EPERM));
        assert_eq!(errno(&ProbeError::NoTracefs), None);
    }

    #[test]
    fn messages_name_the_fix() {
        assert!(ProbeError::NoTracefs
            .to_string()
            .contains("mount -t tracefs"));
        let e = ProbeError::NoKvmTracepoints("/sys/kernel/tracing/events/kvm".into());
        assert!(e.to_string().contains("modprobe kvm_intel"));
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
