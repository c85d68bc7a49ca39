//! The command line's own tests: consistency, durations, examples, completions.

use super::*;
use clap::CommandFactory;

#[test]
fn cli_is_consistent() {
    Cli::command().debug_assert();
}

/// Live-collection options are taken by the commands that collect live, and refused by
/// those that only read files (they would silently do nothing there).
#[test]
fn live_options_only_where_they_apply() {
    for cmd in [
        "top",
        "demo",
        "record -o x",
        "report",
        "advise",
        "check",
        "serve",
    ] {
        let mut args = vec!["kvmprof"];
        args.extend(cmd.split(' '));
        args.extend(["--max-keys", "128", "-i", "2s"]);
        let cli = Cli::try_parse_from(&args).unwrap_or_else(|e| panic!("{cmd}: {e}"));
        assert_eq!(cli.global().max_keys, 128, "{cmd}");
        assert_eq!(cli.global().interval, Duration::from_secs(2), "{cmd}");
    }
    for cmd in ["replay x", "diff a b", "completions bash"] {
        let mut args = vec!["kvmprof"];
        args.extend(cmd.split(' '));
        args.extend(["--max-keys", "128"]);
        assert!(
            Cli::try_parse_from(&args).is_err(),
            "{cmd} takes --max-keys"
        );
    }
    let e = Cli::try_parse_from(["kvmprof", "-i", "2s", "record", "-o", "x"]).unwrap_err();
    assert!(e.to_string().contains("cannot be used with"), "{e}");
}

/// Every subcommand's help ends with an example that parses.
#[test]
fn every_subcommand_help_has_an_example_that_parses() {
    let root = Cli::command();
    for sub in root.get_subcommands().filter(|s| !s.is_hide_set()) {
        let help = sub
            .get_after_help()
            .map(|h| h.to_string())
            .unwrap_or_default();
        let ex = help
            .strip_prefix("Example: ")
            .unwrap_or_else(|| panic!("{}: no example in its help", sub.get_name()));
        for one in ex.split(";  ") {
            let one = one.split("  (").next().unwrap_or(one);
            let args: Vec<&str> = one.split_whitespace().take_while(|w| *w != ">").collect();
            if let Err(e) = Cli::try_parse_from(&args) {
                panic!("{}: example `{one}` does not parse: {e}", sub.get_name());
            }
        }
    }
}

/// Completions offer what `--help` shows: no hidden subcommand (exercise) or option
/// (diff's old --vm-a), in any shell; everything shown is still there.
#[test]
fn completions_leave_out_what_help_hides() {
    use clap_complete::Shell;
    for shell in [
        Shell::Bash,
        Shell::Zsh,
        Shell::Fish,
        Shell::Elvish,
        Shell::PowerShell,
    ] {
        let mut script = Vec::new();
        let mut cmd = completable(&Cli::command());
        clap_complete::generate(shell, &mut cmd, "kvmprof", &mut script);
        let script = String::from_utf8(script).unwrap();
        for hidden in ["exercise", "vm-a", "vm-b"] {
            assert!(!script.contains(hidden), "{shell}: {hidden}");
        }
        for shown in [
            "record",
            "replay",
            "diff",
            "max-keys",
            "label",
            "perf-layout",
        ] {
            assert!(script.contains(shown), "{shell}: {shown} missing");
        }
    }
}

#[test]
fn durations() {
    assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
    assert_eq!(parse_duration("2.5s"), Ok(Duration::from_millis(2500)));
    assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
    assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
    assert!(parse_duration("fast")
        .unwrap_err()
        .contains("not a duration"));
    assert!(parse_duration("-1s")
        .unwrap_err()
        .contains("it must be positive"));
    assert!(parse_duration("inf").is_err());
    assert!(parse_duration("1e30").is_err());
}

/// Compound durations, which jiff's format adds to the forms above.
#[test]
fn compound_durations() {
    assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
    assert_eq!(parse_duration("1h 5m"), Ok(Duration::from_secs(3900)));
    assert_eq!(parse_duration("1.5m"), Ok(Duration::from_secs(90)));
    assert_eq!(parse_duration("0ms"), Ok(Duration::ZERO));
    for zero in ["0s", "0", "0ms", " 0.0 "] {
        let e = parse_span(zero).unwrap_err();
        assert!(e.contains("above zero") && !e.contains('\n'), "{e}");
    }
    assert_eq!(parse_span("1ms"), Ok(Duration::from_millis(1)));
    assert_eq!(parse_duration("2 hours"), Ok(Duration::from_secs(7200)));
}

#[test]
fn exercise_keeps_identity_args() {
    let cli = Cli::try_parse_from([
        "kvmprof",
        "exercise",
        "--iters",
        "5",
        "--",
        "-name",
        "guest=vm1",
    ])
    .unwrap();
    match cli.command {
        Some(Command::Exercise(a)) => {
            assert_eq!(a.iters, 5);
            assert_eq!(a.identity, ["-name", "guest=vm1"]);
        }
        other => panic!("parsed as {other:?}"),
    }
}

#[test]
fn default_is_top() {
    let cli = Cli::try_parse_from(["kvmprof", "-i", "250ms"]).unwrap();
    assert!(cli.command.is_none());
    assert_eq!(cli.global.interval, Duration::from_millis(250));
}

/// `serve --listen` takes what people type: an address, a host name, or just a port.
#[test]
fn listen_addresses() {
    let ok = |s: &str| parse_listen(s).map(|a| a.to_string());
    assert_eq!(ok("127.0.0.1:9477").as_deref(), Ok("127.0.0.1:9477"));
    assert_eq!(ok("[::1]:9477").as_deref(), Ok("[::1]:9477"));
    assert_eq!(ok(":9477").as_deref(), Ok("0.0.0.0:9477"));
    assert_eq!(ok("localhost:9477").as_deref(), Ok("127.0.0.1:9477"));
    for bad in ["9477", "localhost", ":http", "127.0.0.1:99999", ""] {
        let e = parse_listen(bad).unwrap_err();
        assert!(e.contains("ADDR:PORT") && !e.contains('\n'), "{bad}: {e}");
    }
}
