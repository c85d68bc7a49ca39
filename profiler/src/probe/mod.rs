//! Loads and attaches the eBPF programs and reads their maps into a raw cumulative [`Sample`].

mod batch;
mod errors;
pub mod fill;
mod forget;
mod lock;
mod mapped;
pub mod memory;
mod misses;
mod notices;
mod object;
mod read;
mod rips;
pub use read::{mono_ns, wall_ms};
mod slots;
mod sys;
mod table;
mod task_btf;
pub mod testrun;

use std::{
    os::fd::OwnedFd,
    path::{Path, PathBuf},
    sync::Mutex,
};

use aya::{
    programs::{ProgramError, RawTracePoint, TracePoint},
    Ebpf, EbpfLoader,
};
use errors::Stage;
pub use errors::{check_privileges, setcap, ProbeError};
use profiler_common::{
    ev::{self, FieldSpec},
    Offsets, SlowCfg, OCTS_PER_ROW, ROWS_PER_VCTX,
};

use crate::{decode::format, sample::Sample};

pub use object::{HAS_OBJECT, HAS_TEST_OBJECT};

/// Tracepoint programs: (program name, category, event, required).
const TRACEPOINTS: [(&str, &str, &str, bool); 4] = [
    ("kvm_exit", "kvm", "kvm_exit", true),
    ("kvm_entry", "kvm", "kvm_entry", true),
    ("kvm_userspace_exit", "kvm", "kvm_userspace_exit", false),
    ("sys_enter_ioctl", "syscalls", "sys_enter_ioctl", false),
];

/// The scheduler programs that split each exit's time (ProbeOptions::sched): raw tracepoints
/// (see profiler-ebpf/src/sched.rs).
const SCHED_TRACEPOINTS: [(&str, &str); 2] = [
    ("sched_switch", "sched_switch"),
    ("sched_wakeup", "sched_wakeup"),
];

#[derive(Clone, Debug)]
pub struct ProbeOptions {
    /// tracefs mount point; None = find it.
    pub tracefs: Option<PathBuf>,
    /// Upper bound on (VM, vCPU, isa, reason) rows kept in the kernel.
    pub max_keys: u32,
    /// Which programs to load (and attach).
    pub programs: Programs,
    /// Run even if another kvmprof already profiles this host.
    pub allow_concurrent: bool,
    /// The slow-exit log (threshold 0: off).
    pub slow: SlowCfg,
    /// Split each exit's time into on-CPU, runnable and asleep (sched_switch/sched_wakeup).
    pub sched: bool,
}

/// The test object's in-kernel cost programs (kvmprof-bench): the whole exit path, its
/// floor and empty baselines, a second copy of the whole (the harness's resolution), and the
/// whole without one part each (`profiler_common::cut`).
pub const KCOST_PROGRAMS: [&str; 12] = [
    "kvmprof_kcost",
    "kvmprof_kcost_again",
    "kvmprof_kcost_two_octaves",
    "kvmprof_kcost_empty",
    "kvmprof_kcost_floor",
    "kvmprof_kcost_no_account",
    "kvmprof_kcost_no_hist",
    "kvmprof_kcost_no_seq",
    "kvmprof_kcost_no_min_max",
    "kvmprof_kcost_no_counters",
    "kvmprof_kcost_no_rip",
    "kvmprof_kcost_no_slow",
];

/// The slow-exit log's defaults: exits of 500 µs or more (a thirtieth of a 60 fps frame, and
/// several times the slowest ordinary exits' p99.9), at most 1000 per CPU and second, HLT
/// left out.
pub const SLOW_DEFAULT: SlowCfg = SlowCfg {
    threshold_ns: 500_000,
    per_cpu_per_s: 1000,
    with_hlt: 0,
};

/// The program set a [`Probe`] loads. Only `Live` is in the release object; the others need
/// the test object (`--features kvmprof/ebpf-test`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Programs {
    /// The profiler's programs, attached to their tracepoints: what users run.
    #[default]
    Live,
    /// The raw_tp test entry `kvmprof_test` and its empty baseline `kvmprof_empty`, loaded
    /// for BPF_PROG_TEST_RUN; nothing is attached.
    TestRun,
    /// `TestRun` plus the scheduler programs attached to the real sched_switch/sched_wakeup:
    /// exits driven through the test entry for the calling thread meet the real scheduler.
    TestRunSched,
    /// Benchmark baseline: programs that only read kvm_exit's / kvm_entry's fields and
    /// collect nothing, attached (their BPF run time is the "empty" cost on real exits).
    EmptyBaseline,
}

