//! Helpers for kvmprof's integration tests: the kernel's hist-trigger text, kvmprof's JSON
//! report and advice, and the exerciser's RESULT / HYPERV lines.

pub mod modgraph;
pub mod vm_runs;

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use serde::Deserialize;

/// One hist trigger (`/sys/kernel/tracing/events/<sys>/<event>/hist`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Hist {
    /// Key values (in the trigger's key order) → hitcount.
    pub buckets: BTreeMap<Vec<u64>, u64>,
    /// Key names, in order (e.g. `["isa", "exit_reason"]`).
    pub keys: Vec<String>,
    pub hits: Option<u64>,
    pub dropped: Option<u64>,
}

impl Hist {
    pub fn total(&self) -> u64 {
        self.buckets.values().sum()
    }
}

fn parse_num(s: &str) -> Option<u64> {
    let s = s.trim();
    match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// Parse hist-trigger output with numeric keys, e.g.
/// `{ isa:          2, exit_reason:        123 } hitcount:       2000`.
pub fn parse_hist(text: &str) -> Result<Hist> {
    let mut h = Hist::default();
    for (no, line) in text.lines().enumerate().map(|(i, l)| (i + 1, l.trim())) {
        if let Some(rest) = line.strip_prefix('{') {
            let (keys, tail) = rest
                .split_once('}')
                .ok_or_else(|| anyhow!("hist line {no}: no closing '}}': {line:?}"))?;
            let mut names = Vec::new();
            let mut values = Vec::new();
            for kv in keys.split(',') {
                let (k, v) = kv
                    .split_once(':')
                    .ok_or_else(|| anyhow!("hist line {no}: key without ':' in {line:?}"))?;
                // `.sym`/`.hex` modifiers can append text after the number; take the number.
                let v = v.split_whitespace().next().unwrap_or("");
                let v = parse_num(v)
                    .ok_or_else(|| anyhow!("hist line {no}: non-numeric key {v:?} in {line:?}"))?;
                names.push(k.trim().to_string());
                values.push(v);
            }
            let count = tail
                .trim()
                .strip_prefix("hitcount:")
                .and_then(parse_num)
                .ok_or_else(|| anyhow!("hist line {no}: no hitcount in {line:?}"))?;
            if h.keys.is_empty() {
                h.keys = names;
            } else if h.keys != names {
                bail!("hist line {no}: keys {names:?} differ from {:?}", h.keys);
            }
            *h.buckets.entry(values).or_default() += count;
        } else if let Some(v) = line.strip_prefix("Hits:") {
            h.hits = parse_num(v);
        } else if let Some(v) = line.strip_prefix("Dropped:") {
            h.dropped = parse_num(v);
        }
    }
    if h.hits.is_none() {
        bail!("no 'Hits:' totals line: this is not hist-trigger output (is the trigger set?)");
    }
    Ok(h)
}

#[derive(Debug, Clone, Deserialize)]
pub struct Report {
    pub duration_s: f64,
    #[serde(default)]
    pub names_source: String,
    pub counters: Counters,
    pub vms: Vec<VmReport>,
    /// The programs kvmprof attached, by name.
    #[serde(default)]
    pub probe_cost: Vec<ProbeCost>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ProbeCost {
    pub name: String,
    /// Runs of the program over the report's window (the kernel's BPF statistics).
    pub events: u64,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Counters {
    pub orphan_entry: u64,
    pub unpaired_exit: u64,
    pub stats_map_full: u64,
    pub pending_map_full: u64,
    pub read_error: u64,
    pub exits: u64,
    pub entries: u64,
    pub userspace_exits: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct VmReport {
    pub pid: u32,
    pub name: String,
    pub uuid: Option<String>,
    pub exits: u64,
    pub reasons: Vec<ReasonRow>,
    #[serde(default)]
    pub vcpus: Vec<VcpuReport>,
    #[serde(default)]
    pub userspace: Vec<ReasonRow>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct VcpuReport {
    pub vcpu: u32,
    pub exits: u64,
    pub reasons: Vec<ReasonRow>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ReasonRow {
    pub isa: u32,
    pub isa_name: String,
    pub reason: u64,
    pub name: String,
    pub count: u64,
    pub in_flight: u64,
    pub timed: u64,
    pub hist_total: u64,
    #[serde(default)]
    pub p50_ns: u64,
    #[serde(default)]
    pub p99_ns: u64,
}

pub fn parse_report(text: &str) -> Result<Report> {
    serde_json::from_str(text).context("kvmprof JSON report does not match the expected schema")
}

impl Report {
    pub fn vm(&self, name: &str) -> Result<&VmReport> {
        self.vms.iter().find(|v| v.name == name).ok_or_else(|| {
            let names: Vec<&str> = self.vms.iter().map(|v| v.name.as_str()).collect();
            anyhow!("no VM named {name:?} in the kvmprof report (VMs: {names:?}); discovery failed")
        })
    }
}

impl VmReport {
    pub fn row(&self, isa: u32, reason: u64) -> Option<&ReasonRow> {
        self.reasons
            .iter()
            .find(|r| r.isa == isa && r.reason == reason)
    }
}

/// `RESULT key=value ...` from `kvmprof exercise`, as a map.
pub fn parse_result_line(text: &str) -> Result<BTreeMap<String, String>> {
    parse_tagged_line(text, "RESULT")
}

/// The first `TAG key=value ...` line of `text` (e.g. `HYPERV` from `kvmprof exercise --ops h`),
/// as a map.
pub fn parse_tagged_line(text: &str, tag: &str) -> Result<BTreeMap<String, String>> {
    let line = text
        .lines()
        .find_map(|l| l.trim().strip_prefix(tag)?.strip_prefix(' '))
        .ok_or_else(|| anyhow!("no {tag} line in the exerciser output: {:?}", text.trim()))?;
    Ok(line
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect())
}

/// `key=value` lines (info.txt), as a map; other lines are ignored.
pub fn parse_kv_lines(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.trim().split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// `kvmprof advise --format json`: `{"findings": [...], "vms": [...], "notes": [...]}`.
#[derive(Debug, Clone, Deserialize)]
pub struct Advice {
    pub findings: Vec<Finding>,
    #[serde(default)]
    pub vms: Vec<AdviceVm>,
    #[serde(default)]
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Finding {
    pub rule: String,
    pub severity: String,
    pub title: String,
    #[serde(default)]
    pub evidence: Vec<String>,
    /// `{"qemu", "libvirt", "effect"}` (kept loose: any JSON).
    #[serde(default)]
    pub advice: serde_json::Value,
    #[serde(default)]
    pub source: String,
}

impl Finding {
    /// The advice's QEMU change (empty when absent).
    pub fn qemu(&self) -> &str {
        self.advice
            .get("qemu")
            .and_then(|v| v.as_str())
            .unwrap_or("")
    }
    /// Everything the finding says, for text searches.
    pub fn text(&self) -> String {
        format!(
            "{} {} {} {} {}",
            self.rule,
            self.title,
            self.evidence.join(" "),
            self.advice,
            self.source
        )
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct AdviceVm {
    #[serde(default)]
    pub pid: u32,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub guest: String,
    #[serde(default)]
    pub profile: Option<String>,
    #[serde(default)]
    pub config: Vec<String>,
    #[serde(default)]
    pub findings: Vec<Finding>,
    #[serde(default)]
    pub notes: Vec<String>,
}

pub fn parse_advice(text: &str) -> Result<Advice> {
    serde_json::from_str(text).context("kvmprof advice JSON does not match the expected schema")
}

impl Advice {
    pub fn vm(&self, name: &str) -> Result<&AdviceVm> {
        self.vms.iter().find(|v| v.name == name).ok_or_else(|| {
            let names: Vec<&str> = self.vms.iter().map(|v| v.name.as_str()).collect();
            anyhow!("no VM named {name:?} in the advice (VMs: {names:?})")
        })
    }
}

pub fn read_file(dir: &Path, name: &str) -> Result<String> {
    let p = dir.join(name);
    std::fs::read_to_string(&p)
        .with_context(|| format!("cannot read {} (did the VM run finish?)", p.display()))
}

/// Where `cargo xtask vm-test` left a real-KVM run's output (KVMPROF_VM_OUT). Without it the
/// test cannot run: in CI that fails, unless `cargo xtask test` says the VM step follows in
/// the same run (KVMPROF_VM_TEST=later, set only for its workspace pass before vm-test).
pub fn vm_out(test: &str) -> Option<std::path::PathBuf> {
    if let Some(dir) = std::env::var_os("KVMPROF_VM_OUT") {
        return Some(dir.into());
    }
    if std::env::var("KVMPROF_VM_TEST").is_ok_and(|v| v == "later") {
        eprintln!("{test}: runs in the vm-test step of this `cargo xtask test`");
        return None;
    }
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    assert!(
        !ci,
        "{test}: CI=true but KVMPROF_VM_OUT is unset: run `cargo xtask vm-test`, which sets it"
    );
    eprintln!("{test}: not run: KVMPROF_VM_OUT is unset (run `cargo xtask vm-test`)");
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXIT_HIST: &str = "# event histogram\n#\n# trigger info: hist:keys=isa,exit_reason:vals=hitcount:sort=exit_reason:size=2048 [active]\n#\n\n\
{ isa:          2, exit_reason:         96 } hitcount:         46\n\
{ isa:          2, exit_reason:        114 } hitcount:       3000\n\
{ isa:          2, exit_reason:        120 } hitcount:          1\n\
{ isa:          2, exit_reason:        123 } hitcount:       3000\n\
{ isa:          2, exit_reason:        124 } hitcount:       6000\n\
{ isa:          2, exit_reason:       1024 } hitcount:          1\n\
\nTotals:\n    Hits: 12048\n    Entries: 6\n    Dropped: 0\n";

    #[test]
    fn parses_kvm_exit_hist() {
        let h = parse_hist(EXIT_HIST).unwrap();
        assert_eq!(h.keys, ["isa", "exit_reason"]);
        assert_eq!(h.buckets.len(), 6);
        assert_eq!(h.buckets[&vec![2, 124]], 6000);
        assert_eq!(h.total(), 12048);
        assert_eq!(h.hits, Some(12048));
        assert_eq!(h.dropped, Some(0));
    }

    #[test]
    fn parses_entry_hist_and_rejects_garbage() {
        let h = parse_hist(
            "{ vcpu_id:          0 } hitcount:      12048\n\nTotals:\n    Hits: 12048\n",
        )
        .unwrap();
        assert_eq!(h.total(), 12048);
        assert!(parse_hist("").is_err());
        assert!(parse_hist("{ isa: x } hitcount: 1\nHits: 1\n").is_err());
        assert!(parse_hist("{ isa: 2 hitcount: 1\nHits: 1\n").is_err());
        assert!(parse_hist("{ isa: 2 } hitcount: \nHits: 1\n").is_err());
        let sym = parse_hist("{ exit_reason: 0x7b [io] } hitcount: 5\nHits: 5\n").unwrap();
        assert_eq!(sym.buckets[&vec![123]], 5);
    }

    #[test]
    fn parses_result_line_and_report() {
        let r = parse_result_line("x\nRESULT iters=5 ops=ocrw io=5 hlt=1\n").unwrap();
        assert_eq!(r["io"], "5");
        assert!(parse_result_line("nothing").is_err());
        let json = r#"{"duration_s":1.5,"names_source":"x","counters":{"orphan_entry":1,"unpaired_exit":0,
            "stats_map_full":0,"pending_map_full":0,"read_error":0,"exits":3,"entries":3,"userspace_exits":2},
            "vms":[{"pid":7,"name":"g","uuid":null,"exits":3,"reasons":[{"isa":2,"isa_name":"svm","reason":123,
            "name":"io","hlt":false,"count":3,"in_flight":0,"timed":3,"hist_total":3,"rate_per_s":2.0,
            "samples_pct":100.0,"time_pct":100.0,"total_ns":30,"min_ns":10,"max_ns":10,"mean_ns":10.0,
            "p50_ns":10,"p99_ns":10,"p999_ns":10}],"vcpus":[],"userspace":[]}]}"#;
        let rep = parse_report(json).unwrap();
        assert_eq!(rep.vm("g").unwrap().row(2, 123).unwrap().count, 3);
        assert!(rep.vm("h").is_err());
        assert!(parse_report("{}").is_err());
    }

    #[test]
    fn parses_tagged_lines_and_advice() {
        let out = "HYPERV batches=1 hyperv_exits=3 synic_msrs=0x40000080:1\nRESULT iters=5 io=1\n";
        let hv = parse_tagged_line(out, "HYPERV").unwrap();
        assert_eq!(hv["hyperv_exits"], "3");
        assert_eq!(parse_result_line(out).unwrap()["io"], "1");
        assert!(parse_tagged_line("HYPERVISOR x=1", "HYPERV").is_err());
        let info = parse_kv_lines("kernel=6.12\nkvm_amd.avic=N\nnoise\n");
        assert_eq!(info["kvm_amd.avic"], "N");
        let json = r#"{"findings":[{"rule":"R07","severity":"warn","title":"t","evidence":["HV_SINT2 = 0x20050"],
            "advice":{"qemu":"-cpu …,hv-avic","libvirt":"","effect":"e"},"source":"KB R07"}],
            "vms":[{"pid":1,"name":"g","guest":"Windows 11","profile":null,"config":[],"findings":[],"notes":[]}],"notes":[]}"#;
        let a = parse_advice(json).unwrap();
        assert_eq!(a.findings[0].qemu(), "-cpu …,hv-avic");
        assert!(a.findings[0].text().contains("HV_SINT2"));
        assert_eq!(a.vm("g").unwrap().guest, "Windows 11");
        assert!(a.vm("h").is_err());
        assert!(parse_advice("[]").is_err());
    }
}
