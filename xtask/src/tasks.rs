//! `run` and `test`: the README's two commands. Both call `setup` first.

use anyhow::{Context, Result};

use crate::{
    bench_common::splice,
    cargo::{build_release, target_dir, workspace_root},
    dist, setup,
    util::run,
    vm,
};

/// `cargo xtask run [-- ARGS]`: the live TUI (or any kvmprof subcommand).
pub fn run_kvmprof(args: &[String]) -> Result<()> {
    let env = setup::setup()?;
    let bin = build_release(&env)?;
    let status = std::process::Command::new(&bin)
        .args(args)
        .status()
        .with_context(|| format!("starting {}", bin.display()))?;
    std::process::exit(status.code().unwrap_or(1));
}

/// `cargo xtask test`: style, lints, pure + privileged tests, then the real-KVM test.
pub fn test(skip_vm: bool) -> Result<()> {
    let env = setup::setup()?;
    crate::test_tools::ensure()?;
    let root = workspace_root();
    run(env
        .command("cargo")
        .current_dir(&root)
        .args(["fmt", "--all", "--", "--check"]))
    .context("formatting: run `cargo fmt --all`")?;
    run(env.command("cargo").current_dir(&root).args([
        "clippy",
        "--workspace",
        "--exclude",
        "profiler-ebpf",
        "--all-targets",
        "--features",
        "kvmprof/ebpf-test",
        "--",
        "-D",
        "warnings",
    ]))?;
    // The eBPF objects are embedded (the release one and, with ebpf-test, the test programs'),
    // so the privileged tests in `tests/` load the real programs.
    // The real-KVM tests run in the vm-test step below, with the VM's output.
    run(env
        .command("cargo")
        .current_dir(&root)
        .env("KVMPROF_VM_TEST", "later")
        .args([
            "test",
            "--workspace",
            "--exclude",
            "profiler-ebpf",
            "--features",
            "kvmprof/ebpf-test",
        ]))?;
    fuzz_targets(&env, 30)?;
    // The packages, installed into a clean Debian root; the real-KVM test runs the .deb's binary.
    let packages = dist::dist()?;
    crate::dist_check::check(&packages)?;
    if skip_vm {
        eprintln!("xtask: --skip-vm given: the real-KVM test did not run");
        return Ok(());
    }
    vm::vm_test(&vm::VmTestArgs {
        kvmprof: Some(dist::unpack_deb(&packages.deb)?),
        ..Default::default()
    })
}

/// Every parser of untrusted input has a fuzz target (fuzz/fuzz_targets/): each runs for a
/// bounded time (libFuzzer via cargo-fuzz on the nightly; installed once). A crash fails the
/// run, with the input left in fuzz/artifacts/TARGET/.
fn fuzz_targets(env: &setup::Env, seconds: u32) -> Result<()> {
    let have = std::process::Command::new("cargo")
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !have {
        eprintln!("xtask: installing cargo-fuzz");
        run(env
            .command("cargo")
            .args(["install", "cargo-fuzz", "--locked"]))?;
    }
    let dir = workspace_root().join("fuzz");
    let list = crate::util::cmd_output(
        env.command("cargo")
            .current_dir(&dir)
            .args(["+nightly", "fuzz", "list"]),
    )?;
    let targets: Vec<&str> = list.split_whitespace().collect();
    if targets.is_empty() {
        anyhow::bail!("cargo fuzz list found no fuzz targets in {}", dir.display());
    }
    for target in targets {
        eprintln!("xtask: fuzzing {target} for {seconds} s");
        // Seeds live in fuzz/corpus/TARGET (committed); new finds go to a scratch directory.
        let scratch = target_dir().join("fuzz-corpus").join(target);
        let seeds = dir.join("corpus").join(target);
        std::fs::create_dir_all(&scratch)?;
        std::fs::create_dir_all(&seeds)?;
        run(env
            .command("cargo")
            .current_dir(&dir)
            .args(["+nightly", "fuzz", "run", target])
            .arg(&scratch)
            .arg(&seeds)
            .arg("--")
            .arg(format!("-max_total_time={seconds}")))
        .with_context(|| {
            format!("fuzzing {target} found a crash (input in fuzz/artifacts/{target}/)")
        })?;
    }
    Ok(())
}

/// This command's section of BENCHMARKS.md (`bench-vm` owns another).
const HOST_HEADING: &str =
    "## Host: probe cost, sampler scale, recording size (`cargo xtask bench`)";

/// `cargo xtask bench`: cost numbers (as root), printed and written to BENCHMARKS.md.
pub fn bench() -> Result<()> {
    let env = setup::setup()?;
    let root = workspace_root();
    let bench = crate::cargo::build_test_bin(&env, "kvmprof-bench")?;
    // The numbers as JSON too, for tools and for the goals table (issue #13's keys).
    let json = crate::cargo::target_dir().join("bench/host.json");
    std::fs::create_dir_all(json.parent().expect("has a parent"))?;
    let mut out = crate::util::cmd_output(
        std::process::Command::new(bench).env("KVMPROF_BENCH_JSON", &json),
    )?;
    // 5. Recording size per VM-hour (the sessions issue's benchmark).
    let size = crate::util::cmd_output(env.command("cargo").current_dir(&root).args([
        "run",
        "--quiet",
        "--release",
        "-p",
        "kvmprof",
        "--example",
        "store_size",
    ]))?;
    out.push_str(
        "\n### Recording size (`cargo run --release -p kvmprof --example store_size`)\n\n```\n",
    );
    out.push_str(&size);
    out.push_str("```\n");
    print!("{out}");
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let section = format!(
        "{HOST_HEADING}\n\nOn Linux {} with {cpus} CPUs, as root. Medians of repeated runs in one \
         process; compare ratios, not absolute times, across machines.\n\n{out}\n",
        kernel.trim()
    );
    let path = root.join("BENCHMARKS.md");
    let doc = std::fs::read_to_string(&path).unwrap_or_else(|_| "# kvmprof benchmarks\n\n".into());
    std::fs::write(&path, splice(&doc, HOST_HEADING, &section))?;
    eprintln!("xtask: wrote BENCHMARKS.md and {}", json.display());
    Ok(())
}
