//! The command line. Each subcommand is one small module; `main` only parses
//! the arguments and dispatches, so exit codes are decided in one place:
//! 0 success, 1 the input had errors, 2 usage or I/O trouble.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cdr;
pub mod check;
mod ctl;
mod db;
mod dump;
pub mod fmt;
pub mod logs;
pub mod lsp;
pub mod reload;
pub mod run;
pub mod services;
pub mod test;
pub mod trace;
pub mod user;

/// sipc: a SIP proxy whose routing logic is a compiled language.
#[derive(Debug, Parser)]
#[command(name = "sipc", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check route files: syntax, names, types, route kinds, lints.
    Check(check::CheckArgs),
    /// Print the internal structure of an input, for debugging.
    #[command(subcommand)]
    Dump(dump::DumpCommand),
    /// Check, compile and serve a route file as a SIP proxy.
    Run(run::RunArgs),
    /// Reload a running proxy's config (or show its status).
    Reload(reload::ReloadArgs),
    /// Look into a running proxy and change it: stats, registrations,
    /// trunks, dialogs, bans, reload, log level (JSON-RPC on its control
    /// socket).
    Ctl(ctl::CtlArgs),
    /// Format route files in the one canonical layout (comments kept).
    Fmt(fmt::FmtArgs),
    /// Run the language server on standard input and output (for editors).
    Lsp(lsp::LspArgs),
    /// Show what the routes of a running proxy do with matching messages.
    Trace(trace::TraceArgs),
    /// Run the tests of configs (`NAME.test.toml` beside `NAME.route`).
    Test(test::TestArgs),
    /// Manage the subscriber table digest authentication checks.
    #[command(subcommand)]
    User(user::UserCommand),
    /// List the call records a config's accounting wrote (CSV or JSON).
    Cdr(cdr::CdrArgs),
    /// Create or update the PostgreSQL tables a config shares with other
    /// nodes (`sipc db migrate FILE.route`).
    #[command(subcommand)]
    Db(db::DbCommand),
}

/// Parses the process arguments and runs the chosen subcommand.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check(args) => check::run(args),
        Command::Dump(cmd) => dump::run(cmd),
        Command::Run(args) => run::run(args),
        Command::Reload(args) => reload::run(args),
        Command::Ctl(args) => ctl::run(args),
        Command::Fmt(args) => fmt::run(args),
        Command::Lsp(args) => lsp::run(args),
        Command::Test(args) => test::run(args),
        Command::Trace(args) => trace::run(args),
        Command::User(cmd) => user::run(cmd),
        Command::Cdr(args) => cdr::run(args),
        Command::Db(cmd) => db::run(cmd),
    }
}
