//! Extracts `__print_symbolic(EXPR, { value, "name" }, ...)` tables from a tracepoint's
//! `print fmt`. The text is C after macro expansion, so values may be expressions
//! (`0x040 + 14`, `-1`) and names concatenated literals (`"KVM_EXIT_" "IO"`).

/// One `__print_symbolic` call.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Symbolic {
    /// The first argument, e.g. `REC->exit_reason & 0xffff`.
    pub expr: String,
    /// (value as u32, name), in print-fmt order.
    pub entries: Vec<(u32, String)>,
    /// Entries that could not be parsed (their codes fall back to built-in names).
    pub skipped: usize,
}

/// All `__print_symbolic` calls in `fmt`, in order. Never fails: what cannot be read is skipped.
pub fn tables(fmt: &str) -> Vec<Symbolic> {
    const CALL: &[u8] = b"__print_symbolic(";
    let b = fmt.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'"' {
            i = skip_string(b, i);
        } else if b[i..].starts_with(CALL) {
            let Some((args, end)) = split_args(fmt, i + CALL.len()) else {
                break; // Unterminated call: nothing after it can be trusted.
            };
            if let Some((expr, items)) = args.split_first() {
                let mut t = Symbolic {
                    expr: expr.trim().to_string(),
                    ..Default::default()
                };
                for item in items {
                    match entry(item) {
                        Some(e) => t.entries.push(e),
                        None => t.skipped += 1,
                    }
                }
                out.push(t);
            }
            i = end;
        } else {
            i += 1;
        }
    }
    out
}

/// Index just past the string literal starting at `start` (a `"`).
fn skip_string(b: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    b.len()
}

