//! The perf-text parser: one pass over the lines, each looked at once, with one line of
//! look-ahead so a row a mail client wrapped (`vmrun 71298 47.13% 2.61% 1.07us 46197.83us`
//! / `19.09us ( +-   9.11% )`) is read as one row. A header wrapped the same way (`… Max` /
//! `Time  Avg time`) is joined too. Rows pasted without their header are read when they have
//! old perf's whole row shape; a `........` line says the poster cut the table there.

use super::{
    import_check,
    perf_layout::Event,
    perf_lex::{
        find_after, looks_like_row, parse_footer, parse_header, parse_row, parse_target, quote,
        split_rel_err, tokens, Header,
    },
    perf_paste::{
        clean, command_target, continues, header_rest, is_cut_marker, open_paren, shape, Shape,
    },
    perf_rows::{at, Column, ImportError, ImportWarning, PerfRow, Section},
};

pub(crate) fn parse(text: &str) -> Result<(Vec<Section>, Vec<ImportWarning>), ImportError> {
    let mut p = Parser::default();
    for (i, raw) in text.lines().enumerate() {
        p.width = name_width(raw);
        p.line(i + 1, &clean(raw))?;
    }
    if let Some((n, held)) = p.held.take() {
        p.read(n, &held, false)?;
    }
    p.close()?;
    Ok((p.sections, p.warnings))
}

/// Old perf's columns, for rows pasted without their header.
const OLD_PERF: [Column; 6] = [
    Column::Samples,
    Column::SamplesPct,
    Column::TimePct,
    Column::Min,
    Column::Max,
    Column::Avg,
];

#[derive(Default)]
struct Parser {
    sections: Vec<Section>,
    warnings: Vec<ImportWarning>,
    /// What the last "Analyze events for" line named.
    target: (Vec<u32>, Option<u32>),
    open: Option<Open>,
    /// A row that lacks columns (or ends inside `( +-`), waiting for the next line.
    held: Option<(usize, String)>,
    /// The name column's width, if the line being read (as it came, before `clean`) is a
    /// header of print_result's (see `name_width`).
    width: Option<usize>,
}

/// The table being read, and the non-row lines seen since its last row: prose after the
/// table if no row follows them, lines skipped inside it if one does.
struct Open {
    sec: Section,
    header: String,
    /// Last line of the header (it may be wrapped).
    header_end: usize,
    unit_us: f64,
    generic: bool,
    gap: Vec<usize>,
    gap_first: String,
}

impl Parser {
    fn line(&mut self, n: usize, line: &str) -> Result<(), ImportError> {
        if let Some((hn, held)) = self.held.take() {
            if continues(line) && self.joined(hn, &format!("{held} {line}"), &held)? {
                return Ok(());
            }
            self.read(hn, &held, false)?;
        }
        self.read(n, line, true)
    }

