//! Crafted and misleading damage: resynchronising stays linear in the bytes however many
//! candidate frames overlap, and each kind of damage gets the warning that names it.

use std::time::Duration;

use super::tests::{frame_starts, read_all, small_file};
use super::*;

/// `n` bytes in which every 24th offset looks like a key frame (kind, lengths and zstd magic
/// in place) whose body, `n / 2` bytes, fails its checksum. Checking each one on its own costs
/// O(n²) (bytes × frame length).
fn decoys(n: usize) -> Vec<u8> {
    let mut unit = Vec::new();
    unit.extend_from_slice(&(n as u32 / 2).to_le_bytes()); // body length
    unit.extend_from_slice(&0u32.to_le_bytes()); // wrong checksum
    unit.push(KIND_KEY);
    unit.extend_from_slice(&100u32.to_le_bytes()); // raw length
    unit.extend_from_slice(&16u32.to_le_bytes()); // zstd length
    unit.extend_from_slice(&[0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0]);
    assert_eq!(unit.len(), 24);
    unit.iter().copied().cycle().take(n).collect()
}

/// Opens `bytes`, timed in this thread's CPU time (other tests and processes do not count).
fn open_timed(bytes: Vec<u8>) -> (Recording, Duration) {
    let t = crate::test_util::thread_cpu();
    let rec = Recording::from_bytes("hostile.kvmprof", bytes).unwrap();
    (rec, crate::test_util::thread_cpu() - t)
}

#[test]
fn resynchronising_is_linear_in_the_damaged_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (data, _, ends) = small_file(dir.path());
    let header = &data[..frame_starts(&data, &ends)[0]];
    let with = |n| [header, &decoys(n)[..]].concat();
    let (small, t1) = open_timed(with(256 << 10));
    let (big, t8) = open_timed(with(2 << 20));
    for rec in [&small, &big] {
        assert_eq!(rec.len(), 0);
        let w = rec.warnings();
        assert!(
            w.len() == 2 && w[0].contains("nothing after it is readable"),
            "{w:?}"
        );
    }
    // Linear: 8× the bytes costs about 8× the time (quadratic was 64× and minutes).
    let ratio = t8.as_secs_f64() / t1.as_secs_f64().max(0.05);
    assert!(
        t8 < Duration::from_secs(20) && ratio < 16.0,
        "{t1:?} → {t8:?}"
    );
}

/// The case as reported: a valid header and 17 MiB of 0x01 bytes took 50 minutes to open.
#[test]
fn a_header_and_17_mib_of_ones_opens_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (data, _, ends) = small_file(dir.path());
    let header = &data[..frame_starts(&data, &ends)[0]];
    let (rec, t) = open_timed([header, &vec![1; 17 << 20][..]].concat());
    assert_eq!(rec.len(), 0);
    assert!(t < Duration::from_secs(20), "{t:?}");
}

/// Through a megabyte of decoys to the intact key frame after them: resynchronising still
/// finds the first one, from a file on disk read piecewise.
#[test]
fn resynchronising_through_decoys_finds_the_key_frame_after_them() {
    let dir = tempfile::tempdir().unwrap();
    let (data, samples, ends) = small_file(dir.path());
    let start = frame_starts(&data, &ends)[0];
    let junk = decoys((1 << 20) + 5);
    assert!(
        junk.len() / 2 > data.len(),
        "decoys reach past the real frames"
    );
    let bytes = [&data[..start], &junk, &data[start..]].concat();
    let path = dir.path().join("decoys.kvmprof");
    std::fs::write(&path, bytes).unwrap();
    let rec = Recording::open(&path).unwrap();
    assert_eq!(read_all(&rec), samples);
    assert!(rec.finished());
    let w = rec.warnings();
    let resumed = format!(
        "skipped to the next key frame at byte {}",
        start + junk.len()
    );
    assert!(w.len() == 1 && w[0].contains(&resumed), "{w:?}");
}