/// Splits the argument list that starts at `start` (just after `(`) at top-level commas.
/// Returns the arguments and the index just past the closing `)`.
fn split_args(s: &str, start: usize) -> Option<(Vec<&str>, usize)> {
    let b = s.as_bytes();
    let (mut depth, mut i, mut arg_start) = (0usize, start, start);
    let mut args = Vec::new();
    while i < b.len() {
        match b[i] {
            b'"' => {
                i = skip_string(b, i);
                continue;
            }
            b'(' | b'{' | b'[' => depth += 1,
            b')' | b'}' | b']' if depth > 0 => depth -= 1,
            b')' => {
                args.push(&s[arg_start..i]);
                return Some((args, i + 1));
            }
            b',' if depth == 0 => {
                args.push(&s[arg_start..i]);
                arg_start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// `{ 0x040 + 14, "PF excp" }` → (0x4e, "PF excp").
fn entry(item: &str) -> Option<(u32, String)> {
    let inner = item.trim().strip_prefix('{')?.strip_suffix('}')?;
    let text = format!("{inner})");
    let (args, _) = split_args(&text, 0)?;
    let [value, name] = args.as_slice() else {
        return None;
    };
    let v = eval(value)?;
    // Wrap to the tracepoint field's width: -1 is SVM_EXIT_ERR, 0xffffffff in a u32.
    Some((v as u32, literals(name)?))
}

/// Concatenated C string literals: `"KVM_EXIT_" "IO"` → `KVM_EXIT_IO`.
fn literals(s: &str) -> Option<String> {
    let mut out = String::new();
    let mut rest = s.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let body = rest.strip_prefix('"')?;
        let mut chars = body.char_indices();
        let end = loop {
            match chars.next()? {
                (_, '\\') => match chars.next()? {
                    (_, 'n') => out.push('\n'),
                    (_, 't') => out.push('\t'),
                    (_, c) => out.push(c),
                },
                (j, '"') => break j,
                (_, c) => out.push(c),
            }
        };
        rest = body[end + 1..].trim_start();
    }
    Some(out)
}

/// Evaluates an integer constant expression: numbers (C decimal/hex/octal, with u/l
/// suffixes), parentheses, unary `-` `~`, binary `+` `-` `<<` `|`.
pub fn eval(s: &str) -> Option<i128> {
    let toks = tokenize(s)?;
    let mut p = Parser {
        toks: &toks,
        pos: 0,
    };
    let v = p.or()?;
    (p.pos == toks.len()).then_some(v)
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Tok {
    Num(i128),
    Op(&'static str),
}

fn tokenize(s: &str) -> Option<Vec<Tok>> {
    let mut toks = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() {
            let start = i;
            while i < b.len() && b[i].is_ascii_alphanumeric() {
                i += 1;
            }
            toks.push(Tok::Num(number(&s[start..i])?));
        } else {
            let op = ["<<", "+", "-", "|", "~", "(", ")"]
                .into_iter()
                .find(|op| b[i..].starts_with(op.as_bytes()))?;
            toks.push(Tok::Op(op));
            i += op.len();
        }
    }
    Some(toks)
}

fn number(s: &str) -> Option<i128> {
    let digits = s.trim_end_matches(['u', 'U', 'l', 'L']);
    if let Some(hex) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        i128::from_str_radix(hex, 16).ok()
    } else if digits.len() > 1 && digits.starts_with('0') {
        i128::from_str_radix(&digits[1..], 8).ok()
    } else {
        digits.parse().ok()
    }
}

struct Parser<'a> {
    toks: &'a [Tok],
    pos: usize,
}

impl Parser<'_> {
    fn eat(&mut self, op: &str) -> bool {
        let hit = matches!(self.toks.get(self.pos), Some(Tok::Op(o)) if *o == op);
        self.pos += usize::from(hit);
        hit
    }

    fn or(&mut self) -> Option<i128> {
        let mut v = self.shift()?;
        while self.eat("|") {
            v |= self.shift()?;
        }
        Some(v)
    }

    fn shift(&mut self) -> Option<i128> {
        let mut v = self.add()?;
        while self.eat("<<") {
            let by = u32::try_from(self.add()?).ok().filter(|b| *b < 64)?;
            v = v.checked_shl(by)?;
        }
        Some(v)
    }

    fn add(&mut self) -> Option<i128> {
        let mut v = self.unary()?;
        loop {
            if self.eat("+") {
                v = v.checked_add(self.unary()?)?;
            } else if self.eat("-") {
                v = v.checked_sub(self.unary()?)?;
            } else {
                return Some(v);
            }
        }
    }

    fn unary(&mut self) -> Option<i128> {
        if self.eat("-") {
            return self.unary()?.checked_neg();
        }
        if self.eat("~") {
            return Some(!self.unary()?);
        }
        if self.eat("(") {
            let v = self.or()?;
            return self.eat(")").then_some(v);
        }
        match self.toks.get(self.pos)? {
            Tok::Num(n) => {
                self.pos += 1;
                Some(*n)
            }
            Tok::Op(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expressions() {
        assert_eq!(eval("0x040 + 14"), Some(0x4e));
        assert_eq!(eval("-1").map(|v| v as u32), Some(0xffff_ffff));
        assert_eq!(eval("0x80000001"), Some(0x8000_0001));
        assert_eq!(eval("(1 << 3) | 1"), Some(9));
        assert_eq!(eval("010"), Some(8));
        assert_eq!(eval("12UL"), Some(12));
        assert_eq!(eval("SVM_EXIT_ERR"), None);
        assert_eq!(eval("1 +"), None);
    }

    #[test]
    fn literals_concatenate() {
        assert_eq!(
            literals(r#""KVM_EXIT_" "IO""#).as_deref(),
            Some("KVM_EXIT_IO")
        );
        assert_eq!(literals(r#""a\"b""#).as_deref(), Some("a\"b"));
        assert_eq!(literals("NAME"), None);
    }

    #[test]
    fn skips_strings_and_bad_entries() {
        let fmt = r#""__print_symbolic(x) %s", __print_symbolic(REC->r, { 1, "a, b" }, { FOO, "x" }, { 0x2 + 1, "c" "d" }), __print_flags(REC->f, "|", { 1, "F" })"#;
        let t = tables(fmt);
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].expr, "REC->r");
        assert_eq!(t[0].entries, vec![(1, "a, b".into()), (3, "cd".into())]);
        assert_eq!(t[0].skipped, 1);
        assert!(tables("__print_symbolic(REC->r, { 1, \"a\" }").is_empty());
    }
}