/// Sizes of the exit table's maps for `max_keys` rows: (map, entries). The hashes serve only
/// what the reason tables do not (threads without a table, userspace exits, odd codes; rows
/// spanning more octaves than they link), so they get a fraction of the rows.
pub fn table_sizes(max_keys: u32) -> [(&'static str, u32); 8] {
    let octs = max_keys.saturating_mul(OCTS_PER_ROW);
    let vctx = (max_keys / ROWS_PER_VCTX).max(64);
    [
        ("ROWS", max_keys),
        ("FREE_ROWS", max_keys),
        ("ROW_INDEX", (max_keys / 2).max(256)),
        ("OCTS", octs),
        ("FREE_OCTS", octs),
        ("OVERFLOW", (max_keys / 4).max(256)),
        ("VROWS", vctx),
        ("FREE_VCTX", vctx),
    ]
}

impl Default for ProbeOptions {
    fn default() -> Self {
        ProbeOptions {
            tracefs: None,
            max_keys: 16384,
            programs: Programs::Live,
            allow_concurrent: false,
            slow: SLOW_DEFAULT,
            sched: true,
        }
    }
}

pub struct Probe {
    ebpf: Ebpf,
    /// Programs attached, in TRACEPOINTS order (names).
    pub attached: Vec<&'static str>,
    /// Optional tracepoints that this kernel lacks (the features they feed degrade).
    pub missing: Vec<String>,
    pub tracefs: PathBuf,
    /// Keeps BPF run-time statistics on while we live (kernel ≥ 5.8).
    _stats: Option<OwnedFd>,
    _lock: Option<lock::InstanceLock>,
    /// Reads the programs' aya-log ring buffer.
    logger: Option<aya_log::EbpfLogger<notices::Collector>>,
    collector: notices::Collector,
    filled: fill::Filled,
    /// PSLOTS_MAP and SLOT_USED, mapped.
    slots: slots::Slots,
    /// The exit table mapped read-only, with the last decode of each row.
    table: Mutex<table::Table>,
    /// Slow exits from the kernel, drained at each sample.
    slow_log: Mutex<Option<aya::maps::RingBuf<aya::maps::MapData>>>,
    /// The programs' run-time statistics as last read, and what the sampler asked for.
    progs: Mutex<read::ProgCache>,
}

/// The tracefs mount point, or the error telling how to mount it (or how to be let in).
pub fn find_tracefs(hint: Option<&Path>) -> Result<PathBuf, ProbeError> {
    let candidates: Vec<PathBuf> = match hint {
        Some(p) => vec![p.to_path_buf()],
        None => vec![
            "/sys/kernel/tracing".into(),
            "/sys/kernel/debug/tracing".into(),
        ],
    };
    let mut denied = None;
    for dir in &candidates {
        match std::fs::metadata(dir.join("events")) {
            Ok(m) if m.is_dir() => return Ok(dir.clone()),
            // tracefs is root's, mode 0700: a capability-only user sees EACCES, not ENOENT.
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                denied.get_or_insert_with(|| dir.clone());
            }
            _ => {}
        }
    }
    Err(match (denied, hint) {
        (Some(dir), _) => ProbeError::TracefsDenied(dir),
        (None, Some(dir)) => ProbeError::NotTracefs(dir.to_path_buf()),
        (None, None) => ProbeError::NoTracefs,
    })
}

