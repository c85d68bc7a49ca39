//! libvirt domain identity from its QEMU driver status files (`/run/libvirt/qemu/*.xml`):
//! `<domstatus ... pid='1234'> ... <domain ...><name>NAME</name><uuid>U</uuid>`.
//!
//! A VM's name is never turned into a path: status files are found by listing the directory
//! and matched to a process by the pid inside. Only regular files owned by root (or by the
//! user kvmprof runs as) and at most [`xml::MAX_BYTES`] are read, without following symlinks.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::{Error, ErrorKind, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::xml;

/// One running libvirt domain.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Domain {
    pub pid: u32,
    pub name: String,
    pub uuid: Option<String>,
}

/// Parses a status file. None when it is not a status file of a running domain (or not
/// well-formed, or over a limit of [`xml::parse`]).
pub fn parse_status(text: &str) -> Option<Domain> {
    let els = xml::parse(text).ok()?;
    // Parents come first: the first element is the root.
    let root = els.first().filter(|e| e.name == "domstatus")?;
    let pid = root.attr("pid")?.parse().ok().filter(|p| *p != 0)?;
    // The domain's own <name>, not e.g. one inside <metadata>.
    let dom = els
        .iter()
        .position(|e| e.name == "domain" && e.parent == Some(0))?;
    let child = |tag: &str| {
        els.iter()
            .find(|e| e.parent == Some(dom) && e.name == tag)
            .map(|e| e.text.clone())
            .filter(|t| !t.is_empty())
    };
    Some(Domain {
        pid,
        name: child("name")?,
        uuid: child("uuid"),
    })
}

/// The `*.xml` entries of `dir` that are regular files (symlinks and others skipped), with
/// their metadata. A missing directory (no libvirt) is empty.
fn xml_entries(dir: &Path) -> impl Iterator<Item = (PathBuf, std::fs::Metadata)> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let path = entry.path();
            // DirEntry::metadata does not follow symlinks.
            let meta = entry.metadata().ok()?;
            (path.extension().is_some_and(|e| e == "xml") && meta.file_type().is_file())
                .then_some((path, meta))
        })
}

/// Reads a status file if it is one kvmprof may trust: opened without following a symlink and
/// without blocking (a FIFO), then checked on the open file: regular, owned by root or by the
/// user kvmprof runs as, at most [`xml::MAX_BYTES`].
pub fn read_status_file(path: &Path) -> std::io::Result<String> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Err(Error::new(ErrorKind::InvalidInput, "not a regular file"));
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != 0 && meta.uid() != me {
        let msg = format!("owned by uid {}, not root", meta.uid());
        return Err(Error::new(ErrorKind::PermissionDenied, msg));
    }
    let too_big = || {
        let msg = format!("larger than {} bytes", xml::MAX_BYTES);
        Error::new(ErrorKind::InvalidData, msg)
    };
    if meta.len() > xml::MAX_BYTES as u64 {
        return Err(too_big());
    }
    // The file may grow after the check: never read more than the limit.
    let mut text = String::new();
    file.take(xml::MAX_BYTES as u64 + 1)
        .read_to_string(&mut text)?;
    if text.len() > xml::MAX_BYTES {
        return Err(too_big());
    }
    Ok(text)
}

/// Every status file of a running domain in `dir`, with its text (for the configuration that
/// `advice` reads from the same file).
pub fn status_files(dir: &Path) -> Vec<(Domain, String)> {
    xml_entries(dir)
        .filter_map(|(path, _)| {
            let text = read_status_file(&path).ok()?;
            Some((parse_status(&text)?, text))
        })
        .collect()
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
        for (path, meta) in xml_entries(dir) {
            let stamp = (meta.modified().ok(), meta.len());
            let domain = match self.files.remove(&path) {
                Some((m, l, d)) if (m, l) == stamp => d,
                _ => read_status_file(&path).ok().and_then(|x| parse_status(&x)),
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
