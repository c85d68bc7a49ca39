//! The CRC32 of any byte range from two running CRCs: with `S(x)` the CRC of the bytes from a
//! fixed base up to offset `x`, the CRC of `[a, b)` is `S(b) ^ shift(S(a), b - a)` (zlib's
//! crc32_combine read backwards). That lets one pass over the data check every overlapping
//! candidate frame at the cost of a few word operations each, instead of rereading its body.

/// The reflected CRC-32 polynomial (the one crc32fast and zlib use).
const POLY: u32 = 0xedb8_8320;

/// a·b modulo the polynomial, in CRC-32's reflected bit order.
fn mul(a: u32, mut b: u32) -> u32 {
    let mut p = 0;
    for bit in (0..32).rev() {
        if a & (1 << bit) != 0 {
            p ^= b;
        }
        b = if b & 1 != 0 { (b >> 1) ^ POLY } else { b >> 1 };
    }
    p
}

/// x^(2^k) for k = 0..64 (x^1 is bit 30 in reflected order).
const fn x2n_table() -> [u32; 64] {
    let mut t = [0u32; 64];
    let mut p: u32 = 1 << 30;
    let mut k = 0;
    while k < 64 {
        t[k] = p;
        // p = p·p, as `mul` does (const fn: no closures or iterators).
        let (a, mut b, mut q) = (p, p, 0u32);
        let mut bit = 32;
        while bit > 0 {
            bit -= 1;
            if a & (1 << bit) != 0 {
                q ^= b;
            }
            b = if b & 1 != 0 { (b >> 1) ^ POLY } else { b >> 1 };
        }
        p = q;
        k += 1;
    }
    t
}

const X2N: [u32; 64] = x2n_table();

/// x^(8·n): the factor that moves a CRC past `n` bytes.
fn x8n(n: u64) -> u32 {
    let mut p = 1 << 31; // x^0
    let mut k = 3; // x^(2^3) = x^8: one byte
    let mut n = n;
    while n != 0 {
        if n & 1 != 0 {
            p = mul(X2N[k & 63], p);
        }
        n >>= 1;
        k += 1;
    }
    p
}

/// CRCs of ranges, caching the shift factor of the last length (candidate frames in hostile
/// data tend to repeat one length).
#[derive(Default)]
pub(super) struct RangeCrc {
    last: Option<(u64, u32)>,
}

impl RangeCrc {
    /// CRC of `[a, b)` given `S(a)`, `S(b)` and `b - a`.
    pub(super) fn of(&mut self, s_a: u32, s_b: u32, len: u64) -> u32 {
        let f = match self.last {
            Some((l, f)) if l == len => f,
            _ => {
                let f = x8n(len);
                self.last = Some((len, f));
                f
            }
        };
        s_b ^ mul(f, s_a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_crc_matches_a_direct_crc() {
        let data: Vec<u8> = (0..5000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let s = |x: usize| crc32fast::hash(&data[..x]);
        let mut r = RangeCrc::default();
        for (a, b) in [
            (0, 0),
            (0, 1),
            (3, 4),
            (17, 4000),
            (100, 5000),
            (4999, 5000),
            (0, 5000),
        ] {
            let want = crc32fast::hash(&data[a..b]);
            assert_eq!(r.of(s(a), s(b), (b - a) as u64), want, "[{a}, {b})");
        }
    }
}
