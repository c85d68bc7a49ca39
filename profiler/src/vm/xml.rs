//! The one XML reader for libvirt files (`vm::libvirt` status files, `advice::libvirt` domain
//! configuration): a streaming, well-formedness-checking parser (quick-xml) with limits on
//! size, depth and element count, so a hostile file costs at most a few MB and a linear scan.
//! No DTD and no entities beyond XML's five and character references: a `<!DOCTYPE>` is refused.

use quick_xml::{
    escape::resolve_predefined_entity,
    events::{BytesStart, Event},
    Reader, XmlVersion,
};

/// Larger files are refused before parsing (libvirt status files are tens of KB).
pub const MAX_BYTES: usize = 4 << 20;
/// Deeper nesting is refused (libvirt's go about 8 deep).
pub const MAX_DEPTH: usize = 64;
/// More elements are refused (a status file with QEMU's capability flags has a few thousand).
pub const MAX_ELEMENTS: usize = 50_000;

/// Why a file was not read: one line, for a warning.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    #[error("{0} bytes, more than the {MAX_BYTES}-byte limit for a libvirt XML file")]
    TooLarge(usize),
    #[error("elements nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("more than {MAX_ELEMENTS} elements")]
    TooMany,
    #[error("a DTD (<!DOCTYPE>), which libvirt never writes")]
    Dtd,
    #[error("not well-formed XML: {0}")]
    Malformed(String),
}

/// One element, in document order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Element {
    /// Qualified name as written (`libosinfo:os`).
    pub name: String,
    /// Attributes, values unescaped, in order.
    pub attrs: Vec<(String, String)>,
    /// Index of the parent element in the list; None for the root.
    pub parent: Option<usize>,
    /// Text directly inside, up to the first child or the end tag, trimmed (`<vcpu>8</vcpu>`).
    pub text: String,
}

impl Element {
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// All elements of `xml`, parents before children. Refuses what breaks a limit or is not
/// well-formed (mismatched or unclosed tags, bad attributes, unknown entities).
pub fn parse(xml: &str) -> Result<Vec<Element>, XmlError> {
    if xml.len() > MAX_BYTES {
        return Err(XmlError::TooLarge(xml.len()));
    }
    let mut reader = Reader::from_str(xml);
    reader.config_mut().check_end_names = true;
    let bad = |e: &dyn std::fmt::Display| XmlError::Malformed(e.to_string());
    let mut out: Vec<Element> = Vec::new();
    // Open elements (indices into `out`) and whether each still collects its leading text.
    let mut open: Vec<(usize, bool)> = Vec::new();
    loop {
        let event = reader.read_event().map_err(|e| bad(&e))?;
        let text_of = |open: &[(usize, bool)]| open.last().filter(|(_, t)| *t).map(|(i, _)| *i);
        match event {
            Event::Start(ref s) | Event::Empty(ref s) => {
                if open.len() >= MAX_DEPTH {
                    return Err(XmlError::TooDeep);
                }
                if out.len() >= MAX_ELEMENTS {
                    return Err(XmlError::TooMany);
                }
                if let Some(last) = open.last_mut() {
                    last.1 = false;
                }
                out.push(element(s, open.last().map(|(i, _)| *i))?);
                if matches!(event, Event::Start(_)) {
                    open.push((out.len() - 1, true));
                }
            }
            Event::End(_) => {
                open.pop();
            }
            Event::Text(t) => {
                if let Some(i) = text_of(&open) {
                    out[i]
                        .text
                        .push_str(&t.xml_content(XmlVersion::Implicit1_0));
                }
            }
            Event::CData(t) => {
                if let Some(i) = text_of(&open) {
                    out[i]
                        .text
                        .push_str(&t.xml_content(XmlVersion::Implicit1_0));
                }
            }
            Event::GeneralRef(r) => {
                let c = match r.resolve_char_ref().map_err(|e| bad(&e))? {
                    Some(c) => c.to_string(),
                    None => resolve_predefined_entity(&r)
                        .ok_or_else(|| bad(&format!("unknown entity &{};", &*r)))?
                        .to_string(),
                };
                if let Some(i) = text_of(&open) {
                    out[i].text.push_str(&c);
                }
            }
            Event::DocType(_) => return Err(XmlError::Dtd),
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) => {}
            Event::Eof => break,
        }
    }
    if !open.is_empty() {
        return Err(XmlError::Malformed(
            "the file ends inside an element".into(),
        ));
    }
    if out.is_empty() {
        return Err(XmlError::Malformed("no element".into()));
    }
    for e in &mut out {
        let t = e.text.trim();
        if t.len() != e.text.len() {
            e.text = t.to_string();
        }
    }
    Ok(out)
}

fn element(s: &BytesStart<'_>, parent: Option<usize>) -> Result<Element, XmlError> {
    let bad = |e: &dyn std::fmt::Display| XmlError::Malformed(e.to_string());
    let name = s.name().as_ref().to_string();
    let mut attrs = Vec::new();
    for a in s.attributes() {
        let a = a.map_err(|e| bad(&e))?;
        let value = a
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(|e| bad(&e))?;
        attrs.push((a.key.as_ref().to_string(), value.into_owned()));
    }
    Ok(Element {
        name,
        attrs,
        parent,
        text: String::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_attributes_and_text() {
        let x = "<?xml version='1.0'?>\n<!-- c -->\n<a k='1 &amp; 2' j=\"&#x41;\">\n  \
                 <b>x &lt; y<![CDATA[ & z]]></b><c/>tail</a>";
        let e = parse(x).unwrap();
        assert_eq!(e.len(), 3);
        assert_eq!((e[0].name.as_str(), e[0].parent), ("a", None));
        assert_eq!((e[0].attr("k"), e[0].attr("j")), (Some("1 & 2"), Some("A")));
        assert_eq!(e[0].text, "", "text after a child is not the element's");
        assert_eq!((e[1].text.as_str(), e[1].parent), ("x < y & z", Some(0)));
        assert_eq!((e[2].name.as_str(), e[2].parent), ("c", Some(0)));
    }

    #[test]
    fn refuses_what_breaks_a_rule() {
        let deep = "<a>".repeat(MAX_DEPTH + 1) + &"</a>".repeat(MAX_DEPTH + 1);
        assert_eq!(parse(&deep), Err(XmlError::TooDeep));
        let ok = "<a>".repeat(MAX_DEPTH) + &"</a>".repeat(MAX_DEPTH);
        assert_eq!(parse(&ok).unwrap().len(), MAX_DEPTH);
        let many = format!("<a>{}</a>", "<b/>".repeat(MAX_ELEMENTS));
        assert_eq!(parse(&many), Err(XmlError::TooMany));
        let big = format!("<a>{}</a>", " ".repeat(MAX_BYTES));
        assert!(matches!(parse(&big), Err(XmlError::TooLarge(_))));
        let dtd = "<!DOCTYPE a [<!ENTITY x 'yyyy'>]><a>&x;</a>";
        assert_eq!(parse(dtd), Err(XmlError::Dtd));
        for m in [
            "<a>",
            "<a></b>",
            "<a>&bogus;</a>",
            "<a k='1' k='2'/>",
            "",
            "text",
        ] {
            let e = parse(m).unwrap_err();
            assert!(matches!(e, XmlError::Malformed(_)), "{m}: {e:?}");
            assert!(!e.to_string().contains('\n'), "{e}");
        }
    }
}
