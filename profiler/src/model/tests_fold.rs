//! Folded VMs (fold.rs) against the reference: the same view with the vCPU rows of the VMs
//! not shown emptied, whichever VMs are shown and whenever that changes.

use super::{
    fold_view,
    reference::reference,
    span_ns,
    tests_fast::{first_diff, pairs, series, with_changes},
    Model, View,
};
use crate::{decode::ExitNames, sample::Sample};

#[test]
fn folded_refreshes_match_the_reference() {
    let names = ExitNames::builtin();
    // The series' VMs are pids 10, 11 and 12.
    let opens: [Option<&[u32]>; 5] = [
        Some(&[]),
        Some(&[10]),
        Some(&[12, 11]),
        None,
        Some(&[12, 99]),
    ];
    let (mut folded_vcpus, mut in_place) = (0, 0);
    for seed in 0..40 {
        for (churn, told) in [(false, false), (false, true), (true, false), (true, true)] {
            let s = series(seed, 12, churn);
            let s = if told { with_changes(s) } else { s };
            let (mut m, mut view) = (Model::new(), View::default());
            let empty = Sample::default();
            let (mut last, mut changes) = (None, 0);
            for (n, (a, b)) in pairs(&s, &empty).into_iter().enumerate() {
                // Another set of VMs shown every fourth refresh.
                let open = opens[(seed as usize + n / 4) % opens.len()];
                changes += usize::from(n > 0 && last != Some(open));
                last = Some(open);
                m.show_vcpu_rows(open);
                let wholes = m.wholes;
                m.refresh(&mut view, a, b, &names);
                let mut want = reference(a, b, &names, span_ns(a, b));
                if let Some(o) = open {
                    fold_view(&mut want, o);
                    if m.wholes == wholes {
                        let vms = want.vms.iter().filter(|v| !o.contains(&v.pid));
                        folded_vcpus += vms.map(|v| v.vcpus.len()).sum::<usize>();
                        in_place += 1;
                    }
                }
                if view != want {
                    panic!(
                        "seed {seed} churn {churn} told {told} refresh {n} showing {open:?}: {}",
                        first_diff(&view, &want)
                    );
                }
            }
            if !churn {
                // In place but for the first refresh and those after the VMs shown changed.
                assert_eq!(m.wholes, 1 + changes, "seed {seed} told {told}");
            }
        }
    }
    // The folded path was taken, on vCPUs with exits.
    assert!(
        in_place > 200 && folded_vcpus > 500,
        "{in_place} {folded_vcpus}"
    );
}
