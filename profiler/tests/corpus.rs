//! The world's `perf kvm stat` pastes (profiler/tests/corpus/, each with its source and the
//! expert's published diagnosis in `## key: value` header lines): how many kvmprof reads, and
//! how often its top finding is the expert's. Prints the score; the floor only rises.

use std::collections::BTreeMap;

use kvmprof::advice::{self, GuestKind, Input};

struct Fixture {
    file: String,
    meta: BTreeMap<String, String>,
    paste: String,
}

fn fixtures() -> Vec<Fixture> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus");
    let mut out: Vec<Fixture> = std::fs::read_dir(dir)
        .expect("corpus directory")
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "txt"))
        .map(|e| {
            let text = std::fs::read_to_string(e.path()).expect("fixture is UTF-8");
            let mut meta = BTreeMap::new();
            let mut body = Vec::new();
            for line in text.lines() {
                match line.strip_prefix("## ").and_then(|l| l.split_once(':')) {
                    Some((k, v)) if body.is_empty() => {
                        meta.insert(k.trim().to_string(), v.trim().to_string());
                    }
                    _ => body.push(line),
                }
            }
            Fixture {
                file: e.file_name().to_string_lossy().into_owned(),
                meta,
                paste: body.join("\n"),
            }
        })
        .collect();
    out.sort_by(|a, b| a.file.cmp(&b.file));
    out
}

/// The rule ids that state the expert's diagnosis; None when the fixture has none to score.
fn expected_rules(expected: &str) -> Option<&'static [&'static str]> {
    let e = expected.to_ascii_lowercase();
    Some(if e.starts_with("none") || e.starts_with("other") {
        return None;
    } else if e.starts_with("hv-stimer missing") {
        &["R01", "R02", "R03", "R04"]
    } else if e.starts_with("hv-synic/autoeoi") {
        &["R06", "R07", "P2"]
    } else if e.starts_with("halt") {
        &["R15"]
    } else if e.starts_with("no hyper-v issue") {
        &[]
    } else {
        panic!("unknown expected-top-finding `{expected}`: add it to expected_rules")
    })
}

/// A finding about Hyper-V enlightenments: every configuration check and fingerprint, and
/// every runtime rule but the four about causes outside Hyper-V (host interrupts, PAUSE
/// loops, halt polling, unrelated exits).
fn is_hyperv_advice(f: &advice::Finding) -> bool {
    !matches!(f.rule.as_str(), "R09" | "R14" | "R15" | "R22")
}

#[test]
fn corpus_score() {
    let (mut read, mut scored, mut right, mut clean_linux, mut linux) = (0, 0, 0, 0, 0);
    let all = fixtures();
    println!(
        "{:<55} {:<9} {:<12} top finding",
        "fixture", "read", "expected"
    );
    for f in &all {
        // What the poster knew and said: the guest's OS (`advise --guest`).
        let g = f.meta.get("guest").map(|g| g.to_ascii_lowercase());
        let guest = match g.as_deref() {
            Some(g) if g.starts_with("windows") => Some(GuestKind::Windows),
            Some(g) if g.starts_with("linux") => Some(GuestKind::Linux),
            _ => None,
        };
        let data = kvmprof::report::import(&f.paste);
        let expected = f
            .meta
            .get("expected-top-finding")
            .cloned()
            .unwrap_or_default();
        let want = expected_rules(&expected);
        let (ok, top) = match &data {
            // Exit rows, or a paste of --event=ioport / msr tables alone (evidence only).
            Ok(d) if !d.newer.stats.is_empty() || !d.newer.evidence.is_empty() => {
                read += 1;
                let rep = advice::analyze(&Input::from_perf(d, guest));
                let top = rep.findings.first().cloned();
                let hv = rep.findings.iter().any(is_hyperv_advice);
                let ok = match want {
                    Some([]) => !hv,
                    Some(ids) => top.as_ref().is_some_and(|t| ids.contains(&t.rule.as_str())),
                    None => true, // read is all a fixture without a diagnosis can score
                };
                (
                    ok,
                    top.map_or("-".into(), |t| format!("{} {}", t.rule, t.title)),
                )
            }
            Ok(_) => (false, "(read, but no exits)".into()),
            Err(e) => (false, format!("(refused: {e})")),
        };
        if let Some(ids) = want {
            scored += 1;
            right += usize::from(ok);
            if ids.is_empty() {
                linux += 1;
                clean_linux += usize::from(ok);
            }
        }
        let short: String = expected.chars().take(12).collect();
        let top: String = top.chars().take(90).collect();
        let mark = if ok { "ok" } else { "MISS" };
        println!(
            "{:<55} {:<9} {short:<12} {mark} {top}",
            f.file,
            data.is_ok()
        );
    }
    println!(
        "corpus: {} fixtures, {read} read; top finding = expert diagnosis in {right} of {scored} \
         ({clean_linux} of {linux} without Hyper-V kept free of Hyper-V advice)",
        all.len()
    );
    assert!(all.len() >= 20, "the corpus holds {} profiles", all.len());
    // Every readable paste read; the expert's diagnosis on top for at least 90 % of those
    // that have one; no Hyper-V advice where there is no Hyper-V.
    assert!(read >= FLOOR_READ, "read {read} < {FLOOR_READ}");
    assert!(right >= FLOOR_RIGHT, "right {right} < {FLOOR_RIGHT}");
    assert!(
        right * 10 >= scored * 9,
        "top finding = diagnosis in {right} of {scored}: below 90 %"
    );
    assert_eq!(
        clean_linux, linux,
        "Hyper-V advice on a profile without Hyper-V"
    );
}

const FLOOR_READ: usize = 28;
const FLOOR_RIGHT: usize = 14;
