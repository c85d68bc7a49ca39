//! Builds the eBPF object with aya-build when the `ebpf` feature is on (cargo xtask does that
//! after `setup` has installed rust-src and bpf-linker); plain `cargo test` skips it.
fn main() -> anyhow::Result<()> {
    println!("cargo:rerun-if-env-changed=CARGO_FEATURE_EBPF");
    if std::env::var_os("CARGO_FEATURE_EBPF").is_none() {
        return Ok(());
    }
    // aya-build watches the eBPF crate only; the shared layouts are compiled into it too.
    println!("cargo:rerun-if-changed=../profiler-common/src");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../profiler-ebpf");
    let root = root.to_str().expect("utf-8 path");
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "profiler-ebpf",
            root_dir: root,
            ..Default::default()
        }],
        aya_build::Toolchain::Nightly,
    )
}
