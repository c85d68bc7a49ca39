//! Which module file of a crate uses which: reads every `.rs` file under a crate's `src/`,
//! resolves `use crate::a::b`, `use super::x`, `use child::y` and inline `crate::a::b::` /
//! `super::x::` paths to the module files they name, and finds files that use each other.
//!
//! Declaring a submodule (`mod x;`) is not a use; `#[cfg(test)]` items and test module files
//! are left out. Comments and string literals are stripped before tokenising.

mod lex;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use lex::{balanced, paths, strip, test_module_decls, tokens, use_tree, without_test_items};

/// Module path (`["tui", "draw"]`; the crate root is `[]`) → file.
pub type Modules = BTreeMap<Vec<String>, PathBuf>;
/// File's module → modules it uses (itself excluded).
pub type Uses = BTreeMap<Vec<String>, BTreeSet<Vec<String>>>;

/// Every module file of the crate whose root is `src/lib.rs` or `src/main.rs` (the other one,
/// a separate crate, is skipped when both exist), minus test modules.
pub fn crate_modules(src: &Path) -> std::io::Result<Modules> {
    let root = if src.join("lib.rs").is_file() {
        "lib.rs"
    } else {
        "main.rs"
    };
    let mut files = Vec::new();
    collect(src, &mut files)?;
    let mut mods = Modules::new();
    for f in files {
        let rel = f.strip_prefix(src).expect("under src");
        let mut parts: Vec<String> = rel
            .iter()
            .map(|c| c.to_string_lossy().into_owned())
            .collect();
        let last = parts.pop().expect("a file name");
        let stem = last.trim_end_matches(".rs");
        if parts.is_empty() && (last == "lib.rs" || last == "main.rs") {
            if last != root {
                continue;
            }
        } else if stem != "mod" {
            parts.push(stem.to_string());
        }
        mods.insert(parts, f);
    }
    // Test modules declared by their parents (`#[cfg(test)] mod tests;`), with their children.
    let mut test_mods = Vec::new();
    for (m, f) in &mods {
        let toks = tokens(&strip(&std::fs::read_to_string(f)?));
        for name in test_module_decls(&toks) {
            let mut child = m.clone();
            child.push(name);
            test_mods.push(child);
        }
    }
    mods.retain(|m, _| !test_mods.iter().any(|t| m.starts_with(t)));
    Ok(mods)
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.is_dir() {
            collect(&p, out)?;
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    Ok(())
}

/// Which modules each module uses. A path to an item a module re-exports (`pub use
/// child::Item`) counts as a use of the module it comes from. A module's uses of its own
/// submodules are left out: a parent owning, re-exporting and calling its children is the
/// shape of a Rust module, not a circle.
pub fn uses(mods: &Modules) -> std::io::Result<Uses> {
    let mut toks = BTreeMap::new();
    for (m, f) in mods {
        let t = tokens(&strip(&std::fs::read_to_string(f)?));
        toks.insert(m.clone(), without_test_items(&t));
    }
    // name re-exported by a module → the module it comes from.
    let mut reexports: BTreeMap<Vec<String>, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    for (m, t) in &toks {
        for (path, name) in pub_use_leaves(t) {
            if let Some(abs) = absolute(mods, m, &path) {
                if let Some(target) = longest_module(mods, &abs) {
                    reexports.entry(m.clone()).or_default().insert(name, target);
                }
            }
        }
    }
    let mut out = Uses::new();
    for (m, t) in &toks {
        let mut set = BTreeSet::new();
        for path in paths(t) {
            let Some(abs) = absolute(mods, m, &path) else {
                continue;
            };
            let Some(mut target) = longest_module(mods, &abs) else {
                continue;
            };
            // Follow re-exports (a few hops at most; a loop stops at the limit).
            for _ in 0..4 {
                let via = abs
                    .get(target.len())
                    .and_then(|name| reexports.get(&target)?.get(name));
                match via {
                    Some(next) if abs.starts_with(&target) && *next != target => {
                        target = next.clone();
                    }
                    _ => break,
                }
            }
            if !target.starts_with(m) {
                set.insert(target);
            }
        }
        out.insert(m.clone(), set);
    }
    Ok(out)
}

/// Leaves of `pub use` / `pub(crate) use` trees, with the name each is exported as.
fn pub_use_leaves(t: &[String]) -> Vec<(Vec<String>, String)> {
    let mut out = Vec::new();
    for i in 0..t.len() {
        if t[i] != "pub" {
            continue;
        }
        let mut j = i + 1;
        if t.get(j).is_some_and(|x| x == "(") {
            j = balanced(t, j, "(", ")");
        }
        if t.get(j).is_some_and(|x| x == "use") {
            let end = (j..t.len()).find(|&k| t[k] == ";").unwrap_or(t.len());
            use_tree(&t[j + 1..end], &[], &mut out);
        }
    }
    out
}

/// Pairs of modules that use each other, each pair once (smaller first).
pub fn mutual_pairs(uses: &Uses) -> Vec<(Vec<String>, Vec<String>)> {
    let mut out = Vec::new();
    for (a, set) in uses {
        for b in set {
            if a < b && uses.get(b).is_some_and(|s| s.contains(a)) {
                out.push((a.clone(), b.clone()));
            }
        }
    }
    out
}

/// Groups of two or more modules that reach each other through uses (strongly connected
/// components), each sorted; a longer circle than a pair shows up here.
pub fn circles(uses: &Uses) -> Vec<Vec<Vec<String>>> {
    let reach = |from: &Vec<String>| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.clone()];
        while let Some(m) = todo.pop() {
            for n in uses.get(&m).into_iter().flatten() {
                if seen.insert(n.clone()) {
                    todo.push(n.clone());
                }
            }
        }
        seen
    };
    let all: BTreeMap<&Vec<String>, BTreeSet<Vec<String>>> =
        uses.keys().map(|m| (m, reach(m))).collect();
    let mut out: Vec<Vec<Vec<String>>> = Vec::new();
    for (m, r) in &all {
        let group: Vec<Vec<String>> = r
            .iter()
            .filter(|n| all.get(n).is_some_and(|back| back.contains(*m)))
            .cloned()
            .collect();
        if group.len() > 1 && !out.contains(&group) {
            out.push(group);
        }
    }
    out
}

