//! `sipc run FILE [-D NAME[=VALUE]]… [--check-only] [-v…]`
//!
//! Checks the file (diagnostics are printed exactly as `sipc check` prints
//! them; any error exits 1), compiles it to native code, and serves it:
//! the `listen` items become the proxy's sockets, `domain`/`alias` its
//! names, `settings { children }` (or `-n`) the number of routing workers and
//! `settings { debug }` the log level (overridden by `-v`); a program that
//! calls the registrar or auth builtins gets its location table and
//! subscriber store (`cli::services`). SIGINT or SIGTERM stops the server,
//! writes every pending location change and exits 0.

use std::io::{IsTerminal, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;

use crate::codegen::Program;
use crate::diag::render::{self, Style};
use crate::diag::{Code, Diagnostic};
use crate::proxy::Transport;
use crate::proxy::server::{ListenSpec, ServerConfig};
use crate::sema::ir::{CheckedProgram, Value};
use crate::sema::{self, Options};

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The route file to serve.
    pub file: PathBuf,
    /// Define a feature switch (`-D WITH_AUTH`) or override a constant (`-D MAX_HOPS=20`).
    #[arg(short = 'D', value_name = "NAME[=VALUE]")]
    pub define: Vec<String>,
    /// Check and compile, then exit without serving.
    #[arg(long)]
    pub check_only: bool,
    /// More logging: -v info, -vv debug, -vvv trace (default: the `debug` setting).
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// The control socket for `sipc reload` (default: a per-user directory
    /// under $TMPDIR, named after the config's path).
    #[arg(long, value_name = "PATH")]
    pub control: Option<PathBuf>,
    /// Do not reload when the config files change (SIGHUP and `sipc reload`
    /// still do).
    #[arg(long)]
    pub no_watch: bool,
    /// Routing workers (UDP receive threads per listen), overriding
    /// `settings { children }` (Kamailio's `-n`).
    #[arg(short = 'n', long, value_name = "N")]
    pub workers: Option<usize>,
}

/// The server configuration a checked program asks for, with relative
/// paths (TLS files) taken from the working directory.
pub fn server_config(prog: &CheckedProgram) -> Result<ServerConfig, String> {
    server_config_in(prog, std::path::Path::new("."))
}

/// The server configuration, with relative paths resolved from `base`
/// (the directory of the config file).
pub fn server_config_in(
    prog: &CheckedProgram,
    base: &std::path::Path,
) -> Result<ServerConfig, String> {
    let mut listens = Vec::new();
    for l in &prog.listens {
        let transport = match Transport::from_name(&l.proto) {
            Some(t) => t,
            None => {
                return Err(format!(
                    "`listen {}`: only {} are served",
                    l.proto,
                    Transport::served_list()
                ));
            }
        };
        let text = match &l.addr {
            Value::Addr(s) | Value::Str(s) => s.as_str(),
            other => return Err(format!("`listen`: not an address: {other:?}")),
        };
        let addr = text
            .parse::<SocketAddr>()
            .or_else(|_| {
                text.trim_matches(['[', ']']).parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 5060))
            })
            .map_err(|_| {
                format!("`listen {} {text}`: not an IP address with optional port", l.proto)
            })?;
        listens.push(ListenSpec { transport, addr });
    }
    if listens.is_empty() {
        return Err(
            "no `listen` item: say where to serve, e.g. `listen udp 127.0.0.1:5060;`".into()
        );
    }
    let wants_tls = listens.iter().any(|l| l.transport.is_secure());
    let tls_path = |name: &str| {
        prog.settings.iter().find(|s| s.module == "tls" && s.name == name).and_then(|s| {
            match &s.value {
                Value::Str(p) => Some(base.join(p)),
                _ => None,
            }
        })
    };
    let tls = match (tls_path("certificate"), tls_path("private_key")) {
        (Some(cert), Some(key)) => {
            let ca = tls_path("ca_list");
            let mut m = crate::proxy::tls::TlsMaterial::from_files(&cert, &key, ca.as_deref())
                .map_err(|e| format!("`module tls`: {e}"))?;
            m.policy = tls_policy(prog)?;
            Some(m)
        }
        _ if wants_tls => {
            return Err(
                "`listen tls` and `listen wss` need `module tls { certificate = \"…\"; private_key = \"…\"; }`"
                    .into(),
            );
        }
        _ => None,
    };
    let mut config = ServerConfig::new(listens);
    config.tls = tls;
    config.names = prog.domains.clone();
    // `children` (Kamailio's receiver processes) sizes the routing workers; 0: one per core.
    config.workers = setting_int(prog, "children").unwrap_or(0).max(0) as usize;
    if let Some(n) = setting_int(prog, "tcp_max_connections") {
        config.max_tcp_connections = n.max(1) as usize;
    }
    if let Some(n) = setting_int(prog, "tcp_max_connections_per_source") {
        config.max_connections_per_source = n.max(1) as usize;
    }
    config.txn = txn_config(prog);
    config.ws = std::sync::Arc::new(ws_config(prog));
    Ok(config)
}

