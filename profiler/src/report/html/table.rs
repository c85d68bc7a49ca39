//! The table of the numbers: one row per session, VM and exit reason, as `report --format
//! json` has them. Each cell shows a rounded value and carries the exact one in a `data-*`
//! attribute (integers as integers, floats in Rust's shortest round-trip form, as serde_json
//! writes them), so a reader of the page can check it against the JSON.

use maud::{html, Markup};

use super::{charts::ns, swatch, Session};
use crate::text::printable;

/// The numbers of every session.
pub fn numbers(sessions: &[(String, Session)]) -> Markup {
    html! {
        table.numbers {
            thead {
                tr {
                    th { "Session" } th { "VM" } th.num { "pid" } th { "Reason" }
                    th.num { "Exits" } th.num { "Exits/s" } th.num { "Samp%" }
                    th.num { "Time" } th.num { "Time%" } th.num { "Mean" } th.num { "Min" }
                    th.num { "Max" } th.num { "p50" } th.num { "p99" } th.num { "p99.9" }
                }
            }
            tbody {
                @for (i, (label, s)) in sessions.iter().enumerate() {
                    @for vm in &s.data.view.vms {
                        @for r in &vm.reasons {
                            tr.reason data-session=(i) data-pid=(vm.pid) data-isa=(r.isa)
                                data-reason=(r.reason) data-hlt=(r.hlt) {
                                td { span.sw style=(swatch(i)) {} (printable(label)) }
                                td { (printable(&vm.name)) }
                                td.num { (vm.pid) }
                                td { (printable(&r.name)) }
                                td.num data-count=(r.count) { (r.count) }
                                td.num data-rate-per-s=(r.rate_per_s) { (format!("{:.1}", r.rate_per_s)) }
                                td.num data-samples-pct=(r.samples_pct) { (format!("{:.2}", r.samples_pct)) }
                                td.num data-total-ns=(r.total_ns) { (ns(r.total_ns as f64)) }
                                td.num data-time-pct=(r.time_pct) { (format!("{:.2}", r.time_pct)) }
                                td.num data-mean-ns=(r.mean_ns) { (ns(r.mean_ns)) }
                                td.num data-min-ns=(r.min_ns) { (ns(r.min_ns as f64)) }
                                td.num data-max-ns=(r.max_ns) { (ns(r.max_ns as f64)) }
                                @if s.data.has_hist {
                                    td.num data-p50-ns=(r.p50_ns) { (ns(r.p50_ns as f64)) }
                                    td.num data-p99-ns=(r.p99_ns) { (ns(r.p99_ns as f64)) }
                                    td.num data-p999-ns=(r.p999_ns) { (ns(r.p999_ns as f64)) }
                                } @else {
                                    td.na title="perf text has no histograms" { "–" }
                                    td.na title="perf text has no histograms" { "–" }
                                    td.na title="perf text has no histograms" { "–" }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
