//! VM identity from a VMM command line (QEMU option syntax).

/// Name and uuid given on a command line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    pub name: Option<String>,
    pub uuid: Option<String>,
}

/// True for QEMU binaries: argv[0] basename `qemu-system-*`, `qemu-kvm` or `kvm`.
pub fn is_qemu(argv: &[String]) -> bool {
    let Some(arg0) = argv.first() else {
        return false; // Kernel threads and zombies have no command line.
    };
    let base = arg0.rsplit('/').next().unwrap_or(arg0);
    base.starts_with("qemu-system-") || base == "qemu-kvm" || base == "kvm"
}

/// `-name`/`-uuid` from any command line (QEMU's own, or a wrapper such as
/// `kvmprof exercise ... -- -name guest=NAME`). The last occurrence wins, as in QEMU.
pub fn identity(argv: &[String]) -> Identity {
    let mut id = Identity::default();
    let mut args = argv.iter().skip(1);
    while let Some(arg) = args.next() {
        // QEMU accepts `-opt value`, `--opt value`, and `-opt=value` / `--opt=value`.
        let opt = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-'));
        let Some(opt) = opt else { continue };
        let (key, inline) = match opt.split_once('=') {
            Some((k, v)) => (k, Some(v.to_string())),
            None => (opt, None),
        };
        if key != "name" && key != "uuid" {
            continue;
        }
        let Some(value) = inline.or_else(|| args.next().cloned()) else {
            break;
        };
        if key == "uuid" {
            id.uuid = Some(value);
        } else if let Some(name) = guest_name(&value) {
            id.name = Some(name);
        }
    }
    id
}

/// The guest name in a `-name` value: `guest=NAME,debug-threads=on` or `NAME,...` (`guest` is
/// the implied first key). `,,` is a literal comma.
pub fn guest_name(value: &str) -> Option<String> {
    let opts = split_opts(value);
    let mut name = None;
    for (i, opt) in opts.iter().enumerate() {
        match opt.split_once('=') {
            Some(("guest", v)) => name = Some(v.to_string()),
            None if i == 0 => name = Some(opt.clone()),
            _ => {}
        }
    }
    name.filter(|n| !n.is_empty())
}

/// Splits a QEMU option string at single commas; `,,` stands for one literal comma.
pub fn split_opts(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != ',' {
            cur.push(c);
        } else if chars.peek() == Some(&',') {
            chars.next();
            cur.push(',');
        } else {
            out.push(std::mem::take(&mut cur));
        }
    }
    out.push(cur);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        s.split(' ').map(String::from).collect()
    }

    #[test]
    fn names_and_uuid() {
        let id = identity(&argv(
            "/usr/bin/qemu-system-x86_64 -name guest=win11-gaming,debug-threads=on -uuid 1234-ab -m 4G",
        ));
        assert_eq!(id.name.as_deref(), Some("win11-gaming"));
        assert_eq!(id.uuid.as_deref(), Some("1234-ab"));
        assert_eq!(
            identity(&argv("qemu-kvm -name plain")).name.as_deref(),
            Some("plain")
        );
        assert_eq!(
            identity(&argv("qemu-kvm --name=a,,b,,,process=x"))
                .name
                .as_deref(),
            Some("a,b,")
        );
        assert_eq!(
            identity(&argv("kvmprof exercise -n 3 -- -name guest=demo"))
                .name
                .as_deref(),
            Some("demo")
        );
        assert_eq!(identity(&argv("qemu-kvm -name")), Identity::default());
        assert_eq!(identity(&argv("qemu-kvm -name process=p")).name, None);
        assert_eq!(identity(&[]), Identity::default());
    }

    #[test]
    fn qemu_binaries() {
        assert!(is_qemu(&argv("/usr/bin/qemu-system-x86_64 -m 1")));
        assert!(is_qemu(&argv("qemu-kvm")) && is_qemu(&argv("/usr/bin/kvm")));
        assert!(!is_qemu(&argv("/usr/bin/kvmprof")) && !is_qemu(&[]));
    }

    #[test]
    fn split_escaped_commas() {
        assert_eq!(split_opts("a,,b,c"), ["a,b", "c"]);
        assert_eq!(split_opts(""), [""]);
    }
}
