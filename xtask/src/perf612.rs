//! perf 6.12, built from Debian's `linux-source-6.12` and cached under ~/.cache/kvmprof/ (like
//! bpf-linker), and its report screen captured in tmux.
//!
//! Why: perf ≥ 6.4 shows its new `Event name … Mean Time (ns)` layout only on its interactive
//! report screen (`--stdio` stays classic), so the one way to compare kvmprof's
//! `--perf-layout 6.4` with the real thing is to run that screen and read it off a terminal.
//! The VM test brings the guest's `perf.data` back; [`screens`] shows perf 6.12's screen of it
//! for each event in a fixed-size tmux pane and writes what the pane holds
//! (tests/tests/real_kvm_perf.rs compares it with kvmprof's table of the same exits), and
//! `perf script`'s list of the exerciser's events (`perf612_script.txt`) and the recording's
//! header (`perf612_header.txt`).
//!
//! The build takes about 4.5 minutes on two busy cores; only perf's TUI (libslang2) and
//! libtraceevent (tracepoints) are switched on, everything optional that is slow to build or
//! not needed to read tracepoints is off.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    thread::sleep,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};

use crate::util::{cmd_output, run};

const SOURCE_PACKAGE: &str = "linux-source-6.12";
/// What perf's build needs from Debian: the TUI (slang), tracepoints (libtraceevent), ELF.
const BUILD_PACKAGES: &[&str] = &[
    "build-essential",
    "flex",
    "bison",
    "pkg-config",
    "xz-utils",
    "libslang2-dev",
    "libtraceevent-dev",
    "libelf-dev",
    "zlib1g-dev",
    "tmux",
];
/// tools/perf/MANIFEST of Linux 6.12: what `make -C tools/perf` reads from the tree.
const MANIFEST: &[&str] = &[
    "arch/arm64/tools/gen-sysreg.awk",
    "arch/arm64/tools/sysreg",
    "arch/*/include/uapi/asm/bpf_perf_event.h",
    "tools/perf",
    "tools/arch",
    "tools/scripts",
    "tools/build",
    "tools/include",
    "tools/lib",
    "tools/bpf/bpftool",
    "scripts/bpf_doc.py",
    "kernel/bpf/disasm.c",
    "kernel/bpf/disasm.h",
];
/// Everything optional that perf's Makefile would otherwise probe for or build.
const MAKE_FLAGS: &[&str] = &[
    "NO_LIBPERL=1",
    "NO_LIBPYTHON=1",
    "NO_BPF_SKEL=1",
    "NO_JVMTI=1",
    "NO_LIBUNWIND=1",
    "NO_LIBDW=1",
    "NO_LIBBPF=1",
    "NO_LIBCRYPTO=1",
    "NO_LIBNUMA=1",
    "NO_LIBCAP=1",
    "NO_BABELTRACE=1",
    "NO_LIBZSTD=1",
    "NO_LIBLLVM=1",
    "NO_DEMANGLE=1",
    "NO_LIBPFM4=1",
    "NO_SDT=1",
    "WERROR=0",
];

const NOT_LISTED: &str =
    "no linux-source-6.12 in apt's lists (Debian bookworm-security or bookworm-backports)";

/// `Field: value` of `apt-cache show`'s first (candidate) record.
fn field<'a>(record: &'a str, name: &str) -> Option<&'a str> {
    record
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
}

/// The perf 6.12 binary, built once per linux-source-6.12 version.
pub fn ensure() -> Result<PathBuf> {
    crate::apt::install_missing(BUILD_PACKAGES, "perf 6.12")?;
    let query = ["show", "--no-all-versions", SOURCE_PACKAGE];
    let show = cmd_output(Command::new("apt-cache").args(query)).context(NOT_LISTED)?;
    let version = field(&show, "Version").context("apt-cache show printed no Version")?;
    let sha256 = field(&show, "SHA256").context("apt-cache show printed no SHA256")?;
    let upstream = version.split(['-', '+', '~']).next().unwrap_or(version);
    let cache = crate::setup::cache_dir().join(format!("perf-{version}"));
    let perf = cache.join("bin/perf");
    if perf.is_file() {
        return Ok(perf);
    }
    let work = cache.join("build");
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;
    eprintln!("xtask: building perf {upstream} from {SOURCE_PACKAGE} {version} (about 5 minutes)");
    run(Command::new("apt-get")
        .args(["download", &format!("{SOURCE_PACKAGE}={version}")])
        .current_dir(&work))?;
    let deb = fs::read_dir(&work)?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .context("apt-get download left no .deb")?;
    // apt checks the download against the signed lists; say so again where it is used.
    let sum = cmd_output(Command::new("sha256sum").arg(&deb))?;
    if sum.split_whitespace().next() != Some(sha256) {
        bail!(
            "{} does not have the SHA256 apt lists ({sha256}): {sum}",
            deb.display()
        );
    }
    let top = format!(
        "linux-source-{}",
        &upstream[..upstream.rfind('.').unwrap_or(upstream.len())]
    );
    let paths: Vec<String> = MANIFEST.iter().map(|m| format!("{top}/{m}")).collect();
    let script = format!(
        "dpkg-deb --fsys-tarfile '{}' | tar -xO ./usr/src/{top}.tar.xz | tar -xJ --wildcards {}",
        deb.display(),
        paths.join(" ")
    );
    run(Command::new("sh").args(["-c", &script]).current_dir(&work))?;
    let tree = work.join(&top);
    // What perf's tarballs carry instead of a git tree: `perf --version` prints it.
    fs::write(
        tree.join("PERF-VERSION-FILE"),
        format!("#define PERF_VERSION \"{upstream}\"\n"),
    )?;
    let out = work.join("out");
    fs::create_dir_all(&out)?;
    let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
    run(Command::new("make")
        .args(["-s", "-C", "tools/perf", &format!("-j{jobs}")])
        .arg(format!("O={}", out.display()))
        .args(MAKE_FLAGS)
        .current_dir(&tree))?;
    let options = cmd_output(Command::new(out.join("perf")).args(["version", "--build-options"]))?;
    for needed in ["libslang", "libtraceevent"] {
        let on = options
            .lines()
            .any(|l| l.trim_start().starts_with(needed) && l.contains("[ on  ]"));
        if !on {
            bail!("perf {upstream} was built without {needed}:\n{options}");
        }
    }
    fs::create_dir_all(cache.join("bin"))?;
    fs::copy(out.join("perf"), &perf)?;
    let _ = fs::remove_dir_all(&work);
    Ok(perf)
}

