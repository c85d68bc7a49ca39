//! Arbitrary bytes as a QEMU command line, both as /proc/PID/cmdline holds it (NUL-separated)
//! and as `advise --qemu-cmdline` takes it (shell words): the identity, QEMU detection and
//! configuration parsers must never panic, and what they return must hold together.
#![no_main]

use kvmprof::{
    advice::config::VmConfig,
    cmd::advise::split_words,
    vm::qemu::{identity, is_qemu, split_opts},
};
use libfuzzer_sys::fuzz_target;

fn check(argv: &[String]) {
    let _ = is_qemu(argv);
    let id = identity(argv);
    assert!(id.name.as_ref().is_none_or(|n| !n.is_empty()), "empty name");
    let _ = VmConfig::from_cmdline(argv);
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let proc_argv: Vec<String> = text
        .split('\0')
        .filter(|w| !w.is_empty())
        .map(String::from)
        .collect();
    check(&proc_argv);
    if let Ok(words) = split_words(&text) {
        check(&words);
    }
    // `,,` is one literal comma: splitting never loses other characters.
    let opts = split_opts(&text);
    let kept: usize = opts.iter().map(|o| o.matches(',').count()).sum();
    assert!(kept <= text.matches(",,").count(), "{opts:?}");
});
