//! One forward pass that checks frames without rereading them: the frames a reader asks about,
//! the frame after each intact one, and every offset that could start a frame it may resume at
//! after damage (a candidate). Each frame's checksum is settled from two running CRCs (at its
//! body's start and end, `crc_range`), so overlapping candidates, however many and however
//! long, cost O(1) each and the whole pass is linear in the bytes; before, every candidate's
//! body was checksummed on its own (a header and 17 MiB of 0x01 bytes took 50 minutes).
//! Bytes are read in windows of `CHUNK` with positioned reads: memory is the window plus the
//! frames still open, never the file.

use std::{
    cmp::Reverse,
    collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap},
};

use super::bytes::Bytes;
use super::crc_range::RangeCrc;
use super::frame::{body_prefix, Bad, FrameRef, Head, HEAD, ZSTD_MAGIC};
use super::{FRAME_PREFIX, KIND_END};

/// Bytes read per window.
const CHUNK: usize = 1 << 20;
/// Bytes needed at an offset to judge it as a candidate: head and zstd magic.
const CAND: usize = HEAD + ZSTD_MAGIC.len();
/// Candidates open at once before further ones are ignored. Recordings have one or two open;
/// only crafted data reaches this, and then bounds the memory spent on it (~20 MiB).
pub(super) const MAX_OPEN: usize = 1 << 18;

/// Which offsets count as candidates.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Want {
    /// Intact key frames: where replay can resume.
    Keys,
    /// Intact frames of any kind: to tell damage from a cut tail.
    Any,
}

type Verdict = Result<(u8, FrameRef), Bad>;

struct Open {
    head: Head,
    /// CRC from `base` to the body's start, once the pass got there.
    at_start: Option<u32>,
    candidate: bool,
    /// A reader will ask for the verdict (else only an intact candidate is remembered).
    wanted: bool,
}

pub(super) struct Scanner<'a> {
    src: &'a Bytes,
    version: u32,
    want: Want,
    end: u64,
    /// Window of the data: `buf` holds the bytes from `buf_at`.
    buf: Vec<u8>,
    buf_at: u64,
    /// CRC of the bytes from some base to `x` (the base moves on whenever no frame is open).
    hasher: crc32fast::Hasher,
    x: u64,
    ranges: RangeCrc,
    /// Every offset below this has been judged as a candidate.
    judged: u64,
    starts: BinaryHeap<Reverse<(u64, u64)>>,
    ends: BinaryHeap<Reverse<(u64, u64)>>,
    open: HashMap<u64, Open>,
    known: BTreeMap<u64, Verdict>,
    /// Candidates still open, and those found intact.
    unsettled: BTreeSet<u64>,
    found: BTreeSet<u64>,
    /// Nobody asks about offsets below this any more.
    floor: u64,
    /// First candidate ignored because `MAX_OPEN` were open.
    pub(super) overloaded: Option<u64>,
    /// A read failed (the file shrank or the disk failed): the pass stops.
    pub(super) broken: Option<String>,
}

