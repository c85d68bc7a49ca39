//! `kvmprof advise`: live data, a recording or perf text → evidence-backed findings.

use anyhow::bail;

use crate::{
    advice::{self, config::VmConfig, host::HostFacts, Input},
    app::{collect_live_for, open_recording_span},
    cli::{AdviseArgs, AdviseFormat, Global},
    report,
    text::printable,
};

pub fn advise(g: &Global, a: &AdviseArgs) -> anyhow::Result<()> {
    let host = HostFacts::local();
    let guest = a.guest.map(advice::GuestKind::from);
    let mut input = if let Some(path) = a.from_perf.as_ref() {
        perf_input(path, guest)?
    } else if let Some(path) = a.file.as_ref() {
        match open_recording_span(path)? {
            Some((first, last, names, recorded)) => {
                Input::from_samples(&first, &last, &names, recorded)
            }
            // Not a recording: perf text.
            None => perf_input(path, guest)?,
        }
    } else {
        let l = collect_live_for(g, a.duration, a.until_signal, a.ready_file.as_deref())?;
        let mut input =
            Input::from_samples(&l.first, &l.last, &l.names, host).with_missing(&l.missing);
        input.inhibits = advice::InhibitNames::load(&l.tracefs);
        with_libvirt_domains(input, std::path::Path::new(LIBVIRT_RUN))
    };
    if let Some(path) = a.thresholds.as_ref() {
        input.thresholds = advice::Thresholds::load(path)?;
    }
    if let Some(cmdline) = a.qemu_cmdline.as_deref() {
        let argv = split_words(cmdline)?;
        let cfg = VmConfig::from_cmdline(&argv);
        let pids: Vec<u32> = input
            .view
            .vms
            .iter()
            .filter(|v| {
                a.vm.as_deref()
                    .is_none_or(|n| v.name == n || v.pid.to_string() == n)
            })
            .map(|v| v.pid)
            .collect();
        match pids.as_slice() {
            [] => bail!("no VM to apply --qemu-cmdline to: the session saw no exits (or no VM matched --vm)"),
            [pid] => {
                input.configs.insert(*pid, cfg);
            }
            _ => bail!("--qemu-cmdline describes one VM but the session has {}: pick it with --vm NAME", pids.len()),
        }
    }
    if let Some(want) = a.vm.as_deref() {
        input
            .view
            .vms
            .retain(|v| v.name == want || v.pid.to_string() == want);
        if input.view.vms.is_empty() {
            bail!("no VM named `{want}` in this session");
        }
    }
    let rep = advice::analyze(&input);
    match a.format {
        AdviseFormat::Text => crate::out::print(&advice::render_text(&rep))?,
        AdviseFormat::Json => crate::out::println(&advice::render_json(&rep))?,
    }
    Ok(())
}

/// A pasted perf profile: exit reasons and any msr / ioport / mmio tables with them.
fn perf_input(path: &std::path::Path, guest: Option<advice::GuestKind>) -> anyhow::Result<Input> {
    let (shown, imp) = report::import_perf_file(path)?;
    for w in &imp.warnings {
        eprintln!("kvmprof: warning: {}", printable(&format!("{shown}: {w}")));
    }
    Ok(Input::from_perf(&imp, guest))
}

/// Where libvirt keeps the status XML of running QEMU domains.
const LIBVIRT_RUN: &str = "/run/libvirt/qemu";

/// Adds each live VM's libvirt domain XML so configuration checks also see what libvirt
/// configured. The status files are found by listing `dir` and matched by the `<domstatus
/// pid>` inside, never by joining a VM's name (which any user can choose) into a path.
pub fn with_libvirt_domains(mut input: Input, dir: &std::path::Path) -> Input {
    let pids: std::collections::HashSet<u32> = input.view.vms.iter().map(|v| v.pid).collect();
    for (dom, xml) in crate::vm::libvirt::status_files(dir) {
        // A stale file of an earlier run names another pid and is not used.
        if pids.contains(&dom.pid) {
            input = input.with_libvirt_xml(dom.pid, &xml);
        }
    }
    input
}

