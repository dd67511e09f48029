//! `sipc db migrate FILE.route`: creates or brings up to date the
//! PostgreSQL tables the configuration shares with other nodes (the
//! location table of `module usrloc { db_url }`). `sipc run` does the same
//! before it serves; this command lets an operator do it ahead, with the
//! rights to create tables, and see what it did.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::sema::ir::Value;

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Create or update the shared tables of a configuration.
    Migrate(MigrateArgs),
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The configuration whose tables to create.
    pub file: PathBuf,
    /// Set a define switch, as for `sipc run` (`-D NAME[=VALUE]`).
    #[arg(short = 'D', long = "define", value_name = "NAME[=VALUE]")]
    pub define: Vec<String>,
}

pub fn run(cmd: DbCommand) -> ExitCode {
    let DbCommand::Migrate(args) = cmd;
    match migrate(&args) {
        Ok(lines) => {
            for l in lines {
                println!("{l}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

fn migrate(args: &MigrateArgs) -> Result<Vec<String>, String> {
    let name = args.file.to_string_lossy().into_owned();
    let out = super::check::load_for(&args.file, &args.define)?;
    let prog = &out.program;
    let mut tables = Vec::new();
    if let Some(Value::Str(url)) = super::services::setting(prog, "usrloc", "db_url")
        && crate::cluster::is_postgres_url(url)
    {
        let table = match super::services::setting(prog, "usrloc", "db_table") {
            Some(Value::Str(t)) => t.clone(),
            _ => "location".to_owned(),
        };
        if !crate::cluster::is_table_name(&table) {
            return Err(format!(
                "`db_table = \"{table}\"`: use lower-case letters, digits and `_`"
            ));
        }
        tables.push((url.clone(), crate::cluster::schema::Kind::Location, table));
    }
    if let Some((url, table)) = super::services::shared_subscriber_table(prog)? {
        tables.push((url, crate::cluster::schema::Kind::Subscriber, table));
    }
    if tables.is_empty() {
        return Err(format!(
            "`{name}` shares no table in PostgreSQL (`module usrloc {{ db_url = \"postgres://…\"; }}`, `module auth {{ db_url }}`)"
        ));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let mut lines = Vec::new();
        for (url, kind, table) in tables {
            let mut client = crate::cluster::connect(&url, None)
                .await
                .map_err(|e| format!("cannot connect to `{url}`: {e}"))?;
            let ran = crate::cluster::schema::migrate(&mut client, kind, &table)
                .await
                .map_err(|e| format!("`{table}`: {e}"))?;
            lines.push(match ran {
                0 => format!("{table}: up to date"),
                n => format!("{table}: {n} step(s) applied"),
            });
        }
        Ok(lines)
    })
}
