//! Developer tasks: `cargo xtask <setup|run|test|dist|vm-test>`.

mod apt;
mod bench_common;
mod bench_kcost;
mod bench_vm;
mod cargo;
mod dist;
mod dist_check;
mod perf612;
mod setup;
mod tasks;
mod test_tools;
mod util;
mod vm;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask", about = "kvmprof developer tasks")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Make this machine ready: rust-src for the nightly, bpf-linker against the nightly's
    /// libLLVM (cached), tracefs mounted, and the tools the tests check output with
    /// (prometheus, xmllint, junitparser). Idempotent; `run` and `test` call it first (`run`
    /// without the test tools).
    Setup,
    /// Build kvmprof with its eBPF programs and run it (as root); arguments after `--` go to
    /// kvmprof (default: the live TUI).
    Run {
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Everything CI runs: fmt, clippy, pure + privileged tests, fuzzing, `dist` and its
    /// packages installed into a clean Debian root, then the real-KVM VM test (with the
    /// package's binary).
    Test {
        /// Skip the real-KVM VM test (for quick local iterations; CI never skips it).
        #[arg(long)]
        skip_vm: bool,
    },
    /// The packages for hosts without Rust: a statically linked kvmprof with its eBPF object,
    /// as a Debian package (man pages, completions, example, systemd unit) and a tarball of
    /// the same files, in target/dist/.
    Dist {
        /// Then install them into a clean Debian root and check them (as root; part of `test`).
        #[arg(long)]
        check: bool,
    },
    /// All benchmarks (as root): the host part (in-kernel cost through the test entry, sampler,
    /// model and TUI at scale, recording size), then `bench-vm` (real exits in the nested-SVM
    /// guest: in-kernel cost, guest impact, CPU, bytes, loss against perf and bpftrace).
    /// Prints the tables and writes BENCHMARKS.md.
    Bench {
        /// Only the host part (no QEMU boot; a few seconds).
        #[arg(long)]
        host_only: bool,
        #[command(flatten)]
        vm: bench_vm::BenchVmArgs,
    },
    /// Boot a Debian kernel under QEMU/TCG with nested AMD SVM and check kvmprof against the
    /// guest kernel's own hist-trigger counts.
    VmTest(vm::VmTestArgs),
    /// Real-KVM overhead under QEMU/TCG: guest exits/s with kvmprof, perf kvm stat and bpftrace
    /// (ratios to unprofiled), their CPU time, bytes and losses; appends to BENCHMARKS.md.
    BenchVm(bench_vm::BenchVmArgs),
    /// Build perf 6.12 (cached; `vm-test` does it too) and write its report screens of a
    /// VM-test boot's perf.data into that boot's directory (perf612_<event>.screen), e.g.
    /// `cargo xtask perf612-screens target/vm-test/latest/6.12.118+deb12-amd64`.
    Perf612Screens { dir: std::path::PathBuf },
}

fn main() {
    if let Err(e) = run(Cli::parse()) {
        eprintln!("xtask: error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.cmd {
        Cmd::Setup => {
            let env = setup::setup()?;
            test_tools::ensure()?;
            eprintln!("xtask: ready (bpf-linker in {})", env.linker_bin.display());
            Ok(())
        }
        Cmd::Run { args } => tasks::run_kvmprof(&args),
        Cmd::Test { skip_vm } => {
            if skip_vm && std::env::var("CI").is_ok_and(|v| v == "true") {
                anyhow::bail!("--skip-vm is not allowed in CI: the real-KVM test must run");
            }
            tasks::test(skip_vm)
        }
        Cmd::Dist { check } => {
            let packages = dist::dist()?;
            if check {
                dist_check::check(&packages)?;
            }
            Ok(())
        }
        Cmd::Bench { host_only, vm } => {
            tasks::bench()?;
            if host_only {
                return Ok(());
            }
            bench_vm::bench_vm(&vm)
        }
        Cmd::VmTest(args) => vm::vm_test(&args),
        Cmd::BenchVm(args) => bench_vm::bench_vm(&args),
        Cmd::Perf612Screens { dir } => perf612::capture(&perf612::ensure()?, &dir),
    }
}
