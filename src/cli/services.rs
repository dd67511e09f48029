//! Starting and stopping the long-lived services `sipc run` gives the
//! routes: the location table (restored from SQLite, written behind), the
//! NAT pinger's shared part (its task starts with the server:
//! `proxy::natping::spawn`) and the digest authentication state, built
//! from the program's settings and only when the program calls builtins
//! that need them (a config without a registrar touches no database file).
//!
//! The write-behind delay defaults to 1 s: a REGISTER never waits for a
//! disk write, a burst of refreshes costs one SQLite transaction per second,
//! and a crash (SIGKILL, power loss after the OS buffers) loses at most the
//! last second of changes — which devices repeat at their next refresh
//! anyway. SIGTERM/SIGINT flush everything before exit ([`RunningServices::stop`]).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::auth::{Auth, NonceKey, SubscriberStore};
use crate::proxy::services::Services;
use crate::registrar::natping::{NatPingConfig, NatPinger, PingMethod};
use crate::registrar::store::{Persister, SqliteStore};
use crate::registrar::{Location, RegistrarConfig};
use crate::runtime::registrar::unix_now;
use crate::sema::ir::{CheckedProgram, Value};

/// How often expired bindings are purged (memory and database).
const PURGE_EVERY: Duration = Duration::from_secs(10);
/// How often the subscriber cache is re-read from the database.
const RELOAD_SUBSCRIBERS_EVERY: Duration = Duration::from_secs(30);

/// The services of one `sipc run`, with their background threads.
#[derive(Debug)]
pub struct RunningServices {
    pub services: Arc<Services>,
    /// Where the live dialogs are written on stop (when the program
    /// tracks dialogs).
    dialog_snapshot: Option<PathBuf>,
    /// The SQLite file the bans in force are saved to on stop.
    ban_db: PathBuf,
    persister: Option<Persister>,
    /// The location table shared with other nodes in PostgreSQL.
    shared_location: Option<crate::cluster::location::SharedLocation>,
    /// Bans and limits shared with other nodes in Redis.
    shared_counters: Option<crate::cluster::counters::SharedCounters>,
    /// The subscriber table shared with other nodes in PostgreSQL.
    shared_subscribers: Option<crate::cluster::subscribers::SharedSubscribers>,
    maintenance: Option<(Arc<StopFlag>, std::thread::JoinHandle<()>)>,
}

/// A stop request a background thread waits on.
type StopFlag = (Mutex<bool>, Condvar);

impl RunningServices {
    /// Ends the background threads; every pending location change is written.
    pub fn stop(mut self) {
        if let Some((flag, thread)) = self.maintenance.take() {
            *flag.0.lock().unwrap_or_else(|e| e.into_inner()) = true;
            flag.1.notify_all();
            let _ = thread.join();
        }
        if let Some(p) = self.persister.take() {
            p.stop();
        }
        if let Some(s) = self.shared_location.take() {
            s.stop();
        }
        if let Some(s) = self.shared_counters.take() {
            s.stop();
        }
        if let Some(s) = self.shared_subscribers.take() {
            s.stop();
        }
        match crate::security::store::save(&self.ban_db, &self.services.bans) {
            Ok(0) => {}
            Ok(n) => tracing::info!("bans: {n} saved to {}", self.ban_db.display()),
            Err(e) => tracing::error!("bans: cannot save: {e}"),
        }
        let dialogs = &self.services.dialogs;
        if let Some(path) = &self.dialog_snapshot {
            match dialogs.snapshot(path) {
                Ok(0) => {}
                Ok(n) => tracing::info!("dialogs: {n} live dialogs saved to {}", path.display()),
                Err(e) => tracing::error!("dialogs: cannot save to {}: {e}", path.display()),
            }
        }
        if let Some(acc) = dialogs.accounting() {
            acc.stop();
            tracing::info!("{}", acc.status_line());
        }
    }
}

/// The dialog settings (`module dialog`).
pub fn dialog_config(prog: &CheckedProgram) -> crate::dialog::DialogConfig {
    let mut c = crate::dialog::DialogConfig::default();
    if let Some(Value::Duration(ms)) = setting(prog, "dialog", "default_timeout")
        && *ms > 0
    {
        c.default_timeout = Duration::from_millis(*ms);
    }
    c
}

