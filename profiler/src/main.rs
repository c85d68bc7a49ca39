//! kvmprof entry point: parse, dispatch, and turn every error into one line with its fix.

use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use kvmprof::cli::{Cli, Command};
use kvmprof::cmd::{self, Env};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut env = Env::host(cli.global());
    let env = &mut env;
    let result = match cli.command {
        None | Some(Command::Top(_)) => cmd::top::top(env),
        Some(Command::Demo(ref a)) => cmd::top::demo(env, a),
        Some(Command::Replay(ref a)) => cmd::top::replay(a),
        Some(Command::Report(ref a)) => cmd::report::report(env, a),
        Some(Command::Diff(ref a)) => cmd::diff::diff(a),
        Some(Command::Record(ref a)) => cmd::record::record(env, a),
        Some(Command::Advise(ref a)) => cmd::advise::advise(env, a),
        Some(Command::Check(ref a)) => match cmd::check::check(env, a) {
            Ok(code) => return ExitCode::from(code),
            Err(e) => Err(e),
        },
        Some(Command::Serve(ref a)) => cmd::serve::serve(env, a),
        Some(Command::Exercise(ref a)) => cmd::exercise::exercise(a),
        Some(Command::ManPages { ref dir }) => kvmprof::cli::write_man_pages(dir).map(|_| ()),
        Some(Command::Completions { shell }) => {
            let mut script = Vec::new();
            let mut cli = kvmprof::cli::completable(&Cli::command());
            clap_complete::generate(shell, &mut cli, "kvmprof", &mut script);
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
