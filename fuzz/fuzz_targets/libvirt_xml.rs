//! Arbitrary bytes as a libvirt status or domain XML file: the shared limited reader and both
//! parsers on it (discovery's identity, advice's configuration) must never panic, and what
//! they return must hold together.
#![no_main]

use kvmprof::{
    advice::parse_libvirt_xml,
    vm::{libvirt::parse_status, xml},
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(els) = xml::parse(&text) {
        assert!(els.len() <= xml::MAX_ELEMENTS);
        for (i, e) in els.iter().enumerate() {
            // Parents come first, so walking up always ends.
            assert!(e.parent.is_none_or(|p| p < i), "{i}: {:?}", e.parent);
        }
    }
    if let Some(d) = parse_status(&text) {
        assert!(d.pid != 0 && !d.name.is_empty(), "{d:?}");
    }
    let _ = parse_libvirt_xml(&text);
});
