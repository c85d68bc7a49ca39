//! Rules about the source tree itself, checked by reading it (no build of what it describes).

use std::path::{Path, PathBuf};

use kvmprof_tests::modgraph;

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

/// No module file uses another that uses it back (the shared part goes in a file below both).
#[test]
fn no_two_files_import_each_other() {
    let mut found = Vec::new();
    for krate in ["profiler/src", "xtask/src"] {
        let src = workspace().join(krate);
        let mods = modgraph::crate_modules(&src).expect("reading the crate");
        assert!(mods.len() > 3, "{krate}: only {} modules found", mods.len());
        let uses = modgraph::uses(&mods).expect("reading the crate");
        for group in modgraph::circles(&uses) {
            let names: Vec<String> = group.iter().map(|m| modgraph::show(m)).collect();
            found.push(format!("{krate}: circle {}", names.join(" -> ")));
        }
        for (a, b) in modgraph::mutual_pairs(&uses) {
            found.push(format!(
                "{krate}: {} ({}) <-> {} ({})",
                modgraph::show(&a),
                mods[&a].strip_prefix(&src).unwrap().display(),
                modgraph::show(&b),
                mods[&b].strip_prefix(&src).unwrap().display()
            ));
        }
    }
    for f in &found {
        println!("{f}");
    }
    assert!(
        found.is_empty(),
        "{} pairs of files import each other:\n{}",
        found.len(),
        found.join("\n")
    );
}

/// Tests install nothing: the tools they run come from `cargo xtask setup` (xtask/src/
/// test_tools.rs), and a missing one fails its test with a message naming that command.
#[test]
fn tests_install_no_tools() {
    let mut files = Vec::new();
    for dir in ["tests/tests", "tests/src", "profiler/tests", "profiler/src"] {
        rs_files(&workspace().join(dir), &mut files);
    }
    let installers = [
        "\"apt-get\"",
        "\"apt\"",
        "\"pip\"",
        "\"pip3\"",
        "\"-m\", \"pip\"",
    ];
    let found: Vec<String> = files
        .iter()
        .flat_map(|f| {
            let text = std::fs::read_to_string(f).expect("read");
            text.lines()
                .enumerate()
                .filter(|(_, l)| installers.iter().any(|i| l.contains(i)))
                .map(|(n, l)| format!("{}:{}: {}", f.display(), n + 1, l.trim()))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(
        found.is_empty(),
        "tests that install tools:\n{}",
        found.join("\n")
    );
}
