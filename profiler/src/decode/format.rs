//! Parser for tracefs event format files (`events/<system>/<event>/format`).
//!
//! Field offsets differ between kernels (kvm_exit grew fields in 5.7 and 6.x), so the loader
//! reads them from the running kernel instead of hard-coding them.

use std::path::{Path, PathBuf};

use thiserror::Error;

/// One tracepoint's layout and print format.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Format {
    pub name: String,
    pub id: u32,
    /// Common fields first, then the event's own, in file order.
    pub fields: Vec<Field>,
    /// Everything after `print fmt: `, verbatim.
    pub print_fmt: String,
}

/// One `field:` line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    /// C type with any array suffix moved here: `char comm[16]` → `char[16]`;
    /// `__data_loc char[] name` → `__data_loc char[]`.
    pub ty: String,
    pub offset: u32,
    pub size: u32,
    pub signed: bool,
}

impl Field {
    /// `__data_loc` fields hold (len << 16 | offset) of dynamic data, not the data itself.
    pub fn is_data_loc(&self) -> bool {
        self.ty.starts_with("__data_loc")
    }
}

#[derive(Debug, Error)]
pub enum FormatError {
    #[error("cannot read tracepoint format {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("tracepoint format: missing `{0}` line")]
    Missing(&'static str),
    #[error("tracepoint format line {line}: {why}: `{text}`")]
    Malformed {
        line: usize,
        why: String,
        text: String,
    },
    #[error("tracepoint {event} has no field `{field}` (kernel too old or too new?)")]
    NoField { event: String, field: String },
}

impl Format {
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// Like [`Format::field`], but an error naming the event when the field is absent.
    pub fn require(&self, name: &str) -> Result<&Field, FormatError> {
        self.field(name).ok_or_else(|| FormatError::NoField {
            event: self.name.clone(),
            field: name.to_string(),
        })
    }
}

/// Reads and parses `<tracefs_root>/events/<system>/<event>/format`.
pub fn read_event(tracefs_root: &Path, system: &str, event: &str) -> Result<Format, FormatError> {
    let path = tracefs_root
        .join("events")
        .join(system)
        .join(event)
        .join("format");
    let text = std::fs::read_to_string(&path).map_err(|source| FormatError::Read {
        path: path.clone(),
        source,
    })?;
    parse(&text)
}

pub fn parse(text: &str) -> Result<Format, FormatError> {
    let mut name = None;
    let mut id = None;
    let mut fields = Vec::new();
    let mut print_fmt = None;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let bad = |why: String| FormatError::Malformed {
            line: i + 1,
            why,
            text: line.to_string(),
        };
        if let Some(v) = line.strip_prefix("name:") {
            name = Some(v.trim().to_string());
        } else if let Some(v) = line.strip_prefix("ID:") {
            let v = v.trim();
            id = Some(
                v.parse::<u32>()
                    .map_err(|_| bad(format!("ID `{v}` is not a number")))?,
            );
        } else if let Some(v) = line.strip_prefix("print fmt:") {
            print_fmt = Some(v.trim().to_string());
        } else if line.starts_with("field:") || line.starts_with("field ") {
            fields.push(parse_field(line).map_err(bad)?);
        }
        // "format:" and blank lines carry nothing.
    }
    Ok(Format {
        name: name.ok_or(FormatError::Missing("name:"))?,
        id: id.ok_or(FormatError::Missing("ID:"))?,
        fields,
        // Some synthetic events have no print fmt; names then fall back to built-ins.
        print_fmt: print_fmt.unwrap_or_default(),
    })
}

/// `field:unsigned int exit_reason;\toffset:8;\tsize:4;\tsigned:0;`
fn parse_field(line: &str) -> Result<Field, String> {
    let mut decl = None;
    let (mut offset, mut size, mut signed) = (None, None, false);
    for part in line.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((key, val)) = part.split_once(':') else {
            return Err(format!("`{part}` is not `key:value`"));
        };
        let num = |what: &str| {
            val.trim()
                .parse::<u32>()
                .map_err(|_| format!("{what} `{}` is not a number", val.trim()))
        };
        match key.trim() {
            // Old kernels wrote `field special:` for a few fields.
            "field" | "field special" => decl = Some(val.trim()),
            "offset" => offset = Some(num("offset")?),
            "size" => size = Some(num("size")?),
            "signed" => signed = num("signed")? != 0,
            _ => {} // Unknown attributes from future kernels are harmless.
        }
    }
    let decl = decl.ok_or("no field declaration")?;
    let (ty, name) =
        split_decl(decl).ok_or_else(|| format!("cannot split `{decl}` into type and name"))?;
    Ok(Field {
        name,
        ty,
        offset: offset.ok_or("no offset")?,
        size: size.ok_or("no size")?,
        signed,
    })
}

