//! Sub-reason evidence programs: each reads a few fields (offsets from the running kernel's
//! format, in EV_FIELDS) and bumps one counter keyed by (VM, kind, flags, a) and thread.

use aya_ebpf::{
    bindings::{BPF_F_MMAPABLE, BPF_F_NO_PREALLOC, BPF_NOEXIST},
    macros::map,
    maps::{Array, HashMap, Queue, RingBuf},
    programs::TracePointContext,
};
use profiler_common::{
    counter,
    ev::{self, f, EvKey, EvValue, FieldSpec, RipSlot, ThreadEvKey},
    Offsets, ISA_SVM, ISA_VMX,
};

use crate::{agg, ids, KEEP};

/// Field positions for the evidence programs; written by the loader (read-only global).
#[no_mangle]
static EV_FIELDS: [FieldSpec; f::COUNT] = [FieldSpec { offset: 0, size: 0 }; f::COUNT];

/// Keyed per thread ([`ThreadEvKey`]), not per CPU: a per-CPU hash cost each key its value
/// times the CPU count (42 KB on a 128-CPU host) and allocated per-CPU memory on the exit path
/// for each new key. A VM's vCPU threads touch a key each: 16 entries for a 16-vCPU VM's MSR.
#[map]
static EVIDENCE: HashMap<ThreadEvKey, EvValue> =
    HashMap::with_max_entries(32768, BPF_F_NO_PREALLOC);

/// An evidence program: [`tracepoint_program!`] that first counts its run (COUNTERS slot
/// `counter::EV_RUNS` + its index): the sampler reads a program's run-time statistics (a
/// syscall each) only when its runs there differ from the run count the kernel last gave.
macro_rules! ev_program {
    ($section:literal, $name:ident, $body:ident) => {
        #[no_mangle]
        #[link_section = $section]
        pub fn $name(ctx: *mut ::core::ffi::c_void) -> u32 {
            const SLOT: u32 = counter::EV_RUNS + ev::program_index(stringify!($name));
            agg::bump(SLOT);
            $body(::aya_ebpf::programs::TracePointContext::new(ctx))
        }
    };
}

/// Sampled guest RIPs per (VM, reason): kind GUEST_RIP keys with a count each, in a shared,
/// mappable array that the sampler scans (walking a full hash of them cost ~1 ms a refresh,
/// the kernel copying each bucket out apart). Shared, not per CPU (its size does not grow with
/// the host). Two CPUs bumping one slot at once may lose one sample: it is a sample.
#[map]
static RIPS: Array<RipSlot> = Array::with_max_entries(ev::RIP_SLOTS, BPF_F_MMAPABLE);

/// The RIPS slot of each key in use.
#[map]
static RIP_INDEX: HashMap<EvKey, u32> = HashMap::with_max_entries(ev::RIP_SLOTS, BPF_F_NO_PREALLOC);

/// Free RIPS slots, zeroed: filled at load; userspace gives back those of exited VMs and, when
/// few are left, the ones sampled least lately (so a guest with more RIPs than fit keeps the
/// busy ones, as an LRU hash did).
#[map]
pub(crate) static FREE_RIPS: Queue<u32> = Queue::with_max_entries(ev::RIP_SLOTS, 0);