    /// `held + next line` as one row, if that reads and `held` holds more than the name.
    fn joined(&mut self, n: usize, joined: &str, held: &str) -> Result<bool, ImportError> {
        let Some(o) = self.open.as_mut() else {
            if shape(joined) == Shape::Full {
                self.implied(n, joined)?;
                return Ok(true);
            }
            return Ok(false);
        };
        match parse_row(joined, &o.sec.columns, o.unit_us, n) {
            Ok(r) if tokens(&r.name).len() < tokens(held).len() => {
                o.resume(n, &mut self.warnings);
                o.sec.rows.push(r);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn read(&mut self, n: usize, line: &str, may_hold: bool) -> Result<(), ImportError> {
        if line.is_empty() {
            return Ok(());
        }
        if let Some(rest) = find_after(line, "Analyze events for") {
            self.close()?;
            self.target = parse_target(rest).map_err(|m| at(n, m))?;
            return Ok(());
        }
        if let Some(target) = command_target(line) {
            self.close()?;
            self.target = target;
            return Ok(());
        }
        if let Some(h) = parse_header(line).map_err(|m| at(n, m))? {
            self.close()?;
            self.open(n, line, h);
            return Ok(());
        }
        if let Some(o) = self.open.as_mut() {
            // The header's last words, wrapped onto the next line (or two: an 8-column header
            // of perf >= 6.4 is 120 columns wide).
            let next = n > o.sec.line && n - o.sec.line <= 2 && o.header_end + 1 == n;
            if o.sec.rows.is_empty() && next && header_rest(line) {
                let whole = format!("{} {line}", o.header);
                if let Some(h) = parse_header(&whole).map_err(|m| at(n, m))? {
                    o.sec.layout = h.layout();
                    o.sec.columns = h.columns;
                    o.unit_us = h.unit_us;
                    o.header = whole;
                    o.header_end = n;
                    return Ok(());
                }
            }
        }
        if line.starts_with("Total Samples") {
            return self.footer(n, line);
        }
        if let Some(rest) = line.strip_prefix("Lost events:") {
            let lost = rest.trim().parse::<u64>().ok();
            let open = self.open.as_mut().map(|o| &mut o.sec);
            if let Some(s) = open.or(self.sections.last_mut()) {
                s.lost_events = lost;
            }
            return Ok(());
        }
        let Some(o) = self.open.as_mut() else {
            match shape(line) {
                Shape::Full => self.implied(n, line)?,
                Shape::Partial if may_hold => self.held = Some((n, line.to_string())),
                _ => {}
            }
            return Ok(());
        };
        // Only the `( +- x% )` column wrapped onto the next line.
        if let Some(r) = o.sec.rows.last_mut() {
            if r.line + 1 == n && r.rel_err_pct.is_none() && line.starts_with('(') {
                if let Ok(("", err)) = split_rel_err(line) {
                    r.rel_err_pct = err;
                    return Ok(());
                }
            }
        }
        // A comment (kvmprof's notes after its tables, a shell prompt) is never a row.
        if line.starts_with('#') {
            // kvmprof's 6.4-layout tables name their event after the rows ("# MMIO Access
            // table; ..."): perf's screen heads every one of them "Event name".
            let named = line
                .strip_prefix("# ")
                .and_then(|l| l.split_once(" table;"));
            if let Some(ev) = named.and_then(|(h, _)| Event::from_header(h)) {
                if o.generic {
                    o.sec.event = ev;
                    o.generic = false;
                }
            }
            if o.gap.is_empty() {
                o.gap_first = quote(line);
            }
            o.gap.push(n);
            return Ok(());
        }
        if is_cut_marker(line) {
            let msg = format!(
                "the {} table of line {} was cut here by its poster ({}): its rows below this one are not in the paste",
                o.sec.event.header(),
                o.sec.line,
                quote(line)
            );
            self.warnings.push(ImportWarning::new(n, msg));
            return self.close();
        }
        let row = parse_row(line, &o.sec.columns, o.unit_us, n);
        if may_hold && (row.is_err() || open_paren(line)) {
            self.held = Some((n, line.to_string()));
            return Ok(());
        }
        match row {
            Ok(r) => {
                o.resume(n, &mut self.warnings);
                o.sec.rows.push(r);
            }
            Err(msg) if o.gap.is_empty() && looks_like_row(line) => return Err(at(n, msg)),
            // Prose after the table, or a stray line inside it: which, the next row tells.
            Err(_) => {
                if o.gap.is_empty() {
                    o.gap_first = quote(line);
                }
                o.gap.push(n);
            }
        }
        Ok(())
    }

    fn open(&mut self, n: usize, line: &str, h: Header) {
        let layout = h.layout();
        let mut sec = Section::new(n, self.target.0.clone(), self.target.1, h.event, h.columns);
        sec.layout = layout;
        sec.name_width = self.width.filter(|_| layout == super::PerfLayout::Classic);
        self.open = Some(Open {
            sec,
            header: line.to_string(),
            header_end: n,
            unit_us: h.unit_us,
            generic: h.generic,
            gap: Vec::new(),
            gap_first: String::new(),
        });
    }

    /// Rows with no header above them (quoted out of a table): old perf's VM-EXIT columns.
    fn implied(&mut self, n: usize, row: &str) -> Result<(), ImportError> {
        let h = Header {
            event: Event::Vmexit,
            generic: false,
            columns: OLD_PERF.to_vec(),
            unit_us: 1.0,
        };
        self.open(n, "", h);
        self.warnings.push(ImportWarning::new(
            n,
            "no header line above this row: read as perf's VM-EXIT table (Samples, Samples%, Time%, Min Time, Max Time, Avg time)",
        ));
        let o = self.open.as_mut().expect("just opened");
        let r = parse_row(row, &o.sec.columns, 1.0, n).map_err(|m| at(n, m))?;
        o.sec.rows.push(r);
        Ok(())
    }

    fn footer(&mut self, n: usize, line: &str) -> Result<(), ImportError> {
        let Some(o) = self.open.as_mut() else {
            let w = ImportWarning::new(n, "footer without a table above it");
            self.warnings.push(w);
            return Ok(());
        };
        let (samples, time) = parse_footer(line).map_err(|m| at(n, m))?;
        o.resume(n, &mut self.warnings);
        o.sec.total_samples = Some(samples);
        o.sec.footer_line = Some(n);
        if let Some((t, r)) = time {
            o.sec.total_time_us = Some(t);
            o.sec.total_time_rounding = r;
        }
        self.close()
    }

    /// Ends the open table: the lines after its last row were prose, not part of it.
    fn close(&mut self) -> Result<(), ImportError> {
        let Some(mut o) = self.open.take() else {
            return Ok(());
        };
        if o.generic {
            event_from_rows(&mut o.sec, &mut self.warnings);
        }
        import_check::check(&o.sec, &mut self.warnings)?;
        self.sections.push(o.sec);
        Ok(())
    }
}

/// perf ≥ 6.4 heads every table `Event name`: rows `0x70:PIN` are an IO Port Access table;
/// rows `ADDRESS:R`/`:W` an MSR Access table when every address is an MSR index (the ranges
/// below), else an MMIO Access table (guest-physical addresses: 0xfee000b0 is the local APIC);
/// anything else exits.
fn event_from_rows(sec: &mut Section, warnings: &mut Vec<ImportWarning>) {
    fn key(r: &PerfRow) -> Option<(u64, &str)> {
        let (addr, dir) = r.name.rsplit_once(':')?;
        let hex = addr.strip_prefix("0x")?;
        Some((u64::from_str_radix(hex, 16).ok()?, dir))
    }
    let all = |dirs: &[&str]| {
        !sec.rows.is_empty()
            && sec
                .rows
                .iter()
                .all(|r| key(r).is_some_and(|(_, d)| dirs.contains(&d)))
    };
    if all(&["PIN", "POUT"]) {
        sec.event = Event::Ioport;
    } else if all(&["R", "W"]) {
        let not_msr = sec
            .rows
            .iter()
            .find(|r| key(r).is_some_and(|(a, _)| !is_msr_index(a)));
        if let Some(r) = not_msr {
            sec.event = Event::Mmio;
            warnings.push(ImportWarning::new(
                sec.line,
                format!(
                    "ADDRESS:R/W rows under 'Event name' read as an MMIO Access table ({} is no MSR index)",
                    quote(&r.name)
                ),
            ));
        } else {
            sec.event = Event::Msr;
            warnings.push(ImportWarning::new(
                sec.line,
                "ADDRESS:R/W rows under 'Event name' whose addresses are all MSR indexes read as \
                 an MSR Access table; if this was --event=mmio, write 'MMIO Access' in place of \
                 'Event name'",
            ));
        }
    }
}

/// The MSR index ranges x86 CPUs and KVM define (the SDM's low and high ranges, AMD's
/// 0xc001xxxx, the hypervisor range 0x400000xx of Hyper-V and Xen, KVM's 0x4b564dxx). A
/// guest-physical MMIO address (the APIC's 0xfee00000, the HPET's 0xfed00000, a BAR) is none.
fn is_msr_index(a: u64) -> bool {
    matches!(
        a,
        0..=0x1fff
            | 0x4000_0000..=0x4000_01ff
            | 0x4b56_4d00..=0x4b56_4dff
            | 0xc000_0000..=0xc000_1fff
            | 0xc001_0000..=0xc001_1fff
    )
}

impl Open {
    /// The table goes on at line `n`: the non-row lines before it were inside it.
    fn resume(&mut self, n: usize, warnings: &mut Vec<ImportWarning>) {
        let Some(&first) = self.gap.first() else {
            return;
        };
        let k = self.gap.len();
        let (what, lost) = if k == 1 {
            (
                format!("{} is not a row", self.gap_first),
                "if it was a damaged row, that row",
            )
        } else {
            let last = self.gap[k - 1];
            let what = format!(
                "{k} lines ({first}–{last}, the first {}) are not rows",
                self.gap_first
            );
            (what, "any damaged row among them")
        };
        let msg = format!(
            "inside the {} table of line {}, {what}: skipped; the table goes on at line {n} ({lost} is missing)",
            self.sec.event.header(),
            self.sec.line
        );
        warnings.push(ImportWarning::new(first, msg));
        self.sec.skipped.append(&mut self.gap);
    }
}

/// The width of a header's right-aligned name column (`             VM-EXIT    Samples`: 20),
/// when it is one of the two print_result used (`%20s` before perf 6.4, `%40s` since).
fn name_width(header: &str) -> Option<usize> {
    let at = header.find(" Samples ")?;
    let name = &header[..at];
    let w = name.trim_end().len();
    (name.starts_with(' ') && name.is_ascii() && (w == 20 || w == 40)).then_some(w)
}