/// `unsigned int exit_reason` → ("unsigned int", "exit_reason"); `char comm[16]` →
/// ("char[16]", "comm"); `const char * msg` → ("const char *", "msg").
fn split_decl(decl: &str) -> Option<(String, String)> {
    let (base, array) = match decl.find('[') {
        // `__data_loc char[] name`: the brackets belong to the type, the name follows them.
        Some(open) if decl[open..].trim_end().ends_with(']') => {
            (decl[..open].trim_end(), decl[open..].trim())
        }
        _ => (decl, ""),
    };
    let split = base.rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))?;
    let (ty, name) = (base[..=split].trim(), base[split + 1..].trim());
    if name.is_empty() || ty.is_empty() {
        return None;
    }
    Some((format!("{ty}{array}"), name.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXIT: &str = include_str!("fixtures/kvm_exit-6.18.format");
    const ENTRY: &str = include_str!("fixtures/kvm_entry-6.18.format");
    const UEXIT: &str = include_str!("fixtures/kvm_userspace_exit-6.18.format");
    const EXIT_510: &str = include_str!("fixtures/kvm_exit-5.10.format");

    fn off(f: &Format, name: &str) -> (u32, u32) {
        let f = f.require(name).unwrap();
        (f.offset, f.size)
    }

    #[test]
    fn host_kvm_exit_offsets() {
        let f = parse(EXIT).unwrap();
        assert_eq!((f.name.as_str(), f.id), ("kvm_exit", 103));
        assert_eq!(off(&f, "exit_reason"), (8, 4));
        assert_eq!(off(&f, "isa"), (24, 4));
        assert_eq!(off(&f, "vcpu_id"), (56, 4));
        assert_eq!(f.field("guest_rip").unwrap().ty, "unsigned long");
        let pid = f.field("common_pid").unwrap();
        assert!(pid.signed && pid.ty == "int");
        assert!(f.print_fmt.starts_with("\"vcpu %u reason"));
    }

    #[test]
    fn host_kvm_entry_and_userspace_exit_offsets() {
        let f = parse(ENTRY).unwrap();
        assert_eq!(off(&f, "vcpu_id"), (8, 4));
        let f = parse(UEXIT).unwrap();
        assert_eq!(off(&f, "reason"), (8, 4));
        assert_eq!(off(&f, "errno"), (12, 4));
        assert!(f.field("errno").unwrap().signed);
    }

    #[test]
    fn older_kernel_layout() {
        let f = parse(EXIT_510).unwrap();
        assert_eq!(off(&f, "exit_reason"), (8, 4));
        assert_eq!(off(&f, "isa"), (24, 4));
        assert_eq!(off(&f, "vcpu_id"), (48, 4));
        assert!(f.field("requests").is_none());
    }

    #[test]
    fn arrays_and_data_loc() {
        let text =
            "name: x\nID: 7\nformat:\n\tfield:char comm[16];\toffset:8;\tsize:16;\tsigned:1;\n\
                    \tfield:__data_loc char[] msg;\toffset:24;\tsize:4;\tsigned:0;\n\
                    \tfield:const char * p;\toffset:32;\tsize:8;\tsigned:0;\n";
        let f = parse(text).unwrap();
        let comm = f.field("comm").unwrap();
        assert_eq!(
            (comm.ty.as_str(), comm.offset, comm.size),
            ("char[16]", 8, 16)
        );
        let msg = f.field("msg").unwrap();
        assert_eq!(msg.ty, "__data_loc char[]");
        assert!(msg.is_data_loc() && !comm.is_data_loc());
        assert_eq!(f.field("p").unwrap().ty, "const char *");
        assert_eq!(f.print_fmt, "");
    }

    #[test]
    fn malformed_is_a_clear_error() {
        let text =
            "name: kvm_exit\nID: 1\nformat:\n\tfield:u32 isa;\toffset:eight;\tsize:4;\tsigned:0;\n";
        let e = parse(text).unwrap_err().to_string();
        assert!(
            e.contains("line 4") && e.contains("offset `eight` is not a number"),
            "{e}"
        );
        let e = parse("ID: 3\n").unwrap_err().to_string();
        assert_eq!(e, "tracepoint format: missing `name:` line");
        let e = parse("name: a\nID: 3\n\tfield:u32;\toffset:8;\tsize:4;\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot split `u32`"), "{e}");
        let e = parse(EXIT)
            .unwrap()
            .require("nope")
            .unwrap_err()
            .to_string();
        assert!(e.contains("kvm_exit has no field `nope`"), "{e}");
    }

    #[test]
    fn read_event_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let e = read_event(dir.path(), "kvm", "kvm_exit")
            .unwrap_err()
            .to_string();
        assert!(e.contains("events/kvm/kvm_exit/format"), "{e}");
        let ev = dir.path().join("events/kvm/kvm_entry");
        std::fs::create_dir_all(&ev).unwrap();
        std::fs::write(ev.join("format"), ENTRY).unwrap();
        assert_eq!(read_event(dir.path(), "kvm", "kvm_entry").unwrap().id, 115);
    }
}