/// The accounting settings (`module acc`), relative to `base`.
pub fn acc_config(prog: &CheckedProgram, base: &Path) -> Result<crate::acc::AccConfig, String> {
    let url = match setting(prog, "acc", "db_url") {
        Some(Value::Str(u)) => u.as_str(),
        _ => "sqlite:cdr.db",
    };
    let url = crate::acc::DbUrl::parse(url, base)
        .map_err(|e| format!("`module acc {{ db_url }}`: {e}"))?;
    let table = match setting(prog, "acc", "db_table") {
        Some(Value::Str(t)) => t.clone(),
        _ => "cdr".to_owned(),
    };
    crate::acc::backend::table_name(&table)
        .map_err(|e| format!("`module acc {{ db_table }}`: {e}"))?;
    let spool = match (setting(prog, "acc", "spool"), &url) {
        (Some(Value::Str(s)), _) => base.join(s),
        (_, crate::acc::DbUrl::Sqlite(p) | crate::acc::DbUrl::Jsonl(p)) => {
            let mut s = p.clone().into_os_string();
            s.push(".spool");
            PathBuf::from(s)
        }
        (_, crate::acc::DbUrl::Postgres(_)) => base.join("cdr.spool"),
    };
    let queue = match setting(prog, "acc", "queue_size") {
        Some(Value::Int(n)) if *n > 0 => *n as usize,
        _ => 65_536,
    };
    Ok(crate::acc::AccConfig { url, table, spool, queue })
}

/// Does the program track dialogs?
pub fn uses_dialogs(prog: &CheckedProgram) -> bool {
    prog.calls_any(crate::sema::builtins::DIALOG_FUNCTIONS)
}

/// Does the program write call records (it tracks dialogs and declares a
/// flag that asks for records)?
pub fn uses_accounting(prog: &CheckedProgram) -> bool {
    uses_dialogs(prog) && !crate::acc::masks(prog).is_empty()
}

/// `module hep`: where captured messages go, if anywhere.
fn hep_sender(prog: &CheckedProgram) -> Result<Option<crate::proxy::hep::HepSender>, String> {
    let Some(Value::Str(dest)) = setting(prog, "hep", "destination") else { return Ok(None) };
    let capture_id = match setting(prog, "hep", "capture_id") {
        Some(Value::Int(n)) => u32::try_from(*n)
            .map_err(|_| format!("module hep: capture_id = {n} is not from 0 to 4294967295"))?,
        _ => 1,
    };
    let password = match setting(prog, "hep", "password") {
        Some(Value::Str(p)) => Some(p.clone()),
        _ => None,
    };
    let all = !matches!(setting(prog, "hep", "capture_all"), Some(Value::Bool(false)));
    crate::proxy::hep::HepSender::new(dest, capture_id, password, all).map(Some)
}

/// The file live dialogs are saved to across a restart.
pub fn dialog_snapshot_path(prog: &CheckedProgram, base: &Path) -> PathBuf {
    match setting(prog, "dialog", "snapshot") {
        Some(Value::Str(p)) => base.join(p),
        _ => base.join("dialogs.json"),
    }
}

pub(super) fn setting<'p>(prog: &'p CheckedProgram, module: &str, name: &str) -> Option<&'p Value> {
    prog.settings.iter().find(|s| s.module == module && s.name == name).map(|s| &s.value)
}

fn secs(prog: &CheckedProgram, module: &str, name: &str) -> Option<u64> {
    match setting(prog, module, name) {
        Some(Value::Duration(ms)) => Some(*ms / 1000),
        _ => None,
    }
}

/// The registrar settings (`module registrar`).
pub fn registrar_config(prog: &CheckedProgram) -> RegistrarConfig {
    let d = RegistrarConfig::default();
    let max_contacts = match setting(prog, "registrar", "max_contacts") {
        Some(Value::Int(n)) => (*n).max(0) as usize,
        _ => d.max_contacts,
    };
    let secs32 = |name, default: u32| {
        secs(prog, "registrar", name).map_or(default, |s| s.min(u64::from(u32::MAX)) as u32)
    };
    RegistrarConfig {
        min_expires: secs32("min_expires", d.min_expires),
        max_expires: secs32("max_expires", d.max_expires),
        default_expires: secs32("default_expires", d.default_expires),
        max_contacts,
    }
}

