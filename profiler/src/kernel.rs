//! The oldest kernel kvmprof runs on, from what its eBPF object and loader use; checked on
//! uname(2)'s release before anything is loaded, so an old kernel gets one line, not a
//! verifier or map-creation error.

/// The oldest supported kernel: the newest feature in [`NEEDS`].
pub const OLDEST: (u32, u32) = (5, 8);

/// What kvmprof needs from the kernel, and since which version (SECURITY.md lists the same;
/// `needs_match_oldest` keeps OLDEST the newest of them). From the object's map types and
/// helper calls (`llvm-objdump -d`: helpers 1-3, 5, 14, 87-88 queue push/pop, 113
/// probe_read_kernel, 131-133 ring buffer), its sections and what the loader calls.
pub const NEEDS: &[((u32, u32), &str)] = &[
    (
        (4, 7),
        "tracepoint programs (`kvm:kvm_exit`, `kvm:kvm_entry`, …)",
    ),
    ((4, 10), "LRU hash maps (exits waiting for their entry)"),
    ((4, 20), "queue maps (the exit table's free lists)"),
    (
        (5, 2),
        "read-only global data (tracepoint field offsets, written at load)",
    ),
    ((5, 4), "`vcpu_id` in `kvm:kvm_exit`'s record"),
    (
        (5, 5),
        "`BPF_F_MMAPABLE` arrays (the exit table, read without a syscall per row), \
         `bpf_probe_read_kernel`",
    ),
    (
        (5, 6),
        "`BPF_MAP_LOOKUP_BATCH` and `BPF_MAP_DELETE_BATCH` (hash maps read, and cold RIP \
         keys given back, in a few syscalls)",
    ),
    (
        (5, 8),
        "BPF ring buffers (the programs' notices, aya-log), `CAP_BPF` and `CAP_PERFMON`",
    ),
];

/// (major, minor) of a release string such as `6.1.0-27-amd64` or `5.15.0`.
pub fn parse_release(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.trim().split(['.', '-', '+']);
    let major = parts.next()?.parse().ok()?;
    let minor: String = parts
        .next()?
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    Some((major, minor.parse().ok()?))
}

/// Err with the one-line reason if `release` is older than [`OLDEST`]. An unparsable release
/// is let through: the loader then names what is missing.
pub fn check_release(release: &str) -> Result<(), String> {
    match parse_release(release) {
        Some(v) if v < OLDEST => {
            let what: Vec<&str> = NEEDS
                .iter()
                .filter(|(since, _)| *since > v)
                .map(|(_, what)| *what)
                .collect();
            Err(format!(
                "kernel {} is too old: kvmprof needs Linux {}.{} or newer (this one lacks {}); \
                 run it on a newer kernel",
                release.trim(),
                OLDEST.0,
                OLDEST.1,
                what.join("; ")
            ))
        }
        _ => Ok(()),
    }
}

/// The running kernel's release, from uname(2) (as `uname -r`, and as `setarch --uname-2.6`
/// changes it).
pub fn running_release() -> String {
    // SAFETY: utsname is plain bytes, valid when zeroed; uname(2) fills it.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a valid, writable utsname.
    if unsafe { libc::uname(&mut u) } != 0 {
        return String::new();
    }
    let bytes: Vec<u8> = u
        .release
        .iter()
        .take_while(|c| **c != 0)
        .map(|c| *c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_parse_as_distributions_spell_them() {
        assert_eq!(parse_release("6.1.0-27-amd64"), Some((6, 1)));
        assert_eq!(parse_release("6.18.44-fc-v1045"), Some((6, 18)));
        assert_eq!(parse_release("5.8"), Some((5, 8)));
        assert_eq!(parse_release("5.10.0+"), Some((5, 10)));
        assert_eq!(parse_release("4.18.0-553.el8_10.x86_64"), Some((4, 18)));
        assert_eq!(parse_release("5.15rc3"), Some((5, 15)));
        assert_eq!(parse_release("junk"), None);
    }

    #[test]
    fn old_kernels_are_refused_in_one_line_naming_what_they_lack() {
        assert!(check_release("5.8.0").is_ok());
        assert!(check_release("6.12.118+deb12-amd64").is_ok());
        assert!(check_release("not a release").is_ok());
        let e = check_release("5.4.0-150-generic").unwrap_err();
        assert!(
            e.contains("5.4.0-150-generic") && e.contains("Linux 5.8"),
            "{e}"
        );
        assert!(
            e.contains("BPF_F_MMAPABLE") && e.contains("ring buffers"),
            "{e}"
        );
        assert!(!e.contains("queue maps"), "5.4 has queue maps: {e}");
        assert!(!e.contains('\n'));
        let e = check_release("2.6.78-fc-v1045").unwrap_err();
        assert!(e.contains("tracepoint programs"), "{e}");
    }

    #[test]
    fn needs_match_oldest() {
        assert!(NEEDS.windows(2).all(|w| w[0].0 <= w[1].0));
        assert_eq!(NEEDS.last().map(|n| n.0), Some(OLDEST));
    }
}
