//! What both benchmarks share: the `RUN key=value ...` result lines bench-vm's guest writes
//! (read by bench_vm.rs and bench_kcost.rs), medians, and BENCHMARKS.md sections (written by
//! `bench` and `bench-vm`). Below all of them, so none imports another back.

use std::collections::BTreeMap;

/// One `RUN key=value ...` line of results.txt.
pub type Run = BTreeMap<String, String>;

pub fn parse_runs(text: &str) -> Vec<Run> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("RUN "))
        .map(|rest| {
            rest.split_whitespace()
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

pub(crate) fn median(mut v: Vec<f64>) -> Option<f64> {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// Exits of one ocrw exerciser run per second (iterations × 4 + 1 over its elapsed time).
/// Replace the `## heading` section of `doc` (up to the next heading) with `section`, or
/// append it: each benchmark command owns one section of BENCHMARKS.md.
pub fn splice(doc: &str, heading: &str, section: &str) -> String {
    let mut out = String::new();
    let mut lines = doc.lines().peekable();
    let mut replaced = false;
    while let Some(l) = lines.next() {
        if l.trim_end() == heading {
            while let Some(n) = lines.peek() {
                if n.starts_with("## ") || n.starts_with("# ") {
                    break;
                }
                lines.next();
            }
            out.push_str(section);
            replaced = true;
        } else {
            out.push_str(l);
            out.push('\n');
        }
    }
    if !replaced {
        if !out.is_empty() && !out.ends_with("\n\n") {
            out.push('\n');
        }
        out.push_str(section);
    }
    out
}