/// The NAT keepalive settings (`module nathelper`); `None` when
/// `natping_interval` is unset or 0.
pub fn natping_config(prog: &CheckedProgram) -> Option<NatPingConfig> {
    let interval = match setting(prog, "nathelper", "natping_interval") {
        Some(Value::Duration(ms)) if *ms > 0 => Duration::from_millis(*ms),
        _ => return None,
    };
    let method = match setting(prog, "nathelper", "ping_method") {
        Some(Value::Str(m)) if m == "crlf" => PingMethod::Crlf,
        _ => PingMethod::Options,
    };
    let nated_only =
        !matches!(setting(prog, "nathelper", "ping_nated_only"), Some(Value::Bool(false)));
    let from = match setting(prog, "nathelper", "sipping_from") {
        Some(Value::Str(f)) => Some(f.clone()),
        _ => None,
    };
    let max_failures = match setting(prog, "nathelper", "max_failures") {
        Some(Value::Int(n)) => (*n).clamp(0, i64::from(u32::MAX)) as u32,
        _ => 0,
    };
    Some(NatPingConfig { interval, method, nated_only, from, max_failures })
}

/// The database file: `module usrloc { db_path }` relative to `base`, else
/// `sipc.db` there.
pub fn db_path(prog: &CheckedProgram, base: &Path) -> PathBuf {
    match setting(prog, "usrloc", "db_path") {
        Some(Value::Str(p)) => base.join(p),
        _ => base.join("sipc.db"),
    }
}

/// The write-behind period of the location table (`module usrloc {
/// write_delay }`, 1 s by default).
fn write_delay(prog: &CheckedProgram) -> Duration {
    match setting(prog, "usrloc", "write_delay") {
        Some(Value::Duration(ms)) if *ms > 0 => Duration::from_millis(*ms),
        _ => Duration::from_secs(1),
    }
}

/// The subscriber table shared in PostgreSQL (`module auth { db_url;
/// db_table }`), when the program names one.
pub fn shared_subscriber_table(prog: &CheckedProgram) -> Result<Option<(String, String)>, String> {
    let Some(Value::Str(url)) = setting(prog, "auth", "db_url") else { return Ok(None) };
    if !crate::cluster::is_postgres_url(url) {
        return Err(format!("`module auth {{ db_url = \"{url}\"; }}`: expected postgres://…"));
    }
    let table = match setting(prog, "auth", "db_table") {
        Some(Value::Str(t)) => t.clone(),
        _ => "subscriber".to_owned(),
    };
    if !crate::cluster::is_table_name(&table) {
        return Err(format!(
            "`module auth {{ db_table = \"{table}\"; }}`: use lower-case letters, digits and `_`"
        ));
    }
    Ok(Some((url.clone(), table)))
}

/// What names this node in the rows it writes: its host name and first
/// listen address (`sip1/udp:0.0.0.0:5060`), the same across restarts, so
/// its rows are still its own (to keep alive) when it comes back.
fn node_label(prog: &CheckedProgram) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let listen = prog
        .listens
        .first()
        .map(|l| match &l.addr {
            Value::Str(a) | Value::Addr(a) => format!("{}:{a}", l.proto),
            other => format!("{}:{other:?}", l.proto),
        })
        .unwrap_or_default();
    format!("{}/{listen}", host.trim())
}

/// Does the program use the location table?
pub fn uses_location(prog: &CheckedProgram) -> bool {
    prog.calls_any(crate::sema::builtins::LOCATION_FUNCTIONS)
}

/// Does the program authenticate?
pub fn uses_auth(prog: &CheckedProgram) -> bool {
    prog.calls_any(crate::sema::builtins::AUTH_FUNCTIONS)
}

/// Digest authentication over `subs` with the `module auth` settings.
pub fn auth_service(
    prog: &CheckedProgram,
    subs: SubscriberStore,
    key: NonceKey,
) -> Result<Auth, String> {
    let mut auth = Auth::new(subs, key, secs(prog, "auth", "nonce_expire").unwrap_or(300));
    if let Some(Value::Str(r)) = setting(prog, "auth", "realm") {
        auth.default_realm = Some(r.clone());
    }
    if let Some(Value::Str(list)) = setting(prog, "auth", "algorithms") {
        auth.algorithms = crate::auth::Algorithm::parse_list(list)
            .map_err(|e| format!("`module auth {{ algorithms }}`: {e}"))?;
    }
    Ok(auth)
}

/// The ng client settings (`module rtpengine`).
pub fn rtpengine_settings(prog: &CheckedProgram) -> Result<crate::rtpengine::NgSettings, String> {
    let instances = match setting(prog, "rtpengine", "instances") {
        Some(Value::Str(list)) => list
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<Vec<crate::rtpengine::InstanceSpec>, _>>()
            .map_err(|e| format!("`module rtpengine {{ instances }}`: {e}"))?,
        _ => return Err("`module rtpengine { instances }` is not set".into()),
    };
    let mut s = crate::rtpengine::NgSettings::new(instances);
    if let Some(Value::Duration(ms)) = setting(prog, "rtpengine", "timeout") {
        s.timeout = Duration::from_millis((*ms).max(1));
    }
    if let Some(Value::Int(n)) = setting(prog, "rtpengine", "retries") {
        s.retries = (*n).clamp(0, 10) as u32;
    }
    if let Some(Value::Duration(ms)) = setting(prog, "rtpengine", "ping_interval") {
        s.ping_interval = Duration::from_millis((*ms).max(10));
    }
    Ok(s)
}

