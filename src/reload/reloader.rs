//! Swapping a newly compiled program into the running proxy.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use super::build::{Built, Failed, build};
use crate::proxy::core::Core;
use crate::sema::Options;
use crate::sema::ir::{CheckedProgram, SettingValue};

/// A callback told about every new program (the log level follows `debug`).
pub type OnReload = Box<dyn Fn(&CheckedProgram) + Send + Sync>;

/// The reload state of one running config; see the module docs of
/// [`crate::reload`].
pub struct Reloader {
    path: PathBuf,
    opts: Options,
    core: Arc<Core>,
    /// What only a restart can change: listen sockets, TLS material, domains.
    fixed: String,
    state: Mutex<State>,
    /// One reload at a time (a save during a compile queues behind it).
    gate: tokio::sync::Mutex<()>,
    files: tokio::sync::watch::Sender<Vec<PathBuf>>,
    on_reload: Option<OnReload>,
    /// A `sipc trace` is running (one at a time).
    pub(crate) trace_active: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader").field("path", &self.path).finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
struct State {
    generation: u64,
    hash: u64,
    loaded_at: SystemTime,
    compile_time: Duration,
    reloads: u64,
    failures: u64,
    last_failure: Option<(SystemTime, String)>,
    /// Settings that only take effect at a restart, as first loaded.
    restart_settings: Vec<SettingValue>,
}

/// Settings read once at start (sockets, workers, transaction timers,
/// limits): a reload that changes them keeps serving and warns.
fn restart_settings(p: &CheckedProgram) -> Vec<SettingValue> {
    p.settings.iter().filter(|s| !(s.module.is_empty() && s.name == "debug")).cloned().collect()
}

fn fixed_part(p: &CheckedProgram) -> String {
    let tls: Vec<&SettingValue> = p.settings.iter().filter(|s| s.module == "tls").collect();
    format!("{:?}|{:?}|{:?}", p.listens, tls, p.domains)
}

impl Reloader {
    /// The reloader of the config at `path`, now serving `first` (generation 1).
    pub fn new(
        path: &Path,
        opts: Options,
        core: Arc<Core>,
        first: &Built,
        on_reload: Option<OnReload>,
    ) -> Arc<Reloader> {
        let (files, _) = tokio::sync::watch::channel(first.files.clone());
        Arc::new(Reloader {
            path: path.to_path_buf(),
            opts,
            core,
            fixed: fixed_part(&first.checked),
            state: Mutex::new(State {
                generation: 1,
                hash: first.hash,
                loaded_at: SystemTime::now(),
                compile_time: first.compile_time,
                reloads: 0,
                failures: 0,
                last_failure: None,
                restart_settings: restart_settings(&first.checked),
            }),
            gate: tokio::sync::Mutex::new(()),
            files,
            on_reload,
            trace_active: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The files of the current config (updated after each reload).
    pub fn files(&self) -> tokio::sync::watch::Receiver<Vec<PathBuf>> {
        self.files.subscribe()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The generation now serving (1 at start).
    pub fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// The hash of the source texts now serving.
    pub fn hash(&self) -> u64 {
        self.lock().hash
    }

    /// The options the config is checked with (`-D` switches).
    pub fn options(&self) -> &Options {
        &self.opts
    }

    pub fn core(&self) -> &Arc<Core> {
        &self.core
    }

    /// Holds off reloads while the caller swaps routers (`sipc trace`).
    pub async fn exclusive(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.gate.lock().await
    }

    /// Reloads attempted so far, and how many of them failed.
    pub fn counts(&self) -> (u64, u64) {
        let s = self.lock();
        (s.reloads, s.failures)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Checks and compiles the config again and, if it is good, serves it.
    /// `Ok` carries a one-line summary, `Err` the diagnostics; on `Err` the
    /// old program keeps serving.
    pub async fn reload(&self, why: &str) -> Result<String, String> {
        let _one_at_a_time = self.gate.lock().await;
        super::notify::notify(&format!(
            "RELOADING=1\nMONOTONIC_USEC={}\nSTATUS=reloading ({why})",
            super::notify::monotonic_usec()
        ));
        let (path, opts) = (self.path.clone(), self.opts.clone());
        let built = tokio::task::spawn_blocking(move || build(&path, &opts)).await;
        let result = match built {
            Ok(Ok(built)) => self.install(built, why),
            Ok(Err(Failed { diagnostics, files })) => {
                let _ = self.files.send(files);
                Err(diagnostics)
            }
            Err(e) => Err(format!("error: the compiler thread failed: {e}\n")),
        };
        if let Err(diagnostics) = &result {
            let mut s = self.lock();
            s.reloads += 1;
            s.failures += 1;
            s.last_failure = Some((SystemTime::now(), diagnostics.clone()));
            tracing::error!(
                "reload ({why}) failed; generation {} keeps serving:\n{diagnostics}",
                s.generation
            );
        }
        // Serving again, the new config or the old one.
        let status = match &result {
            Ok(_) => format!("generation {} serving", self.generation()),
            Err(_) => format!("generation {} serving; the last reload failed", self.generation()),
        };
        super::notify::notify(&format!("READY=1\nSTATUS={status}"));
        result
    }

    fn install(&self, built: Built, why: &str) -> Result<String, String> {
        if fixed_part(&built.checked) != self.fixed {
            return Err(format!(
                "error: `{}` changes `listen`, `domain`/`alias` or `module tls`: these need a \
                 restart (sipc run binds sockets and names once); nothing was changed\n",
                self.path.display()
            ));
        }
        built.program.set_local(self.core.local.clone());
        built.program.attach(self.core.services());
        built.program.install_events(self.core.services());
        if let Some(f) = &self.on_reload {
            f(&built.checked);
        }
        // The swap and the new generation number under one lock: whoever
        // is routed by the new program and then asks for the generation
        // sees the new one (`sipc trace` ends on a generation change).
        let mut s = self.lock();
        self.core.set_router(built.program.clone());
        s.generation += 1;
        s.reloads += 1;
        s.hash = built.hash;
        s.loaded_at = SystemTime::now();
        s.compile_time = built.compile_time;
        let summary = format!(
            "generation {} ({:016x}) serving, compiled in {:.1} ms",
            s.generation,
            s.hash,
            built.compile_time.as_secs_f64() * 1e3
        );
        tracing::info!("reload ({why}): {summary}");
        if format!("{:?}", restart_settings(&built.checked)) != format!("{:?}", s.restart_settings)
        {
            tracing::warn!(
                "reload ({why}): settings changed; routes, tables, constants and `debug` are \
                 live, other settings (timers, limits, workers, registrar, NAT keepalives) take effect at restart"
            );
        }
        drop(s);
        let _ = self.files.send(built.files);
        Ok(summary)
    }

    /// What `sipc reload --status` prints.
    pub fn status(&self) -> String {
        let s = self.lock().clone();
        let ago = |t: SystemTime| t.elapsed().map_or(0, |d| d.as_secs());
        let since_epoch =
            |t: SystemTime| t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let mut out = format!(
            "config: {}\ngeneration: {}\nhash: {:016x}\nloaded: {} (unix time; {} s ago)\n\
             compile: {:.1} ms\nreloads: {} ({} failed)\nprograms alive: {}\ntransactions: {}\n",
            self.path.display(),
            s.generation,
            s.hash,
            since_epoch(s.loaded_at),
            ago(s.loaded_at),
            s.compile_time.as_secs_f64() * 1e3,
            s.reloads,
            s.failures,
            crate::codegen::Program::live(),
            self.core.transactions(),
        );
        if let Some(p) = &self.core.services().natping {
            out.push_str(&p.stats.line());
        }
        if let Some(r) = &self.core.services().rtpengine {
            out.push_str(&r.status_line());
        }
        let services = self.core.services();
        out.push_str(&format!(
            "bans: {} now, {} set, {} datagrams/connections dropped\n",
            services.bans.len(),
            services.bans.banned.load(std::sync::atomic::Ordering::Relaxed),
            services.bans.dropped.load(std::sync::atomic::Ordering::Relaxed),
        ));
        for (name, keys, exceeded) in services.limits.summary() {
            out.push_str(&format!("limit {name}: {keys} keys, {exceeded} over\n"));
        }
        out.push_str(&crate::dialog::status_line(&services.dialogs));
        out.push('\n');
        if let Some(acc) = services.dialogs.accounting() {
            out.push_str(&acc.status_line());
            out.push('\n');
        }
        match &s.last_failure {
            None => out.push_str("last failure: none\n"),
            Some((at, diags)) => {
                out.push_str(&format!(
                    "last failure: {} (unix time; {} s ago)\n{diags}",
                    since_epoch(*at),
                    ago(*at)
                ));
            }
        }
        out
    }
}