/// Field offsets of the running kernel's records (not compile-time constants: layouts drift).
pub fn read_offsets(tracefs: &Path) -> Result<Offsets, ProbeError> {
    let kvm = tracefs.join("events/kvm");
    if !kvm.join("kvm_exit").is_dir() {
        return Err(ProbeError::NoKvmTracepoints(kvm));
    }
    let off = |event: &str, field: &str| -> Result<u32, ProbeError> {
        let f = format::read_event(tracefs, "kvm", event).map_err(|e| ProbeError::Format {
            event: event.into(),
            why: e.to_string(),
        })?;
        f.field(field)
            .map(|f| f.offset)
            .ok_or_else(|| ProbeError::Format {
                event: event.into(),
                why: format!("no field `{field}` in its format"),
            })
    };
    let mut o = Offsets {
        exit_reason: off("kvm_exit", "exit_reason")?,
        exit_isa: off("kvm_exit", "isa")?,
        exit_vcpu_id: off("kvm_exit", "vcpu_id")?,
        valid: 1,
        ..Default::default()
    };
    // Optional exit details: only where the field has the size the program reads.
    if let Ok(f) = format::read_event(tracefs, "kvm", "kvm_exit") {
        let sized = |name: &str, size: u32| {
            f.field(name)
                .filter(|x| x.size == size)
                .map_or(0, |x| x.offset)
        };
        o.exit_info1 = sized("info1", 8);
        o.exit_info2 = sized("info2", 8);
        o.exit_intr_info = sized("intr_info", 4);
        o.exit_rip = sized("guest_rip", 8);
    }
    // Optional: kvm_userspace_exit exists since 2.6.x, but keep going if it is odd.
    if let (Ok(r), Ok(e)) = (
        off("kvm_userspace_exit", "reason"),
        off("kvm_userspace_exit", "errno"),
    ) {
        o.uexit_reason = r;
        o.uexit_errno = e;
    }
    Ok(o)
}

/// The raw sched programs' offsets into `o` (left 0, so that they do nothing, without BTF).
pub fn read_sched_offsets(o: &mut Offsets) {
    let Some(t) = task_btf::load() else {
        return;
    };
    o.task_pid = t.pid;
    o.task_state = t.state;
    // sched_switch gained its prev_state argument in 5.18.
    let release = crate::kernel::running_release();
    o.sched_state_arg = crate::kernel::parse_release(&release)
        .is_some_and(|v| v >= (5, 18))
        .into();
}

/// Evidence field positions from the running kernel; absent events/fields stay size 0.
pub fn read_ev_fields(tracefs: &Path) -> [FieldSpec; ev::f::COUNT] {
    let mut out = [FieldSpec::default(); ev::f::COUNT];
    let mut cache: std::collections::HashMap<&str, Option<format::Format>> = Default::default();
    for (slot, event, field) in ev::FIELD_SOURCES {
        let fmt = cache
            .entry(event)
            .or_insert_with(|| format::read_event(tracefs, "kvm", event).ok());
        if let Some(f) = fmt.as_ref().and_then(|f| f.field(field)) {
            if matches!(f.size, 1 | 2 | 4 | 8) && f.offset <= u16::MAX as u32 {
                out[slot] = FieldSpec {
                    offset: f.offset as u16,
                    size: f.size as u16,
                };
            }
        }
    }
    out
}

/// Slots each evidence program needs (all must be present for it to attach).
fn ev_slots(event: &str) -> Vec<usize> {
    ev::FIELD_SOURCES
        .iter()
        .filter(|(_, e, _)| *e == event)
        .map(|(slot, _, _)| *slot)
        .collect()
}

