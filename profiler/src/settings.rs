//! The one parser for threshold files: `check --config` and `advise --thresholds` both read
//! TOML (or JSON) through here, so both refuse unknown keys and impossible numbers the same way,
//! with one line naming the file, the line and the key.

use serde::de::DeserializeOwned;

/// A settings file or value that cannot be used; the text is the whole one-line message.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct SettingsError(pub String);

/// Parses `text` (JSON when `json`, else TOML) into `T`; `origin` (the path) prefixes errors
/// and `fix` ends them (where every key is documented).
pub fn parse<T: DeserializeOwned>(
    text: &str,
    origin: &str,
    json: bool,
    fix: &str,
) -> Result<T, SettingsError> {
    if json {
        return serde_json::from_str(text).map_err(|e| {
            let msg = one_line(&e.to_string());
            SettingsError(format!("{origin}:{}: {msg}; {fix}", e.line()))
        });
    }
    toml::from_str(text).map_err(|e| {
        let (line, key) = e
            .span()
            .map(|s| locate(text, s.start))
            .unwrap_or((0, String::new()));
        let msg = one_line(e.message());
        let at = if line > 0 {
            format!("{origin}:{line}")
        } else {
            origin.to_string()
        };
        let key = if key.is_empty() || msg.contains(&format!("`{key}`")) {
            String::new()
        } else {
            format!("`{key}`: ")
        };
        SettingsError(format!("{at}: {key}{msg}; {fix}"))
    })
}

/// Reads `path` (JSON when it ends in `.json`, else TOML) and parses it.
pub fn load<T: DeserializeOwned>(path: &std::path::Path, fix: &str) -> Result<T, SettingsError> {
    let origin = path.display().to_string();
    let text =
        crate::text_file::read(path, "a thresholds file (TOML)").map_err(|e| SettingsError(e.0))?;
    let json = path.extension().is_some_and(|e| e == "json");
    parse(&text, &origin, json, fix)
}

/// A limit must be a finite number ≥ 0 (TOML spells `nan` and `-inf`).
pub fn limit(key: &str, v: f64) -> Result<(), SettingsError> {
    if v.is_finite() && v >= 0.0 {
        Ok(())
    } else {
        Err(SettingsError(format!(
            "`{key}` = {v}: a limit must be a finite number ≥ 0"
        )))
    }
}

/// A percentage: finite, in 0–100.
pub fn percent(key: &str, v: f64) -> Result<(), SettingsError> {
    limit(key, v)?;
    if v > 100.0 {
        return Err(SettingsError(format!(
            "`{key}` = {v}: a percentage is at most 100"
        )));
    }
    Ok(())
}

fn one_line(s: &str) -> String {
    s.replace('\n', " ").trim().to_string()
}

/// 1-based line of byte `pos`, and the key written on that line (before `=`), if any.
fn locate(text: &str, pos: usize) -> (usize, String) {
    let pos = pos.min(text.len());
    let line = text
        .char_indices()
        .take_while(|(i, _)| *i < pos)
        .filter(|(_, c)| *c == '\n')
        .count()
        + 1;
    let key = text
        .lines()
        .nth(line - 1)
        .and_then(|l| l.split_once('='))
        .map(|(k, _)| k.trim().trim_matches('"').to_string())
        .unwrap_or_default();
    (line, key)
}
