//! Opening a recording: walk the frames (framing damage is skipped to the next key frame with a
//! warning) and decode every frame once; key intervals decode independently, so they are spread
//! over the cores.

use std::{
    collections::{HashMap, HashSet},
    sync::atomic::{AtomicUsize, Ordering},
    sync::Mutex,
};

use std::path::Path;

use super::reader::{next_key_frame, parse_frame, Bad, Cursor, FrameRef};
use super::KIND_END;

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
}

/// Every frame from `at` that parses and `decode` accepts; damage is skipped to the next key
/// frame with a warning naming its byte offset.
pub(super) fn walk(
    data: &[u8],
    path: &Path,
    version: u32,
    mut at: usize,
    mut decode: impl FnMut(&FrameRef) -> Result<(), String>,
) -> Walk {
    let name = path.display();
    let mut w = Walk {
        frames: vec![],
        keys: vec![],
        warnings: vec![],
        finished: false,
    };
    let mut group_ok = false;
    while at < data.len() {
        let problem = match parse_frame(data, at, version) {
            Ok((KIND_END, _, end)) => {
                w.finished = true;
                if end < data.len() {
                    w.warnings.push(format!(
                        "{name}: {} bytes after the end marker at byte {at} ignored",
                        data.len() - end
                    ));
                }
                break;
            }
            Ok((_, f, end)) if f.key || group_ok => match decode(&f) {
                Ok(()) => {
                    if f.key {
                        w.keys.push(w.frames.len());
                    }
                    w.frames.push(f);
                    group_ok = true;
                    at = end;
                    continue;
                }
                Err(why) => Bad::Damaged(why),
            },
            Ok(_) => Bad::Damaged("delta frame without its key frame".into()),
            Err(b) => b,
        };
        group_ok = false;
        let next = next_key_frame(data, at + 1, version);
        let n = w.frames.len();
        w.warnings.push(match (problem, next) {
            (Bad::Incomplete, None) => format!(
                "{name}: truncated at byte {at} (the recorder was stopped mid-write): \
                 replaying the {n} complete samples before it"
            ),
            (Bad::Incomplete, Some(_)) => {
                format!("{name}: frame at byte {at} is damaged (length runs past the data)")
            }
            (Bad::Damaged(why), _) => format!("{name}: frame at byte {at} is damaged ({why})"),
        });
        let Some(next) = next else {
            if let Some(m) = w.warnings.last_mut() {
                if !m.contains("truncated") {
                    m.push_str(&format!(
                        ": nothing after it is readable; replaying the {n} samples before it"
                    ));
                }
            }
            break;
        };
        if let Some(m) = w.warnings.last_mut() {
            m.push_str(&format!(": skipped to the next key frame at byte {next}"));
        }
        at = next;
    }
    w
}
