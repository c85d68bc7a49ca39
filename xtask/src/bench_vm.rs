//! `cargo xtask bench-vm`: what profiling costs a real KVM guest, and what each profiler loses
//! (items 2 and 3 of the overhead issue). Boots the Debian 6.12 kernel under QEMU/TCG with
//! nested AMD SVM (as `vm-test` does) from a separate, larger initramfs holding kvmprof,
//! `perf` (linux-perf) and `bpftrace` with their shared libraries; tests/vm/bench.sh runs:
//!
//! * impact: the exerciser guest (`kvmprof exercise --ops ocrw`) with nothing attached, under
//!   `kvmprof report --until-signal`, under `perf kvm stat record -a` and under a bpftrace script
//!   pairing kvm_exit→kvm_entry per tid into a histogram, several rounds in rotating order; the
//!   guest's exits/s (iterations × 4 + 1 over its elapsed time) as a ratio to the unprofiled run
//!   of the same round, medians over rounds; each profiler's own CPU time and output bytes, and
//!   `perf kvm stat report`'s CPU time;
//! * loss: two exercisers at once with in-kernel exits only (the highest exit rate the harness
//!   reaches), the kernel's hist trigger on kvm_exit as the oracle, against each tool's count.
//!
//! Prints the tables and puts them into BENCHMARKS.md under their own heading (replacing an older
//! copy of that section). Absolute times under TCG are slow; compare ratios within one boot.

// The VM test's host and initramfs helpers, shared.
use crate::bench_common::{median, parse_runs, splice, Run};
use crate::vm::{host, initramfs, Qemu};

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};

const MODULES: &[&str] = &[
    "virt/lib/irqbypass",
    "drivers/crypto/ccp/ccp",
    "arch/x86/kvm/kvm",
    "arch/x86/kvm/kvm-amd",
];
const TOOLS: &[&str] = &["none", "kvmprof", "perf", "bpftrace"];
/// The heading of this benchmark's section in BENCHMARKS.md.
pub const HEADING: &str = "## Real-KVM guest impact and loss (`cargo xtask bench-vm`)";

/// What kvmexits.bt-style scripts do: start time per thread at kvm_exit, log2 histogram of the
/// exit→entry time at kvm_entry.
const BPFTRACE_SCRIPT: &str = "\
tracepoint:kvm:kvm_exit { @start[tid] = nsecs; }
tracepoint:kvm:kvm_entry /@start[tid]/ {
  @exit_to_entry_ns = hist(nsecs - @start[tid]);
  delete(@start[tid]);
}
END { clear(@start); }
";

#[derive(clap::Args, Debug)]
pub struct BenchVmArgs {
    /// Exerciser loop iterations per run (4 exits each: out, cpuid, rdmsr, wrmsr).
    #[arg(long, default_value_t = 10000)]
    pub iters: u64,
    /// Rounds of the impact measurement (each runs every tool once, in rotating order).
    #[arg(long, default_value_t = 7)]
    pub rounds: u32,
    /// Tools, comma-separated (none = unprofiled baseline, always included).
    #[arg(long, default_value = "none,kvmprof,perf,bpftrace")]
    pub tools: String,
    /// Hard limit for the QEMU boot + benchmark, in seconds.
    #[arg(long, default_value_t = 1800)]
    pub timeout: u64,
    /// QEMU memory (the initramfs holds libLLVM, libclang, ...).
    #[arg(long, default_value = "3G")]
    pub memory: String,
    /// Use this kvmprof binary instead of building it (`--release --features ebpf`).
    #[arg(long)]
    pub kvmprof: Option<PathBuf>,
    /// Kernel package (default: newest linux-image-6.12.*+deb12-amd64-unsigned).
    #[arg(long)]
    pub kernel_package: Option<String>,
    /// Print the tables but leave BENCHMARKS.md alone.
    #[arg(long)]
    pub no_write: bool,
    /// Only parse the results.txt of an earlier run (e.g. target/bench-vm/latest/results.txt).
    #[arg(long)]
    pub from: Option<PathBuf>,
}

