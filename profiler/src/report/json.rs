//! JSON report: the serde form of [`View`] (a fixed contract, see `model`), pretty-printed.

use super::ReportError;
use crate::model::View;

/// The View as pretty JSON with a final newline (what `report --format json` prints).
pub fn render(view: &View) -> Result<String, ReportError> {
    let mut s = serde_json::to_string_pretty(view)?;
    s.push('\n');
    Ok(s)
}