/// A length field damaged in the last key interval runs past the end of the file like a cut
/// tail, but intact frames follow it: it is damage, not a stopped recorder.
#[test]
fn a_corrupted_length_is_not_called_a_truncation() {
    let dir = tempfile::tempdir().unwrap();
    let (data, samples, ends) = small_file(dir.path());
    let starts = frame_starts(&data, &ends);
    for (k, &at) in starts.iter().enumerate().take(samples.len()).skip(8) {
        let mut bad = data.clone();
        let len = u32_at(&bad, at).unwrap() | 1 << 20;
        bad[at..at + 4].copy_from_slice(&len.to_le_bytes());
        let rec = Recording::from_bytes("len.kvmprof", bad).unwrap();
        assert_eq!(read_all(&rec), samples[..k]);
        assert!(rec.finished(), "the end marker is intact");
        let w = rec.warnings();
        let want = format!("frame at byte {at} is damaged (impossible frame length {len}");
        assert!(w.len() == 1 && w[0].contains(&want), "{w:?}");
        assert!(
            !w[0].contains("truncated") && !w[0].contains("mid-write"),
            "{w:?}"
        );
    }
}

/// An uncompressed length over the limit (checksum resealed) is named as such, not as an
/// unknown frame kind.
#[test]
fn a_too_large_uncompressed_length_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let (data, samples, ends) = small_file(dir.path());
    let at = frame_starts(&data, &ends)[1];
    let mut bad = data.clone();
    let (len, body) = (u32_at(&bad, at).unwrap() as usize, at + FRAME_PREFIX);
    bad[body + 1..body + 5].copy_from_slice(&(MAX_FRAME as u32 + 1).to_le_bytes());
    let sum = crc(&bad[body..body + len]);
    bad[at + 4..at + 8].copy_from_slice(&sum.to_le_bytes());
    let rec = Recording::from_bytes("raw.kvmprof", bad).unwrap();
    assert_eq!(read_all(&rec), [&samples[..1], &samples[4..]].concat());
    let w = &rec.warnings()[0];
    assert!(w.contains("impossible uncompressed length 67108865"), "{w}");
    assert!(!w.contains("unknown frame kind"), "{w}");
}

/// "No samples" carries the warning that says why.
#[test]
fn no_samples_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let (data, _, ends) = small_file(dir.path());
    let start = frame_starts(&data, &ends)[0];
    let mut bad = data[..ends[3]].to_vec(); // one key interval, no end marker
    bad[start + 30] ^= 0xff;
    let rec = Recording::from_bytes("bad.kvmprof", bad).unwrap();
    assert!(rec.is_empty());
    let e = rec.no_samples().to_string();
    assert!(
        e.starts_with("bad.kvmprof: the recording holds no samples (frame at byte"),
        "{e}"
    );
    assert!(
        e.contains("checksum mismatch") && e.contains("unfinished"),
        "{e}"
    );
    let clean = Recording::from_bytes("x.kvmprof", data[..start].to_vec()).unwrap();
    assert!(clean
        .no_samples()
        .to_string()
        .contains("did not stop cleanly"));
}

/// A recording that shrinks after it was opened (another process truncating it) gives an
/// error for the samples that are gone, not a crash.
#[test]
fn a_recording_truncated_after_opening_errs() {
    let dir = tempfile::tempdir().unwrap();
    let (data, samples, ends) = small_file(dir.path());
    let path = dir.path().join("shrinks.kvmprof");
    std::fs::write(&path, &data).unwrap();
    let rec = Recording::open(&path).unwrap();
    assert_eq!(rec.len(), samples.len());
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(ends[4] as u64)
        .unwrap();
    assert_eq!(rec.sample(2).unwrap(), samples[2]);
    let e = rec.sample(6).unwrap_err().to_string();
    assert!(e.contains("cannot read it"), "{e}");
}

#[test]
fn only_regular_files_are_opened() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo.kvmprof");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let zero = dir.path().join("zero.kvmprof");
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    for (path, kind) in [
        (&fifo, "a FIFO"),
        (&zero, "a character device"),
        (&dir.path().to_path_buf(), "a directory"),
    ] {
        let e = Recording::open(path).err().unwrap().to_string();
        let want = format!(
            "{} is not a regular file ({kind}): give the path of a .kvmprof recording",
            path.display()
        );
        assert_eq!(e, want);
    }
    // A symlink to a regular recording is followed.
    let (data, samples, _) = small_file(dir.path());
    std::fs::write(dir.path().join("real.kvmprof"), data).unwrap();
    let link = dir.path().join("link.kvmprof");
    std::os::unix::fs::symlink(dir.path().join("real.kvmprof"), &link).unwrap();
    assert_eq!(read_all(&Recording::open(&link).unwrap()), samples);
}
