//! Command output to stdout. `kvmprof … | head -1` closes the pipe early: that is the reader's
//! choice, not an error, so it ends the command quietly with status 0 (Rust ignores SIGPIPE and
//! `print!` would panic instead).

use std::io::Write;

/// The reader of stdout went away; `main` turns this into exit status 0 without a message.
#[derive(Debug, thiserror::Error)]
#[error("stdout was closed by its reader")]
pub struct StdoutClosed;

/// Writes `text` to stdout and flushes it.
pub fn print(text: &str) -> anyhow::Result<()> {
    write_to(&mut std::io::stdout().lock(), text)
}

/// Writes `text` and a newline unless it ends with one.
pub fn println(text: &str) -> anyhow::Result<()> {
    if text.ends_with('\n') {
        print(text)
    } else {
        print(&format!("{text}\n"))
    }
}

/// Writes `text` to `w` (stdout, or a buffer in tests) and flushes it; a closed pipe is
/// [`StdoutClosed`].
pub fn write_to<W: Write + ?Sized>(w: &mut W, text: &str) -> anyhow::Result<()> {
    match w.write_all(text.as_bytes()).and_then(|()| w.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(StdoutClosed.into()),
        Err(e) => Err(anyhow::anyhow!("writing to stdout: {e}")),
    }
}

/// True when `err` (anywhere in its chain) is a closed stdout.
pub fn is_closed(err: &anyhow::Error) -> bool {
    err.chain().any(|e| e.is::<StdoutClosed>())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Closed;
    impl Write for Closed {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn broken_pipe_is_the_quiet_kind() {
        let e = write_to(&mut Closed, "x").unwrap_err();
        assert!(is_closed(&e));
        assert!(is_closed(&e.context("printing the report")));
        assert!(!is_closed(&anyhow::anyhow!("other")));
    }
}