impl Probe {
    pub fn load(opts: &ProbeOptions) -> Result<Probe, ProbeError> {
        let release = crate::kernel::running_release();
        let caps = crate::caps::CapSet::current();
        let tracefs = find_tracefs(opts.tracefs.as_deref());
        check_privileges(&release, caps, &tracefs)?;
        let tracefs = tracefs?;
        let test_only = matches!(opts.programs, Programs::TestRun | Programs::TestRunSched);
        let sched = opts.sched && matches!(opts.programs, Programs::Live | Programs::TestRunSched);
        let object = object::for_programs(opts.programs)?;
        // The kernel's own refusals, named by the capability each stage needs.
        let kernel = crate::kernel::parse_release(&release);
        let denied = |stage: Stage, e: &(dyn std::error::Error + 'static)| {
            errors::refused(
                stage,
                errors::errno(e),
                caps,
                kernel,
                &errors::memlock_limit(),
            )
        };
        let lock = if test_only || opts.allow_concurrent {
            None
        } else {
            Some(lock::acquire(lock::LOCK_NAME)?)
        };
        let mut offsets = if test_only {
            Offsets {
                valid: 1,
                ..Default::default()
            }
        } else {
            read_offsets(&tracefs)?
        };
        if sched {
            read_sched_offsets(&mut offsets);
        }
        let ev_fields = if test_only {
            [FieldSpec::default(); ev::f::COUNT]
        } else {
            read_ev_fields(&tracefs)
        };
        bump_memlock();
        let mut loader = EbpfLoader::new();
        loader
            .override_global("OFFSETS", &offsets, true)
            .override_global("EV_FIELDS", &ev_fields[..], true)
            .override_global("SLOW", &opts.slow, true);
        let sizes = table_sizes(opts.max_keys.max(1));
        for (map, n) in sizes {
            loader.map_max_entries(map, n);
        }
        let mut ebpf = loader.load(object).map_err(|e| {
            let map = match &e {
                aya::EbpfError::MapError(aya::maps::MapError::CreateError { name, .. }) => name,
                _ => "",
            };
            denied(Stage::Map(map), &e)
                .unwrap_or_else(|| ProbeError::other("loading the eBPF object", e))
        })?;
        // The free lists start full: every row, octave and reason table is free.
        let filled = fill::fill(&mut ebpf, &sizes)
            .map_err(|e| ProbeError::other("setting up the exit table", e))?;
        let map_err = |e: anyhow::Error| ProbeError::other("setting up the exit table", e);
        let slots = slots::Slots::map(&ebpf).map_err(map_err)?;
        let rips = rips::Rips::map(&ebpf).map_err(map_err)?;
        let table = table::Table::new(
            mapped::Mapped::map(&ebpf, "ROWS").map_err(map_err)?,
            mapped::Mapped::map(&ebpf, "OCTS").map_err(map_err)?,
        );
        let slow_log = ebpf
            .take_map("SLOW_LOG")
            .map(aya::maps::RingBuf::try_from)
            .transpose()
            .map_err(|e| ProbeError::other("setting up the slow-exit log", e))?;
        let new_keys = ebpf
            .take_map("NEW_KEYS")
            .map(aya::maps::RingBuf::try_from)
            .transpose()
            .map_err(|e| ProbeError::other("setting up the evidence maps", e))?;
        let stats = aya::sys::enable_stats(aya::sys::Stats::RunTime).ok();
        let collector = notices::Collector::default();
        // Taken before loading programs: the logger owns the AYA_LOGS map they write to.
        let logger = aya_log::EbpfLogger::init_with_logger(&mut ebpf, collector.clone()).ok();
        let mut attached = Vec::new();
        let mut missing = Vec::new();
        if test_only {
            for name in ["kvmprof_test", "kvmprof_empty", "kvmprof_floor"]
                .into_iter()
                .chain(KCOST_PROGRAMS)
            {
                let prog: &mut RawTracePoint = program(&mut ebpf, name)?;
                prog.load().map_err(|e| verifier(name, e))?;
                attached.push(name);
            }
        }
        if opts.programs == Programs::EmptyBaseline {
            for (name, event) in [
                ("kvmprof_empty_exit", "kvm_exit"),
                ("kvmprof_empty_entry", "kvm_entry"),
            ] {
                if !tracefs.join("events/kvm").join(event).is_dir() {
                    return Err(ProbeError::NoKvmTracepoints(tracefs.join("events/kvm")));
                }
                let prog: &mut TracePoint = program(&mut ebpf, name)?;
                prog.load().map_err(|e| verifier(name, e))?;
                prog.attach("kvm", event)
                    .map_err(|e| ProbeError::other(format!("attaching to kvm:{event}"), e))?;
                attached.push(name);
            }
        }
        for (name, category, event, required) in TRACEPOINTS {
            if opts.programs != Programs::Live {
                break;
            }
            let dir = tracefs.join("events").join(category).join(event);
            if !dir.is_dir() {
                if required {
                    return Err(ProbeError::NoKvmTracepoints(dir));
                }
                missing.push(format!("{category}:{event}"));
                continue;
            }
            let prog: &mut TracePoint = program(&mut ebpf, name)?;
            prog.load()
                .map_err(|e| denied(Stage::Load(name), &e).unwrap_or_else(|| verifier(name, e)))?;
            let what = format!("{category}:{event}");
            prog.attach(category, event)
                .map_err(|e| errors::attach_error(&what, &dir, e, &denied))?;
            attached.push(name);
        }
        for (name, event) in SCHED_TRACEPOINTS {
            if !sched {
                break;
            }
            let dir = tracefs.join("events/sched").join(event);
            if offsets.task_pid == 0 {
                missing.push(format!("sched:{event} (no BTF of task_struct)"));
                continue;
            }
            let prog: &mut RawTracePoint = program(&mut ebpf, name)?;
            prog.load()
                .map_err(|e| denied(Stage::Load(name), &e).unwrap_or_else(|| verifier(name, e)))?;
            prog.attach(event)
                .map_err(|e| errors::attach_error(&format!("sched:{event}"), &dir, e, &denied))?;
            attached.push(name);
        }
        for (name, event) in ev::PROGRAMS {
            if opts.programs != Programs::Live {
                break;
            }
            let slots = ev_slots(event);
            if !tracefs.join("events/kvm").join(event).is_dir() {
                missing.push(format!("kvm:{event}"));
                continue;
            }
            if slots.iter().any(|&s| ev_fields[s].size == 0) {
                missing.push(format!("kvm:{event} (fields changed on this kernel)"));
                continue;
            }
            let prog: &mut TracePoint = program(&mut ebpf, name)?;
            prog.load()
                .map_err(|e| denied(Stage::Load(name), &e).unwrap_or_else(|| verifier(name, e)))?;
            let dir = tracefs.join("events/kvm").join(event);
            prog.attach("kvm", event)
                .map_err(|e| errors::attach_error(&format!("kvm:{event}"), &dir, e, &denied))?;
            attached.push(name);
        }
        Ok(Probe {
            ebpf,
            attached,
            missing,
            tracefs,
            _stats: stats,
            _lock: lock,
            slots,
            table: Mutex::new(table),
            slow_log: Mutex::new(slow_log),
            progs: Mutex::new(read::ProgCache::new(new_keys, rips)),
            logger,
            collector,
            filled,
        })
    }

