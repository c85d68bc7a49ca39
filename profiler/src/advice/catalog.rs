//! Every rule, check and fingerprint by id, with a name that says what it is about, its theme,
//! and whether it is Hyper-V advice. The names are the anchors of docs/advice.md (one section a
//! rule, with its sources), which every finding's `source` points into.

/// What a rule is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Theme {
    /// Clocks and timers: HPET, RTC, PM timer, PIT, TSC page, stimer.
    Timers,
    /// Interrupts and the APIC: APICv/AVIC, EOIs, IPIs, SynIC.
    Interrupts,
    /// Spinning, pausing and halting vCPUs.
    Scheduling,
    /// Nested virtualization, a hidden hypervisor, exits outside Hyper-V.
    Other,
    /// Checks of the VM's configuration alone.
    Configuration,
    /// Whole-profile fingerprints.
    Profile,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    pub id: &'static str,
    pub name: &'static str,
    pub theme: Theme,
    /// Advice about Hyper-V enlightenments: given only where Hyper-V is in play.
    pub hyperv: bool,
}

const fn r(id: &'static str, name: &'static str, theme: Theme, hyperv: bool) -> Rule {
    Rule {
        id,
        name,
        theme,
        hyperv,
    }
}

use Theme::*;

pub const RULES: &[Rule] = &[
    r("R01", "hpet-emulated", Timers, true),
    r("R02", "rtc-clock-event", Timers, true),
    r("R03", "pm-timer-clock", Timers, true),
    r("R04", "pit-in-use", Timers, true),
    r("R05", "tsc-page-invalid", Timers, true),
    r("R06", "synthetic-apic-msrs", Interrupts, true),
    r("R07", "autoeoi-inhibits-apicv", Interrupts, true),
    r("R08", "no-posted-interrupts", Interrupts, true),
    r("R09", "host-interrupt-noise", Interrupts, false),
    r("R10", "icr-write-traps", Interrupts, false),
    r("R11", "stimer-message-mode", Interrupts, true),
    r("R12", "software-eoi", Interrupts, true),
    r("R13", "spinlock-notify", Scheduling, true),
    r("R14", "pause-loop-exits", Scheduling, false),
    r("R15", "halt-polling", Scheduling, false),
    r("R16", "ipi-tlb-shootdown", Interrupts, true),
    r("R17", "hypercall-ipi-vs-ipiv", Interrupts, true),
    r("R18", "hypervisor-hidden", Other, true),
    r("R19", "nested-hyperv", Other, true),
    r("R20", "pit-reinject-inhibits-avic", Interrupts, false),
    r("R21", "apicv-inhibited-other", Interrupts, false),
    r("R22", "not-hyperv-related", Other, false),
    r("R23", "guest-timer-choice", Timers, true),
    r("L01", "missing-enlightenments", Configuration, true),
    r("L02", "synic-without-hv-avic", Configuration, true),
    r("L03", "vapic-without-hv-avic", Configuration, true),
    r("L04", "hv-avic-without-apicv", Configuration, true),
    r("L05", "debug-only-options", Configuration, true),
    r("L06", "evmcs-misplaced", Configuration, true),
    r("L07", "coresharing-unpinned", Configuration, true),
    r("L08", "crash-msrs-unconsumed", Configuration, true),
    r("L09", "reenlightenment-no-tsc-scaling", Configuration, true),
    r("L10", "spinlock-retries", Configuration, true),
    r("L11", "kvm-off-not-hidden", Configuration, false),
    r("L12", "hpet-off-no-stimer", Configuration, true),
    r("L13", "pit-delay-on-avic", Configuration, false),
    r("L14", "cpu-pm-overcommit", Configuration, false),
    r("L15", "nested-stimer-not-direct", Configuration, true),
    r("L16", "legacy-windows-autoeoi", Configuration, true),
    r("P1", "profile-no-timer-enlightenments", Profile, true),
    r("P2", "profile-apicv-inhibited", Profile, true),
    r("P3", "profile-synthetic-apic-msrs", Profile, true),
    r("P4", "profile-fixed", Profile, true),
    r("P5", "profile-hypervisor-hidden", Profile, true),
];

pub fn rule(id: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.id == id)
}

/// `docs/advice.md#r07-autoeoi-inhibits-apicv`.
pub fn anchor(id: &str) -> String {
    match rule(id) {
        Some(r) => format!("docs/advice.md#{}-{}", r.id.to_ascii_lowercase(), r.name),
        None => "docs/advice.md".into(),
    }
}

/// A rule's `source` as written (`KB R17 (hypothesis); QEMU docs …`) with its KB reference
/// replaced by the rule's section of docs/advice.md.
pub fn cite(id: &str, source: &str) -> String {
    let Some(rest) = source.strip_prefix("KB ") else {
        return if source.is_empty() {
            anchor(id)
        } else {
            format!("{}; {source}", anchor(id))
        };
    };
    // The KB ids run up to a parenthesis or the next citation.
    let end = rest.find(['(', ';']).unwrap_or(rest.len());
    format!(
        "{}{}{}",
        anchor(id),
        if end < rest.len() && rest[end..].starts_with('(') {
            " "
        } else {
            ""
        },
        &rest[end..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every id has its section in docs/advice.md, and every section its id here.
    #[test]
    fn catalog_and_docs_agree() {
        let doc = include_str!("../../../docs/advice.md");
        for r in RULES {
            let head = format!("### {} {}\n", r.id, r.name);
            assert!(
                doc.contains(&head),
                "docs/advice.md lacks `{}`",
                head.trim()
            );
        }
        let sections = doc
            .lines()
            .filter(|l| {
                l.starts_with("### ") && l.as_bytes().get(4).is_some_and(|c| b"RLP".contains(c))
            })
            .count();
        assert_eq!(sections, RULES.len());
    }

    /// Each rule lives in its theme's file (rules/<theme>.rs), so a reader finds it in one guess.
    #[test]
    fn rules_are_filed_by_theme() {
        let file = |t: Theme| -> &[&str] {
            match t {
                Timers => &[include_str!("rules/timers.rs")],
                Interrupts => &[
                    include_str!("rules/apic.rs"),
                    include_str!("rules/interrupts.rs"),
                ],
                Scheduling => &[include_str!("rules/scheduling.rs")],
                Other => &[include_str!("rules/other.rs")],
                Configuration => &[include_str!("rules/configuration.rs")],
                Profile => &[include_str!("fingerprint.rs")],
            }
        };
        for r in RULES {
            let f = r.id.to_ascii_lowercase();
            let defined = |src: &&str| {
                [format!("fn {f}("), format!("fn {f}_"), format!("_{f}(")]
                    .iter()
                    .any(|p| src.contains(p.as_str()))
            };
            assert!(
                file(r.theme).iter().any(defined),
                "{} ({:?}) is not defined in its theme's file",
                r.id,
                r.theme
            );
        }
    }

    #[test]
    fn sources_point_into_the_docs() {
        assert_eq!(
            cite("R17", "KB R17 (hypothesis); QEMU docs"),
            "docs/advice.md#r17-hypercall-ipi-vs-ipiv (hypothesis); QEMU docs"
        );
        assert_eq!(
            cite("R02", "KB R02, R03; T"),
            "docs/advice.md#r02-rtc-clock-event; T"
        );
        assert_eq!(
            cite("P2", "KB fingerprints; T"),
            "docs/advice.md#p2-profile-apicv-inhibited; T"
        );
        assert_eq!(
            cite("L05", "QEMU"),
            "docs/advice.md#l05-debug-only-options; QEMU"
        );
    }
}