/// Counts one sampled exit at guest `rip` for (VM `tgid`, `flags` = `ev::rip_flags`).
#[inline(always)]
pub fn rip(tgid: u32, flags: u16, rip: u64) {
    let key = EvKey {
        tgid,
        kind: ev::GUEST_RIP,
        flags,
        a: rip,
    };
    if let Some(s) = rip_slot(&key) {
        s.count += 1;
        return;
    }
    let Some((i, s)) =
        (FREE_RIPS.pop().ok().flatten()).and_then(|i| Some((i, RIPS.get_ptr_mut(i)?)))
    else {
        agg::bump(counter::EVIDENCE_FULL);
        return;
    };
    // SAFETY: a live RIPS element, off the free list: no one else writes it until published.
    let s = unsafe { &mut *s };
    // The key first, the count once published: a reader takes only slots with a count.
    // SAFETY (both writes): `s` is a valid, exclusive reference.
    unsafe { core::ptr::write_volatile(&mut s.key, key) };
    if RIP_INDEX.insert(&key, &i, BPF_NOEXIST as u64).is_ok() {
        s.count += 1;
        return;
    }
    // Another CPU published the key meanwhile (or the index is full): give the slot back.
    // SAFETY: as above.
    unsafe { core::ptr::write_volatile(&mut s.key, EvKey::default()) };
    let _ = FREE_RIPS.push(&i, 0);
    match rip_slot(&key) {
        Some(s) => s.count += 1,
        None => {
            agg::bump(counter::EVIDENCE_FULL);
        }
    }
}

/// The published RIPS slot of `key`.
#[inline(always)]
fn rip_slot(key: &EvKey) -> Option<&'static mut RipSlot> {
    // SAFETY: the index is copied out at once; a concurrent delete (userspace freeing the
    // slot) cannot free it under us within this program run (RCU).
    let i = unsafe { RIP_INDEX.get(key) }.copied()?;
    // SAFETY: a live RIPS element; a racing bump may be lost (see RIPS).
    RIPS.get_ptr_mut(i).map(|s| unsafe { &mut *s })
}

/// Keys added to EVIDENCE, for the sampler (see `counter::KEYS_UNLOGGED`): 40 B
/// each with the ring's header, ~1 600 new keys between two refreshes before one is missed.
#[map]
static NEW_KEYS: RingBuf = RingBuf::with_byte_size(64 * 1024, 0);

/// Tells the sampler of a key just added (so, a key it learns of is in the map by then), or
/// counts that it could not, so that the sampler walks the maps again.
#[inline(always)]
fn log_new_key(map: u32, tid: u32, key: EvKey) {
    let k = ev::NewKey {
        map,
        pad: 0,
        key: ThreadEvKey { tid, pad: 0, key },
    };
    if NEW_KEYS.output::<ev::NewKey>(&k, 0).is_err() {
        agg::bump(counter::KEYS_UNLOGGED);
    }
}

/// The exit's guest RIP, read (`read`) only when something needs it: the slow-exit log while
/// it is on, or this exit being one of the sampled ones (`ev::rip_sampled`), which is counted.
/// 0 when not read.
#[inline(always)]
pub fn exit_rip(
    tgid: u32,
    isa: u32,
    reason: u32,
    now: u64,
    slow_on: bool,
    read: impl FnOnce() -> Option<u64>,
) -> u64 {
    exit_rip_cut::<0>(tgid, isa, reason, now, slow_on, read)
}

/// [`exit_rip`] without the sample when `CUT` has `cut::RIP` (see `agg::on_exit_cut`).
#[inline(always)]
pub fn exit_rip_cut<const CUT: u32>(
    tgid: u32,
    isa: u32,
    reason: u32,
    now: u64,
    slow_on: bool,
    read: impl FnOnce() -> Option<u64>,
) -> u64 {
    let sample = (CUT & profiler_common::cut::RIP == 0 && ev::rip_sampled(now))
        .then(|| ev::rip_flags(isa, reason));
    if !slow_on && sample.is_none() {
        return 0;
    }
    let r = read();
    if let (Some(Some(flags)), Some(r)) = (sample, r) {
        rip(tgid, flags, r);
    }
    r.unwrap_or(0)
}

