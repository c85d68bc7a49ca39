//! The boots of one `cargo xtask vm-test`: a directory per kernel release under KVMPROF_VM_OUT,
//! listed in its kernels.txt. Every kernel line below must have booted: a real-KVM test passes
//! only when its check passed on each of them.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// The kernel lines every real-KVM run covers (xtask/src/vm/host.rs boots the newest of each):
/// their tracepoint formats and sets of tracepoints differ.
pub const KERNEL_LINES: [&str; 2] = ["6.12", "6.1"];

/// One kernel's boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmRun {
    /// `uname -r` in the guest, e.g. `6.1.0-57-amd64`.
    pub kernel: String,
    /// Its entry in KERNEL_LINES, for the expectations that differ by kernel.
    pub line: &'static str,
    pub dir: PathBuf,
}

/// The line of a release: `6.12.118+deb12-amd64` is 6.12, `6.1.0-57-amd64` is 6.1.
pub fn line_of(release: &str) -> Option<&'static str> {
    KERNEL_LINES.into_iter().find(|line| {
        release
            .strip_prefix(line)
            .is_some_and(|rest| rest.starts_with(['.', '-', '+']))
    })
}

/// The boots under `out`, and one error per kernel line that has none (or a boot whose files
/// are not its kernel's).
pub fn runs(out: &Path) -> (Vec<VmRun>, Vec<String>) {
    let mut runs = Vec::new();
    let mut errors = Vec::new();
    let listed = match std::fs::read_to_string(out.join("kernels.txt")) {
        Ok(t) => t,
        Err(e) => {
            let why = format!(
                "cannot read {}: {e} (written by `cargo xtask vm-test`)",
                out.join("kernels.txt").display()
            );
            return (runs, vec![why]);
        }
    };
    let mut tried = Vec::new();
    for kernel in listed.lines().map(str::trim).filter(|l| !l.is_empty()) {
        tried.extend(line_of(kernel));
        match run(out, kernel) {
            Ok(r) => runs.push(r),
            Err(e) => errors.push(format!("kernel {kernel}: {e:#}")),
        }
    }
    for line in KERNEL_LINES {
        if !tried.contains(&line) {
            errors.push(format!(
                "no boot of a {line} kernel in {}: `cargo xtask vm-test` boots one kernel of each \
                 line ({}) unless --kernel-package names others",
                out.display(),
                KERNEL_LINES.join(", ")
            ));
        }
    }
    (runs, errors)
}

fn run(out: &Path, kernel: &str) -> Result<VmRun> {
    let line =
        line_of(kernel).with_context(|| format!("not a kernel of the lines {KERNEL_LINES:?}"))?;
    let dir = out.join(kernel);
    let info = crate::read_file(&dir, "info.txt")?;
    let booted = crate::parse_kv_lines(&info).remove("kernel");
    if booted.as_deref() != Some(kernel) {
        bail!(
            "{} says kernel={booted:?}: these files are not this kernel's",
            dir.join("info.txt").display()
        );
    }
    Ok(VmRun {
        kernel: kernel.to_string(),
        line,
        dir,
    })
}

/// Run `check` on every kernel's boot of the last `cargo xtask vm-test` (KVMPROF_VM_OUT); panic
/// naming each kernel it failed on and each kernel line that did not boot.
pub fn each_kernel(test: &str, check: impl Fn(&VmRun) -> Result<()>) {
    let Some(out) = crate::vm_out(test) else {
        return;
    };
    let (runs, mut errors) = runs(&out);
    for r in &runs {
        println!(
            "\n=== {test}: kernel {} ({}) ===",
            r.kernel,
            r.dir.display()
        );
        if let Err(e) = check(r) {
            errors.push(format!("kernel {}: {e:#}", r.kernel));
        }
    }
    if !errors.is_empty() {
        panic!(
            "{test} failed for {} of {} boots/kernel lines in {}:\n{}",
            errors.len(),
            runs.len().max(KERNEL_LINES.len()),
            out.display(),
            errors.join("\n")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("kvmprof-vm-runs-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn boot(out: &Path, dir: &str, kernel: &str) {
        std::fs::create_dir_all(out.join(dir)).unwrap();
        std::fs::write(
            out.join(dir).join("info.txt"),
            format!("kernel={kernel}\niters=5\n"),
        )
        .unwrap();
    }

    #[test]
    fn lines_of_debian_releases() {
        assert_eq!(line_of("6.12.118+deb12-amd64"), Some("6.12"));
        assert_eq!(line_of("6.1.0-57-amd64"), Some("6.1"));
        assert_eq!(line_of("6.10.3-amd64"), None);
        assert_eq!(line_of("6.1"), None);
    }

    #[test]
    fn both_kernels_booted() {
        let out = scratch("both");
        boot(&out, "6.12.118+deb12-amd64", "6.12.118+deb12-amd64");
        boot(&out, "6.1.0-57-amd64", "6.1.0-57-amd64");
        std::fs::write(
            out.join("kernels.txt"),
            "6.12.118+deb12-amd64\n6.1.0-57-amd64\n",
        )
        .unwrap();
        let (got, errors) = super::runs(&out);
        assert_eq!(errors, Vec::<String>::new());
        let lines: Vec<_> = got.iter().map(|r| (r.line, r.kernel.as_str())).collect();
        assert_eq!(
            lines,
            [("6.12", "6.12.118+deb12-amd64"), ("6.1", "6.1.0-57-amd64")]
        );
        assert_eq!(got[1].dir, out.join("6.1.0-57-amd64"));
        let _ = std::fs::remove_dir_all(&out);
    }

    #[test]
    fn a_missing_boot_is_an_error() {
        let out = scratch("missing");
        boot(&out, "6.12.118+deb12-amd64", "6.12.118+deb12-amd64");
        std::fs::write(out.join("kernels.txt"), "6.12.118+deb12-amd64\n").unwrap();
        let (got, errors) = super::runs(&out);
        assert_eq!(got.len(), 1);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].starts_with("no boot of a 6.1 kernel"),
            "{errors:?}"
        );
        // Listed but its output is gone (the boot died before info.txt).
        std::fs::write(
            out.join("kernels.txt"),
            "6.12.118+deb12-amd64\n6.1.0-57-amd64\n",
        )
        .unwrap();
        let (got, errors) = super::runs(&out);
        assert_eq!(got.len(), 1);
        assert!(
            errors.len() == 1 && errors[0].starts_with("kernel 6.1.0-57-amd64: cannot read"),
            "{errors:?}"
        );
        let _ = std::fs::remove_dir_all(&out);
    }

    #[test]
    fn files_of_another_kernel_are_an_error() {
        let out = scratch("swapped");
        boot(&out, "6.12.118+deb12-amd64", "6.12.118+deb12-amd64");
        boot(&out, "6.1.0-57-amd64", "6.12.118+deb12-amd64");
        std::fs::write(
            out.join("kernels.txt"),
            "6.12.118+deb12-amd64\n6.1.0-57-amd64\n",
        )
        .unwrap();
        let (got, errors) = super::runs(&out);
        assert_eq!(got.len(), 1);
        assert!(errors[0].contains("not this kernel's"), "{errors:?}");
        let _ = std::fs::remove_dir_all(&out);
    }
}