/// The `module websocket` settings.
pub fn ws_config(prog: &CheckedProgram) -> crate::proxy::ws::WsConfig {
    use std::time::Duration;
    let mut c = crate::proxy::ws::WsConfig::default();
    for s in prog.settings.iter().filter(|s| s.module == "websocket") {
        match (s.name.as_str(), &s.value) {
            ("origins", Value::Str(list)) => {
                c.origins = list.split_whitespace().map(str::to_owned).collect();
            }
            ("keepalive_interval", Value::Duration(ms)) => {
                c.keepalive_interval = Duration::from_millis((*ms).max(1000));
            }
            ("keepalive_timeout", Value::Duration(ms)) => {
                c.keepalive_timeout = Duration::from_millis((*ms).max(1000));
            }
            ("keep_bindings", Value::Bool(b)) => c.keep_bindings = *b,
            _ => {}
        }
    }
    c
}

/// The `module tm` settings.
pub fn txn_config(prog: &CheckedProgram) -> crate::proxy::stateful::TxnConfig {
    use std::time::Duration;
    let setting = |name: &str| {
        prog.settings.iter().find(|s| s.module == "tm" && s.name == name).map(|s| &s.value)
    };
    let ms = |name: &str| match setting(name) {
        Some(Value::Duration(ms)) if *ms > 0 => Some(Duration::from_millis(*ms)),
        _ => None,
    };
    let mut config = crate::proxy::stateful::TxnConfig::default();
    let t = &mut config.timers;
    if let Some(t1) = ms("t1") {
        *t = crate::txn::Timers::with_t1(t1);
    }
    t.t2 = ms("t2").unwrap_or(t.t2);
    t.t4 = ms("t4").unwrap_or(t.t4);
    t.final_response = ms("fr_timer").unwrap_or(t.final_response);
    t.timer_c = ms("fr_inv_timer").unwrap_or(t.timer_c);
    if let Some(Value::Duration(ms)) = setting("trying_delay") {
        t.trying = Duration::from_millis(*ms);
    }
    if let Some(Value::Int(n)) = setting("max_transactions") {
        config.max_transactions = (*n).max(1) as usize;
    }
    config
}

fn setting_int(prog: &CheckedProgram, name: &str) -> Option<i64> {
    prog.settings.iter().find(|s| s.module.is_empty() && s.name == name).and_then(|s| {
        match s.value {
            Value::Int(i) => Some(i),
            _ => None,
        }
    })
}

/// The log level: `-v` counts win over the `debug` setting (-1 errors … 3 debug).
fn log_level(prog: &CheckedProgram, verbose: u8) -> tracing::Level {
    use tracing::Level;
    match verbose {
        0 => match setting_int(prog, "debug").unwrap_or(0) {
            i64::MIN..=-1 => Level::ERROR,
            0 => Level::WARN,
            1 | 2 => Level::INFO,
            _ => Level::DEBUG,
        },
        1 => Level::INFO,
        2 => Level::DEBUG,
        _ => Level::TRACE,
    }
}