fn boot(
    kroot: &Path,
    ver: &str,
    initrd: &Path,
    args: &BenchVmArgs,
    tools: &[&str],
    log: &Path,
) -> Result<Duration> {
    let append = format!(
        "console=ttyS0 panic=-1 rdinit=/init loglevel=1 kvmprof.iters={} kvmprof.rounds={} kvmprof.tools={}",
        args.iters,
        args.rounds,
        tools.join(",")
    );
    let qemu = Qemu {
        kroot,
        ver,
        initrd,
        memory: &args.memory,
        append: &append,
        timeout: args.timeout,
        log,
    };
    let mut last_progress = String::new();
    qemu.run(Duration::from_millis(500), |elapsed| {
        // Progress lines ("bench: round 2 tool perf ...") as they come.
        if let Ok(text) = std::fs::read_to_string(log) {
            if let Some(l) = text.lines().rev().find(|l| l.starts_with("bench: ")) {
                if l != last_progress {
                    println!("bench-vm: [{:.0} s] {}", elapsed.as_secs_f64(), &l[7..]);
                    last_progress = l.to_string();
                }
            }
        }
    })
}

fn num(r: &Run, k: &str) -> Option<f64> {
    r.get(k).and_then(|v| v.parse::<f64>().ok())
}

fn exits_per_s(r: &Run) -> Option<f64> {
    let iters = num(r, "iters")?;
    let ms = num(r, "elapsed_ms")?;
    (ms > 0.0).then(|| (iters * 4.0 + 1.0) / (ms / 1000.0))
}

fn fmt_opt(v: Option<f64>, prec: usize) -> String {
    v.map_or("–".into(), |x| format!("{x:.prec$}"))
}

fn fmt_bytes(v: Option<f64>) -> String {
    match v {
        None => "–".into(),
        Some(b) if b >= 1024.0 * 1024.0 => format!("{:.1} MiB", b / (1024.0 * 1024.0)),
        Some(b) if b >= 1024.0 => format!("{:.1} KiB", b / 1024.0),
        Some(b) => format!("{b:.0} B"),
    }
}