/// Read slot `i` of the record, whatever its size on this kernel. None if absent.
#[inline(always)]
fn field(ctx: &TracePointContext, i: usize) -> Option<u64> {
    // SAFETY: plain-integer global rewritten by the loader; volatile defeats constant folding.
    let spec = unsafe { core::ptr::read_volatile(EV_FIELDS.as_ptr().add(i)) };
    let off = spec.offset as usize;
    // SAFETY: read_at is bpf_probe_read on the record: a wrong offset is an error, not UB.
    unsafe {
        match spec.size {
            1 => ctx.read_at::<u8>(off).ok().map(u64::from),
            2 => ctx.read_at::<u16>(off).ok().map(u64::from),
            4 => ctx.read_at::<u32>(off).ok().map(u64::from),
            8 => ctx.read_at::<u64>(off).ok(),
            _ => None,
        }
    }
}

#[inline(always)]
pub fn bump(tgid: u32, kind: u16, flags: u16, a: u64, sum: u64, last: u64) {
    let key = ThreadEvKey {
        tid: ids().1,
        pad: 0,
        key: EvKey {
            tgid,
            kind,
            flags,
            a,
        },
    };
    if let Some(v) = EVIDENCE.get_ptr_mut(&key) {
        // SAFETY: a live map value whose only writer is this thread (the key holds its tid),
        // running here with preemption off.
        let v = unsafe { &mut *v };
        v.count += 1;
        v.sum += sum;
        v.last = last;
        return;
    }
    let v = EvValue {
        count: 1,
        sum,
        last,
    };
    if EVIDENCE.insert(&key, &v, 0).is_err() {
        let _ = agg::bump(counter::EVIDENCE_FULL);
        return;
    }
    log_new_key(ev::NEW_KEY_EVIDENCE, key.tid, key.key);
}

/// VMX exit details that name the cause behind a reason (interrupt vector, EOI vector, APIC
/// register), and SVM nested page faults on MMIO (reserved-bit faults) with their GPA page.
/// Fixed-size reads from `Offsets`, from the record as kvm_exit read it (`rec`): the
/// size-generic `field()` compiles to code the verifier refuses inside the larger kvm_exit
/// program.
#[inline(always)]
pub fn exit_detail(
    rec: &crate::Rec,
    ctx: &TracePointContext,
    o: &Offsets,
    tgid: u32,
    tid: u32,
    isa: u32,
    reason: u32,
) {
    if isa == ISA_VMX {
        let basic = reason & 0xffff;
        let detail = match basic {
            1 if o.exit_intr_info != 0 => {
                let Some(i) = rec.u32_at(ctx, o.exit_intr_info) else {
                    return;
                };
                if i & 0x8000_0000 == 0 {
                    return;
                }
                (i & 0xff) as u64
            }
            45 | 56 if o.exit_info1 != 0 => {
                let Some(i) = rec.u64_at(ctx, o.exit_info1) else {
                    return;
                };
                if basic == 45 {
                    i & 0xff
                } else {
                    i & 0xfff
                }
            }
            _ => return,
        };
        bump(tgid, ev::EXIT_DETAIL, basic as u16, detail, 0, 0);
        agg::note_detail(tid, ev::EXIT_DETAIL, basic as u16, detail);
    } else if isa == ISA_SVM && reason == 0x400 && o.exit_info1 != 0 && o.exit_info2 != 0 {
        let info1 = rec.u64_at(ctx, o.exit_info1).unwrap_or(0);
        if info1 & 8 != 0 {
            if let Some(gpa) = rec.u64_at(ctx, o.exit_info2) {
                bump(tgid, ev::NPF_MMIO, 0, gpa & !0xfff, 0, 0);
                agg::note_detail(tid, ev::NPF_MMIO, 0, gpa);
            }
        }
    }
}

#[inline(always)]
fn tgid() -> u32 {
    ids().0
}

ev_program!("tracepoint/kvm/kvm_msr", ev_msr, ev_msr_body);
fn ev_msr_body(ctx: TracePointContext) -> u32 {
    let (Some(write), Some(ecx), Some(data)) = (
        field(&ctx, f::MSR_WRITE),
        field(&ctx, f::MSR_ECX),
        field(&ctx, f::MSR_DATA),
    ) else {
        return KEEP;
    };
    let (tgid, tid) = ids();
    on_msr(tgid, tid, write != 0, ecx as u32, data);
    KEEP
}

