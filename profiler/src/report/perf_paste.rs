//! What mail clients, chat and web pages do to a pasted table, undone one line at a time:
//! quote markers, box-drawing borders and rules, a terminal's `^C`, any Unicode space as a
//! column separator, and the shape of a row, so a row wrapped onto the next line, or one
//! with no header above it, can be recognised.

use super::perf_lex::{micros, percent, tokens};

/// Drops e-mail quoting (`> `, `> > `), a box's borders (`| a | b |` → `a   b`), a terminal's
/// `^C` and surrounding whitespace (any Unicode space, NBSP included). A rule line
/// (`+-----+`, `=====`, `-----`) becomes empty: it separates, it says nothing.
pub(crate) fn clean(raw: &str) -> std::borrow::Cow<'_, str> {
    let line = raw
        .trim_start_matches(|c: char| c == '>' || c.is_whitespace())
        .trim_end_matches(char::is_whitespace);
    let line = line.strip_prefix("^C").unwrap_or(line);
    if line.chars().count() >= 3 && line.chars().all(|c| matches!(c, '-' | '=' | '+' | '|')) {
        return "".into();
    }
    let boxed = line.starts_with('|');
    let line = line
        .trim_start_matches(|c: char| c == '|' || c.is_whitespace())
        .trim_end_matches(|c: char| c == '|' || c.is_whitespace());
    if boxed && line.contains('|') {
        return line.replace('|', " ").into();
    }
    line.into()
}

/// `........`: a table cut short by its poster.
pub(crate) fn is_cut_marker(line: &str) -> bool {
    line.len() >= 3 && line.bytes().all(|b| b == b'.')
}

/// A line that can only be the rest of the line above: it starts with a number, a time, a
/// percentage or `(` (the `( +- x% )` column), never with a name.
pub(crate) fn continues(line: &str) -> bool {
    let Some(first) = line.split_whitespace().next() else {
        return false;
    };
    first.starts_with('(')
        || first.parse::<u64>().is_ok()
        || percent(first).is_some()
        || (micros(first).is_some() && first.ends_with('s'))
}

/// `( +-` with no `)` after it: a row wrapped inside its last column.
pub(crate) fn open_paren(line: &str) -> bool {
    line.rfind('(').is_some_and(|i| !line[i..].contains(')'))
}

/// How much of old perf's row shape, `NAME Samples Samples% Time% Min Max Avg [( +- x% )]`,
/// a line holds, for rows pasted without their header.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Shape {
    /// A name and all six columns.
    Full,
    /// A name and the first three to five of them: the rest may be on the next line.
    Partial,
    None,
}

pub(crate) fn shape(line: &str) -> Shape {
    let left = line.find('(').map_or(line, |i| &line[..i]);
    let toks = tokens(left);
    let is = |t: &str, k: usize| match k {
        0 => t.parse::<u64>().is_ok(),
        1 | 2 => percent(t).is_some(),
        _ => t.ends_with("us") && micros(t).is_some(),
    };
    // The name is the tokens before the first sample count; it starts with a letter.
    let Some(start) = toks.iter().position(|t| t.parse::<u64>().is_ok()) else {
        return Shape::None;
    };
    let named = start > 0 && toks[0].starts_with(|c: char| c.is_ascii_alphabetic());
    let vals = &toks[start..];
    if !named || vals.len() > 6 || !vals.iter().enumerate().all(|(k, t)| is(t, k)) {
        return Shape::None;
    }
    match vals.len() {
        6 => Shape::Full,
        3..=5 => Shape::Partial,
        _ => Shape::None,
    }
}

/// A second header line of a header wrapped by a mail client: only column words
/// (`Time`, `Avg time`, `Max Time (ns)`), no name of a table.
pub(crate) fn header_rest(line: &str) -> bool {
    line.split_whitespace().all(|t| {
        matches!(
            t.to_ascii_lowercase().as_str(),
            "time" | "avg" | "min" | "max" | "mean" | "time%" | "(ns)" | "(us)"
        )
    })
}

/// The target of a pasted `perf kvm [--guest] stat report|live ... [-p PID[,PID]] [--vcpu N]`
/// command line (a shell prompt above the output): perf ≥ 6.4's report screen has no
/// "Analyze events for" line, so the command is what says whose exits follow. A pid that is
/// not a number (`-p $(pgrep qemu)`) says nothing.
pub(crate) fn command_target(line: &str) -> Option<(Vec<u32>, Option<u32>)> {
    let toks: Vec<&str> = line.split_whitespace().collect();
    let perf = toks
        .iter()
        .position(|t| *t == "perf" || t.ends_with("/perf"))?;
    let kvm = perf + toks[perf..].iter().position(|t| *t == "kvm")?;
    let stat = kvm + toks[kvm..].iter().position(|t| *t == "stat")?;
    if !matches!(toks.get(stat + 1), Some(&("report" | "live"))) {
        return None;
    }
    let (mut pids, mut vcpu) = (Vec::new(), None);
    let mut args = toks[stat + 2..].iter();
    while let Some(&t) = args.next() {
        let (key, inline) = match t.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (t, None),
        };
        let value = || inline.or_else(|| args.clone().next().copied());
        match key {
            "-p" | "--pid" => {
                pids = value()
                    .and_then(|v| v.split(',').map(|p| p.parse().ok()).collect())
                    .unwrap_or_default();
            }
            "--vcpu" => vcpu = value().and_then(|v| v.parse().ok()),
            _ => {}
        }
    }
    Some((pids, vcpu))
}
