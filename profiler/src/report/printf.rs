//! The few C printf conversions perf's tables use, byte for byte (glibc semantics).
//!
//! Rust's `{:w.p}` rounds the exact binary value half-to-even like glibc; what differs is width
//! (Rust counts chars, C bytes) and non-finite values (Rust prints `NaN`, glibc `nan`/`-nan`).

/// `%*s`: right-aligned in `w` bytes, never truncated.
pub(crate) fn s(w: usize, v: &str) -> String {
    let mut out = " ".repeat(w.saturating_sub(v.len()));
    out.push_str(v);
    out
}

/// `%-*s`: left-aligned in `w` bytes, never truncated.
pub(crate) fn ls(w: usize, v: &str) -> String {
    let mut out = v.to_string();
    out.push_str(&" ".repeat(w.saturating_sub(v.len())));
    out
}

/// `%*.*f`.
pub(crate) fn f(w: usize, p: usize, x: f64) -> String {
    if x.is_finite() {
        return s(w, &format!("{x:.p$}"));
    }
    let sign = if x.is_sign_negative() { "-" } else { "" };
    let body = if x.is_nan() { "nan" } else { "inf" };
    s(w, &format!("{sign}{body}"))
}

/// `%#llx`: `0` for zero, else `0x` and lower-case hex digits.
pub(crate) fn alt_hex(v: u64) -> String {
    if v == 0 {
        "0".into()
    } else {
        format!("{v:#x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Expected strings from Python's `%` operator (C printf rules):
    /// `'[%8.2f]' % x`, `'[%9.2f]' % x`, `'[%7.2f]' % x`; a negative NaN as glibc prints it.
    #[test]
    fn matches_c_printf() {
        let cases: &[(f64, &str, &str, &str)] = &[
            (0.125, "[    0.12]", "[     0.12]", "[   0.12]"),
            (0.375, "[    0.38]", "[     0.38]", "[   0.38]"),
            (2.675, "[    2.67]", "[     2.67]", "[   2.67]"),
            (99.995, "[  100.00]", "[   100.00]", "[ 100.00]"),
            (12.345, "[   12.35]", "[    12.35]", "[  12.35]"),
            (1234567.885, "[1234567.89]", "[1234567.89]", "[1234567.89]"),
            (-0.0, "[   -0.00]", "[    -0.00]", "[  -0.00]"),
            (f64::NAN, "[     nan]", "[      nan]", "[    nan]"),
            (-f64::NAN, "[    -nan]", "[     -nan]", "[   -nan]"),
            (f64::INFINITY, "[     inf]", "[      inf]", "[    inf]"),
        ];
        for &(x, w8, w9, w7) in cases {
            assert_eq!(format!("[{}]", f(8, 2, x)), w8, "{x}");
            assert_eq!(format!("[{}]", f(9, 2, x)), w9, "{x}");
            assert_eq!(format!("[{}]", f(7, 2, x)), w7, "{x}");
        }
    }

    #[test]
    fn strings_and_hex() {
        assert_eq!(s(10, "VM-EXIT"), "   VM-EXIT");
        assert_eq!(s(3, "toolong"), "toolong");
        // Bytes, not chars: "µ" is two bytes.
        assert_eq!(s(4, "µs"), " µs");
        assert_eq!(ls(5, "ab"), "ab   ");
        assert_eq!(alt_hex(0), "0");
        assert_eq!(alt_hex(0x3f8), "0x3f8");
        assert_eq!(alt_hex(0xfee0_00b0), "0xfee000b0");
    }
}
