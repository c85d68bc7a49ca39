//! README.md against the binary: its key table and command table against the TUI's key help
//! (draw::KEYS) and the subcommands and options clap knows, its pictures against the snapshots
//! the TUI tests draw. A key, subcommand, option or column added on one side only fails here.

use std::collections::BTreeSet;

use clap::CommandFactory;

use super::draw::KEYS;
use crate::cli::Cli;

const README: &str = include_str!("../../../README.md");

/// The rows of the Markdown table under `heading` (cells trimmed, header and rule left out).
fn table(heading: &str) -> Vec<Vec<String>> {
    let at = README
        .find(heading)
        .unwrap_or_else(|| panic!("README.md has no `{heading}`"));
    let rows: Vec<Vec<String>> = README[at..]
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            // `\|` inside a cell is a literal bar (e.g. `NAME\|UUID`).
            let l = l.replace("\\|", "\u{1}");
            let l = l.trim().trim_matches('|');
            l.split('|')
                .map(|c| c.trim().replace('\u{1}', "|"))
                .collect()
        })
        .collect();
    assert!(rows.len() > 2, "no table under `{heading}`");
    rows[2..].to_vec()
}

/// The keys one cell names: "Enter, l, →", "↑/↓ j/k", "+/-", "0–9" (one key range) and
/// the keys `/` and `,` themselves.
fn keys(cell: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for word in cell.replace('–', "-").split_whitespace() {
        let word = word.trim_matches(['(', ')']);
        let word = match word.strip_suffix(',') {
            Some(w) if !w.is_empty() => w,
            _ => word,
        };
        if word.len() > 1 && word.contains('/') {
            out.extend(word.split('/').filter(|k| !k.is_empty()).map(String::from));
        } else if !word.is_empty() {
            out.insert(word.to_string());
        }
    }
    out
}

#[test]
fn readme_key_table_matches_the_help() {
    let readme: Vec<BTreeSet<String>> = table("## Keys")
        .iter()
        .map(|row| keys(row[0].trim_matches('`')))
        .collect();
    let help: Vec<BTreeSet<String>> = KEYS.iter().map(|(k, _)| keys(k)).collect();
    assert_eq!(
        readme, help,
        "README.md's key table and the TUI's help (tui/draw.rs KEYS) list different keys, row by row"
    );
}

/// (subcommand, options) of each `kvmprof …` in the command table; bare `kvmprof` is `top`.
fn readme_commands() -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for row in table("| command |") {
        for (i, code) in row[0].split('`').enumerate() {
            if i % 2 == 0 || !code.starts_with("kvmprof") {
                continue;
            }
            let mut words = code.split_whitespace().skip(1).peekable();
            let sub = match words.peek() {
                Some(w) if !w.starts_with(['-', '[']) => words.next().unwrap_or("top"),
                _ => "top",
            };
            let opts = words
                .flat_map(|w| w.split(['[', ']', '|']))
                .filter(|w| w.starts_with('-') && w.len() > 1)
                .map(String::from)
                .collect();
            out.push((sub.to_string(), opts));
        }
    }
    out
}

#[test]
fn readme_command_table_matches_the_cli() {
    let cli = Cli::command();
    let visible: BTreeSet<String> = cli
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .map(|s| s.get_name().to_string())
        .collect();
    let listed = readme_commands();
    let names: BTreeSet<String> = listed.iter().map(|(s, _)| s.clone()).collect();
    assert_eq!(
        names, visible,
        "README.md's command table and `kvmprof --help` list different subcommands"
    );
    for (sub, opts) in &listed {
        let cmd = cli
            .find_subcommand(sub)
            .unwrap_or_else(|| panic!("no subcommand {sub}"));
        for opt in opts {
            let known = cmd.get_arguments().chain(cli.get_arguments()).any(|a| {
                match opt.strip_prefix("--") {
                    Some(long) => a.get_long() == Some(long),
                    None => opt.chars().nth(1) == a.get_short() && opt.len() == 2,
                }
            });
            assert!(
                known,
                "README.md's command table gives `kvmprof {sub}` the option {opt}, which it does not have"
            );
        }
    }
}

/// The parsing above, on cells as the README writes them.
#[test]
fn key_cells_parse() {
    let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(keys("Enter, l, →"), set(&["Enter", "l", "→"]));
    assert_eq!(keys("+/-"), set(&["+", "-"]));
    assert_eq!(keys(". ,"), set(&[".", ","]));
    assert_eq!(keys("/"), set(&["/"]));
    assert_eq!(keys("[ ] 0–9"), keys("[ ] 0-9"));
    assert_eq!(
        keys("↑/↓, j/k (PgUp/PgDn, g/G)"),
        set(&["↑", "↓", "j", "k", "PgUp", "PgDn", "g", "G"])
    );
}

/// A snapshot's frame as README shows it: the lines without their quotes, trailing blanks and
/// empty lines dropped.
fn frame_text(snap: &str) -> String {
    let lines = snap.lines().filter(|l| l.starts_with('"'));
    let text = lines.map(|l| {
        l.trim_matches('"')
            .replace("\\\"", "\"")
            .trim_end()
            .to_string()
    });
    text.filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

/// README's pictures of the TUI are the snapshots the TUI tests draw: a column added to a
/// screen shows in README too.
#[test]
fn readme_pictures_are_the_tuis_snapshots() {
    for snap in [
        include_str!("snapshots/kvmprof__tui__tests__vm_detail_120x40.snap"),
        include_str!("snapshots/kvmprof__tui__tests_slow__slow_pane_160x20.snap"),
    ] {
        let want = format!("```\n{}\n```", frame_text(snap));
        assert!(
            README.contains(&want),
            "README.md lacks this picture (copy it from the snapshot):\n{want}"
        );
    }
}
