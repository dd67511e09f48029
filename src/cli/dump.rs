//! `sipc dump …`: print what the parsers made of an input, for debugging.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum DumpCommand {
    /// Parse a SIP message from a file and print its start line, headers and typed views.
    Sip {
        /// File holding one SIP message as it would arrive on the wire.
        file: PathBuf,
    },
    /// Parse a route file and print its syntax tree (no includes, no checks).
    Ast {
        /// The `.route` file.
        file: PathBuf,
    },
    /// Print the language's words (keywords by class, builtins, pseudo-variables,
    /// settings) from the lexer and the catalog; the editor grammars are generated
    /// from this.
    Keywords {
        /// Output format.
        #[arg(long, value_enum, default_value_t = WordsFormat::Json)]
        format: WordsFormat,
    },
    /// Check and compile a route file and print the Cranelift IR of its routes.
    Clif {
        /// The `.route` file.
        file: PathBuf,
        /// Only this route (`request_route`, `reply_route`, or a route's name).
        #[arg(long)]
        route: Option<String>,
        /// Define a feature switch or override a constant, as for `sipc check`.
        #[arg(short = 'D', value_name = "NAME[=VALUE]")]
        define: Vec<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WordsFormat {
    /// One JSON object, a list of words per class.
    Json,
    /// `class word` per line.
    Text,
}

pub fn run(cmd: DumpCommand) -> ExitCode {
    match cmd {
        DumpCommand::Keywords { format } => dump_keywords(format),
        DumpCommand::Sip { file } => crate::sip::dump::dump_file(&file),
        DumpCommand::Ast { file } => dump_ast(&file),
        DumpCommand::Clif { file, route, define } => dump_clif(&file, route.as_deref(), &define),
    }
}

fn dump_clif(file: &std::path::Path, only: Option<&str>, define: &[String]) -> ExitCode {
    let mut defines = Vec::new();
    for d in define {
        match super::check::parse_define(d) {
            Ok(x) => defines.push(x),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let opts = crate::sema::Options { defines, all_features: false };
    let out = match crate::sema::check_path(file, &file.to_string_lossy(), &opts) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: cannot read `{}`: {e}", file.display());
            return ExitCode::from(2);
        }
    };
    if out.errors() > 0 {
        eprint!("{}", super::check::render_plain(&out));
        return ExitCode::from(1);
    }
    let ir = match crate::codegen::Program::clif(&out.program) {
        Ok(ir) => ir,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let mut shown = 0;
    for (route, text) in out.program.routes.iter().zip(ir) {
        let kind = route.kind.keyword();
        let wanted = only.is_none_or(|o| o == route.name || (route.name.is_empty() && o == kind));
        if wanted {
            println!("; {kind} {}\n{text}", route.name);
            shown += 1;
        }
    }
    if shown == 0 {
        eprintln!("error: no route named `{}`", only.unwrap_or_default());
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

fn dump_ast(file: &std::path::Path) -> ExitCode {
    use crate::diag::render::{self, Style};
    use crate::syntax::span::SourceMap;
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: cannot read `{}`: {e}", file.display());
            return ExitCode::from(2);
        }
    };
    let mut map = SourceMap::new();
    let id = map.add(file.to_string_lossy().into_owned(), text);
    let (ast, diags) = crate::syntax::parser::parse(id, &map.get(id).text.clone());
    println!("{ast:#?}");
    for d in &diags {
        eprint!("{}", render::human(&map, d, Style::plain()));
    }
    if diags.iter().any(|d| d.is_error()) { ExitCode::from(1) } else { ExitCode::SUCCESS }
}

fn dump_keywords(format: WordsFormat) -> ExitCode {
    use std::io::Write;
    let words = crate::lsp::vocab::Vocabulary::collect();
    let mut out = std::io::stdout().lock();
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = match format {
        WordsFormat::Json => {
            writeln!(out, "{}", serde_json::to_string_pretty(&words).unwrap_or_default())
        }
        WordsFormat::Text => words
            .classes()
            .iter()
            .flat_map(|(class, list)| list.iter().map(move |w| (class, w)))
            .try_for_each(|(class, w)| writeln!(out, "{class} {w}")),
    };
    ExitCode::SUCCESS
}