    /// How the exit table's free lists were filled at load (for tests and benchmarks).
    pub fn filled(&self) -> fill::Filled {
        self.filled
    }

    /// Read every map now.
    pub fn sample(&self) -> anyhow::Result<Sample> {
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let mut progs = self.progs.lock().unwrap_or_else(|e| e.into_inner());
        let mut s = read::sample(
            &self.ebpf,
            &self.attached,
            &mut table,
            &mut progs,
            &self.slots,
        )?;
        let mut log = self.slow_log.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(log) = log.as_mut() {
            read::drain_slow(log, &mut s.slow);
        }
        Ok(s)
    }

    /// `Source::keep_up`'s share: the slow exits drained into `slow` and the keys the kernel
    /// added learned (two rings, mapped memory), and the processes of the exit table's rows
    /// (their keys, mapped too): no syscall but the rings' wake-ups.
    pub fn keep_up(&self, slow: &mut Vec<crate::sample::SlowEvent>) -> Vec<u32> {
        if let Some(log) = self
            .slow_log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
        {
            read::drain_slow(log, slow);
        }
        read::learn_new_keys(&mut self.progs.lock().unwrap_or_else(|e| e.into_inner()));
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        table.tgids()
    }

    /// Kernel memory of every map, as the kernel accounts it.
    pub fn map_memory(&self) -> Vec<memory::MapMemory> {
        memory::maps(&self.ebpf)
    }

    /// Whether the kernel times the programs (BPF run-time statistics: kvmprof turned them on,
    /// which needs CAP_SYS_ADMIN, or `sysctl kernel.bpf_stats_enabled=1` did); without, every
    /// probe's cost reads 0.
    pub fn measures_cost(&self) -> bool {
        self._stats.is_some()
            || std::fs::read_to_string("/proc/sys/kernel/bpf_stats_enabled")
                .is_ok_and(|v| v.trim() == "1")
    }