/// Shell-like word splitting for a pasted command line: whitespace separates, single and
/// double quotes group, backslash escapes the next character.
pub fn split_words(s: &str) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') | (None, '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                    in_word = true;
                }
            }
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if let Some(q) = quote {
        bail!("--qemu-cmdline has an unclosed {q} quote");
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::{split_words, with_libvirt_domains};
    use crate::{
        advice::{HostFacts, Input},
        model::{View, VmView},
    };

    #[test]
    fn libvirt_status_xml_of_the_running_pid_is_used() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let xml = |pid: u32| {
            format!(
                "<domstatus state='running' pid='{pid}'><domain type='kvm'><name>win</name>\
                 <features><hyperv mode='custom'><relaxed state='on'/><vapic state='on'/>\
                 <synic state='on'/><stimer state='on'/></hyperv></features></domain></domstatus>"
            )
        };
        let view = View {
            vms: vec![VmView {
                pid: 42,
                name: "win".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        std::fs::write(dir.join("win.xml"), xml(7)).unwrap();
        let stale = with_libvirt_domains(Input::from_view(view.clone(), HostFacts::default()), dir);
        assert!(
            !stale.configs.contains_key(&42),
            "a stale domain file was used"
        );
        std::fs::write(dir.join("win.xml"), xml(42)).unwrap();
        let live = with_libvirt_domains(Input::from_view(view, HostFacts::default()), dir);
        let cfg = live.configs.get(&42).expect("config from the domain XML");
        assert!(cfg.has("hv-synic") && cfg.has("hv-stimer"), "{cfg:?}");
    }

    /// A VM's name is not a path: names that point elsewhere (absolute, `..`), a symlink and
    /// a FIFO in the run directory are all ignored; the real status file, whatever its name,
    /// is found by the pid inside.
    #[test]
    fn vm_names_never_become_paths() {
        let run = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let status = |pid: u32| {
            format!(
                "<domstatus state='running' pid='{pid}'><domain type='kvm'><name>n</name>\
                 <features><hyperv mode='custom'><synic state='on'/><stimer state='on'/>\
                 </hyperv></features></domain></domstatus>"
            )
        };
        let plant = |name: &str, pid: u32| {
            let p = elsewhere.path().join(name);
            std::fs::write(&p, status(pid)).unwrap();
            p
        };
        let abs = plant("abs.xml", 42);
        plant("rel.xml", 43);
        let target = plant("target.xml", 44);
        std::os::unix::fs::symlink(&target, run.path().join("link.xml")).unwrap();
        let fifo = std::ffi::CString::new(
            run.path()
                .join("fifo.xml")
                .into_os_string()
                .into_encoded_bytes(),
        )
        .unwrap();
        // SAFETY: a valid NUL-terminated path; mkfifo only creates a directory entry.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        std::fs::write(run.path().join("some-other-name.xml"), status(45)).unwrap();
        let up = format!(
            "../{}/rel",
            elsewhere.path().file_name().unwrap().to_str().unwrap()
        );
        let vm = |pid: u32, name: &str| VmView {
            pid,
            name: name.into(),
            ..Default::default()
        };
        let view = View {
            vms: vec![
                vm(42, abs.with_extension("").to_str().unwrap()),
                vm(43, &up),
                vm(44, "link"),
                vm(46, "fifo"),
                vm(45, "legit"),
            ],
            ..Default::default()
        };
        let input = with_libvirt_domains(Input::from_view(view, HostFacts::default()), run.path());
        for pid in [42, 43, 44, 46] {
            assert!(
                !input.configs.contains_key(&pid),
                "pid {pid}: a file outside the listing was applied: {:?}",
                input.configs[&pid]
            );
        }
        let cfg = input
            .configs
            .get(&45)
            .expect("the status file found by pid");
        assert!(cfg.has("hv-synic") && cfg.has("hv-stimer"), "{cfg:?}");
    }

    #[test]
    fn splits_like_a_shell() {
        let w = split_words(
            r#"qemu-system-x86_64 -name "guest=win 11,debug-threads=on" -cpu 'host,hv-time' a\ b"#,
        )
        .unwrap();
        assert_eq!(
            w,
            [
                "qemu-system-x86_64",
                "-name",
                "guest=win 11,debug-threads=on",
                "-cpu",
                "host,hv-time",
                "a b"
            ]
        );
        assert!(split_words("-cpu 'host")
            .unwrap_err()
            .to_string()
            .contains("unclosed"));
        assert!(split_words("   ").unwrap().is_empty());
    }
}
