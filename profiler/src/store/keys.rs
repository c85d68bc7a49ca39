//! Key sets of consecutive samples: which keys went, changed or arrived.

use serde::{Deserialize, Serialize};

use super::delta::CodecError;
use crate::sample::{Key, KeyMap};

/// Which keys of the previous sample went away or changed, and which keys are new.
/// Indices are into the previous sample's keys in order, gap-coded (most gaps are 0).
#[derive(Serialize, Deserialize, Default, Debug, Clone)]
pub(super) struct KeysDelta {
    gone: Vec<u32>,
    changed: Vec<u32>,
    /// New keys, each field as a wrapping difference from the previous new key.
    added: Vec<[i32; 4]>,
}

/// Walk two sorted maps together: `both(i, key, old, new)` for shared keys (i = index in `old`),
/// `gone(i)` for keys only in `old`, `added(key, new)` for keys only in `new`.
fn merge_keys<'a, V: 'a>(
    old: &'a impl KeyMap<V>,
    new: &'a impl KeyMap<V>,
    mut both: impl FnMut(u32, &'a Key, &'a V, &'a V),
    mut gone: impl FnMut(u32),
    mut added: impl FnMut(&'a Key, &'a V),
) {
    let mut o = old.walk().enumerate().peekable();
    let mut n = new.walk().peekable();
    loop {
        match (o.peek(), n.peek()) {
            (Some((i, (ok, ov))), Some((nk, nv))) => match ok.cmp(nk) {
                std::cmp::Ordering::Equal => {
                    both(*i as u32, ok, ov, nv);
                    o.next();
                    n.next();
                }
                std::cmp::Ordering::Less => {
                    gone(*i as u32);
                    o.next();
                }
                std::cmp::Ordering::Greater => {
                    added(nk, nv);
                    n.next();
                }
            },
            (Some((i, _)), None) => {
                gone(*i as u32);
                o.next();
            }
            (None, Some((nk, nv))) => {
                added(nk, nv);
                n.next();
            }
            (None, None) => break,
        }
    }
}

fn gaps(sorted: &[u32]) -> Vec<u32> {
    let mut last = None;
    sorted
        .iter()
        .map(|&i| {
            let g = match last {
                None => i,
                Some(l) => i - l - 1,
            };
            last = Some(i);
            g
        })
        .collect()
}

fn ungaps(g: &[u32], limit: usize) -> Result<Vec<usize>, CodecError> {
    let mut out = Vec::with_capacity(g.len());
    let mut next = 0usize;
    for &gap in g {
        let i = next
            .checked_add(gap as usize)
            .filter(|&i| i < limit)
            .ok_or("key index out of range")?;
        out.push(i);
        next = i + 1;
    }
    Ok(out)
}

fn key_diff(k: &Key, last: &Key) -> [i32; 4] {
    [
        k.tgid.wrapping_sub(last.tgid) as i32,
        k.vcpu.wrapping_sub(last.vcpu) as i32,
        k.isa.wrapping_sub(last.isa) as i32,
        k.reason.wrapping_sub(last.reason) as i32,
    ]
}

fn key_undiff(d: &[i32; 4], last: &Key) -> Key {
    Key {
        tgid: last.tgid.wrapping_add(d[0] as u32),
        vcpu: last.vcpu.wrapping_add(d[1] as u32),
        isa: last.isa.wrapping_add(d[2] as u32),
        reason: last.reason.wrapping_add(d[3] as u32),
    }
}

/// A key to encode with its old value (None when added) and new value.
pub(super) type Entry<'a, V> = (Key, Option<&'a V>, &'a V);

/// Encode keys of `new` against `old`; returns the delta and, in entry order, (key, old, new)
/// to encode (old is None for added keys).
pub(super) fn encode_keys<'a, V: PartialEq + 'a>(
    old: &'a impl KeyMap<V>,
    new: &'a impl KeyMap<V>,
) -> (KeysDelta, Vec<Entry<'a, V>>) {
    let (mut gone, mut changed, mut added) = (vec![], vec![], vec![]);
    let (mut ch_vals, mut add_vals) = (vec![], vec![]);
    let mut last = Key::default();
    merge_keys(
        old,
        new,
        |i, k, ov, nv| {
            if ov != nv {
                changed.push(i);
                ch_vals.push((*k, Some(ov), nv));
            }
        },
        |i| gone.push(i),
        |k, nv| {
            added.push(key_diff(k, &last));
            last = *k;
            add_vals.push((*k, None, nv));
        },
    );
    ch_vals.extend(add_vals);
    let delta = KeysDelta {
        gone: gaps(&gone),
        changed: gaps(&changed),
        added,
    };
    (delta, ch_vals)
}

/// Apply a key delta to `map`: removes gone keys and returns, in entry order, the keys whose
/// values the caller must now update (changed ones exist in `map`, added ones do not yet).
pub(super) fn apply_keys<V>(
    map: &mut impl KeyMap<V>,
    d: &KeysDelta,
) -> Result<Vec<(Key, bool)>, CodecError> {
    let old_keys: Vec<Key> = map.walk().map(|(k, _)| *k).collect();
    let gone = ungaps(&d.gone, old_keys.len())?;
    let changed = ungaps(&d.changed, old_keys.len())?;
    for i in gone {
        map.drop_key(&old_keys[i]);
    }
    let mut out = Vec::with_capacity(changed.len() + d.added.len());
    for i in changed {
        if map.find(&old_keys[i]).is_none() {
            return Err("a key is both gone and changed".into());
        }
        out.push((old_keys[i], true));
    }
    let mut last = Key::default();
    for a in &d.added {
        let k = key_undiff(a, &last);
        if map.find(&k).is_some() {
            return Err("an added key already exists".into());
        }
        out.push((k, false));
        last = k;
    }
    Ok(out)
}
