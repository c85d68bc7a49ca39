//! `kvmprof advise`: live data, a recording or perf text → evidence-backed findings.

use anyhow::bail;

use crate::{
    advice::{self, config::VmConfig, Input},
    cli::AdviseArgs,
    cli::AdviseFormat,
    session::{Env, Session},
};

pub fn advise(env: &mut Env, a: &AdviseArgs) -> anyhow::Result<()> {
    crate::out::print(&render(env, a)?)
}

/// The advice as text or JSON.
pub fn render(env: &mut Env, a: &AdviseArgs) -> anyhow::Result<String> {
    let sampling = env.sampling();
    let session = Session::open(&a.input, env, sampling, "analyse")?;
    let mut input = input(&session, a.guest.map(advice::GuestKind::from))?;
    if let Some(path) = a.thresholds.as_ref() {
        input.thresholds = advice::Thresholds::load(path)?;
    }
    if let Some(cmdline) = a.qemu_cmdline.as_deref() {
        let argv = split_words(cmdline)?;
        let cfg = VmConfig::from_cmdline(&argv);
        let pid = match &a.vm {
            Some(sel) => sel.find(&input.view)?.pid,
            None => match input.view.vms.as_slice() {
                [] => bail!("no VM to apply --qemu-cmdline to: the session saw no exits"),
                [one] => one.pid,
                many => bail!("--qemu-cmdline describes one VM but the session has {}: pick it with --vm NAME", many.len()),
            },
        };
        input.configs.insert(pid, cfg);
    }
    if let Some(sel) = &a.vm {
        input.view = sel.narrow(std::mem::take(&mut input.view))?;
    }
    let mut rep = advice::analyze(&input);
    if input.inhibits.source == "kernel BTF" {
        rep.notes.push(
            "APICv inhibit names from the kernel's BTF (enum kvm_apicv_inhibit): its \
             kvm_apicv_inhibit_changed format prints bare bit numbers, and the bits differ from \
             Linux 6.3+'s"
                .into(),
        );
    }
    Ok(match a.format {
        AdviseFormat::Text => advice::render_text(&rep),
        AdviseFormat::Json => advice::render_json(&rep) + "\n",
    })
}

/// What the advice sees of the session: a pasted perf profile (exit reasons and any msr /
/// ioport / mmio tables with them), or two samples with the host's facts — and, live, the
/// tracepoints that were missing, the kernel's inhibit names and libvirt's domain XML.
pub(crate) fn input(session: &Session, guest: Option<advice::GuestKind>) -> anyhow::Result<Input> {
    if let Some(imp) = session.perf_import() {
        return Ok(Input::from_perf(imp, guest));
    }
    let s = session.span()?;
    let mut input = Input::from_samples(&s.older, &s.newer, &s.names, s.host);
    input.guest_hint = guest;
    if let Some(tracefs) = &s.tracefs {
        input = input.with_missing(&s.missing);
        input.inhibits = advice::InhibitNames::load(tracefs);
        input = with_libvirt_domains(input, std::path::Path::new(LIBVIRT_RUN));
    }
    Ok(input)
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
