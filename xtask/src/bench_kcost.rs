//! bench-vm's in-kernel cost table: kvmprof's exit+entry programs against field-reading empty
//! ones on the same real exits (BPF run-time statistics, from kvmprof's JSON `probe_cost`).

use std::fmt::Write;

use crate::bench_common::{median, Run};

/// (events, ns per event) of program `name` in a run (`pc_<name>=<events>:<ns>`).
fn prog(r: &Run, name: &str) -> Option<(f64, f64)> {
    let (e, ns) = r.get(&format!("pc_{name}"))?.split_once(':')?;
    Some((e.parse().ok()?, ns.parse().ok()?))
}

/// ns per exit+entry pair of the two programs, when both ran.
fn pair(r: &Run, exit: &str, entry: &str) -> Option<f64> {
    Some(prog(r, exit)?.1 + prog(r, entry)?.1)
}

/// All of kvmprof's programs' run time (sub-reason programs included) per kvm_exit.
fn all_per_exit(r: &Run) -> Option<f64> {
    let exits = prog(r, "kvm_exit")?.0;
    let total: f64 = r
        .iter()
        .filter(|(k, _)| k.starts_with("pc_"))
        .filter_map(|(k, _)| prog(r, &k[3..]))
        .map(|(e, ns)| e * ns)
        .sum();
    (exits > 0.0).then(|| total / exits)
}

pub fn kcost_table(runs: &[Run]) -> String {
    let of = |tool: &str| -> Vec<&Run> {
        runs.iter()
            .filter(|r| r.get("phase").map(String::as_str) == Some("kcost"))
            .filter(|r| r.get("tool").map(String::as_str) == Some(tool))
            .collect()
    };
    let (full, empty) = (of("kvmprof"), of("kvmprof-empty"));
    if full.is_empty() && empty.is_empty() {
        return String::new();
    }
    let k = median(
        full.iter()
            .filter_map(|r| pair(r, "kvm_exit", "kvm_entry"))
            .collect(),
    );
    let e = median(
        empty
            .iter()
            .filter_map(|r| pair(r, "kvmprof_empty_exit", "kvmprof_empty_entry"))
            .collect(),
    );
    let all = median(full.iter().filter_map(|r| all_per_exit(r)).collect());
    let f = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v:.0} ns"));
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nIn-kernel cost on real exits (BPF run-time statistics over one exerciser run `--ops ocrw`, \
         {} alternating runs each, medians). The guest's CPU is emulated (TCG), so absolute ns are \
         far above the host's; compare with the empty programs of the same boot.\n",
        full.len().min(empty.len())
    );
    out.push_str("| programs on kvm_exit + kvm_entry | ns per exit+entry pair |\n|---|---:|\n");
    let _ = writeln!(out, "| empty (read the same fields, no work) | {} |", f(e));
    let _ = writeln!(out, "| kvmprof | {} |", f(k));
    let above = k.zip(e).map(|(k, e)| k - e);
    let _ = writeln!(
        out,
        "| kvmprof above empty | {} ({}) |",
        f(above),
        k.zip(e).map_or("–".into(), |(k, e)| format!(
            "{:.2}× empty",
            k / e.max(1e-9)
        ))
    );
    let _ = writeln!(
        out,
        "| kvmprof, all programs (sub-reason evidence included) per exit | {} |",
        f(all)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench_common::parse_runs;

    #[test]
    fn pairs_above_empty() {
        let runs = parse_runs(
            "RUN phase=kcost round=1 tool=kvmprof-empty ex=1 pc_kvmprof_empty_exit=100:1000 pc_kvmprof_empty_entry=100:800\n\
             RUN phase=kcost round=1 tool=kvmprof ex=1 pc_kvm_exit=100:3000 pc_kvm_entry=100:2400 pc_ev_msr=50:2000\n\
             RUN phase=impact round=1 tool=kvmprof ex=1 pc_kvm_exit=100:9000 pc_kvm_entry=100:9000\n",
        );
        let t = kcost_table(&runs);
        assert!(
            t.contains("| empty (read the same fields, no work) | 1800 ns |"),
            "{t}"
        );
        assert!(t.contains("| kvmprof | 5400 ns |"), "{t}");
        assert!(
            t.contains("| kvmprof above empty | 3600 ns (3.00× empty) |"),
            "{t}"
        );
        // (100·3000 + 100·2400 + 50·2000) / 100 exits
        assert!(t.contains("per exit | 6400 ns |"), "{t}");
        assert!(kcost_table(&parse_runs("RUN phase=impact tool=kvmprof\n")).is_empty());
    }
}
