//! APICv inhibit names from the running kernel's BTF (`enum kvm_apicv_inhibit`), for kernels
//! whose kvm_apicv_inhibit_changed format prints the bits as a bare number (before 6.3, e.g.
//! Debian's 6.1), where the bits differ from the built-in 6.3+ table: 6.1's bit 8 is
//! PIT_REINJ, 6.3+'s IRQWIN.

use std::path::Path;

use btf_rs::{Btf, Type};

const ENUM: &str = "kvm_apicv_inhibit";
const PREFIX: &str = "APICV_INHIBIT_REASON_";

/// From `<dir>/vmlinux` (where 6.1 keeps the enum), else the kvm module's split BTF.
pub fn load(dir: &Path) -> Option<Vec<String>> {
    let base = Btf::from_file(dir.join("vmlinux")).ok()?;
    if let Some(names) = names(&base) {
        return Some(names);
    }
    names(&Btf::from_split_file(dir.join("kvm"), &base).ok()?)
}

/// The enum's names by value (bit number), without the prefix; a gap stays "bit N".
pub fn names(btf: &Btf) -> Option<Vec<String>> {
    let types = btf.resolve_types_by_name(ENUM).ok()?;
    let e = types.iter().find_map(|t| match t {
        Type::Enum(e) => Some(e),
        _ => None,
    })?;
    let mut names: Vec<String> = Vec::new();
    for m in &e.members {
        let bit = m.val() as usize;
        // A bitmask of more bits than an unsigned long holds is not this enum.
        if bit >= 64 {
            return None;
        }
        let name = btf.resolve_name(m).ok()?;
        let name = name.strip_prefix(PREFIX).unwrap_or(&name);
        if names.len() <= bit {
            names.resize_with(bit + 1, String::new);
        }
        // 6.1 spells bit 0 DISABLE; the rules and 6.3+ say DISABLED.
        names[bit] = if name == "DISABLE" { "DISABLED" } else { name }.to_string();
    }
    for (bit, n) in names.iter_mut().enumerate() {
        if n.is_empty() {
            *n = format!("bit {bit}");
        }
    }
    (!names.is_empty()).then_some(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A BTF blob holding one 4-byte enum `name` with `members` (name, value).
    fn btf_with_enum(name: &str, members: &[(&str, u32)]) -> Vec<u8> {
        let mut strings = vec![0u8];
        let mut add = |s: &str| {
            let off = strings.len() as u32;
            strings.extend_from_slice(s.as_bytes());
            strings.push(0);
            off
        };
        let name_off = add(name);
        let offs: Vec<u32> = members.iter().map(|(n, _)| add(n)).collect();
        let mut types = Vec::new();
        for v in [name_off, (6 << 24) | members.len() as u32, 4] {
            types.extend_from_slice(&v.to_le_bytes());
        }
        for (off, (_, val)) in offs.iter().zip(members) {
            types.extend_from_slice(&off.to_le_bytes());
            types.extend_from_slice(&val.to_le_bytes());
        }
        let mut b = Vec::new();
        b.extend_from_slice(&0xeb9f_u16.to_le_bytes());
        b.extend_from_slice(&[1, 0]);
        for v in [
            24,
            0,
            types.len() as u32,
            types.len() as u32,
            strings.len() as u32,
        ] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(&types);
        b.extend_from_slice(&strings);
        b
    }

    /// Debian 6.1.0-57's enum (its vmlinux BTF), whose format names no bits.
    const LINUX_6_1: [&str; 10] = [
        "DISABLE",
        "HYPERV",
        "ABSENT",
        "BLOCKIRQ",
        "APIC_ID_MODIFIED",
        "APIC_BASE_MODIFIED",
        "NESTED",
        "IRQWIN",
        "PIT_REINJ",
        "SEV",
    ];

    #[test]
    fn names_of_linux_6_1_not_the_6_3_table() {
        let members: Vec<(String, u32)> = LINUX_6_1
            .iter()
            .enumerate()
            .map(|(i, n)| (format!("{PREFIX}{n}"), i as u32))
            .collect();
        let refs: Vec<(&str, u32)> = members.iter().map(|(n, v)| (n.as_str(), *v)).collect();
        let btf = Btf::from_bytes(&btf_with_enum(ENUM, &refs)).unwrap();
        let got = names(&btf).unwrap();
        assert_eq!(got[0], "DISABLED");
        assert_eq!(got[8], "PIT_REINJ");
        assert_eq!(got.iter().position(|n| n == "NESTED"), Some(6));
        assert_eq!(got.len(), LINUX_6_1.len());
    }

    #[test]
    fn other_enums_and_gaps() {
        let btf = Btf::from_bytes(&btf_with_enum("other", &[("A", 0)])).unwrap();
        assert_eq!(names(&btf), None);
        let gap = [(format!("{PREFIX}HYPERV"), 1)];
        let refs: Vec<(&str, u32)> = gap.iter().map(|(n, v)| (n.as_str(), *v)).collect();
        let btf = Btf::from_bytes(&btf_with_enum(ENUM, &refs)).unwrap();
        assert_eq!(names(&btf).unwrap(), ["bit 0", "HYPERV"]);
        assert_eq!(load(Path::new("/nonexistent")), None);
    }
}