/// The tables (markdown) from the RUN lines.
pub fn tables(runs: &[Run]) -> String {
    let mut out = String::new();
    let impact: Vec<&Run> = runs
        .iter()
        .filter(|r| r.get("phase").map(String::as_str) == Some("impact"))
        .collect();
    let base_by_round: BTreeMap<&str, f64> = impact
        .iter()
        .filter(|r| r.get("tool").map(String::as_str) == Some("none"))
        .filter_map(|r| Some((r.get("round")?.as_str(), exits_per_s(r)?)))
        .collect();
    let rounds = base_by_round.len();
    let iters = impact.iter().find_map(|r| num(r, "iters")).unwrap_or(0.0);
    let _ = writeln!(
        out,
        "Guest impact: exerciser `--ops ocrw --iters {iters:.0}` ({:.0} exits per run), {rounds} rounds \
         in rotating order, one boot; medians over rounds. Ratio = exits/s ÷ the same round's \
         unprofiled exits/s. CPU = the profiler process's utime+stime over its whole life \
         (start-up, attach, teardown, writing) and, in brackets, only while the guest ran (the threads' \
         scheduler run time, ns); \
         µs CPU/exit = (CPU while the guest ran + post-processing) ÷ exits, the part that scales with the exit count.\n",
        iters * 4.0 + 1.0
    );
    out.push_str(
        "| tool | exits/s | ratio (min–max) | profiler CPU s [during run] | post-processing CPU s | host CPU s total | µs CPU/exit (run + post) | bytes written | bytes/exit |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let mut cpu_total: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
    // tool → (CPU s per second of guest run, CPU s per exit incl. post-processing)
    let mut run_cost: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
    for tool in TOOLS {
        let rs: Vec<&&Run> = impact
            .iter()
            .filter(|r| r.get("tool").map(String::as_str) == Some(*tool))
            .collect();
        if rs.is_empty() {
            continue;
        }
        let errors: Vec<&str> = rs
            .iter()
            .filter_map(|r| r.get("error").map(String::as_str))
            .collect();
        let ok: Vec<&&&Run> = rs.iter().filter(|r| exits_per_s(r).is_some()).collect();
        if ok.is_empty() {
            let _ = writeln!(
                out,
                "| {tool} | failed ({}) | | | | | | | |",
                if errors.is_empty() {
                    "no RESULT".to_string()
                } else {
                    errors.join(", ")
                }
            );
            continue;
        }
        let rate = median(ok.iter().filter_map(|r| exits_per_s(r)).collect());
        let ratios: Vec<f64> = ok
            .iter()
            .filter_map(|r| Some(exits_per_s(r)? / base_by_round.get(r.get("round")?.as_str())?))
            .collect();
        let lo = ratios.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let ratio = median(ratios.clone());
        let cpu = median(ok.iter().filter_map(|r| num(r, "tool_cpu_s")).collect());
        // The threads' scheduler run time (ns) where the guest gave it, else 10 ms ticks: a
        // quiet tool's round is a few ticks.
        let cpu_run = median(
            ok.iter()
                .filter_map(|r| {
                    let ns = num(r, "tool_run_ns").filter(|n| *n > 0.0);
                    ns.map(|n| n / 1e9)
                        .or_else(|| num(r, "tool_run_ticks").map(|t| t / 100.0))
                })
                .collect(),
        );
        let post = median(ok.iter().filter_map(|r| num(r, "post_cpu_s")).collect());
        let bytes = median(ok.iter().filter_map(|r| num(r, "bytes")).collect());
        let exits = iters * 4.0 + 1.0;
        let total = cpu.map(|c| c + post.unwrap_or(0.0));
        if let (Some(t), Some(c)) = (total, cpu_run) {
            cpu_total.insert(tool, (t, c + post.unwrap_or(0.0)));
            if let Some(r) = rate.filter(|r| *r > 0.0) {
                run_cost.insert(tool, (c / (exits / r), (c + post.unwrap_or(0.0)) / exits));
            }
        }
        let ratio_s = if *tool == "none" {
            "1".to_string()
        } else {
            format!("{} ({lo:.3}–{hi:.3})", fmt_opt(ratio, 3))
        };
        let fail = if errors.is_empty() {
            String::new()
        } else {
            format!(" ({} failed runs: {})", errors.len(), errors.join(", "))
        };
        if *tool == "none" {
            let _ = writeln!(
                out,
                "| none (unprofiled) | {} | 1 | – | – | – | – | – | – |",
                fmt_opt(rate, 0)
            );
        } else {
            let _ = writeln!(
                out,
                "| {tool}{fail} | {} | {ratio_s} | {} [{}] | {} | {} | {} | {} | {} |",
                fmt_opt(rate, 0),
                fmt_opt(cpu, 2),
                fmt_opt(cpu_run, 2),
                post.map_or("–".into(), |p| format!("{p:.2}")),
                fmt_opt(total, 2),
                fmt_opt(cpu_run.map(|c| (c + post.unwrap_or(0.0)) / exits * 1e6), 1),
                fmt_bytes(bytes),
                fmt_opt(bytes.map(|b| b / exits), 1),
            );
        }
    }
    if let (Some(k), Some(p)) = (cpu_total.get("kvmprof"), cpu_total.get("perf")) {
        let _ = writeln!(
            out,
            "\nHost CPU, perf (record + `perf kvm stat report`) ÷ kvmprof: {:.1}× over the whole life \
             ({:.2} s vs {:.2} s), {} while the guest ran plus perf's post-processing \
             ({:.2} s vs {:.2} s). Goal: ≥ 20×.",
            p.0 / k.0.max(1e-9),
            p.0,
            k.0,
            if k.1 > 0.0 {
                format!("{:.1}×", p.1 / k.1)
            } else {
                "∞ (kvmprof < 1 tick)".into()
            },
            p.1,
            k.1
        );
        if let (Some(kc), Some(pc)) = (run_cost.get("kvmprof"), run_cost.get("perf")) {
            // kvmprof's cost follows time (one map read per interval), perf's follows exits.
            let _ = writeln!(
                out,
                "\nWhat scales: kvmprof {:.1} ms CPU per second of guest run, whatever the exit \
                 rate; perf {:.1} µs per exit. perf ÷ kvmprof at R exits/s = R × {:.1} µs ÷ {:.1} ms: \
                 ≥ 20× from {:.0} exits/s on (the harness's emulated guest reaches {:.0}).",
                kc.0 * 1e3,
                pc.1 * 1e6,
                pc.1 * 1e6,
                kc.0 * 1e3,
                20.0 * kc.0 / pc.1.max(1e-12),
                base_by_round.values().copied().fold(0.0, f64::max),
            );
        }
    }

    let loss: Vec<&Run> = runs
        .iter()
        .filter(|r| r.get("phase").map(String::as_str) == Some("loss"))
        .collect();
    if !loss.is_empty() {
        let _ = writeln!(
            out,
            "\nLoss at the highest exit rate the harness reaches: two exercisers at once \
             (`--ops crw`, in-kernel exits only), the kernel's hist trigger on kvm_exit \
             (`hist:keys=isa`) as the oracle. kvmprof: JSON `counters.exits`; perf: \
             `perf kvm stat report` Total Samples; bpftrace: the histogram's count. perf and \
             bpftrace count exit→entry pairs: each VM's last exit (hlt, then the VM is destroyed) \
             has no entry, so they come out 1 short per exerciser (2 here) without any loss.\n"
        );
        out.push_str(
            "| tool | exits/s (oracle ÷ wall) | oracle exits | tool's count | lost | lost % |\n\
             |---|---:|---:|---:|---:|---:|\n",
        );
        for tool in TOOLS {
            let rs: Vec<&&Run> = loss
                .iter()
                .filter(|r| r.get("tool").map(String::as_str) == Some(*tool))
                .collect();
            let Some(first) = rs.first() else { continue };
            if let Some(e) = first.get("error") {
                let _ = writeln!(out, "| {tool} | failed ({e}) | | | | |");
                continue;
            }
            let oracle = num(first, "oracle");
            let wall = rs
                .iter()
                .filter_map(|r| num(r, "elapsed_ms"))
                .fold(0.0, f64::max);
            let rate = oracle.filter(|_| wall > 0.0).map(|o| o / (wall / 1000.0));
            let count = num(first, "count");
            let (lost, pct) = match (oracle, count) {
                (Some(o), Some(c)) if *tool != "none" => (
                    format!("{:.0}", o - c),
                    format!("{:.3}", (o - c) / o.max(1.0) * 100.0),
                ),
                _ => ("–".into(), "–".into()),
            };
            let name = if *tool == "none" {
                "none (unprofiled)"
            } else {
                tool
            };
            let _ = writeln!(
                out,
                "| {name} | {} | {} | {} | {lost} | {pct} |",
                fmt_opt(rate, 0),
                fmt_opt(oracle, 0),
                if *tool == "none" {
                    "–".into()
                } else {
                    fmt_opt(count, 0)
                },
            );
        }
    }
    out.push_str(&crate::bench_kcost::kcost_table(runs));
    out
}

/// Replace (or append) this benchmark's section of BENCHMARKS.md.
pub fn splice_section(doc: &str, section: &str) -> String {
    splice(doc, HEADING, section)
}

fn write_benchmarks(body: &str, info: &str, wall: Option<Duration>) -> Result<()> {
    let path = crate::cargo::workspace_root().join("BENCHMARKS.md");
    let doc = std::fs::read_to_string(&path).unwrap_or_default();
    let mut section = format!("{HEADING}\n\n");
    let _ = write!(
        section,
        "Produced by `cargo xtask bench-vm` (as root): Debian {} guest kernel under QEMU/TCG with \
         nested AMD SVM, 2 vCPUs{}. Absolute rates are emulation-slow; read the ratios.\n\n",
        info.lines()
            .find_map(|l| l.strip_prefix("kernel="))
            .unwrap_or("?"),
        wall.map_or(String::new(), |w| format!(
            ", whole boot + benchmark {:.0} s",
            w.as_secs_f64()
        )),
    );
    section.push_str(body);
    for key in ["perf=", "bpftrace="] {
        if let Some(v) = info.lines().find_map(|l| l.strip_prefix(key)) {
            let _ = write!(section, "\n{}: {}", key.trim_end_matches('='), v.trim());
        }
    }
    section.push_str("\n\n");
    std::fs::write(&path, splice_section(&doc, &section))
        .with_context(|| format!("cannot write {}", path.display()))?;
    println!("bench-vm: wrote the section to {}", path.display());
    Ok(())
}

pub fn bench_vm(args: &BenchVmArgs) -> Result<()> {
    if let Some(from) = &args.from {
        let text = std::fs::read_to_string(from)
            .with_context(|| format!("cannot read {}", from.display()))?;
        let info = std::fs::read_to_string(from.with_file_name("info.txt")).unwrap_or_default();
        let wall = std::fs::read_to_string(from.with_file_name("timing.txt"))
            .ok()
            .and_then(|t| t.trim().parse::<f64>().ok())
            .map(Duration::from_secs_f64);
        let body = tables(&parse_runs(&text));
        println!("{body}");
        if !args.no_write {
            write_benchmarks(&body, &info, wall)?;
        }
        return Ok(());
    }
    let t_all = Instant::now();
    let mut tools: Vec<&str> = vec!["none"];
    for t in args
        .tools
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        if !TOOLS.contains(&t) {
            bail!(
                "unknown tool {t:?} in --tools: use any of {}",
                TOOLS.join(",")
            );
        }
        if !tools.contains(&t) {
            tools.push(t);
        }
    }
    host::ensure_packages()?;
    host::ensure_bench_packages()?;
    let (kroot, ver) = host::ensure_kernel(args.kernel_package.as_deref())?;
    let kvmprof = match &args.kvmprof {
        Some(p) => p.clone(),
        None => crate::cargo::build_release(&crate::setup::setup()?)?,
    };
    let mut programs = Vec::new();
    for (name, tool) in [("perf", "perf"), ("bpftrace", "bpftrace")] {
        if tools.contains(&tool) {
            programs.push((name, host::find_program(name)?));
        }
    }
    if tools.contains(&"kvmprof") {
        // The kcost phase's baseline: empty programs from the test object, not in kvmprof.
        programs.push((
            "kvmprof-empty",
            crate::cargo::build_empty_baseline(&crate::setup::setup()?)?,
        ));
    }
    let root = crate::cargo::workspace_root();
    let init =
        std::fs::read(root.join("tests/vm/bench.sh")).context("cannot read tests/vm/bench.sh")?;
    let kdir = kroot.join("lib/modules").join(&ver).join("kernel");
    let archive = initramfs::bench_initramfs(
        init,
        &kvmprof,
        &programs,
        &kdir,
        MODULES,
        &[("/bench/kvmexit.bt", BPFTRACE_SCRIPT.as_bytes().to_vec())],
    )?;
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let out = crate::cargo::target_dir()
        .join("bench-vm")
        .join(format!("run-{stamp}"));
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let initrd = out.join("initramfs.cpio");
    let bytes = archive.to_newc();
    std::fs::write(&initrd, &bytes)?;
    println!(
        "bench-vm: kernel {ver}, initramfs {} entries, {:.0} MiB; iters {}, rounds {}, tools {}; output {}",
        archive.paths().len(),
        bytes.len() as f64 / (1024.0 * 1024.0),
        args.iters,
        args.rounds,
        tools.join(","),
        out.display()
    );
    drop(bytes);
    let log = out.join("serial.log");
    let result = boot(&kroot, &ver, &initrd, args, &tools, &log);
    let _ = std::fs::remove_file(&initrd);
    let wall = result?;
    let text = std::fs::read_to_string(&log)?;
    let (sections, status) = crate::vm::extract_sections(&text);
    for (name, body) in &sections {
        std::fs::write(out.join(name), body)?;
    }
    let latest = out.with_file_name("latest");
    let _ = std::fs::remove_file(&latest);
    let _ = std::os::unix::fs::symlink(&out, &latest);
    match status.as_deref() {
        Some("ok") => {}
        Some(why) => bail!("the benchmark VM failed: {why}; see {}", out.display()),
        None => bail!(
            "the benchmark VM printed no status (crash, panic or out of memory?); serial log {}",
            log.display()
        ),
    }
    std::fs::write(
        out.join("timing.txt"),
        format!("{:.1}\n", wall.as_secs_f64()),
    )?;
    let results = sections.get("results.txt").cloned().unwrap_or_default();
    let info = sections.get("info.txt").cloned().unwrap_or_default();
    let body = tables(&parse_runs(&results));
    println!("\n{body}");
    println!(
        "bench-vm: QEMU boot + benchmark {:.0} s, all {:.0} s; files in {}",
        wall.as_secs_f64(),
        t_all.elapsed().as_secs_f64(),
        out.display()
    );
    if !args.no_write {
        write_benchmarks(&body, &info, Some(wall))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_from_runs() {
        let text = "\
RUN phase=impact round=1 tool=none ex=1 iters=1000 ops=ocrw elapsed_ms=1000
RUN phase=impact round=1 tool=kvmprof ex=1 iters=1000 ops=ocrw elapsed_ms=1250 tool_cpu_s=0.500 tool_run_ticks=5 tool_run_ns=52000000 tool_rc=0 bytes=4000 count=4001
RUN phase=impact round=1 tool=perf ex=1 iters=1000 ops=ocrw elapsed_ms=2000 post_cpu_s=1.000 tool_cpu_s=4.000 tool_run_ticks=300 tool_rc=0 bytes=400000 count=4001
RUN phase=impact round=1 tool=bpftrace error=not_ready
RUN phase=loss round=1 tool=none ex=1 iters=1000 ops=crw elapsed_ms=500 oracle=6010
RUN phase=loss round=1 tool=kvmprof ex=1 iters=1000 ops=crw elapsed_ms=600 oracle=6010 count=6010
RUN phase=loss round=1 tool=kvmprof ex=2 iters=1000 ops=crw elapsed_ms=700 oracle=6010 count=6010
RUN phase=loss round=1 tool=perf ex=1 iters=1000 ops=crw elapsed_ms=800 oracle=6010 count=6000
";
        let runs = parse_runs(text);
        assert_eq!(runs.len(), 8);
        let t = tables(&runs);
        assert!(t.contains("| kvmprof | 3201 | 0.800 (0.800–0.800) | 0.50 [0.05] | – | 0.50 | 13.0 | 3.9 KiB | 1.0 |"), "{t}");
        assert!(
            t.contains("| perf | 2000 | 0.500 (0.500–0.500) | 4.00 [3.00] | 1.00 | 5.00 | 999.8 |"),
            "{t}"
        );
        assert!(
            t.contains("| bpftrace | failed (not_ready) | | | | | | | |"),
            "{t}"
        );
        assert!(t.contains("10.0× over the whole life"), "{t}");
        assert!(
            t.contains("| kvmprof | 8586 | 6010 | 6010 | 0 | 0.000 |"),
            "{t}"
        );
        assert!(
            t.contains("| perf | 7512 | 6010 | 6000 | 10 | 0.166 |"),
            "{t}"
        );
    }

    #[test]
    fn section_is_replaced() {
        let s = format!("{HEADING}\n\nnew\n\n");
        assert_eq!(splice_section("", &s), s);
        let doc = format!("# B\n\n## a\nx\n\n{HEADING}\n\nold\n\n## c\ny\n");
        assert_eq!(
            splice_section(&doc, &s),
            format!("# B\n\n## a\nx\n\n{HEADING}\n\nnew\n\n## c\ny\n")
        );
        assert_eq!(
            splice_section("# B\n", &s),
            format!("# B\n\n{HEADING}\n\nnew\n\n")
        );
    }
}