impl<'a> Scanner<'a> {
    pub(super) fn new(src: &'a Bytes, version: u32, want: Want, from: u64) -> Scanner<'a> {
        Scanner {
            src,
            version,
            want,
            end: src.len(),
            buf: Vec::new(),
            buf_at: from,
            hasher: crc32fast::Hasher::new(),
            x: from,
            ranges: RangeCrc::default(),
            judged: from,
            starts: BinaryHeap::new(),
            ends: BinaryHeap::new(),
            open: HashMap::new(),
            known: BTreeMap::new(),
            unsettled: BTreeSet::new(),
            found: BTreeSet::new(),
            floor: from,
            overloaded: None,
            broken: None,
        }
    }

    /// The frame at `at` (offsets asked about never decrease).
    pub(super) fn check(&mut self, at: u64) -> Verdict {
        self.forget_below(at);
        loop {
            if let Some(v) = self.known.get(&at) {
                return v.clone();
            }
            if let Some(why) = &self.broken {
                return Err(Bad::Damaged(why.clone()));
            }
            if !self.open.contains_key(&at) {
                if at + (FRAME_PREFIX as u64) < self.x {
                    // Not reached by the pass's bookkeeping (cannot happen for offsets a
                    // reader walks to); check it on its own.
                    return self.check_alone(at);
                }
                self.register(at);
                continue;
            }
            if !self.step() {
                let why = self
                    .broken
                    .clone()
                    .unwrap_or_else(|| "cannot be checked".into());
                return Err(Bad::Damaged(why));
            }
        }
    }

    /// The first candidate at or after `from` that is intact.
    pub(super) fn next_found(&mut self, from: u64) -> Option<u64> {
        self.forget_below(from);
        loop {
            let first = self.found.range(from..).next().copied();
            let open = self.unsettled.range(from..).next().copied();
            if let Some(p) = first {
                if self.judged > p && open.is_none_or(|o| o > p) {
                    return Some(p);
                }
            }
            if !self.step() {
                return first.filter(|_| self.broken.is_none());
            }
        }
    }

    fn forget_below(&mut self, at: u64) {
        if at > self.floor {
            self.floor = at;
            self.known = self.known.split_off(&at);
            self.found = self.found.split_off(&at);
            self.unsettled = self.unsettled.split_off(&at);
        }
    }

    fn check_alone(&mut self, at: u64) -> Verdict {
        let read = |n| {
            self.src
                .read_upto(at, n)
                .map_err(|e| Bad::Damaged(e.to_string()))
        };
        let h = Head::parse(&read(HEAD)?, at, self.version, self.end)?;
        let body = self
            .src
            .read_upto(h.body_start(), h.len)
            .map_err(|e| Bad::Damaged(e.to_string()))?;
        if super::crc(&body) != h.want {
            return Err(Bad::Damaged("checksum mismatch".into()));
        }
        h.frame(self.version)
    }

    /// Start checking the frame at `at` for a reader (its body must not have been passed yet).
    fn register(&mut self, at: u64) {
        match self.src.read_upto(at, HEAD) {
            Ok(b) => match Head::parse(&b, at, self.version, self.end) {
                Ok(h) => self.open_frame(h, false),
                Err(bad) => {
                    self.known.insert(at, Err(bad));
                }
            },
            Err(e) => self.broken = Some(format!("cannot read byte {at}: {e}")),
        }
    }

    /// Open a frame: a candidate (`candidate`), or one a reader wants the verdict of.
    fn open_frame(&mut self, head: Head, candidate: bool) {
        let at = head.at;
        if let Some(o) = self.open.get_mut(&at) {
            if candidate && !o.candidate {
                o.candidate = true;
                self.unsettled.insert(at);
            }
            o.wanted |= !candidate;
            return;
        }
        if candidate {
            if self.open.len() >= MAX_OPEN {
                self.overloaded.get_or_insert(at);
                return;
            }
            self.unsettled.insert(at);
        }
        self.starts.push(Reverse((head.body_start(), at)));
        let o = Open {
            head,
            at_start: None,
            candidate,
            wanted: !candidate,
        };
        self.open.insert(at, o);
    }

    /// One event: a body start or end reached, a window judged, or bytes hashed. False when
    /// nothing is left to do.
    fn step(&mut self) -> bool {
        if self.broken.is_some() {
            return false;
        }
        let s = self.hasher.clone().finalize();
        if let Some(&Reverse((at_s, p))) = self.starts.peek() {
            if at_s == self.x {
                self.starts.pop();
                if let Some(o) = self.open.get_mut(&p) {
                    o.at_start = Some(s);
                    self.ends.push(Reverse((o.head.end(), p)));
                }
                return true;
            }
        }
        if let Some(&Reverse((at_e, p))) = self.ends.peek() {
            if at_e == self.x {
                self.ends.pop();
                self.settle(p, s);
                return true;
            }
        }
        // Bytes may be hashed up to the body start of the first offset not yet judged.
        let limit = (self.judged + FRAME_PREFIX as u64).min(self.end);
        if self.x >= limit {
            if self.judged < self.end {
                self.judge();
                return self.broken.is_none();
            }
            return false;
        }
        let next = [self.starts.peek(), self.ends.peek()]
            .into_iter()
            .flatten()
            .map(|Reverse((o, _))| *o)
            .fold(limit, u64::min);
        if self.open.is_empty() {
            // Nothing open needs the running CRC: skip the bytes and restart it.
            self.x = next;
            self.hasher = crc32fast::Hasher::new();
            return true;
        }
        if self.fill(self.x.min(self.judged), next) {
            let from = (self.x - self.buf_at) as usize;
            let to = (next - self.buf_at) as usize;
            self.hasher.update(&self.buf[from..to]);
            self.x = next;
        }
        self.broken.is_none()
    }

    /// The frame at `p` has its body hashed: settle its checksum and the rest of its checks.
    fn settle(&mut self, p: u64, at_end: u32) {
        let Some(o) = self.open.remove(&p) else {
            return;
        };
        let crc = self
            .ranges
            .of(o.at_start.unwrap_or(0), at_end, o.head.len as u64);
        let intact = crc == o.head.want && o.head.frame(self.version).is_ok();
        if o.candidate && self.unsettled.remove(&p) && intact {
            self.found.insert(p);
        }
        if p < self.floor || !(o.wanted || intact) {
            return;
        }
        let v = if crc == o.head.want {
            o.head.frame(self.version)
        } else {
            Err(Bad::Damaged("checksum mismatch".into()))
        };
        if let Ok((kind, f)) = &v {
            // A reader that accepts this frame asks about the next one: check it in this pass.
            if *kind != KIND_END && f.end() < self.end {
                self.register(f.end());
            }
        }
        self.known.insert(p, v);
    }

    /// Judge the next window of offsets as candidates.
    fn judge(&mut self) {
        let from = self.judged;
        let to = (from + CHUNK as u64).min(self.end);
        if !self.fill(self.x.min(from), to + CAND as u64) {
            return;
        }
        let base = self.buf_at;
        let bytes_at = |p: u64| (p - base) as usize;
        // Offsets whose telltale byte is in place: the zstd magic of a key frame, or a valid
        // kind byte for any frame.
        let offsets: Vec<u64> = match self.want {
            Want::Keys => {
                let off = FRAME_PREFIX + body_prefix(self.version);
                let hay = &self.buf[bytes_at(from) + off.min(self.buf.len() - bytes_at(from))..];
                memchr::memmem::find_iter(hay, &ZSTD_MAGIC)
                    .map(|m| from + m as u64)
                    .take_while(|&p| p < to)
                    .collect()
            }
            Want::Any => {
                let hay = &self.buf[(bytes_at(from) + FRAME_PREFIX).min(self.buf.len())..];
                memchr::memchr3_iter(1, 2, 3, hay)
                    .map(|m| from + m as u64)
                    .take_while(|&p| p < to)
                    .collect()
            }
        };
        for p in offsets {
            let i = bytes_at(p);
            let b = &self.buf[i..(i + CAND).min(self.buf.len())];
            let Ok(h) = Head::parse(b, p, self.version, self.end) else {
                continue;
            };
            let fits = match self.want {
                Want::Keys => h.could_be_key(b, self.version),
                Want::Any => h.frame(self.version).is_ok(),
            };
            if fits {
                self.open_frame(h, true);
            }
        }
        self.judged = to;
    }

    /// Make the window hold `[from, to)` (clipped to the data). False if a read failed.
    fn fill(&mut self, from: u64, to: u64) -> bool {
        let to = to.min(self.end);
        let buf_end = self.buf_at + self.buf.len() as u64;
        if from >= self.buf_at && to <= buf_end {
            return true;
        }
        if from < self.buf_at || from > buf_end {
            self.buf.clear();
            self.buf_at = from;
        } else {
            self.buf.drain(..(from - self.buf_at) as usize);
            self.buf_at = from;
        }
        let have = self.buf_at + self.buf.len() as u64;
        if to <= have {
            return true;
        }
        let old = self.buf.len();
        self.buf.resize(old + (to - have) as usize, 0);
        if let Err(e) = self.src.read_at(have, &mut self.buf[old..]) {
            self.buf.truncate(old);
            self.broken = Some(format!("cannot read byte {have}: {e}"));
            return false;
        }
        true
    }
}
