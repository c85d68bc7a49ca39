//! libvirt domain identity from its QEMU driver status files (`/run/libvirt/qemu/NAME.xml`):
//! `<domstatus ... pid='1234'> ... <domain ...><name>NAME</name><uuid>U</uuid>`.
//! Plain string scanning: only three values are needed and the files are libvirt-written.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// One running libvirt domain.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Domain {
    pub pid: u32,
    pub name: String,
    pub uuid: Option<String>,
}

/// Parses a status file. None when it is not a status file of a running domain.
pub fn parse_status(xml: &str) -> Option<Domain> {
    let tag = open_tag(xml, "domstatus")?;
    let pid = attr(tag, "pid")?.parse().ok().filter(|p| *p != 0)?;
    // The <name> we want is the domain's, not e.g. a <name> inside <metadata> before it.
    let domain = &xml[xml.find("<domain")?..];
    let name = element(domain, "name")?;
    if name.is_empty() {
        return None;
    }
    let uuid = element(domain, "uuid").filter(|u| !u.is_empty());
    Some(Domain { pid, name, uuid })
}

/// The attribute text of `<tag ...>` (without the brackets).
fn open_tag<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let start = xml.find(&format!("<{tag}"))? + tag.len() + 1;
    let rest = &xml[start..];
    // `<domstatusx` is another tag.
    if !rest.starts_with(|c: char| c.is_whitespace() || c == '>' || c == '/') {
        return None;
    }
    Some(&rest[..rest.find('>')?])
}

/// `name='v'` or `name="v"` inside a tag's attribute text.
fn attr(tag: &str, name: &str) -> Option<String> {
    let mut rest = tag;
    loop {
        let i = rest.find(name)?;
        let before_ok = rest[..i].ends_with(|c: char| c.is_whitespace());
        let after = rest[i + name.len()..].trim_start();
        rest = &rest[i + name.len()..];
        let Some(after) = after.strip_prefix('=').filter(|_| before_ok) else {
            continue;
        };
        let after = after.trim_start();
        let quote = after.chars().next().filter(|q| *q == '\'' || *q == '"')?;
        let body = &after[1..];
        return Some(unescape(&body[..body.find(quote)?]));
    }
}

/// Text of the first `<tag>text</tag>` in `xml`.
fn element(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let len = xml[start..].find(&format!("</{tag}>"))?;
    Some(unescape(xml[start..start + len].trim()))
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// Status files by path, re-parsed only when their mtime or size changes.
#[derive(Debug, Default)]
pub struct Domains {
    files: HashMap<PathBuf, (Option<SystemTime>, u64, Option<Domain>)>,
}

impl Domains {
    /// Rescans `dir` and returns pid → domain. A missing directory (no libvirt) is empty.
    pub fn scan(&mut self, dir: &Path) -> HashMap<u32, Domain> {
        let mut seen = HashMap::new();
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "xml") {
                continue;
            }
            let Ok(meta) = entry.metadata() else { continue };
            let stamp = (meta.modified().ok(), meta.len());
            let domain = match self.files.remove(&path) {
                Some((m, l, d)) if (m, l) == stamp => d,
                _ => std::fs::read_to_string(&path)
                    .ok()
                    .and_then(|x| parse_status(&x)),
            };
            seen.insert(path, (stamp.0, stamp.1, domain));
        }
        self.files = seen;
        self.files
            .values()
            .filter_map(|(_, _, d)| d.clone())
            .map(|d| (d.pid, d))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "<!--\nWARNING: THIS IS AN AUTO-GENERATED FILE.\n-->\n\
<domstatus state='running' reason='booted' pid='4242'>\n  <taint flag='high-privileges'/>\n\
  <monitor path='/var/lib/libvirt/qemu/domain-3-win11/monitor.sock' type='unix'/>\n\
  <domain type='kvm' id='3'>\n    <name>win11 &amp; friends</name>\n\
    <uuid>6b1f0c7e-1d2a-4a57-9c1e-0a4f3b9d1e22</uuid>\n  </domain>\n</domstatus>\n";

    #[test]
    fn parses_status_file() {
        let d = parse_status(STATUS).unwrap();
        assert_eq!(d.pid, 4242);
        assert_eq!(d.name, "win11 & friends");
        assert_eq!(
            d.uuid.as_deref(),
            Some("6b1f0c7e-1d2a-4a57-9c1e-0a4f3b9d1e22")
        );
        let dq = STATUS.replace("pid='4242'", "ppid='1' pid=\"77\"");
        assert_eq!(parse_status(&dq).unwrap().pid, 77);
    }

    #[test]
    fn rejects_non_status_xml() {
        // An inactive domain definition has no <domstatus pid>.
        assert_eq!(
            parse_status("<domain type='kvm'><name>x</name></domain>"),
            None
        );
        assert_eq!(
            parse_status(&STATUS.replace("pid='4242'", "pid='zz'")),
            None
        );
        assert_eq!(parse_status("<domstatus pid='1'>"), None);
        assert_eq!(parse_status(""), None);
    }
}
