//! Checking and compiling a config for a reload.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::codegen::Program;
use crate::sema::{self, CheckedProgram, FsLoader, Loader, Options};

/// A config that checked and compiled.
#[derive(Debug)]
pub struct Built {
    pub program: Arc<Program>,
    pub checked: CheckedProgram,
    /// Every file the check read or tried to read (the root first), so a
    /// missing include that appears later triggers a reload too.
    pub files: Vec<PathBuf>,
    /// Hash of the source texts, to tell generations apart in logs.
    pub hash: u64,
    /// Check plus JIT compile.
    pub compile_time: Duration,
    /// The source texts (for `sipc trace`, which shows statements).
    pub sources: crate::syntax::span::SourceMap,
}

/// Why a config did not build: the diagnostics as `sipc check` renders them
/// (without colour), and the files read, so they stay watched.
#[derive(Debug)]
pub struct Failed {
    pub diagnostics: String,
    pub files: Vec<PathBuf>,
}

/// A loader that remembers what it was asked for.
struct Recording {
    seen: Mutex<Vec<PathBuf>>,
}

impl Loader for Recording {
    fn load(&self, path: &Path) -> std::io::Result<String> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).push(path.to_path_buf());
        FsLoader.load(path)
    }
}

/// Checks and compiles the config at `path`.
pub fn build(path: &Path, opts: &Options) -> Result<Built, Failed> {
    let started = Instant::now();
    let name = path.to_string_lossy().into_owned();
    let text = std::fs::read_to_string(path).map_err(|e| Failed {
        diagnostics: format!("error: cannot read `{name}`: {e}\n"),
        files: vec![path.to_path_buf()],
    })?;
    let loader = Recording { seen: Mutex::new(Vec::new()) };
    let out = sema::check_with_loader(&name, path, text, &loader, opts);
    let mut files = vec![path.to_path_buf()];
    files.extend(loader.seen.into_inner().unwrap_or_else(|e| e.into_inner()));
    if out.errors() > 0 || !out.unmatched_defines.is_empty() {
        let mut diagnostics = crate::cli::check::render_plain(&out);
        for d in &out.unmatched_defines {
            diagnostics.push_str(&format!("error: `-D {d}` matches no `const` or `define`\n"));
        }
        return Err(Failed { diagnostics, files });
    }
    let mut h = DefaultHasher::new();
    for f in out.sources.files() {
        f.text.hash(&mut h);
    }
    let program = Program::compile(&out.program)
        .map_err(|e| Failed { diagnostics: format!("error: {e}\n"), files: files.clone() })?;
    Ok(Built {
        program: Arc::new(program),
        checked: out.program,
        files,
        hash: h.finish(),
        compile_time: started.elapsed(),
        sources: out.sources,
    })
}
