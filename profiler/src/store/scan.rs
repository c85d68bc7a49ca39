//! Opening a recording: walk the frames (framing damage is skipped to the next key frame with a
//! warning) and decode every frame once; key intervals decode independently, so they are spread
//! over the cores.

use std::{
    collections::{HashMap, HashSet},
    sync::atomic::{AtomicUsize, Ordering},
    sync::Mutex,
};

use std::path::Path;

use super::bytes::Bytes;
use super::cursor::Cursor;
use super::frame::{body_prefix, Bad, FrameRef, Head};
use super::resync::{Scanner, Want, MAX_OPEN};
use super::{crc, FRAME_PREFIX, KIND_END};

/// Decode every key interval: the offsets of the key frames whose intervals were decoded, and
/// the first frame that fails in each (offset → why); an interval stops at its first failure,
/// as a sequential reader would.
pub(super) fn decode_intervals(
    frames: &[FrameRef],
    keys: &[usize],
    step: impl Fn(&mut Cursor, &FrameRef) -> Result<(), String> + Sync,
) -> (HashSet<u64>, HashMap<u64, String>) {
    let intervals: Vec<&[FrameRef]> = (0..keys.len())
        .map(|i| &frames[keys[i]..keys.get(i + 1).copied().unwrap_or(frames.len())])
        .collect();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(intervals.len())
        .max(1);
    let next = AtomicUsize::new(0);
    let failed = Mutex::new(HashMap::new());
    let work = || loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(interval) = intervals.get(i) else {
            break;
        };
        let mut cur = Cursor::default();
        for f in interval.iter() {
            if let Err(why) = step(&mut cur, f) {
                failed
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(f.offset, why);
                break;
            }
        }
    };
    std::thread::scope(|s| {
        for _ in 1..threads {
            s.spawn(work);
        }
        work();
    });
    let decoded = intervals
        .iter()
        .filter_map(|i| i.first())
        .map(|f| f.offset)
        .collect();
    (
        decoded,
        failed.into_inner().unwrap_or_else(|e| e.into_inner()),
    )
}

/// What a pass over the frames found.
pub(super) struct Walk {
    pub(super) frames: Vec<FrameRef>,
    pub(super) keys: Vec<usize>,
    pub(super) warnings: Vec<String>,
    pub(super) finished: bool,
    /// A warning already says the file ends mid-frame.
    pub(super) truncated: bool,
}

/// Every frame from `at` that parses and `decode` accepts; damage is skipped to the next key
/// frame with a warning naming its byte offset.
pub(super) fn walk(
    src: &Bytes,
    path: &Path,
    version: u32,
    mut at: u64,
    mut decode: impl FnMut(&FrameRef) -> Result<(), String>,
) -> Walk {
    let name = path.display();
    let end = src.len();
    let mut sc = Scanner::new(src, version, Want::Keys, at);
    let mut w = Walk {
        frames: vec![],
        keys: vec![],
        warnings: vec![],
        finished: false,
        truncated: false,
    };
    let mut group_ok = false;
    while at < end {
        let problem = match sc.check(at) {
            Ok((KIND_END, f)) => {
                w.finished = true;
                if f.end() < end {
                    w.warnings.push(format!(
                        "{name}: {} bytes after the end marker at byte {at} ignored",
                        end - f.end()
                    ));
                }
                break;
            }
            Ok((_, f)) if f.key || group_ok => match decode(&f) {
                Ok(()) => {
                    if f.key {
                        w.keys.push(w.frames.len());
                    }
                    at = f.end();
                    w.frames.push(f);
                    group_ok = true;
                    continue;
                }
                Err(why) => Bad::Damaged(why),
            },
            Ok(_) => Bad::Damaged("delta frame without its key frame".into()),
            Err(b) => b,
        };
        group_ok = false;
        let next = sc.next_found(at + 1);
        let n = w.frames.len();
        // A frame running past the end is a cut tail only if nothing intact follows it;
        // otherwise its length field is what is damaged.
        let cut = matches!(problem, Bad::Incomplete | Bad::PastEnd(_))
            && next.is_none()
            && Scanner::new(src, version, Want::Any, at + 1)
                .next_found(at + 1)
                .is_none();
        w.warnings.push(match problem {
            _ if cut => {
                w.truncated = true;
                format!(
                    "{name}: unfinished: truncated at byte {at} (the recorder was stopped \
                     mid-write); replaying the {n} complete samples before it"
                )
            }
            Bad::PastEnd(len) => format!(
                "{name}: frame at byte {at} is damaged (impossible frame length {len}: \
                 the file ends at byte {end})"
            ),
            Bad::Incomplete => {
                format!("{name}: frame at byte {at} is damaged (cut short by the end of the file)")
            }
            Bad::Damaged(why) => format!("{name}: frame at byte {at} is damaged ({why})"),
        });
        let Some(next) = next else {
            if let Some(m) = w.warnings.last_mut().filter(|_| !cut) {
                m.push_str(&format!(
                    ": nothing after it is readable; replaying the {n} samples before it"
                ));
            }
            break;
        };
        if let Some(m) = w.warnings.last_mut() {
            m.push_str(&format!(": skipped to the next key frame at byte {next}"));
        }
        at = next;
    }
    if let Some(p) = sc.overloaded {
        w.warnings.push(format!(
            "{name}: more than {MAX_OPEN} overlapping frame candidates from byte {p} (not \
             something kvmprof writes): some of them were not considered for resuming"
        ));
    }
    w
}

/// Whether the data ends with an intact end marker (written only by a clean stop).
pub(super) fn ends_with_end_marker(src: &Bytes, version: u32) -> bool {
    let len = (FRAME_PREFIX + body_prefix(version)) as u64;
    let Some(at) = src.len().checked_sub(len) else {
        return false;
    };
    let Ok(b) = src.read_upto(at, len as usize) else {
        return false;
    };
    let body = &b[FRAME_PREFIX..];
    Head::parse(&b, at, version, src.len())
        .is_ok_and(|h| crc(body) == h.want && matches!(h.frame(version), Ok((KIND_END, _))))
}
