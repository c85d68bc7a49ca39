//! The embedded eBPF objects: the release one holds only the programs users run; the test
//! object (`ebpf-test` feature, never in a release build) adds the BPF_PROG_TEST_RUN entry,
//! the empty baselines and a deliberately rejected program (profiler-ebpf/src/test_programs.rs).

use super::{ProbeError, Programs};

#[cfg(feature = "ebpf")]
static RELEASE: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/profiler"));
#[cfg(not(feature = "ebpf"))]
static RELEASE: &[u8] = &[];
#[cfg(feature = "ebpf-test")]
static TEST: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/profiler-test"));
#[cfg(not(feature = "ebpf-test"))]
static TEST: &[u8] = &[];

/// Whether this build embeds the eBPF object (`--features ebpf`).
pub const HAS_OBJECT: bool = cfg!(feature = "ebpf");
/// Whether this build embeds the test object too (`--features ebpf-test`).
pub const HAS_TEST_OBJECT: bool = cfg!(feature = "ebpf-test");

/// The object that holds `programs`, or why this build has none.
pub(super) fn for_programs(programs: Programs) -> Result<&'static [u8], ProbeError> {
    match programs {
        Programs::Live if RELEASE.is_empty() => Err(ProbeError::NoObject),
        Programs::Live => Ok(RELEASE),
        Programs::TestRun | Programs::TestRunSched | Programs::EmptyBaseline if TEST.is_empty() => {
            Err(ProbeError::NoTestObject)
        }
        Programs::TestRun | Programs::TestRunSched | Programs::EmptyBaseline => Ok(TEST),
    }
}

#[cfg(all(test, feature = "ebpf"))]
mod tests {
    use profiler_common::ev;

    use super::super::{SCHED_TRACEPOINTS, TRACEPOINTS};

    fn program_names(object: &[u8]) -> Vec<String> {
        let obj = aya_obj::Object::parse(object).expect("the embedded object parses");
        let mut names: Vec<String> = obj.programs.keys().cloned().collect();
        names.sort();
        names
    }

    /// What `Probe::load` attaches with `Programs::Live`, and the program it runs at load.
    fn live_programs() -> Vec<String> {
        let mut names: Vec<String> = TRACEPOINTS
            .iter()
            .map(|t| t.0)
            .chain(SCHED_TRACEPOINTS.iter().map(|t| t.0))
            .chain(ev::PROGRAMS.iter().map(|p| p.0))
            .chain([super::super::fill::PROGRAM])
            .map(String::from)
            .collect();
        names.sort();
        names
    }

    #[test]
    fn release_object_holds_only_the_programs_users_run() {
        assert_eq!(program_names(super::RELEASE), live_programs());
    }

    #[cfg(feature = "ebpf-test")]
    #[test]
    fn test_object_adds_the_test_programs() {
        let mut want = live_programs();
        want.extend(
            [
                "kvmprof_empty",
                "kvmprof_empty_entry",
                "kvmprof_empty_exit",
                "kvmprof_floor",
                "kvmprof_rejected",
                "kvmprof_test",
            ]
            .into_iter()
            .chain(super::super::KCOST_PROGRAMS)
            .map(String::from),
        );
        want.sort();
        assert_eq!(program_names(super::TEST), want);
    }
}