/// The report screens of perf 6.12 (binary `perf`) for `data`'s exits of `pid`, one per event,
/// as `perf612_<event>.screen` in `dir`: `perf kvm stat report` on a 200×50 tmux pane with
/// TERM=xterm, read with `tmux capture-pane -p` once the screen shows its table.
pub fn screens(perf: &Path, data: &Path, pid: &str, dir: &Path) -> Result<()> {
    for event in ["vmexit", "ioport", "msr", "mmio"] {
        let screen = screen(perf, data, pid, event)
            .with_context(|| format!("perf 6.12's {event} screen of {}", data.display()))?;
        fs::write(dir.join(format!("perf612_{event}.screen")), screen)?;
    }
    Ok(())
}

/// What the pane shows after perf ended (it should not end before it is killed).
const EXITED: &str = "=== perf exited with status ";

fn screen(perf: &Path, data: &Path, pid: &str, event: &str) -> Result<String> {
    // A server of its own per screen: with the default socket, the server the last screen's
    // kill-session shut down could still be exiting when this new-session connected, and
    // tmux said "server exited unexpectedly" (a clean-clone CI run, msr screen on 6.1).
    let sock = format!("kvmprof-perf612-{}-{event}", std::process::id());
    let tmux = || {
        let mut c = Command::new("tmux");
        c.args(["-L", &sock, "-f", "/dev/null"]);
        c
    };
    let command = format!(
        "'{}' kvm -i '{}' stat report --event {event} --pid {pid}; echo '{EXITED}'$?; sleep 600",
        perf.display(),
        data.display()
    );
    run(tmux()
        .args(["new-session", "-d", "-x", "200", "-y", "50"])
        .arg("env")
        .args(["TERM=xterm", "sh", "-c", &command]))?;
    let capture = || cmd_output(tmux().args(["capture-pane", "-p"])).unwrap_or_default();
    // perf draws the table once it has read the file; wait for its title, then until two
    // captures agree (the screen is still), with a generous limit for a loaded machine.
    let start = Instant::now();
    let mut last = String::new();
    let result = loop {
        let now = capture();
        if now.contains("KVM event statistics") && now == last {
            break Ok(now);
        }
        if now.contains(EXITED) {
            break Err(anyhow::anyhow!(
                "perf ended without its report screen:\n{now}"
            ));
        }
        if start.elapsed() > Duration::from_secs(120) {
            break Err(anyhow::anyhow!(
                "no report screen after 120 s; the pane holds:\n{now}"
            ));
        }
        last = now;
        sleep(Duration::from_millis(500));
    };
    let _ = tmux().arg("kill-server").status();
    result
}

/// perf 6.12's screens of one VM-test boot's perf run (its directory `dir`: `perf.data` and
/// `perf_pid.txt`, the exerciser's pid), beside the files tests/tests/real_kvm_perf.rs reads.
pub fn capture(perf: &Path, dir: &Path) -> Result<()> {
    let data = dir.join("perf.data");
    if !data.is_file() {
        bail!(
            "{} is missing: the guest's perf run brings perf.data.guest back (tests/vm/init.sh)",
            data.display()
        );
    }
    let pid = fs::read_to_string(dir.join("perf_pid.txt"))
        .with_context(|| format!("perf_pid.txt in {}", dir.display()))?;
    screens(perf, &data, pid.trim(), dir)?;
    // Every event of the exerciser with its time in ns: real_kvm_perf times each exit from it
    // (perf kvm stat's own pairing) and compares the quantiles with kvmprof's histogram.
    let script = cmd_output(Command::new(perf).arg("script").arg("-i").arg(&data).args([
        "--pid",
        pid.trim(),
        "--ns",
        "-F",
        "tid,time,event,trace",
    ]))
    .with_context(|| format!("perf script of {}", data.display()))?;
    fs::write(dir.join("perf612_script.txt"), script)?;
    // Its header: real_kvm_perf checks the events were stamped with CLOCK_MONOTONIC.
    let header = cmd_output(
        Command::new(perf)
            .args(["report", "--header-only", "-i"])
            .arg(&data),
    )
    .with_context(|| format!("perf report --header-only of {}", data.display()))?;
    fs::write(dir.join("perf612_header.txt"), header)?;
    Ok(())
}
