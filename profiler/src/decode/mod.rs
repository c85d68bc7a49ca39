//! Exit-reason names: parsed from the running kernel's kvm_exit print format, with built-in
//! VMX/SVM tables as the fallback (replays on other machines, old kernels).
//! STUB: interface only; the decode helper replaces this file's body.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitNames {}

impl ExitNames {
    /// Built-in VMX, SVM and KVM_EXIT_* tables.
    pub fn builtin() -> Self {
        ExitNames {}
    }

    /// Display name of a reason code. Unknown codes come out as numbers, never "UNKNOWN".
    pub fn name(&self, isa: u32, reason: u32) -> String {
        format!("{isa}:{reason:#x}")
    }

    /// HLT (VMX 12, SVM 0x78, KVM_EXIT_HLT): its time is mostly idle, so it is kept apart.
    pub fn is_hlt(&self, isa: u32, reason: u32) -> bool {
        matches!((isa, reason), (1, 12) | (2, 0x78) | (0x100, 5))
    }
}