#[inline(always)]
pub fn on_msr(tgid: u32, tid: u32, write: bool, msr: u32, data: u64) {
    if write {
        let flags = ev::msr_write_flags(msr, data);
        bump(tgid, ev::MSR_WRITE, flags, msr as u64, 0, data);
        agg::note_detail(tid, ev::MSR_WRITE, flags, msr as u64);
    } else {
        bump(tgid, ev::MSR_READ, 0, msr as u64, 0, data);
        agg::note_detail(tid, ev::MSR_READ, 0, msr as u64);
    }
}

ev_program!("tracepoint/kvm/kvm_pio", ev_pio, ev_pio_body);
fn ev_pio_body(ctx: TracePointContext) -> u32 {
    let (Some(rw), Some(port), Some(size)) = (
        field(&ctx, f::PIO_RW),
        field(&ctx, f::PIO_PORT),
        field(&ctx, f::PIO_SIZE),
    ) else {
        return KEEP;
    };
    let kind = if rw != 0 { ev::PIO_OUT } else { ev::PIO_IN };
    let (tgid, tid) = ids();
    bump(tgid, kind, size as u16, port, 0, 0);
    agg::note_detail(tid, kind, size as u16, port);
    KEEP
}

ev_program!("tracepoint/kvm/kvm_mmio", ev_mmio, ev_mmio_body);
fn ev_mmio_body(ctx: TracePointContext) -> u32 {
    let (Some(ty), Some(len), Some(gpa)) = (
        field(&ctx, f::MMIO_TYPE),
        field(&ctx, f::MMIO_LEN),
        field(&ctx, f::MMIO_GPA),
    ) else {
        return KEEP;
    };
    // 0 = read not yet satisfied: its READ (1) follows, so count reads once.
    let kind = match ty {
        1 => ev::MMIO_READ,
        2 => ev::MMIO_WRITE,
        _ => return 0,
    };
    let (tgid, tid) = ids();
    bump(tgid, kind, len as u16, gpa, 0, 0);
    agg::note_detail(tid, kind, len as u16, gpa);
    KEEP
}

ev_program!(
    "tracepoint/kvm/kvm_hv_hypercall",
    ev_hv_hypercall,
    ev_hv_hypercall_body
);
fn ev_hv_hypercall_body(ctx: TracePointContext) -> u32 {
    let Some(code) = field(&ctx, f::HC_CODE) else {
        return KEEP;
    };
    let fast = field(&ctx, f::HC_FAST).unwrap_or(0);
    let (tgid, tid) = ids();
    bump(tgid, ev::HV_HYPERCALL, fast as u16, code & 0xffff, 0, 0);
    agg::note_detail(tid, ev::HV_HYPERCALL, fast as u16, code & 0xffff);
    KEEP
}

ev_program!(
    "tracepoint/kvm/kvm_apicv_inhibit_changed",
    ev_apicv_inhibit,
    ev_apicv_inhibit_body
);
fn ev_apicv_inhibit_body(ctx: TracePointContext) -> u32 {
    let (Some(reason), Some(set)) = (field(&ctx, f::INH_REASON), field(&ctx, f::INH_SET)) else {
        return KEEP;
    };
    let mask = field(&ctx, f::INH_MASK).unwrap_or(0);
    bump(tgid(), ev::APICV_INHIBIT, set as u16, reason, 0, mask);
    KEEP
}

ev_program!(
    "tracepoint/kvm/kvm_hv_synic_set_msr",
    ev_synic_msr,
    ev_synic_msr_body
);
fn ev_synic_msr_body(ctx: TracePointContext) -> u32 {
    let (Some(msr), Some(data)) = (field(&ctx, f::SYNIC_MSR), field(&ctx, f::SYNIC_DATA)) else {
        return KEEP;
    };
    let host = field(&ctx, f::SYNIC_HOST).unwrap_or(0) as u16 & 1;
    let aeoi = ((data >> 17) & 1) as u16;
    let masked = ((data >> 16) & 1) as u16;
    bump(
        tgid(),
        ev::SYNIC_MSR,
        host | aeoi << 1 | masked << 2,
        msr,
        0,
        data,
    );
    KEEP
}