/// Display a module path as `crate::a::b`.
pub fn show(m: &[String]) -> String {
    std::iter::once("crate")
        .chain(m.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join("::")
}

/// The path made absolute (from the crate root), if it names something in this crate.
fn absolute(mods: &Modules, from: &[String], path: &[String]) -> Option<Vec<String>> {
    let mut abs: Vec<String> = Vec::new();
    let mut rest = path;
    match path.first()?.as_str() {
        "crate" => rest = &path[1..],
        "self" => {
            abs = from.to_vec();
            rest = &path[1..];
        }
        "super" => {
            abs = from.to_vec();
            while rest.first().is_some_and(|s| s == "super") {
                abs.pop()?;
                rest = &rest[1..];
            }
        }
        first => {
            // Uniform paths: a child module of this one, else an external crate.
            let mut child = from.to_vec();
            child.push(first.to_string());
            if !mods.contains_key(&child) {
                return None;
            }
            abs = from.to_vec();
        }
    }
    abs.extend(rest.iter().cloned());
    Some(abs)
}

/// The module file an absolute path lands in (its longest module prefix).
fn longest_module(mods: &Modules, abs: &[String]) -> Option<Vec<String>> {
    (0..=abs.len())
        .rev()
        .map(|n| abs[..n].to_vec())
        .find(|m| mods.contains_key(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, files: &[(&str, &str)]) {
        for (name, text) in files {
            let p = dir.join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
    }

    #[test]
    fn finds_real_uses_only() {
        let dir = std::env::temp_dir().join(format!("modgraph-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        write(
            &dir,
            &[
                ("lib.rs", "mod a; mod b; mod c; mod d; mod p;\n"),
                (
                    "a.rs",
                    "use crate::b::X;\n// crate::c::Y\nfn f() { let s = \"crate::d::Z\"; }\n",
                ),
                // b's use of a is test-only; its pub(super) and pub(in crate::a) are not uses.
                (
                    "b.rs",
                    "pub(super) struct X;\npub(in crate::a) fn g() {}\n\
                     #[cfg(test)]\nmod tests { use crate::a; }\n",
                ),
                (
                    "c.rs",
                    "use super::{d::{self, Z as W}, b};\nfn f() { let _ = 'x'; }\n",
                ),
                ("d.rs", "pub struct Z;\nfn f() -> crate::c::T { todo!() }\n"),
                // A parent re-exporting a child: uses of p::Q land in p/q.rs.
                ("p/mod.rs", "mod q;\npub use q::Q;\n"),
                ("p/q.rs", "pub struct Q;\nfn f() { crate::p::helper(); }\n"),
            ],
        );
        let mods = crate_modules(&dir).unwrap();
        let uses = uses(&mods).unwrap();
        let m = |s: &str| s.split("::").map(String::from).collect::<Vec<_>>();
        assert_eq!(uses[&m("a")], BTreeSet::from([m("b")]));
        assert!(uses[&m("b")].is_empty(), "{:?}", uses[&m("b")]);
        assert_eq!(uses[&m("c")], BTreeSet::from([m("b"), m("d")]));
        assert_eq!(mutual_pairs(&uses), vec![(m("c"), m("d"))]);
        assert_eq!(circles(&uses), vec![vec![m("c"), m("d")]]);
        // The parent's use of its child is not a circle.
        assert!(uses[&m("p")].is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
