//! Pure pieces of the VM test's initramfs: a newc cpio writer and an `ldd` output parser.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    Dir,
    File { data: Vec<u8>, mode: u32 },
    CharDev { major: u32, minor: u32 },
}

/// An in-memory initramfs. Paths are absolute (`/bin/busybox`); parents are added implicitly.
#[derive(Debug, Default)]
pub struct Archive {
    entries: BTreeMap<String, Entry>,
}

fn normalize(path: &str) -> Result<String> {
    let rel = path.trim_start_matches('/').trim_end_matches('/');
    if rel.is_empty()
        || rel
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
    {
        bail!("invalid initramfs path {path:?}: use an absolute path without '.', '..' or '//'");
    }
    Ok(rel.to_string())
}

impl Archive {
    fn add_parents(&mut self, rel: &str) {
        let mut end = 0;
        while let Some(i) = rel[end..].find('/') {
            end += i;
            self.entries
                .entry(rel[..end].to_string())
                .or_insert(Entry::Dir);
            end += 1;
        }
    }

    fn insert(&mut self, path: &str, entry: Entry) -> Result<()> {
        let rel = normalize(path)?;
        self.add_parents(&rel);
        if let Some(Entry::File { .. } | Entry::CharDev { .. }) = self.entries.get(&rel) {
            if matches!(entry, Entry::Dir) {
                bail!("initramfs path {path:?} is already a file, cannot make it a directory");
            }
        }
        self.entries.insert(rel, entry);
        Ok(())
    }

    pub fn add_dir(&mut self, path: &str) -> Result<()> {
        self.insert(path, Entry::Dir)
    }

    pub fn add_file(&mut self, path: &str, data: Vec<u8>, mode: u32) -> Result<()> {
        self.insert(
            path,
            Entry::File {
                data,
                mode: mode & 0o7777,
            },
        )
    }

    pub fn add_char_dev(&mut self, path: &str, major: u32, minor: u32) -> Result<()> {
        self.insert(path, Entry::CharDev { major, minor })
    }

    /// Paths in archive order (parents first).
    pub fn paths(&self) -> Vec<String> {
        self.entries.keys().map(|p| format!("/{p}")).collect()
    }

    /// Serialize as an uncompressed newc ("070701") cpio archive, as the kernel unpacks it.
    pub fn to_newc(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (ino, (name, entry)) in self.entries.iter().enumerate() {
            let (mode, data, rdev): (u32, &[u8], (u32, u32)) = match entry {
                Entry::Dir => (0o040755, &[], (0, 0)),
                Entry::File { data, mode } => (0o100000 | mode, data, (0, 0)),
                Entry::CharDev { major, minor } => (0o020600, &[], (*major, *minor)),
            };
            let nlink = if matches!(entry, Entry::Dir) { 2 } else { 1 };
            write_record(&mut out, ino as u32 + 1, mode, nlink, name, data, rdev);
        }
        write_record(&mut out, 0, 0, 1, "TRAILER!!!", &[], (0, 0));
        out
    }
}

