//! `sipc reload`: asks a running `sipc run` to reload its config, or
//! (`--status`) what it is serving, over the control socket.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

#[derive(Debug, Args)]
pub struct ReloadArgs {
    /// The config file the proxy was started with (names its control socket).
    pub file: Option<PathBuf>,
    /// The control socket (as given to `sipc run --control`).
    #[arg(long, value_name = "PATH")]
    pub control: Option<PathBuf>,
    /// Print the generation serving, when it was loaded, and the last failure.
    #[arg(long)]
    pub status: bool,
}

pub fn run(args: ReloadArgs) -> ExitCode {
    let path = match (&args.control, &args.file) {
        (Some(p), _) => p.clone(),
        (None, Some(f)) => crate::reload::control::default_path(f),
        (None, None) => {
            eprintln!("error: name the config file (`sipc reload FILE`) or `--control PATH`");
            return ExitCode::from(2);
        }
    };
    let command = if args.status { "status" } else { "reload" };
    // A reload compiles; give it time, but not forever.
    match crate::reload::control::request(&path, command, Duration::from_secs(30)) {
        Ok((true, text)) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Ok((false, text)) => {
            eprint!("{text}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("error: no sipc answers on {}: {e}", path.display());
            ExitCode::from(2)
        }
    }
}
