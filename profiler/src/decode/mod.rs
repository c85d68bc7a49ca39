//! Exit-reason names: parsed from the running kernel's kvm_exit / kvm_userspace_exit print
//! formats, with built-in VMX/SVM/KVM_EXIT_* tables as the fallback (replays on other
//! machines, old kernels). Also the tracefs format parser the loader reads offsets with.

pub mod format;
pub mod symbolic;
pub mod tables;

use std::collections::BTreeMap;
use std::path::Path;

use profiler_common::{ISA_SVM, ISA_USERSPACE, ISA_VMX, UEXIT_ERROR, UEXIT_RESTART};
use serde::{Deserialize, Serialize};

pub use format::{read_event, Field, Format, FormatError};

/// VMX exit_reason bit 31: the VM entry itself failed.
const VMX_FAILED_VMENTRY: u32 = 0x8000_0000;

/// Short label of an `isa` value.
pub fn isa_name(isa: u32) -> &'static str {
    match isa {
        ISA_VMX => "vmx",
        ISA_SVM => "svm",
        ISA_USERSPACE => "user",
        _ => "isa?",
    }
}

/// Exit-reason name tables, per isa. Stored in recordings so a replay shows the names of the
/// kernel that recorded it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ExitNames {
    /// VMX basic exit reason (`exit_reason & 0xffff`) → name.
    pub vmx: BTreeMap<u32, String>,
    /// SVM exit code → name.
    pub svm: BTreeMap<u32, String>,
    /// KVM_EXIT_* code → name.
    pub user: BTreeMap<u32, String>,
    /// Where the names came from: "kernel <release>" or "built-in".
    pub source: String,
}

fn to_map(t: &[(u32, &str)]) -> BTreeMap<u32, String> {
    t.iter().map(|&(c, n)| (c, n.to_string())).collect()
}

impl ExitNames {
    /// Built-in VMX, SVM and KVM_EXIT_* tables.
    pub fn builtin() -> Self {
        ExitNames {
            vmx: to_map(tables::VMX),
            svm: to_map(tables::SVM),
            user: to_map(tables::USERSPACE),
            source: "built-in".into(),
        }
    }

    /// Names from the kvm_exit and kvm_userspace_exit format files (whole file or just the
    /// print fmt): the kernel's names override built-in ones, built-in ones fill the gaps.
    pub fn from_formats(kvm_exit_fmt: Option<&str>, kvm_userspace_exit_fmt: Option<&str>) -> Self {
        Self::from_formats_warn(kvm_exit_fmt, kvm_userspace_exit_fmt).0
    }

    /// Like [`ExitNames::from_formats`], plus one warning per table that fell back.
    pub fn from_formats_warn(
        kvm_exit_fmt: Option<&str>,
        kvm_userspace_exit_fmt: Option<&str>,
    ) -> (Self, Vec<String>) {
        let mut names = Self::builtin();
        let mut warnings = Vec::new();
        let mut from_kernel = false;
        if let Some(fmt) = kvm_exit_fmt {
            let (mut vmx, mut svm) = (None, None);
            for t in symbolic::tables(fmt)
                .into_iter()
                .filter(|t| t.expr.contains("exit_reason") && !t.entries.is_empty())
            {
                let slot = if is_vmx_table(&t) { &mut vmx } else { &mut svm };
                // The first table of each kind wins; kernels print exactly one of each.
                slot.get_or_insert(t);
            }
            for (isa, table, map) in [("VMX", vmx, &mut names.vmx), ("SVM", svm, &mut names.svm)] {
                from_kernel |= merge("kvm_exit", isa, table, map, &mut warnings);
            }
        }
        if let Some(fmt) = kvm_userspace_exit_fmt {
            let table = symbolic::tables(fmt)
                .into_iter()
                .find(|t| t.expr.contains("reason") && !t.entries.is_empty());
            from_kernel |= merge(
                "kvm_userspace_exit",
                "KVM_EXIT",
                table,
                &mut names.user,
                &mut warnings,
            );
        }
        if from_kernel {
            names.source = "kernel".into();
        }
        (names, warnings)
    }

    /// Reads the running kernel's formats under `tracefs_root` (e.g. /sys/kernel/tracing).
    /// Never fails: whatever cannot be read falls back to built-in names, with a warning.
    pub fn load(tracefs_root: &Path) -> (ExitNames, Vec<String>) {
        let mut warnings = Vec::new();
        let mut print_fmt = |event| match read_event(tracefs_root, "kvm", event) {
            Ok(f) => Some(f.print_fmt),
            Err(e) => {
                warnings.push(format!("{e}; using built-in exit names"));
                None
            }
        };
        let exit = print_fmt("kvm_exit");
        let uexit = print_fmt("kvm_userspace_exit");
        let (mut names, more) = Self::from_formats_warn(exit.as_deref(), uexit.as_deref());
        warnings.extend(more);
        if names.source == "kernel" {
            if let Ok(release) = std::fs::read_to_string("/proc/sys/kernel/osrelease") {
                names.source = format!("kernel {}", release.trim());
            }
        }
        (names, warnings)
    }

