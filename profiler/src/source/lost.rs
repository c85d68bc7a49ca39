//! What kvmprof cannot show when the running kernel lacks one of its optional tracepoints (or
//! has it with fields it does not know): said once, when the probe attaches, by every command.

use crate::advice::evidence::{kind_event, kind_lost, ALL_KINDS};

/// The notice for one entry of `Probe::missing` (`kvm:kvm_msr`, or
/// `kvm:kvm_msr (fields changed on this kernel)`): the tracepoint, then what is lost.
pub fn notice(missing: &str) -> String {
    let (tracepoint, note) = missing.split_once(' ').unwrap_or((missing, ""));
    let state = if note.contains("fields") {
        "has fields kvmprof does not know on this kernel"
    } else {
        "is absent on this kernel"
    };
    let event = tracepoint.rsplit(':').next().unwrap_or(tracepoint);
    format!("tracepoint {tracepoint} {state}: {}", lost(event))
}

fn lost(event: &str) -> String {
    match event {
        "kvm_userspace_exit" => {
            "no returns to the VMM (their KVM_EXIT_* reasons, counts and time in the VMM)".into()
        }
        "sys_enter_ioctl" => "returns to the VMM are counted but not timed (the next KVM_RUN is \
                              not seen: no time in the VMM)"
            .into(),
        _ => {
            let mut lost: Vec<&str> = ALL_KINDS
                .into_iter()
                .filter(|&k| kind_event(k) == event)
                .map(kind_lost)
                .collect();
            lost.dedup();
            if lost.is_empty() {
                return "kvmprof does not use it".into();
            }
            format!(
                "`kvmprof advise` has no {}; the findings that need it are marked 'unconfirmed' \
                 or skipped",
                lost.join("; ")
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_tracepoint_and_what_is_lost() {
        assert_eq!(
            notice("kvm:kvm_hv_hypercall"),
            "tracepoint kvm:kvm_hv_hypercall is absent on this kernel: `kvmprof advise` has no \
             hypercall codes: R13, R16, R17, R18; the findings that need it are marked \
             'unconfirmed' or skipped"
        );
        let n = notice("kvm:kvm_msr (fields changed on this kernel)");
        assert!(
            n.starts_with("tracepoint kvm:kvm_msr has fields kvmprof does not know on this kernel: `kvmprof advise` has no MSR indexes"),
            "{n}"
        );
        assert!(notice("kvm:kvm_userspace_exit").contains("no returns to the VMM"));
        assert!(notice("syscalls:sys_enter_ioctl").contains("not timed"));
    }

    #[test]
    fn every_optional_tracepoint_says_what_it_feeds() {
        let optional = profiler_common::ev::PROGRAMS
            .iter()
            .map(|(_, event)| format!("kvm:{event}"))
            .chain([
                "kvm:kvm_userspace_exit".into(),
                "syscalls:sys_enter_ioctl".into(),
            ]);
        for m in optional {
            let n = notice(&m);
            assert!(
                n.starts_with(&format!("tracepoint {m} is absent on this kernel: ")),
                "{n}"
            );
            assert!(
                !n.contains("does not use it") && !n.contains("exit details"),
                "{n}"
            );
        }
    }
}
