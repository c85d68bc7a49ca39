//! Just enough of Rust's lexing for modgraph: comments and literals stripped, tokens,
//! attributes and items skipped, `use` trees and inline `crate::`/`super::` paths collected.

/// The source with comments and the contents of string and char literals removed.
pub(super) fn strip(src: &str) -> String {
    let b: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < b.len() && b[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == '/' && b.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == '*' && b.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if c == 'r' && matches!(next, Some('"') | Some('#')) && raw_prefix(&b, i) {
            // Raw string r"..." / r#"..."#.
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                if j >= b.len() {
                    break;
                }
                if b[j] == '"' && (0..hashes).all(|k| b.get(j + 1 + k) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            out.push_str("\"\"");
            i = j;
        } else if c == '"' {
            i += 1;
            while i < b.len() && b[i] != '"' {
                i += if b[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == '\'' {
            // A char literal ('a', '\n', '\u{1F}'), not a lifetime ('a).
            let end = if next == Some('\\') {
                (i + 2..b.len()).find(|&j| b[j] == '\'')
            } else if b.get(i + 2) == Some(&'\'') {
                Some(i + 2)
            } else {
                None
            };
            match end {
                Some(e) => {
                    out.push_str("' '");
                    i = e + 1;
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn ident_char(c: Option<&char>) -> bool {
    c.is_some_and(|c| c.is_alphanumeric() || *c == '_')
}

/// Whether the `r` at `i` starts a raw string (`r"`, `r#"`, `br"`), not ends an identifier.
fn raw_prefix(b: &[char], i: usize) -> bool {
    let before = |k: usize| i.checked_sub(k).and_then(|j| b.get(j));
    !ident_char(before(1)) || (before(1) == Some(&'b') && !ident_char(before(2)))
}

/// Identifiers, `::`, and single punctuation characters.
pub(super) fn tokens(src: &str) -> Vec<String> {
    let b: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < b.len() && (b[i].is_alphanumeric() || b[i] == '_') {
                i += 1;
            }
            out.push(b[start..i].iter().collect());
        } else if c == ':' && b.get(i + 1) == Some(&':') {
            out.push("::".into());
            i += 2;
        } else {
            if !c.is_whitespace() {
                out.push(c.to_string());
            }
            i += 1;
        }
    }
    out
}

/// Index just past the attribute starting at `i` (`#` `[` … `]`), if one starts there.
fn attr_end(t: &[String], i: usize) -> Option<usize> {
    let inner = t.get(i + 1).is_some_and(|x| x == "!");
    let open = i + 1 + inner as usize;
    if t.get(i).is_none_or(|x| x != "#") || t.get(open).is_none_or(|x| x != "[") {
        return None;
    }
    Some(balanced(t, open, "[", "]"))
}

/// Index just past the bracket group opened at `open`.
pub(super) fn balanced(t: &[String], open: usize, o: &str, c: &str) -> usize {
    let mut depth = 0;
    for (j, x) in t.iter().enumerate().skip(open) {
        if x == o {
            depth += 1;
        } else if x == c {
            depth -= 1;
            if depth == 0 {
                return j + 1;
            }
        }
    }
    t.len()
}

/// Whether the attribute tokens `t[start..end]` are a `cfg` that needs `test`.
fn is_cfg_test(t: &[String]) -> bool {
    t.iter().any(|x| x == "cfg") && t.iter().any(|x| x == "test") && !t.iter().any(|x| x == "not")
}

/// Index just past the item starting at `i`: up to its `;` or its balanced `{ … }`.
fn item_end(t: &[String], mut i: usize) -> usize {
    while i < t.len() {
        match t[i].as_str() {
            ";" => return i + 1,
            "{" => return balanced(t, i, "{", "}"),
            _ => i += 1,
        }
    }
    t.len()
}

/// Names of `#[cfg(test)] mod name;` declarations.
pub(super) fn test_module_decls(t: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < t.len() {
        if let Some(end) = attr_end(t, i) {
            if is_cfg_test(&t[i..end]) {
                let mut j = end;
                while let Some(e) = attr_end(t, j) {
                    j = e;
                }
                if t.get(j).is_some_and(|x| x == "pub") {
                    j += 1;
                }
                if t.get(j).is_some_and(|x| x == "mod") && t.get(j + 2).is_some_and(|x| x == ";") {
                    out.push(t[j + 1].clone());
                }
            }
            i = end;
        } else {
            i += 1;
        }
    }
    out
}

/// The tokens without `#[cfg(test)]` items (test modules, test-only helpers and uses).
pub(super) fn without_test_items(t: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < t.len() {
        match attr_end(t, i) {
            Some(end) if is_cfg_test(&t[i..end]) && t[i + 1] != "!" => {
                let mut j = end;
                while let Some(e) = attr_end(t, j) {
                    j = e;
                }
                i = item_end(t, j);
            }
            _ => {
                out.push(t[i].clone());
                i += 1;
            }
        }
    }
    out
}

/// Every path a file names: each leaf of its `use` trees, and inline paths that start with
/// `crate`, `self` or `super` followed by `::`.
pub(super) fn paths(t: &[String]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < t.len() {
        if t[i] == "use" && (i == 0 || t[i - 1] != "::") {
            let end = (i..t.len()).find(|&j| t[j] == ";").unwrap_or(t.len());
            let mut leaves = Vec::new();
            use_tree(&t[i + 1..end], &[], &mut leaves);
            out.extend(leaves.into_iter().map(|(p, _)| p));
            i = end;
            continue;
        }
        let starts = matches!(t[i].as_str(), "crate" | "self" | "super")
            && t.get(i + 1).is_some_and(|x| x == "::")
            && (i == 0 || (t[i - 1] != "::" && t[i - 1] != "in"));
        if starts {
            let mut path = vec![t[i].clone()];
            let mut j = i + 1;
            while t.get(j).is_some_and(|x| x == "::") && t.get(j + 1).is_some_and(|x| is_ident(x)) {
                path.push(t[j + 1].clone());
                j += 2;
            }
            out.push(path);
            i = j;
            continue;
        }
        i += 1;
    }
    out
}

fn is_ident(s: &str) -> bool {
    s.chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_')
}

/// Leaves of one use tree (`a::{b, c::d as e, *}`), each as a full path from `prefix`.
pub(super) fn use_tree(t: &[String], prefix: &[String], out: &mut Vec<(Vec<String>, String)>) {
    let mut i = 0;
    let mut path = prefix.to_vec();
    while i < t.len() {
        match t[i].as_str() {
            "::" => i += 1,
            "{" => {
                let end = balanced(t, i, "{", "}");
                let inner = &t[i + 1..end - 1];
                // Split on top-level commas.
                let mut depth = 0;
                let mut start = 0;
                for (k, x) in inner.iter().enumerate() {
                    match x.as_str() {
                        "{" => depth += 1,
                        "}" => depth -= 1,
                        "," if depth == 0 => {
                            use_tree(&inner[start..k], &path, out);
                            start = k + 1;
                        }
                        _ => {}
                    }
                }
                use_tree(&inner[start..], &path, out);
                return;
            }
            "as" => {
                if let (Some(name), false) = (t.get(i + 1), path.is_empty()) {
                    out.push((path, name.clone()));
                }
                return;
            }
            "*" => break,
            x if is_ident(x) => {
                path.push(x.to_string());
                i += 1;
            }
            _ => i += 1,
        }
    }
    if let Some(last) = path.last() {
        let name = last.clone();
        out.push((path, name));
    }
}
