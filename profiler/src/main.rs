//! kvmprof entry point: parse, dispatch, and turn every error into one line with its fix.

use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use kvmprof::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        None | Some(Command::Top) => kvmprof::app::top(&cli.global),
        Some(Command::Demo(ref a)) => kvmprof::app::demo(&cli.global, a),
        Some(Command::Report(ref a)) => kvmprof::app::report(&cli.global, a),
        Some(Command::Diff(ref a)) => kvmprof::app::diff(a),
        Some(Command::Record(ref a)) => kvmprof::app::record(&cli.global, a),
        Some(Command::Replay(ref a)) => kvmprof::app::replay(a),
        Some(Command::Advise(ref a)) => kvmprof::app_advise::advise(&cli.global, a),
        Some(Command::Check(ref a)) => match kvmprof::app_check::check(&cli.global, a) {
            Ok(code) => return ExitCode::from(code),
            Err(e) => Err(e),
        },
        Some(Command::Serve(ref a)) => kvmprof::app_check::serve(&cli.global, a),
        Some(Command::Exercise(ref a)) => kvmprof::app::exercise(a),
        Some(Command::Completions { shell }) => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "kvmprof", &mut script);
            kvmprof::out::print(&String::from_utf8_lossy(&script))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // `kvmprof … | head`: the reader had enough.
        Err(e) if kvmprof::out::is_closed(&e) => ExitCode::SUCCESS,
        Err(e) => {
            // `{:#}` joins the context chain on one line; no backtrace for user errors.
            // Escaped line by line: a message may quote a VM name or a file's text, and a
            // few (the verifier log) are several lines on purpose.
            let msg = format!("{e:#}");
            let lines: Vec<_> = msg.lines().map(kvmprof::text::printable).collect();
            eprintln!("kvmprof: error: {}", lines.join("\n"));
            ExitCode::from(2)
        }
    }
}
