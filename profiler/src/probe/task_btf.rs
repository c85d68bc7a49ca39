//! Where `struct task_struct` keeps `pid` and the state word on the running kernel (its BTF),
//! for the raw sched tracepoints, whose arguments are task pointers: raw tracepoints skip
//! building the classic record, and do not share the per-CPU "a BPF program is running" guard
//! that a map syscall preempted on that CPU holds (classic tracepoint programs are skipped
//! while it does).

use btf_rs::{Btf, Type};

/// Byte offsets of `pid` and of `__state` (`state` before 5.14).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskOffsets {
    pub pid: u32,
    pub state: u32,
}

/// From /sys/kernel/btf/vmlinux; None without BTF or when the fields are not found.
pub fn load() -> Option<TaskOffsets> {
    offsets(&Btf::from_file("/sys/kernel/btf/vmlinux").ok()?)
}

pub fn offsets(btf: &Btf) -> Option<TaskOffsets> {
    let task = btf
        .resolve_types_by_name("task_struct")
        .ok()?
        .into_iter()
        .find_map(|t| match t {
            Type::Struct(s) => Some(s),
            _ => None,
        })?;
    let pid = member_bits(btf, &task, "pid", 0)?;
    let state =
        member_bits(btf, &task, "__state", 0).or_else(|| member_bits(btf, &task, "state", 0))?;
    // Whole bytes only: neither is a bitfield.
    (pid % 8 == 0 && state % 8 == 0).then_some(TaskOffsets {
        pid: pid / 8,
        state: state / 8,
    })
}

/// Bit offset of member `name` of `s` at `base`, looking into anonymous structs and unions
/// (randomized or grouped layouts nest members in them).
fn member_bits(btf: &Btf, s: &btf_rs::Struct, name: &str, base: u32) -> Option<u32> {
    for m in &s.members {
        let at = base + m.bit_offset();
        let n = btf.resolve_name(m).unwrap_or_default();
        if n == name {
            return Some(at);
        }
        if n.is_empty() {
            if let Ok(Type::Struct(inner) | Type::Union(inner)) = btf.resolve_chained_type(m) {
                if let Some(x) = member_bits(btf, &inner, name, at) {
                    return Some(x);
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This machine's kernel: the offsets exist and are where the kernel's own pid is. A
    /// check against known layouts would only restate them; reading the running task's pid
    /// through the offset needs a BPF program (tests/tests/sched_split.rs does that).
    #[test]
    fn the_running_kernel_has_both_fields() {
        if !std::path::Path::new("/sys/kernel/btf/vmlinux").exists() {
            eprintln!("no BTF on this kernel");
            return;
        }
        let o = load().expect("task_struct pid and state in this kernel's BTF");
        assert!(o.pid > 0 && o.state < o.pid, "{o:?}");
    }
}
