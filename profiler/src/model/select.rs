//! `--vm`: one way to name a VM everywhere (report, diff, advise, check, record). A selector
//! matches a VM by its name, its uuid (any case) or its pid (`1234` or `pid 1234`); one that
//! matches several VMs is an error wherever one VM is wanted, never a silent pick.

use std::fmt;

use crate::text::printable;

use super::{View, VmView};

/// What the user typed after `--vm`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmSelector(String);

/// Why a selector picked no VM, or more than one.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    #[error("no VM `{wanted}` in this session (VMs: {known}): name one by name, uuid or pid")]
    None { wanted: String, known: String },
    #[error("`{wanted}` names {n} VMs ({which}): pick one by pid", n = .which.split(", ").count())]
    Ambiguous { wanted: String, which: String },
}

impl VmSelector {
    /// clap value parser: anything but an empty string.
    pub fn parse(s: &str) -> Result<VmSelector, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("an empty VM name: give a name, uuid or pid".into());
        }
        Ok(VmSelector(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the VM with this pid, name and uuid is the one named.
    pub fn matches(&self, pid: u32, name: &str, uuid: Option<&str>) -> bool {
        let w = self.0.as_str();
        let as_pid = w
            .strip_prefix("pid")
            .unwrap_or(w)
            .trim()
            .parse::<u32>()
            .ok();
        name == w || uuid.is_some_and(|u| u.eq_ignore_ascii_case(w)) || as_pid == Some(pid)
    }

    fn hits<'a>(&self, view: &'a View) -> Vec<&'a VmView> {
        view.vms
            .iter()
            .filter(|v| self.matches(v.pid, &v.name, v.uuid.as_deref()))
            .collect()
    }

    /// The one VM of `view` named.
    pub fn find<'a>(&self, view: &'a View) -> Result<&'a VmView, SelectError> {
        match self.hits(view).as_slice() {
            [one] => Ok(one),
            [] => Err(SelectError::None {
                wanted: printable(&self.0).into_owned(),
                known: list(view.vms.iter()),
            }),
            many => Err(SelectError::Ambiguous {
                wanted: printable(&self.0).into_owned(),
                which: list(many.iter().copied()),
            }),
        }
    }

    /// `view` with only the VM named.
    pub fn narrow(&self, mut view: View) -> Result<View, SelectError> {
        let pid = self.find(&view)?.pid;
        view.vms.retain(|v| v.pid == pid);
        Ok(view)
    }
}

/// For tests: a selector from a literal.
#[cfg(test)]
impl From<&str> for VmSelector {
    fn from(s: &str) -> Self {
        VmSelector(s.to_string())
    }
}

impl fmt::Display for VmSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&printable(&self.0))
    }
}

fn list<'a>(vms: impl Iterator<Item = &'a VmView>) -> String {
    let all: Vec<String> = vms
        .map(|v| format!("{} (pid {})", printable(&v.name), v.pid))
        .collect();
    if all.is_empty() {
        "none".into()
    } else {
        all.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(vms: &[(u32, &str, Option<&str>)]) -> View {
        View {
            vms: vms
                .iter()
                .map(|&(pid, name, uuid)| VmView {
                    pid,
                    name: name.into(),
                    uuid: uuid.map(String::from),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    fn sel(s: &str) -> VmSelector {
        VmSelector::parse(s).expect("selector")
    }

    #[test]
    fn by_name_uuid_or_pid() {
        let v = view(&[
            (10, "win11", Some("8C3A5E2B-0000-4000-8000-000000000001")),
            (20, "linux", None),
        ]);
        for s in [
            "win11",
            "10",
            "pid 10",
            "8c3a5e2b-0000-4000-8000-000000000001",
        ] {
            assert_eq!(sel(s).find(&v).map(|v| v.pid), Ok(10), "{s}");
        }
        let e = sel("mac").find(&v).unwrap_err().to_string();
        assert!(e.contains("win11 (pid 10), linux (pid 20)"), "{e}");
        assert!(VmSelector::parse("  ").is_err());
    }

    /// One rule: a selector naming two VMs (a duplicated -name, or a name that is another
    /// VM's pid) is refused with the candidates, never resolved by a silent pick.
    #[test]
    fn ambiguity_is_an_error() {
        let dup = view(&[(10, "win", None), (11, "win", None)]);
        let e = sel("win").find(&dup).unwrap_err();
        assert!(matches!(e, SelectError::Ambiguous { .. }), "{e}");
        assert!(e.to_string().contains("names 2 VMs"), "{e}");
        assert_eq!(sel("11").find(&dup).map(|v| v.pid), Ok(11));
        let clash = view(&[(10, "20", None), (20, "db", None)]);
        assert!(matches!(
            sel("20").find(&clash),
            Err(SelectError::Ambiguous { .. })
        ));
    }

    #[test]
    fn names_are_escaped_in_errors() {
        let v = view(&[(10, "evil\x1b[2J", None)]);
        let e = sel("x\x07").find(&v).unwrap_err().to_string();
        assert!(!e.contains('\x1b') && !e.contains('\x07'), "{e:?}");
    }
}
