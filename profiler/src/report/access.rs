//! `report --event msr|ioport|mmio` as JSON or CSV: the MSR, port I/O or MMIO accesses
//! counted per VM, each with the name kvmprof knows for it (the table shows the same, see
//! `sub_times::named_key`).
//!
//! CSV columns, in this order (new columns are only ever appended):
//!
//! | column      | meaning                                                                  |
//! |-------------|--------------------------------------------------------------------------|
//! | `vm_pid`    | VMM process id                                                           |
//! | `vm_name`   | libvirt / QEMU name (or `pid N`)                                         |
//! | `key`       | perf's key: `0x6e0:W`, `0x70:POUT`, `0xfed000f0:R`                       |
//! | `address`   | MSR index, port or guest-physical address, decimal                      |
//! | `direction` | `R` / `W` (MSR, MMIO), `PIN` / `POUT` (port I/O)                         |
//! | `name`      | what kvmprof knows it as (`IA32_TSC_DEADLINE`, `RTC index`, `HPET+0xf0 MAIN_COUNTER`); empty when unknown |
//! | `count`     | accesses in the span                                                     |
//!
//! Rows: VMs by pid, then count descending, then key. JSON: `{"event": "msr", "accesses":
//! [{vm_pid, vm_name, key, address, direction, name (null when unknown), count}, …]}`.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{csv::quote, perf_layout::Event, sub_times::perf_key, Data, ReportError};
use crate::advice::names;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Access {
    pub vm_pid: u32,
    pub vm_name: String,
    pub key: String,
    pub address: u64,
    pub direction: String,
    pub name: Option<String>,
    pub count: u64,
}

pub const COLUMNS: [&str; 7] = [
    "vm_pid",
    "vm_name",
    "key",
    "address",
    "direction",
    "name",
    "count",
];

/// What kvmprof calls the subject of an access: an MSR's or port's name, an MMIO address's
/// device and register.
fn name_of(event: Event, address: u64) -> Option<String> {
    match event {
        Event::Msr => names::msr_name(address),
        Event::Ioport => names::port_name(address).map(String::from),
        Event::Mmio => {
            let label = names::gpa_label(address);
            (label != format!("{address:#x}")).then_some(label)
        }
        Event::Vmexit => None,
    }
}

/// The accesses of `event` in `data`, of one VM (`pid`) or all; they are counted per VM, so
/// a `vcpu` is refused as the table refuses it.
pub fn accesses(
    data: &Data,
    event: Event,
    pid: Option<u32>,
    vcpu: Option<u32>,
) -> Result<Vec<Access>, ReportError> {
    super::evidence::per_vm_only(event, vcpu)?;
    let mut merged: BTreeMap<(u32, String), (u64, u64)> = BTreeMap::new();
    for (k, n) in &data.evidence.counts {
        if pid.is_some_and(|p| p != k.tgid) {
            continue;
        }
        // perf's keys merge what kvmprof keeps apart (MSR write flags): so do these rows.
        if let Some(key) = perf_key(event, k) {
            merged.entry((k.tgid, key)).or_insert((k.a, 0)).1 += n;
        }
    }
    let vm_name = |p: u32| {
        (data.view.vms.iter().find(|v| v.pid == p))
            .map_or_else(|| format!("pid {p}"), |v| v.name.clone())
    };
    let mut rows: Vec<Access> = merged
        .into_iter()
        .map(|((vm_pid, key), (address, count))| Access {
            vm_pid,
            vm_name: vm_name(vm_pid),
            direction: key.rsplit_once(':').map_or("", |(_, d)| d).to_string(),
            name: name_of(event, address),
            key,
            address,
            count,
        })
        .collect();
    rows.sort_by(|a, b| {
        (a.vm_pid, std::cmp::Reverse(a.count), &a.key).cmp(&(
            b.vm_pid,
            std::cmp::Reverse(b.count),
            &b.key,
        ))
    });
    Ok(rows)
}

pub fn csv(rows: &[Access]) -> String {
    let mut out = COLUMNS.join(",");
    out.push('\n');
    for r in rows {
        let line = [
            r.vm_pid.to_string(),
            quote(&r.vm_name),
            quote(&r.key),
            r.address.to_string(),
            quote(&r.direction),
            quote(r.name.as_deref().unwrap_or_default()),
            r.count.to_string(),
        ];
        out.push_str(&line.join(","));
        out.push('\n');
    }
    out
}

pub fn json(event: Event, rows: &[Access]) -> Result<String, ReportError> {
    #[derive(Serialize)]
    struct Doc<'a> {
        event: &'a str,
        accesses: &'a [Access],
    }
    let mut s = serde_json::to_string_pretty(&Doc {
        event: event.arg(),
        accesses: rows,
    })?;
    s.push('\n');
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests_table::fixture;

    /// `--event msr -f csv|json`: one row per VM and key, the MSR's name beside its index
    /// (#16: only `0x6e0:W` before, and JSON/CSV printed the exit view instead).
    #[test]
    fn msr_accesses_carry_their_names() {
        let d = fixture();
        let rows = accesses(&d, Event::Msr, None, None).unwrap();
        let csv = csv(&rows);
        let mut lines = csv.lines();
        assert_eq!(lines.next(), Some(COLUMNS.join(",").as_str()));
        assert_eq!(
            lines.collect::<Vec<_>>(),
            [
                "1234,win11,0x6e0:W,1760,W,IA32_TSC_DEADLINE,900",
                "1234,win11,0x830:W,2096,W,X2APIC_ICR,100",
                "1234,win11,0x1b:R,27,R,IA32_APIC_BASE,50",
                "2222,build-box,0x6e0:W,1760,W,IA32_TSC_DEADLINE,100",
            ]
        );
        let json: serde_json::Value =
            serde_json::from_str(&json(Event::Msr, &rows).unwrap()).unwrap();
        assert_eq!(json["event"], "msr");
        assert_eq!(json["accesses"][0]["name"], "IA32_TSC_DEADLINE");
        assert_eq!(json["accesses"][0]["address"], 0x6e0);
        // One VM; an unnamed port has a null name; a vCPU is refused (counted per VM).
        let one = accesses(&d, Event::Ioport, Some(1234), None).unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(
            (one[0].key.as_str(), one[0].name.as_deref()),
            ("0x3f8:POUT", Some("COM1"))
        );
        assert!(accesses(&d, Event::Msr, None, Some(0)).is_err());
    }
}
