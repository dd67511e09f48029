//! `sipc user add|del|list|import`: the subscriber table digest
//! authentication reads (HA1 hashes per `user@realm`, never passwords).
//!
//! Passwords never come from the command line (it is visible in `ps` and
//! shell history): `add` prompts on the terminal with echo off, or reads
//! one line from standard input with `--password-stdin`; `import` reads
//! `user@realm;password` lines (SIPp's CSV shape) from standard input into
//! one transaction. A running proxy sees a new user at once (cache misses
//! read the database) and deletions within 30 s; with a table shared in
//! PostgreSQL (`--db postgres://…`), every node sees each change, new user
//! or deletion, within milliseconds (a trigger notifies them).

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::auth::{Subscriber, SubscriberStore};

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user, or change its password.
    Add {
        /// `user@realm` (the realm is the domain users register with).
        user: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        db: DbArg,
    },
    /// Remove a user.
    Del {
        user: String,
        #[command(flatten)]
        db: DbArg,
    },
    /// List the users.
    List {
        #[command(flatten)]
        db: DbArg,
    },
    /// Add or update users from standard input, one `user@realm;password` a line.
    Import {
        #[command(flatten)]
        db: DbArg,
    },
}

#[derive(Debug, Args)]
pub struct DbArg {
    /// The database: an SQLite file (`module usrloc { db_path }` of the
    /// config; default: sipc.db), or the PostgreSQL table a cluster shares
    /// (`module auth { db_url }`: `postgres://USER:PASSWORD@HOST/DB`).
    #[arg(long, default_value = "sipc.db")]
    pub db: PathBuf,
    /// The shared table's name (`module auth { db_table }`), with a
    /// PostgreSQL `--db`.
    #[arg(long, default_value = "subscriber")]
    pub table: String,
}

/// The table the users go to.
enum Users {
    Sqlite(SubscriberStore),
    /// A shared table: a client and a runtime to drive it.
    Postgres(deadpool_postgres::tokio_postgres::Client, tokio::runtime::Runtime, String),
}

impl Users {
    fn put_many(&mut self, users: &[(String, String, Subscriber)]) -> Result<(), String> {
        match self {
            Users::Sqlite(s) => s.put_many(users).map_err(|e| e.to_string()),
            Users::Postgres(c, rt, t) => {
                rt.block_on(crate::cluster::subscribers::put_many(c, t, users))
            }
        }
    }

    fn delete(&mut self, user: &str, realm: &str) -> Result<bool, String> {
        match self {
            Users::Sqlite(s) => s.delete(user, realm).map_err(|e| e.to_string()),
            Users::Postgres(c, rt, t) => {
                rt.block_on(crate::cluster::subscribers::delete(c, t, user, realm))
            }
        }
    }

    fn list(&mut self) -> Result<Vec<String>, String> {
        match self {
            Users::Sqlite(s) => Ok(s.list()),
            Users::Postgres(c, rt, t) => rt.block_on(crate::cluster::subscribers::list(c, t)),
        }
    }
}

fn split(user: &str) -> Result<(&str, &str), String> {
    match user.split_once('@') {
        Some((u, r)) if !u.is_empty() && !r.is_empty() => Ok((u, r)),
        _ => Err(format!("`{user}`: expected user@realm")),
    }
}

fn open(db: &DbArg) -> Result<Users, String> {
    let text = db.db.to_string_lossy();
    if crate::cluster::is_postgres_url(&text) {
        if !crate::cluster::is_table_name(&db.table) {
            return Err(format!("`--table {}`: use lower-case letters, digits and `_`", db.table));
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let client = rt.block_on(crate::cluster::subscribers::open(&text, &db.table))?;
        return Ok(Users::Postgres(client, rt, db.table.clone()));
    }
    SubscriberStore::open(&db.db)
        .map(Users::Sqlite)
        .map_err(|e| format!("`{}`: {e}", db.db.display()))
}

/// Reads a line from the terminal with echo off (restored afterwards).
fn prompt(label: &str) -> Result<String, String> {
    let stty = |arg: &str| {
        std::process::Command::new("stty")
            .arg(arg)
            .stdin(std::process::Stdio::inherit())
            .status()
            .is_ok_and(|s| s.success())
    };
    eprint!("{label}");
    let _ = std::io::stderr().flush();
    let quiet = stty("-echo");
    let mut line = String::new();
    let read = std::io::stdin().lock().read_line(&mut line);
    if quiet {
        stty("echo");
        eprintln!();
    }
    read.map_err(|e| e.to_string())?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

fn password(from_stdin: bool) -> Result<String, String> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).map_err(|e| e.to_string())?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_owned());
    }
    if !std::io::stdin().is_terminal() {
        return Err("standard input is not a terminal: pass --password-stdin".into());
    }
    let first = prompt("password: ")?;
    if prompt("again: ")? != first {
        return Err("the passwords differ".into());
    }
    Ok(first)
}

fn run_inner(cmd: UserCommand) -> Result<(), String> {
    match cmd {
        UserCommand::Add { user, password_stdin, db } => {
            let (u, r) = split(&user)?;
            let pw = password(password_stdin)?;
            if pw.is_empty() {
                return Err("empty password".into());
            }
            open(&db)?.put_many(&[(u.to_owned(), r.to_owned(), Subscriber::new(u, r, &pw))])
        }
        UserCommand::Del { user, db } => {
            let (u, r) = split(&user)?;
            match open(&db)?.delete(u, r)? {
                true => Ok(()),
                false => Err(format!("no user `{user}`")),
            }
        }
        UserCommand::List { db } => {
            let mut out = std::io::stdout().lock();
            for u in open(&db)?.list()? {
                let _ = writeln!(out, "{u}");
            }
            Ok(())
        }
        UserCommand::Import { db } => {
            let mut users = Vec::new();
            for (n, line) in std::io::stdin().lock().lines().enumerate() {
                let line = line.map_err(|e| e.to_string())?;
                let line = line.trim_end_matches('\r');
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let (user, pw) = line
                    .split_once(';')
                    .ok_or_else(|| format!("line {}: expected user@realm;password", n + 1))?;
                let (u, r) = split(user).map_err(|e| format!("line {}: {e}", n + 1))?;
                users.push((u.to_owned(), r.to_owned(), Subscriber::new(u, r, pw)));
            }
            open(&db)?.put_many(&users)?;
            eprintln!("{} users imported", users.len());
            Ok(())
        }
    }
}

pub fn run(cmd: UserCommand) -> ExitCode {
    match run_inner(cmd) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
