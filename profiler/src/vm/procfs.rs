//! The few /proc reads discovery needs. Every reader returns None/empty on missing or odd
//! content: processes come and go between readdir and read.

use std::path::Path;
use std::sync::OnceLock;

/// `/proc/PID/stat` as it reads ([`parse_stat`] takes its `comm` and start time); `keep`: it
/// is read every refresh (a VM's), so [`kept`](super::kept) keeps it open.
pub fn stat_line(proc_root: &Path, pid: u32, keep: bool) -> Option<String> {
    super::kept::read(&proc_root.join(pid.to_string()).join("stat"), false, keep)
}

/// comm may hold spaces and parentheses, so it runs from the first '(' to the LAST ')'.
pub fn parse_stat(text: &str) -> Option<(String, u64)> {
    let (comm, rest) = split_comm(text)?;
    // Fields after comm start at field 3 (state); start time is field 22.
    let start_time = field(rest, 22)?;
    Some((comm.to_string(), start_time))
}

/// (user + system time, guest time) in clock ticks (fields 14, 15 and 43) from a
/// `/proc/PID/stat` or `/proc/PID/task/TID/stat` line. Guest time (running a vCPU in guest
/// mode) is part of user time; a line without it (kernels before 2.6.24) has 0.
pub fn parse_cpu_ticks(text: &str) -> Option<(u64, u64)> {
    let (_, rest) = split_comm(text)?;
    let run = field(rest, 14)?.checked_add(field(rest, 15)?)?;
    Some((run, field(rest, 43).unwrap_or(0)))
}

/// (comm, parent pid) from a `/proc/PID/stat` line.
pub fn parse_comm_ppid(text: &str) -> Option<(String, u32)> {
    let (comm, rest) = split_comm(text)?;
    let ppid = u32::try_from(field(rest, 4)?).ok()?;
    Some((comm.to_string(), ppid))
}

/// Run-queue wait (ns) from a `schedstat` line: "<on-CPU ns> <waiting ns> <timeslices>".
pub fn parse_schedstat_wait(text: &str) -> Option<u64> {
    text.split_whitespace().nth(1)?.parse().ok()
}

/// (comm, the fields after it) of a stat line. A thread or process may name itself anything
/// ("x) R 1 2 (y"), so comm ends at the LAST ')'.
fn split_comm(text: &str) -> Option<(&str, &str)> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    Some((text.get(open + 1..close)?, text.get(close + 1..)?))
}

/// Numeric field `n` (1-based, as in proc(5)) from the fields after comm, which start at 3.
fn field(rest: &str, n: usize) -> Option<u64> {
    rest.split_whitespace().nth(n.checked_sub(3)?)?.parse().ok()
}

/// argv from `/proc/PID/cmdline` (NUL-separated); empty for kernel threads and zombies.
pub fn cmdline(proc_root: &Path, pid: u32) -> Vec<String> {
    let Ok(raw) = std::fs::read(proc_root.join(pid.to_string()).join("cmdline")) else {
        return Vec::new();
    };
    let raw = raw.strip_suffix(&[0]).unwrap_or(&raw);
    if raw.is_empty() {
        return Vec::new();
    }
    raw.split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

/// "vhost-1234" → 1234 (the thread that owns the worker).
pub fn vhost_owner(comm: &str) -> Option<u32> {
    comm.trim_end_matches('\n')
        .strip_prefix("vhost-")?
        .parse()
        .ok()
}

/// "CPU 3/KVM" → 3.
pub fn vcpu_index(comm: &str) -> Option<u32> {
    comm.trim_end_matches('\n')
        .strip_prefix("CPU ")?
        .strip_suffix("/KVM")?
        .parse()
        .ok()
}

/// Numeric entries of proc_root: the processes.
pub fn pids(proc_root: &Path) -> Vec<u32> {
    super::kept::list(proc_root, false).unwrap_or_default()
}

/// Clock ticks per second of /proc's time fields (USER_HZ, 100 on every common build).
pub fn ticks_per_s() -> u64 {
    static HZ: OnceLock<u64> = OnceLock::new();
    *HZ.get_or_init(|| {
        // SAFETY: sysconf reads a constant of the C library; no memory is passed.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        u64::try_from(hz).ok().filter(|&h| h > 0).unwrap_or(100)
    })
}

/// Ticks → ns (saturating: a damaged value must not wrap into a small one).
pub fn ns(ticks: u64) -> u64 {
    let hz = ticks_per_s();
    (ticks as u128 * 1_000_000_000 / hz as u128).min(u64::MAX as u128) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_odd_comm() {
        let rest = "S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 987654 20 21";
        let (comm, start) = parse_stat(&format!("77 (a) b (c)) {rest}")).unwrap();
        assert_eq!((comm.as_str(), start), ("a) b (c)", 987654));
        assert_eq!(parse_stat("77 (x) S 1 2"), None);
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat(")("), None);
    }

    /// Thread names are chosen by whoever runs the VM: a name that looks like stat fields
    /// must not shift utime/stime.
    #[test]
    fn cpu_ticks_with_hostile_comm() {
        // Fields 3..=15: state, ppid, pgrp, session, tty, tpgid, flags, minflt, cminflt,
        // majflt, cmajflt, utime = 700, stime = 42; start time (22) 987654; guest time (43) 500.
        let rest = "S 1 2 3 4 5 6 7 8 9 10 700 42 16 17 18 19 20 21 987654 23 24 25 26 27 28 29 \
                    30 31 32 33 34 35 36 37 38 39 40 41 42 500 44 45";
        for comm in [
            "CPU 0/KVM",
            "a) R 1 2 3 4 5 6 7 8 9 10 11 99999 99999 (b",
            ")",
            "((",
            "x)) 1 2",
            "",
            "tab\tand\nnewline",
        ] {
            let line = format!("4242 ({comm}) {rest}\n");
            assert_eq!(parse_cpu_ticks(&line), Some((742, 500)), "{comm:?}");
            assert_eq!(parse_stat(&line).map(|(c, _)| c), Some(comm.to_string()));
        }
        assert_eq!(parse_cpu_ticks("4242 (x) S 1 2 3 4 5 6 7 8 9 10 700"), None);
        let old_kernel = "4242 (x) S 1 2 3 4 5 6 7 8 9 10 700 42 16 17 18 19 20 21 987654";
        assert_eq!(parse_cpu_ticks(old_kernel), Some((742, 0)));
        assert_eq!(
            parse_cpu_ticks("4242 (x) S 1 2 3 4 5 6 7 8 9 10 -1 42"),
            None
        );
        assert_eq!(parse_cpu_ticks("4242 x S 1"), None);
        let max = u64::MAX;
        let overflow = format!("1 (x) S 1 2 3 4 5 6 7 8 9 10 {max} 1");
        assert_eq!(parse_cpu_ticks(&overflow), None);
    }

    #[test]
    fn vcpu_names() {
        assert_eq!(vcpu_index("CPU 3/KVM\n"), Some(3));
        assert_eq!(vcpu_index("CPU 12/KVM"), Some(12));
        assert_eq!(vcpu_index("CPU x/KVM"), None);
        assert_eq!(vcpu_index("worker"), None);
    }
}
