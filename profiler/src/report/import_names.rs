//! Exit names of imported tables → codes: the ISA most names belong to, the built-in names in
//! a hashed index, and synthetic codes for names no table knows (perf's `UNKNOWN`).

use std::collections::HashMap;

use profiler_common::{ISA_SVM, ISA_VMX};

use super::{
    perf_lex::quote,
    perf_rows::{ImportError, PerfRow},
};
use crate::decode::ExitNames;

const VMX_FAILED_VMENTRY: u32 = 0x8000_0000;
const SYNTH_VMX: u32 = 0xff00;
const SYNTH_SVM: u32 = 0xfffe_0000;
const SYNTH_MAX: usize = 0x100;

/// VMX when more names are VMX names (ties: upper case wins), else SVM.
pub(crate) fn detect_isa(rows: &[PerfRow], names: &Names) -> u32 {
    let hits = |isa: u32| {
        rows.iter()
            .filter(|r| names.code(isa, base(&r.name).0).is_some())
            .count()
    };
    let (vmx, svm) = (hits(ISA_VMX), hits(ISA_SVM));
    if vmx != svm {
        return if vmx > svm { ISA_VMX } else { ISA_SVM };
    }
    let upper = rows
        .iter()
        .filter(|r| !r.name.chars().any(|c| c.is_ascii_lowercase()))
        .count();
    if upper * 2 >= rows.len() {
        ISA_VMX
    } else {
        ISA_SVM
    }
}

/// A VMX name without kvmprof's " FAILED_VMENTRY" suffix, and that flag.
fn base(name: &str) -> (&str, u32) {
    match name.strip_suffix(" FAILED_VMENTRY") {
        Some(b) => (b, VMX_FAILED_VMENTRY),
        None => (name, 0),
    }
}

/// The exit names, with a hashed name → code index (`ExitNames::code` scans its tables, which
/// would make an import quadratic in the names it adds).
pub(crate) struct Names {
    pub(crate) names: ExitNames,
    /// name → code, VMX and SVM.
    codes: [HashMap<String, u32>; 2],
    synthetic: usize,
}

fn slot(isa: u32) -> Option<usize> {
    match isa {
        ISA_VMX => Some(0),
        ISA_SVM => Some(1),
        _ => None,
    }
}

impl Names {
    pub(crate) fn new() -> Self {
        let mut names = ExitNames::builtin();
        names.source = "perf text".into();
        let mut codes: [HashMap<String, u32>; 2] = Default::default();
        for (i, map) in [&names.vmx, &names.svm].into_iter().enumerate() {
            // Ascending codes: the lowest code of a name wins, as in `ExitNames::code`.
            for (code, name) in map {
                codes[i].entry(name.clone()).or_insert(*code);
            }
        }
        Names {
            names,
            codes,
            synthetic: 0,
        }
    }

    fn code(&self, isa: u32, name: &str) -> Option<u32> {
        self.codes[slot(isa)?].get(name).copied()
    }

    /// The code of `name`; a name no table knows gets the next synthetic code. `nth`: how many
    /// rows of the same table had this name before (perf names every unknown reason
    /// `UNKNOWN`: the second such row of a table is another reason, with a code of its own).
    pub(crate) fn resolve(
        &mut self,
        isa: u32,
        name: &str,
        nth: usize,
        line: usize,
    ) -> Result<u32, ImportError> {
        let (b, flag) = if isa == ISA_VMX {
            base(name)
        } else {
            (name, 0)
        };
        if nth == 0 {
            if let Some(c) = self.code(isa, b) {
                return Ok(c | flag);
            }
            if let Some(c) = b
                .strip_prefix("0x")
                .and_then(|h| u32::from_str_radix(h, 16).ok())
            {
                return Ok(c | flag);
            }
        }
        let key = match nth {
            0 => name.to_string(),
            k => format!("{name}\u{0}{k}"),
        };
        if let Some(c) = self.code(isa, &key) {
            return Ok(c);
        }
        // VMX codes above 0xffff would read as flag bits, so there are SYNTH_MAX of them.
        if self.synthetic == SYNTH_MAX {
            return Err(ImportError::At {
                file: String::new(),
                line,
                msg: format!(
                    "{} is the {}th exit reason name that no kernel table knows; kvmprof holds {SYNTH_MAX}, \
                     and perf prints UNKNOWN for all unknown reasons; fix: check that this is perf kvm stat output",
                    quote(name),
                    SYNTH_MAX + 1
                ),
            });
        }
        let next = self.synthetic as u32;
        self.synthetic += 1;
        let (code, map) = if isa == ISA_VMX {
            (SYNTH_VMX + next, &mut self.names.vmx)
        } else {
            (SYNTH_SVM + next, &mut self.names.svm)
        };
        map.insert(code, name.to_string());
        if let Some(i) = slot(isa) {
            self.codes[i].insert(key, code);
        }
        Ok(code)
    }
}