fn pad4(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

fn write_record(
    out: &mut Vec<u8>,
    ino: u32,
    mode: u32,
    nlink: u32,
    name: &str,
    data: &[u8],
    rdev: (u32, u32),
) {
    let fields = [
        ino,
        mode,
        0, // uid
        0, // gid
        nlink,
        0, // mtime
        data.len() as u32,
        0, // devmajor
        0, // devminor
        rdev.0,
        rdev.1,
        name.len() as u32 + 1,
        0, // check
    ];
    out.extend_from_slice(b"070701");
    for f in fields {
        out.extend_from_slice(format!("{f:08x}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(out);
    out.extend_from_slice(data);
    pad4(out);
}

/// The shared libraries (and the ELF interpreter) that `ldd` lists, as absolute paths.
/// The vDSO is skipped; a library `ldd` cannot find is an error.
pub fn parse_ldd(text: &str) -> Result<Vec<PathBuf>> {
    let mut libs = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if line.contains("statically linked") || line.contains("not a dynamic executable") {
            continue;
        }
        let target = match line.split_once("=>") {
            Some((name, rest)) => {
                let rest = rest.trim();
                if rest.starts_with("not found") {
                    bail!(
                        "ldd: shared library {} not found: install it or link kvmprof statically",
                        name.trim()
                    );
                }
                rest
            }
            None => line,
        };
        let path = target.split_whitespace().next().unwrap_or("");
        if path.starts_with('/') {
            libs.push(PathBuf::from(path));
        }
    }
    Ok(libs)
}

/// Add the program `src` at `dest` and every shared library `ldd` lists for it (at the same
/// paths; symlinks are followed, so each library lands as a plain file).
pub fn add_program_with_libs(a: &mut Archive, dest: &str, src: &Path) -> Result<()> {
    let data = std::fs::read(src).with_context(|| format!("cannot read {}", src.display()))?;
    a.add_file(dest, data, 0o755)?;
    let out = Command::new("ldd")
        .arg(src)
        .output()
        .context("cannot run ldd")?;
    for lib in parse_ldd(&String::from_utf8_lossy(&out.stdout))? {
        let data = std::fs::read(&lib).with_context(|| format!("cannot read {}", lib.display()))?;
        a.add_file(&lib.to_string_lossy(), data, 0o755)?;
    }
    Ok(())
}

/// Add kernel modules (paths under `kdir`, without `.ko`; `.ko.xz` is decompressed with `xz`)
/// as `/lib/modules/<name>.ko`, for busybox insmod.
pub fn add_kernel_modules(a: &mut Archive, kdir: &Path, modules: &[&str]) -> Result<()> {
    for m in modules {
        let name = m.rsplit('/').next().unwrap_or(m);
        let xz = kdir.join(format!("{m}.ko.xz"));
        let data = if xz.exists() {
            let out = Command::new("xz")
                .arg("-dc")
                .arg(&xz)
                .output()
                .context("cannot run xz (apt-get install xz-utils)")?;
            if !out.status.success() {
                bail!(
                    "xz -dc {} failed: {}",
                    xz.display(),
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            out.stdout
        } else {
            let p = kdir.join(format!("{m}.ko"));
            std::fs::read(&p).with_context(|| format!("cannot read {}", p.display()))?
        };
        a.add_file(&format!("/lib/modules/{name}.ko"), data, 0o644)?;
    }
    Ok(())
}

/// The initramfs of `cargo xtask bench-vm` (separate from the VM test's, which stays small):
/// busybox, `init` as /init, kvmprof, each of `programs` (name in /bin, host path) with its
/// shared libraries, the kernel modules, and `files` (path, contents).
#[allow(dead_code)] // used by `cargo xtask bench-vm` (bench_vm.rs)
pub fn bench_initramfs(
    init: Vec<u8>,
    kvmprof: &Path,
    programs: &[(&str, PathBuf)],
    kdir: &Path,
    modules: &[&str],
    files: &[(&str, Vec<u8>)],
) -> Result<Archive> {
    let mut a = Archive::default();
    for d in ["/proc", "/sys", "/dev", "/tmp", "/root"] {
        a.add_dir(d)?;
    }
    a.add_char_dev("/dev/console", 5, 1)?;
    a.add_file("/init", init, 0o755)?;
    let busybox = Path::new("/bin/busybox");
    let data = std::fs::read(busybox)
        .context("cannot read /bin/busybox (apt-get install busybox-static)")?;
    a.add_file("/bin/busybox", data, 0o755)?;
    add_program_with_libs(&mut a, "/bin/kvmprof", kvmprof)?;
    for (name, src) in programs {
        add_program_with_libs(&mut a, &format!("/bin/{name}"), src)?;
    }
    add_kernel_modules(&mut a, kdir, modules)?;
    for (path, data) in files {
        a.add_file(path, data.clone(), 0o644)?;
    }
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8], at: usize, field: usize) -> u32 {
        let s = std::str::from_utf8(&b[at + 6 + field * 8..at + 14 + field * 8]).unwrap();
        u32::from_str_radix(s, 16).unwrap()
    }

    #[test]
    fn newc_layout_and_parents() {
        let mut a = Archive::default();
        a.add_file("/bin/sh", b"abc".to_vec(), 0o755).unwrap();
        a.add_char_dev("/dev/console", 5, 1).unwrap();
        a.add_dir("/tmp").unwrap();
        assert_eq!(
            a.paths(),
            ["/bin", "/bin/sh", "/dev", "/dev/console", "/tmp"]
        );
        let b = a.to_newc();
        assert_eq!(b.len() % 4, 0);
        assert_eq!(&b[..6], b"070701");
        // first record: "bin" directory, 110-byte header + "bin\0" = 114 -> padded to 116
        assert_eq!(hex(&b, 0, 1), 0o040755);
        assert_eq!(&b[110..114], b"bin\0");
        // second record: header 116..226, "bin/sh\0" 226..233, pad to 236, data 236..239
        assert_eq!(&b[116..122], b"070701");
        assert_eq!(hex(&b, 116, 1), 0o100755);
        assert_eq!(hex(&b, 116, 6), 3);
        assert_eq!(&b[226..233], b"bin/sh\0");
        assert_eq!(&b[236..239], b"abc");
        let console = b.windows(12).position(|w| w == b"dev/console\0").unwrap();
        assert_eq!(hex(&b, console - 110, 9), 5);
        assert_eq!(hex(&b, console - 110, 10), 1);
        assert!(b.windows(11).any(|w| w == b"TRAILER!!!\0"));
    }

    #[test]
    fn bad_paths_are_errors() {
        let mut a = Archive::default();
        assert!(a.add_dir("/").is_err());
        assert!(a.add_dir("/a/../b").is_err());
        assert!(a.add_file("/a//b", vec![], 0o644).is_err());
        a.add_file("/x", vec![], 0o644).unwrap();
        assert!(a.add_dir("/x").is_err());
    }

    #[test]
    fn ldd_output() {
        let text = "\tlinux-vdso.so.1 (0x00007ffc)\n\
            \tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f)\n\
            \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)\n\
            \t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n";
        let libs = parse_ldd(text).unwrap();
        assert_eq!(
            libs,
            [
                PathBuf::from("/lib/x86_64-linux-gnu/libgcc_s.so.1"),
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2"),
            ]
        );
        assert!(parse_ldd("\tstatically linked\n").unwrap().is_empty());
        let err = parse_ldd("\tlibfoo.so => not found\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("libfoo.so not found"), "{err}");
    }
}