/// Builds the services the program needs and starts their threads.
pub fn start(prog: &CheckedProgram, base: &Path) -> Result<RunningServices, String> {
    let db = db_path(prog, base);
    let mut services = Services::default();
    let mut persister = None;
    let mut shared_location = None;
    let mut store = None;
    if uses_location(prog) {
        let config = registrar_config(prog);
        let mode = match setting(prog, "usrloc", "db_mode") {
            Some(Value::Int(m)) => *m,
            _ => 2,
        };
        let shared_url = match setting(prog, "usrloc", "db_url") {
            Some(Value::Str(u)) if crate::cluster::is_postgres_url(u) => Some(u.clone()),
            _ => None,
        };
        let location = match (mode, shared_url) {
            (0, _) => Arc::new(Location::new(config)),
            (1 | 2, Some(url)) => {
                let table = match setting(prog, "usrloc", "db_table") {
                    Some(Value::Str(t)) => t.clone(),
                    _ => "location".to_owned(),
                };
                if !crate::cluster::is_table_name(&table) {
                    return Err(format!(
                        "`module usrloc {{ db_table = \"{table}\"; }}`: use lower-case letters, digits and `_`"
                    ));
                }
                let write = if mode == 1 {
                    crate::cluster::location::WriteMode::Through
                } else {
                    crate::cluster::location::WriteMode::Behind(write_delay(prog))
                };
                let (location, wake) = crate::cluster::location::shared_location(config);
                let config = crate::cluster::location::SharedConfig {
                    url,
                    table,
                    mode: write,
                    node: node_label(prog),
                };
                shared_location = Some(crate::cluster::location::SharedLocation::start(
                    Arc::clone(&location),
                    wake,
                    config,
                    Duration::from_secs(5),
                )?);
                location
            }
            (1 | 2, None) => {
                let s = Arc::new(
                    SqliteStore::open(&db).map_err(|e| format!("`{}`: {e}", db.display()))?,
                );
                let location = Arc::new(Location::new(config).persistent());
                let live = s.load(unix_now()).map_err(|e| format!("`{}`: {e}", db.display()))?;
                tracing::info!("location: {} bindings restored from {}", live.len(), db.display());
                location.restore(live);
                let delay = write_delay(prog);
                persister = Some(Persister::start(Arc::clone(&location), Arc::clone(&s), delay));
                store = Some(s);
                location
            }
            (3, _) => {
                return Err(
                    "`module usrloc { db_mode = 3; }`: routes never wait on a database, so \
                     there is no DB-only mode; with `db_url = \"postgres://…\"` use 1 \
                     (write-through), and every node's memory follows the table within a \
                     notification's delay (docs/cluster.md)"
                        .into(),
                );
            }
            (other, _) => {
                return Err(format!(
                    "`module usrloc {{ db_mode = {other}; }}`: use 0 (memory only), 1 (write-through) or 2 (write-behind)"
                ));
            }
        };
        services.location = Some(location);
        services.natping = natping_config(prog).map(|c| Arc::new(NatPinger::new(c)));
    }
    let mut subscribers_reload = None;
    let mut shared_subscribers = None;
    if uses_auth(prog) {
        if let Some((url, table)) = shared_subscriber_table(prog)? {
            // Shared in PostgreSQL: the cache is the table, followed by
            // notifications; the nonce key is the cluster's.
            let key = match crate::cluster::subscribers::secret_blocking(
                &url,
                &table,
                Duration::from_secs(5),
            ) {
                Some(k) => NonceKey::new(k),
                None => NonceKey::random(),
            };
            let auth = Arc::new(auth_service(prog, SubscriberStore::in_memory(), key)?);
            shared_subscribers = Some(crate::cluster::subscribers::SharedSubscribers::start(
                Arc::clone(&auth),
                url,
                table,
                Duration::from_secs(5),
            ));
            services.auth = Some(auth);
        } else {
            let subs =
                SubscriberStore::open(&db).map_err(|e| format!("`{}`: {e}", db.display()))?;
            let key = match subs.secret().map_err(|e| format!("`{}`: {e}", db.display()))? {
                Some(k) => NonceKey::new(k),
                None => NonceKey::random(),
            };
            let auth = auth_service(prog, subs, key)?;
            let auth = Arc::new(auth);
            subscribers_reload = Some(Arc::clone(&auth));
            services.auth = Some(auth);
        }
    }
    if prog.calls_any(crate::sema::builtins::MEDIA_FUNCTIONS) {
        let settings = rtpengine_settings(prog)?;
        let client = crate::rtpengine::NgClient::new(settings)
            .map_err(|e| format!("`module rtpengine`: {e}"))?;
        tracing::info!(
            "rtpengine: {:?}",
            client.stats().iter().map(|s| s.addr).collect::<Vec<_>>()
        );
        services.rtpengine = Some(client);
    }
    match crate::security::store::restore(&db, &services.bans) {
        Ok(0) => {}
        Ok(n) => tracing::info!("bans: {n} still in force, restored from {}", db.display()),
        Err(e) => tracing::error!("bans: cannot restore: {e}"),
    }
    let mut dialog_snapshot = None;
    if uses_dialogs(prog) {
        *services.dialogs.config.lock().unwrap_or_else(|e| e.into_inner()) = dialog_config(prog);
        if uses_accounting(prog) {
            let config = acc_config(prog, base)?;
            let acc = crate::acc::Accounting::start(config)?;
            tracing::info!("accounting: call records go to {}", acc.url.describe());
            services.dialogs.set_accounting(Arc::new(acc));
        }
        let path = dialog_snapshot_path(prog, base);
        match services.dialogs.restore(&path) {
            Ok(0) => {}
            Ok(n) => tracing::info!("dialogs: {n} live dialogs restored from {}", path.display()),
            Err(e) => tracing::error!("dialogs: cannot restore {}: {e}", path.display()),
        }
        dialog_snapshot = Some(path);
    }
    services.hep = hep_sender(prog)?;
    if let Some(s) = &shared_location {
        let _ = services.cluster.location.set(Arc::clone(&s.stats));
    }
    let services = Arc::new(services);
    let shared_counters = match setting(prog, "cluster", "redis") {
        Some(Value::Str(url)) => {
            let prefix = match setting(prog, "cluster", "prefix") {
                Some(Value::Str(p)) => p.clone(),
                _ => "sipc".to_owned(),
            };
            let sync_interval = match setting(prog, "cluster", "sync_interval") {
                Some(Value::Duration(ms)) if *ms > 0 => Duration::from_millis(*ms),
                _ => Duration::from_millis(100),
            };
            let config = crate::cluster::counters::CountersConfig {
                url: url.clone(),
                prefix,
                sync_interval,
            };
            tracing::info!("cluster: bans and limits shared through {url}");
            Some(crate::cluster::counters::SharedCounters::start(Arc::clone(&services), config)?)
        }
        _ => None,
    };
    let maintenance = if services.location.is_some() || subscribers_reload.is_some() {
        let flag = Arc::new((Mutex::new(false), Condvar::new()));
        let stop = Arc::clone(&flag);
        let location = services.location.clone();
        let thread = std::thread::Builder::new()
            .name("sipc-maintenance".into())
            .spawn(move || {
                let mut last_reload = Instant::now();
                loop {
                    {
                        let guard = stop.0.lock().unwrap_or_else(|e| e.into_inner());
                        let (guard, _) = stop
                            .1
                            .wait_timeout_while(guard, PURGE_EVERY, |stopped| !*stopped)
                            .unwrap_or_else(|e| e.into_inner());
                        if *guard {
                            return;
                        }
                    }
                    let now = unix_now();
                    if let Some(l) = &location {
                        let n = l.purge(now);
                        if n > 0 {
                            tracing::debug!("location: {n} expired bindings purged");
                        }
                    }
                    if let Some(s) = &store
                        && let Err(e) = s.purge(now)
                    {
                        tracing::error!("location store purge failed: {e}");
                    }
                    if let Some(a) = &subscribers_reload
                        && last_reload.elapsed() >= RELOAD_SUBSCRIBERS_EVERY
                    {
                        last_reload = Instant::now();
                        if let Err(e) = a.subscribers.reload() {
                            tracing::error!("subscriber reload failed: {e}");
                        }
                    }
                }
            })
            .map_err(|e| format!("cannot start the maintenance thread: {e}"))?;
        Some((flag, thread))
    } else {
        None
    };
    Ok(RunningServices {
        services,
        dialog_snapshot,
        ban_db: db,
        persister,
        shared_location,
        shared_counters,
        shared_subscribers,
        maintenance,
    })
}