pub fn run(args: RunArgs) -> ExitCode {
    let mut defines = Vec::new();
    for d in &args.define {
        match super::check::parse_define(d) {
            Ok(x) => defines.push(x),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let opts = Options { defines, all_features: false };
    let started = std::time::Instant::now();
    let name = args.file.to_string_lossy().into_owned();
    let out = match sema::check_path(&args.file, &name, &opts) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: cannot read `{name}`: {e}");
            return ExitCode::from(2);
        }
    };
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let style = Style { color, unicode: true, width: 100 };
    let mut stderr = std::io::stderr().lock();
    for d in &out.diagnostics {
        let _ = write!(stderr, "{}", render::human(&out.sources, d, style));
    }
    let mut errors = out.errors();
    for define in &out.unmatched_defines {
        let d = Diagnostic::new(
            Code::BadDefineOption,
            format!("`-D {define}` matches no `const` or `define` in any checked file"),
        );
        let names = out.define_names.iter().map(String::as_str);
        let d = match crate::sema::resolve::suggest(define, names) {
            Some(s) => d.with_help(format!("did you mean `{s}`?")),
            None => d.with_help(format!(
                "declare it with `define {define} = false;` or `const {define} = …;`"
            )),
        };
        let map = crate::syntax::span::SourceMap::new();
        let _ = write!(stderr, "{}", render::human(&map, &d, style));
        errors += 1;
    }
    if errors > 0 {
        let warnings = out.warnings();
        let _ = writeln!(
            stderr,
            "checked 1 file: {errors} error{}, {warnings} warning{}",
            if errors == 1 { "" } else { "s" },
            if warnings == 1 { "" } else { "s" },
        );
        return ExitCode::from(1);
    }
    drop(stderr);
    let program = match Program::compile(&out.program) {
        Ok(p) => Arc::new(p),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let base = args.file.parent().map(std::path::Path::to_path_buf).unwrap_or_default();
    let mut config = match server_config_in(&out.program, &base) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    if let Some(n) = args.workers {
        config.workers = n;
    }
    for (name, lands_with) in crate::codegen::not_yet_available(&out.program) {
        eprintln!(
            "note: `{name}()` is not available yet (lands with {lands_with}): it returns false \
             (`on_*` arm nothing) without side effects"
        );
    }
    if args.check_only {
        eprintln!("{name}: checked and compiled; {} listen socket(s)", config.listens.len());
        return ExitCode::SUCCESS;
    }
    let mut hash = std::hash::DefaultHasher::new();
    for f in out.sources.files() {
        std::hash::Hash::hash(&f.text, &mut hash);
    }
    let first = crate::reload::Built {
        program: Arc::clone(&program),
        files: out.sources.files().iter().map(|f| PathBuf::from(&f.name)).collect(),
        hash: std::hash::Hasher::finish(&hash),
        compile_time: started.elapsed(),
        checked: out.program,
        sources: out.sources,
    };
    // The log level follows the `debug` setting on reload (unless -v fixed it).
    let level = tracing_subscriber::filter::LevelFilter::from_level(log_level(
        &first.checked,
        args.verbose,
    ));
    let level_handle =
        super::logs::install(&super::logs::LogSetup::of(&first.checked), level, color);
    // `sipc ctl log level LEVEL`: until the next reload sets it from the
    // config again.
    let ctl_handle = level_handle.clone();
    crate::reload::rpc::set_log_level(Box::new(move |level| {
        use tracing_subscriber::filter::LevelFilter;
        if let Some(text) = level {
            let new: LevelFilter = text.parse().map_err(|_| {
                format!("`{text}` is not a log level (off, error, warn, info, debug, trace)")
            })?;
            ctl_handle.modify(|l| *l = new).map_err(|e| e.to_string())?;
        }
        let now = ctl_handle.clone_current().unwrap_or(LevelFilter::OFF);
        Ok(now.to_string().to_ascii_lowercase())
    }));
    let verbose = args.verbose;
    let on_reload: crate::reload::reloader::OnReload = Box::new(move |p| {
        let level = tracing_subscriber::filter::LevelFilter::from_level(log_level(p, verbose));
        let _ = level_handle.modify(|l| *l = level);
    });
    let control =
        args.control.clone().unwrap_or_else(|| crate::reload::control::default_path(&args.file));
    // Another proxy of this config answers on its control socket: a second
    // one would share its addresses (or fight over them) and be out of
    // reach of `sipc reload`.
    if crate::reload::control::answers(&control) {
        eprintln!(
            "error: a sipc of this config is already running (its control socket {} answers); \
             stop it first, or give this one another config or `--control`",
            control.display()
        );
        return ExitCode::from(1);
    }
    let feed_ca = first.checked.settings.iter().find_map(|s| match (&s.value, s.module.as_str()) {
        (Value::Str(p), "security") if s.name == "feed_ca" => Some(base.join(p)),
        _ => None,
    });
    let reload = ReloadSetup {
        path: args.file.clone(),
        feed_ca,
        opts,
        first,
        on_reload,
        control,
        watch: !args.no_watch,
    };
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    // The rtpengine client binds its sockets on the runtime.
    let entered = rt.enter();
    let services = match super::services::start(&reload.first.checked, &base) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    drop(entered);
    config.services = Arc::clone(&services.services);
    let code = rt.block_on(serve(config, program, reload));
    // After the server stopped: every pending location change is written.
    services.stop();
    code
}

/// `module tls { min_version; cipher_suites; require_certificate }`.
fn tls_policy(prog: &CheckedProgram) -> Result<crate::proxy::tls::TlsPolicy, String> {
    let get = |name: &str| prog.settings.iter().find(|s| s.module == "tls" && s.name == name);
    let mut p = crate::proxy::tls::TlsPolicy::default();
    if let Some(Value::Str(v)) = get("min_version").map(|s| &s.value) {
        p.min_version = crate::proxy::tls::MinVersion::parse(v)
            .map_err(|e| format!("`module tls {{ min_version }}`: {e}"))?;
    }
    if let Some(Value::Str(v)) = get("cipher_suites").map(|s| &s.value) {
        p.cipher_suites =
            v.split([' ', ',', ':']).filter(|s| !s.is_empty()).map(str::to_owned).collect();
    }
    if let Some(Value::Bool(b)) = get("require_certificate").map(|s| &s.value) {
        p.require_certificate = *b;
    }
    Ok(p)
}

/// What `serve` needs to reload the config.
struct ReloadSetup {
    path: PathBuf,
    /// `module security { feed_ca }`, resolved against the config's directory.
    feed_ca: Option<PathBuf>,
    opts: Options,
    first: crate::reload::Built,
    on_reload: crate::reload::reloader::OnReload,
    control: PathBuf,
    watch: bool,
}

async fn serve(config: ServerConfig, program: Arc<Program>, reload: ReloadSetup) -> ExitCode {
    let sql_tables: Vec<(String, crate::routing::sql::SqlSource)> = reload
        .first
        .checked
        .routing
        .tables
        .iter()
        .filter_map(|t| Some((t.name.clone(), t.source.clone()?)))
        .collect();
    let metrics = match metrics_listen(&reload.first.checked) {
        Ok(m) => m,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(1);
        }
    };
    let handle = match crate::proxy::server::start(config, program.clone()).await {
        Ok(h) => h,
        Err(e) => {
            tracing::error!("cannot listen: {e}");
            return ExitCode::from(1);
        }
    };
    program.set_local(handle.core.local.clone());
    program.attach(handle.core.services());
    program.install_events(handle.core.services());
    if let Some(d) = program.run_startup(handle.core.services()) {
        tracing::info!("event_route \"core:worker-one-init\" ran: {d:?}");
    }
    for (t, a) in &handle.bound {
        tracing::info!("listening on {} {a}", t.via_token().to_ascii_lowercase());
    }
    let reloader = crate::reload::Reloader::new(
        &reload.path,
        reload.opts,
        Arc::clone(&handle.core),
        &reload.first,
        Some(reload.on_reload),
    );
    // From now on the core (and transactions) hold generation 1; dropping
    // these lets a reload free it.
    drop(reload.first);
    drop(program);
    let mut background = Vec::new();
    if reload.watch {
        match crate::reload::watch::spawn(Arc::clone(&reloader)) {
            Ok(task) => background.push(task),
            Err(e) => tracing::warn!("not watching the config files: {e}"),
        }
    }
    match crate::reload::control::serve(Arc::clone(&reloader), &reload.control) {
        Ok(task) => {
            tracing::info!("control socket {}", reload.control.display());
            background.push(task);
        }
        Err(e) => tracing::warn!("no control socket at {}: {e}", reload.control.display()),
    }
    background.push(tokio::spawn(reload_on_sighup(Arc::clone(&reloader))));
    for (name, source) in sql_tables {
        background.push(tokio::spawn(crate::reload::sql_watch::watch(
            Arc::clone(&reloader),
            name,
            source,
        )));
    }
    if let Some(addr) = metrics {
        match crate::metrics::serve(addr, Arc::clone(&reloader)).await {
            Ok(task) => {
                tracing::info!("metrics on http://{addr}/metrics");
                background.push(task);
            }
            // Like the control socket: the proxy serves SIP without it.
            Err(e) => tracing::warn!("no metrics on {addr}: {e}"),
        }
    }
    if let Some(task) = crate::proxy::natping::spawn(&handle.core) {
        background.push(task);
    }
    // Blocklist feeds: idle unless the serving program declares one.
    background.push(crate::security::feed::spawn(
        Arc::downgrade(handle.core.services()),
        reload.feed_ca.clone(),
    ));
    // Dialog deadlines: cheap when there is none (one heap peek per tick).
    background.push(crate::proxy::dialogs::spawn(&handle.core));
    // systemd (`Type=notify`): serving now.
    crate::reload::notify::notify(&format!(
        "READY=1\nMAINPID={}\nSTATUS=generation 1 serving",
        std::process::id()
    ));
    shutdown_signal().await;
    crate::reload::notify::notify("STOPPING=1\nSTATUS=shutting down");
    tracing::info!("shutting down");
    for task in background {
        task.abort();
    }
    let _ = std::fs::remove_file(&reload.control);
    handle.stop(std::time::Duration::from_secs(2)).await;
    ExitCode::SUCCESS
}