ev_program!(
    "tracepoint/kvm/kvm_hv_stimer_expiration",
    ev_stimer_expire,
    ev_stimer_expire_body
);
fn ev_stimer_expire_body(ctx: TracePointContext) -> u32 {
    let (Some(timer), Some(direct)) = (field(&ctx, f::STEXP_TIMER), field(&ctx, f::STEXP_DIRECT))
    else {
        return KEEP;
    };
    bump(tgid(), ev::STIMER_EXPIRE, (direct != 0) as u16, timer, 0, 0);
    KEEP
}

ev_program!(
    "tracepoint/kvm/kvm_hv_stimer_set_config",
    ev_stimer_config,
    ev_stimer_config_body
);
fn ev_stimer_config_body(ctx: TracePointContext) -> u32 {
    let (Some(timer), Some(config)) = (field(&ctx, f::STCFG_TIMER), field(&ctx, f::STCFG_CONFIG))
    else {
        return KEEP;
    };
    bump(
        tgid(),
        ev::STIMER_CONFIG,
        ((config >> 12) & 1) as u16,
        timer,
        0,
        config,
    );
    KEEP
}

ev_program!("tracepoint/kvm/kvm_eoi", ev_eoi, ev_eoi_body);
fn ev_eoi_body(ctx: TracePointContext) -> u32 {
    if let Some(v) = field(&ctx, f::EOI_VECTOR) {
        bump(tgid(), ev::EOI, 0, v & 0xff, 0, 0);
    }
    KEEP
}

ev_program!("tracepoint/kvm/kvm_pv_eoi", ev_pv_eoi, ev_pv_eoi_body);
fn ev_pv_eoi_body(ctx: TracePointContext) -> u32 {
    if let Some(v) = field(&ctx, f::PVEOI_VECTOR) {
        bump(tgid(), ev::PV_EOI, 0, v & 0xff, 0, 0);
    }
    KEEP
}

ev_program!("tracepoint/kvm/kvm_apic_ipi", ev_apic_ipi, ev_apic_ipi_body);
fn ev_apic_ipi_body(ctx: TracePointContext) -> u32 {
    if let Some(icr) = field(&ctx, f::IPI_ICR) {
        bump(tgid(), ev::IPI, ((icr >> 8) & 7) as u16, icr & 0xff, 0, 0);
    }
    KEEP
}

ev_program!(
    "tracepoint/kvm/kvm_vcpu_wakeup",
    ev_vcpu_wakeup,
    ev_vcpu_wakeup_body
);
fn ev_vcpu_wakeup_body(ctx: TracePointContext) -> u32 {
    let Some(ns) = field(&ctx, f::WAKE_NS) else {
        return KEEP;
    };
    let waited = field(&ctx, f::WAKE_WAITED).unwrap_or(0) as u16 & 1;
    let valid = field(&ctx, f::WAKE_VALID).unwrap_or(0) as u16 & 1;
    bump(tgid(), ev::WAKEUP, waited | valid << 1, 0, ns, 0);
    KEEP
}

ev_program!(
    "tracepoint/kvm/kvm_halt_poll_ns",
    ev_halt_poll,
    ev_halt_poll_body
);
fn ev_halt_poll_body(ctx: TracePointContext) -> u32 {
    let (Some(grow), Some(new)) = (field(&ctx, f::HPOLL_GROW), field(&ctx, f::HPOLL_NEW)) else {
        return KEEP;
    };
    bump(tgid(), ev::HALT_POLL, grow as u16, 0, 0, new);
    KEEP
}