    /// Programs' run-time statistics asked of the kernel so far (one syscall each; an evidence
    /// program's only when it ran since the last ask), and reads of the PENDING and UPENDING
    /// hashes (only once a thread without a slot used one).
    pub fn sampler_reads(&self) -> (u64, [u64; 2]) {
        let p = self.progs.lock().unwrap_or_else(|e| e.into_inner());
        (p.info_reads, p.hash_reads)
    }

    /// (walks, key-by-key reads) of EVIDENCE so far (see `batch::KnownKeys`).
    pub fn evidence_reads(&self) -> (u64, u64) {
        let p = self.progs.lock().unwrap_or_else(|e| e.into_inner());
        (p.evidence_keys.walks, p.evidence_keys.lookups)
    }

    /// RIPS slots given back so far (the coldest, when few were free, and exited VMs').
    pub fn rip_slots_freed(&self) -> u64 {
        let p = self.progs.lock().unwrap_or_else(|e| e.into_inner());
        p.rips.freed
    }

    /// Rows decoded by the last sample (the others had not changed), and rows read while
    /// being written after every try so far.
    pub fn table_stats(&self) -> (usize, u64) {
        let t = self.table.lock().unwrap_or_else(|e| e.into_inner());
        (t.decoded, t.torn)
    }

    pub fn ebpf(&self) -> &Ebpf {
        &self.ebpf
    }

    /// The maps and programs, to change (tests and benchmarks: e.g. to empty a free list).
    pub fn ebpf_mut(&mut self) -> &mut Ebpf {
        &mut self.ebpf
    }

    /// Messages logged by the programs since the last call (e.g. a full map).
    pub fn notices(&mut self) -> Vec<String> {
        if let Some(l) = self.logger.as_mut() {
            l.flush();
        }
        self.collector.drain()
    }

    /// Delete every row of these (exited) processes so the maps do not fill up over days of
    /// VMs coming and going: the rows the last sample read (the live source forgets a process
    /// only after several samples saw it gone). Returns how many keys were removed.
    pub fn forget(&mut self, tgids: &[u32]) -> anyhow::Result<usize> {
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let freed = forget::forget(&mut self.ebpf, tgids, &mut table, &self.slots)?;
        let mut progs = self.progs.lock().unwrap_or_else(|e| e.into_inner());
        progs.rips.forget(&self.ebpf, |k| tgids.contains(&k.tgid))?;
        Ok(freed)
    }
}

/// Load one raw_tp program of the test object and nothing else: how tests see the verifier's
/// verdict (and its log) on a given program.
pub fn verify_raw_tp(name: &str) -> Result<(), ProbeError> {
    let caps = crate::caps::CapSet::current();
    check_privileges(&crate::kernel::running_release(), caps, &Ok(PathBuf::new()))?;
    let object = object::for_programs(Programs::TestRun)?;
    bump_memlock();
    let mut ebpf = EbpfLoader::new()
        .load(object)
        .map_err(|e| ProbeError::other("loading the eBPF object", e))?;
    let prog: &mut RawTracePoint = program(&mut ebpf, name)?;
    prog.load().map_err(|e| verifier(name, e))
}

fn program<'a, T>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut T, ProbeError>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = ProgramError>,
{
    let p = ebpf
        .program_mut(name)
        .ok_or_else(|| ProbeError::other(format!("program {name}"), "missing from the object"))?;
    p.try_into()
        .map_err(|e: ProgramError| ProbeError::other(format!("program {name}"), e))
}

fn verifier(name: &str, e: ProgramError) -> ProbeError {
    match e {
        ProgramError::LoadError {
            io_error,
            verifier_log,
        } => ProbeError::Verifier {
            program: name.into(),
            error: io_error.to_string(),
            log: errors::tail_lines(&verifier_log.to_string(), 20),
        },
        other => ProbeError::other(format!("loading program {name}"), other),
    }
}

/// Kernels before 5.11 charge BPF maps to RLIMIT_MEMLOCK; raise it so they load there too.
fn bump_memlock() {
    let rlim = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit reads a valid, fully initialised rlimit struct; failure is harmless
    // (newer kernels account BPF memory to the cgroup instead).
    unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &rlim) };
}