/// SIGHUP reloads the config, as for most daemons.
/// `module metrics { listen }`: where to serve `/metrics`, if anywhere.
fn metrics_listen(prog: &CheckedProgram) -> Result<Option<std::net::SocketAddr>, String> {
    match super::services::setting(prog, "metrics", "listen") {
        None => Ok(None),
        Some(Value::Str(text)) => text.parse().map(Some).map_err(|_| {
            format!("module metrics: listen = \"{text}\" is not an address and port, e.g. \"127.0.0.1:9090\"")
        }),
        Some(other) => Err(format!("module metrics: listen must be a string, not {other:?}")),
    }
}

async fn reload_on_sighup(reloader: Arc<crate::reload::Reloader>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hup) = signal(SignalKind::hangup()) else { return };
    while hup.recv().await.is_some() {
        let _ = reloader.reload("SIGHUP").await;
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sema::ir::Listen;

    fn prog(listens: &[(&str, &str)]) -> CheckedProgram {
        CheckedProgram {
            listens: listens
                .iter()
                .map(|(p, a)| Listen {
                    proto: p.to_string(),
                    addr: Value::Addr(a.to_string()),
                    advertise: None,
                })
                .collect(),
            domains: vec!["sip.example.com".into()],
            ..CheckedProgram::default()
        }
    }

    #[test]
    fn listens_become_sockets() {
        let c = server_config(&prog(&[
            ("udp", "127.0.0.1:5070"),
            ("tcp", "[::1]:5071"),
            ("udp", "10.0.0.1"),
        ]))
        .unwrap();
        let got: Vec<_> = c.listens.iter().map(|l| (l.transport, l.addr.to_string())).collect();
        assert_eq!(
            got,
            vec![
                (Transport::Udp, "127.0.0.1:5070".to_string()),
                (Transport::Tcp, "[::1]:5071".to_string()),
                (Transport::Udp, "10.0.0.1:5060".to_string()),
            ]
        );
        assert_eq!(c.names, vec!["sip.example.com".to_string()]);
        assert!(server_config(&prog(&[("tls", "127.0.0.1:5061")])).unwrap_err().contains("tls"));
        assert!(server_config(&prog(&[])).is_err());
    }
}