    /// Display name of a reason code. Unknown codes come out as numbers, never "UNKNOWN", so
    /// each code keeps its own row.
    pub fn name(&self, isa: u32, reason: u32) -> String {
        match isa {
            ISA_VMX => {
                let basic = reason & 0xffff;
                let mut name = lookup(&self.vmx, tables::VMX, basic)
                    .map_or_else(|| format!("{basic:#x}"), str::to_string);
                if reason & VMX_FAILED_VMENTRY != 0 {
                    name.push_str(" FAILED_VMENTRY");
                }
                // Other flag bits (enclave, pending MTF, from VMX root) are shown raw.
                let other = reason & !0xffff & !VMX_FAILED_VMENTRY;
                if other != 0 {
                    name.push_str(&format!(" {other:#x}"));
                }
                name
            }
            ISA_SVM => lookup(&self.svm, tables::SVM, reason)
                .map_or_else(|| format!("{reason:#x}"), str::to_string),
            ISA_USERSPACE => match reason {
                UEXIT_RESTART => "restart".into(),
                UEXIT_ERROR => "error".into(),
                _ => lookup(&self.user, tables::USERSPACE, reason)
                    .map_or_else(|| format!("{reason:#x}"), str::to_string),
            },
            _ => format!("{reason:#x}"),
        }
    }

    /// Reverse of [`ExitNames::name`] for plain table names (e.g. thresholds given by name).
    pub fn code(&self, isa: u32, name: &str) -> Option<u32> {
        let (map, builtin) = match isa {
            ISA_VMX => (&self.vmx, tables::VMX),
            ISA_SVM => (&self.svm, tables::SVM),
            ISA_USERSPACE => (&self.user, tables::USERSPACE),
            _ => return None,
        };
        map.iter()
            .find(|(_, n)| n.as_str() == name)
            .map(|(c, _)| *c)
            .or_else(|| builtin.iter().find(|(_, n)| *n == name).map(|(c, _)| *c))
    }

    /// HLT (VMX 12, SVM 0x78 hlt / 0xa6 idle-halt, KVM_EXIT_HLT): its time is mostly idle, so
    /// it is kept apart.
    pub fn is_hlt(&self, isa: u32, reason: u32) -> bool {
        match isa {
            ISA_VMX => reason & (0xffff | VMX_FAILED_VMENTRY) == 12,
            ISA_SVM => matches!(reason, 0x78 | 0xa6),
            ISA_USERSPACE => reason == 5,
            _ => false,
        }
    }
}

/// A table deserialized from an older recording may be empty: fall back to the built-ins.
fn lookup<'a>(
    map: &'a BTreeMap<u32, String>,
    builtin: &'static [(u32, &'static str)],
    code: u32,
) -> Option<&'a str> {
    map.get(&code)
        .map(String::as_str)
        .or_else(|| tables::lookup(builtin, code))
}

/// VMX names are upper-case (`EXCEPTION_NMI`), SVM ones lower-case (`read_cr0`); the VMX table
/// of current kernels also masks `& 0xffff`. Scoring against the built-ins decides the rest.
fn is_vmx_table(t: &symbolic::Symbolic) -> bool {
    if t.expr.contains("0xffff") {
        return true;
    }
    let hits = |builtin: &[(u32, &str)]| {
        t.entries
            .iter()
            .filter(|(c, n)| tables::lookup(builtin, *c) == Some(n.as_str()))
            .count()
    };
    let (vmx, svm) = (hits(tables::VMX), hits(tables::SVM));
    if vmx != svm {
        return vmx > svm;
    }
    let upper = t
        .entries
        .iter()
        .filter(|(_, n)| !n.chars().any(|c| c.is_ascii_lowercase()))
        .count();
    upper * 2 > t.entries.len()
}

/// Overrides `map` with a kernel table; returns whether one was found.
fn merge(
    event: &str,
    what: &str,
    table: Option<symbolic::Symbolic>,
    map: &mut BTreeMap<u32, String>,
    warnings: &mut Vec<String>,
) -> bool {
    let Some(t) = table else {
        warnings.push(format!(
            "{event}: no {what} name table in the print format; using built-in names"
        ));
        return false;
    };
    if t.skipped > 0 {
        warnings.push(format!(
            "{event}: {} {what} name entries could not be parsed; built-in names used for those",
            t.skipped
        ));
    }
    map.extend(t.entries);
    true
}

#[cfg(test)]
mod tests;
