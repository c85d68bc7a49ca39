//! Rules about the source tree itself, checked by reading it (no build of what it describes).

use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rs_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The eBPF crate builds with unstable *tools* (build-std on the nightly) but uses no unstable
/// language or library feature, so a toolchain change cannot break it by removing one.
#[test]
fn ebpf_crate_uses_no_unstable_feature() {
    let mut files = Vec::new();
    rs_files(&workspace().join("profiler-ebpf/src"), &mut files);
    assert!(!files.is_empty());
    let found: Vec<String> = files
        .iter()
        .flat_map(|f| {
            let text = std::fs::read_to_string(f).expect("read");
            text.lines()
                .filter(|l| l.trim_start().starts_with("#![feature"))
                .map(|l| format!("{}: {}", f.display(), l.trim()))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(
        found.is_empty(),
        "unstable features in profiler-ebpf:\n{}",
        found.join("\n")
    );
}
