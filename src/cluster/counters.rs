//! Bans and rate limits shared by the nodes of a cluster in Redis
//! (`module cluster { redis = "redis://…"; }`).
//!
//! The routes keep checking their own memory (`within_limit`, `is_banned`,
//! the receive path's ban filter): a Redis round trip per message would be
//! slower than the whole route. A background thread with its own runtime
//! keeps that memory in step with the other nodes':
//!
//! - **bans**: a ban set here (a route's `ban()`, a limit's `ban`, `sipc
//!   ctl ban add`) is stored as `PREFIX:ban:KEY` with the ban's time to
//!   live and published on `PREFIX:bans`; every node subscribes and bans
//!   the key in memory for what is left. A node that (re)connects reads
//!   every stored ban, so one that was away or started late catches up.
//!   Lifting a ban deletes the key and publishes that too. A ban holds on
//!   every node within one publish (milliseconds).
//! - **rate limits**: each limiter counts the messages it let through per
//!   key; every `sync_interval` (100 ms) the node adds its counts to one
//!   counter per limit and key in Redis (`INCRBY`, the key expiring a
//!   minute after its last use) and reads the new total back in the same
//!   round trip. What the total grew beyond this node's own count is what
//!   the other nodes let through: it is taken from this node's bucket
//!   ([`Limiter::debit`]). A limit of 50/s therefore holds for the cluster
//!   as a whole, give or take what the nodes let through in one interval,
//!   and the first burst of a key a node has not seen before.
//!
//! - **dialog profiles**: each node writes its profile members to a hash
//!   of its own every interval and reads the others', so
//!   `dlg_profile_size()` counts the calls of the whole cluster, as fresh
//!   as one interval; a node that dies stops counting 5 s later.
//!
//! When Redis cannot be reached, each node counts and bans alone (as a
//! lone node does) and says so once in its log and in
//! `sipc_cluster_redis_up`; when Redis is back it says so, publishes
//! nothing of the time it was away (bans set meanwhile stay this node's),
//! and reads the stored bans again.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::sync::mpsc;

use crate::proxy::services::Services;
use crate::security::BanChange;

/// The settings of `module cluster`.
#[derive(Debug, Clone)]
pub struct CountersConfig {
    pub url: String,
    /// Prefix of every Redis key and channel (`sipc`): clusters sharing a
    /// Redis server need prefixes of their own.
    pub prefix: String,
    pub sync_interval: Duration,
}

/// Counters of the sharing, for metrics and tests.
#[derive(Debug, Default)]
pub struct CounterStats {
    /// Redis answers.
    pub up: AtomicBool,
    /// Bans published to the other nodes.
    pub bans_published: AtomicU64,
    /// Bans received from the other nodes (and read on connection).
    pub bans_received: AtomicU64,
    /// Messages of other nodes debited from this node's buckets.
    pub debited: AtomicU64,
}

/// The running sharing: a thread with its runtime.
#[derive(Debug)]
pub struct SharedCounters {
    pub stats: Arc<CounterStats>,
    worker: super::Worker,
}

impl SharedCounters {
    /// Starts sharing `services`' bans and limits.
    pub fn start(
        services: Arc<Services>,
        config: CountersConfig,
    ) -> Result<SharedCounters, String> {
        let client = redis::Client::open(config.url.as_str())
            .map_err(|e| format!("`module cluster {{ redis }}`: {e}"))?;
        let (tx, rx) = mpsc::unbounded_channel();
        services.bans.share_with(tx);
        services.limits.share_all();
        let stats = Arc::new(CounterStats::default());
        let _ = services.cluster.redis.set(Arc::clone(&stats));
        let sharing = Sharing {
            services,
            client,
            config,
            stats: Arc::clone(&stats),
            token: super::node_token(),
        };
        let worker = super::Worker::spawn("sipc-redis", move |stop| sharing.run(rx, stop))?;
        Ok(SharedCounters { stats, worker })
    }

    /// Ends the thread.
    pub fn stop(self) {
        self.worker.stop();
    }
}

struct Sharing {
    services: Arc<Services>,
    client: redis::Client,
    config: CountersConfig,
    stats: Arc<CounterStats>,
    token: String,
}

/// Where a Redis operation gives up: a node counts alone rather than wait.
const TIMEOUT: Duration = Duration::from_millis(500);

impl Sharing {
    async fn run(self, mut bans: mpsc::UnboundedReceiver<BanChange>, stop: super::Stop) {
        let this = Arc::new(self);
        let subscriber = tokio::spawn(Arc::clone(&this).subscribe());
        // Per limit name and key: the shared total last read.
        let mut seen: HashMap<(String, String), (i64, Instant)> = HashMap::new();
        let mut tick = tokio::time::interval(this.config.sync_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // A connection manager per connection: after a failure the next
        // one is made a second later (the manager's own reconnection does
        // not come back by itself once a reconnection failed).
        let mut conn: Option<redis::aio::ConnectionManager> = None;
        let mut last_attempt: Option<Instant> = None;
        let mut went_down = false;
        loop {
            tokio::select! {
                _ = stop.requested() => break,
                _ = tick.tick() => {}
            }
            let mut changes = Vec::new();
            while let Ok(c) = bans.try_recv() {
                changes.push(c);
            }
            if conn.is_none() && last_attempt.is_none_or(|t| t.elapsed() >= super::RETRY) {
                last_attempt = Some(Instant::now());
                let config = redis::aio::ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(TIMEOUT))
                    .set_response_timeout(Some(TIMEOUT))
                    .set_number_of_retries(0);
                match redis::aio::ConnectionManager::new_lazy_with_config(
                    this.client.clone(),
                    config,
                ) {
                    Ok(c) => conn = Some(c),
                    Err(e) => tracing::debug!("cluster: Redis: {e}"),
                }
            }
            let result = match conn.as_mut() {
                Some(c) => this.sync(c, changes, &mut seen).await,
                None => {
                    // Counted alone meanwhile: what was counted is not owed.
                    this.services.limits.all().iter().for_each(|l| drop(l.take_counted()));
                    Err("not connected".into())
                }
            };
            if result.is_err() {
                conn = None;
                // Counting alone: the others' calls are not known any more.
                this.services.dialogs.set_remote_profiles(HashMap::new());
            }
            let was_up = this.stats.up.swap(result.is_ok(), Ordering::SeqCst);
            match result {
                // Coming back after an outage is worth a warning: the log
                // then tells when the nodes counted alone.
                Ok(()) if !was_up && went_down => {
                    tracing::warn!("cluster: Redis answers again; bans and limits are shared")
                }
                Ok(()) if !was_up => {
                    tracing::info!("cluster: Redis answers; bans and limits are shared")
                }
                Err(e) if was_up || !went_down => {
                    went_down = true;
                    tracing::error!(
                        "cluster: Redis unreachable ({e}); bans and limits count on this node alone until it is back"
                    )
                }
                _ => {}
            }
        }
        subscriber.abort();
    }

    /// One round: the bans set here, then every limiter's counts.
    async fn sync(
        &self,
        conn: &mut redis::aio::ConnectionManager,
        changes: Vec<BanChange>,
        seen: &mut HashMap<(String, String), (i64, Instant)>,
    ) -> Result<(), String> {
        let p = &self.config.prefix;
        let e = |e: redis::RedisError| e.to_string();
        if !changes.is_empty() {
            let mut pipe = redis::pipe();
            for c in &changes {
                match c {
                    BanChange::Ban { key, for_ } => {
                        let ms = for_.as_millis().max(1) as u64;
                        pipe.cmd("SET")
                            .arg(format!("{p}:ban:{key}"))
                            .arg(ms)
                            .arg("PX")
                            .arg(ms)
                            .ignore();
                        pipe.cmd("PUBLISH")
                            .arg(format!("{p}:bans"))
                            .arg(format!("{} ban {ms} {key}", self.token))
                            .ignore();
                    }
                    BanChange::Unban { key } => {
                        pipe.cmd("DEL").arg(format!("{p}:ban:{key}")).ignore();
                        pipe.cmd("PUBLISH")
                            .arg(format!("{p}:bans"))
                            .arg(format!("{} unban 0 {key}", self.token))
                            .ignore();
                    }
                }
            }
            pipe.query_async::<()>(conn).await.map_err(e)?;
            self.stats.bans_published.fetch_add(changes.len() as u64, Ordering::Relaxed);
        }
        // Keys counted here this round, and keys seen in the last 10 s
        // (others may be using them): each adds its count, 0 or more,
        // and reads the total.
        let now = Instant::now();
        seen.retain(|_, (_, at)| now.duration_since(*at) < Duration::from_secs(10));
        let mut round: Vec<(Arc<crate::security::Limiter>, String, u32)> = Vec::new();
        for limiter in self.services.limits.all() {
            let name = limiter.spec().name.clone();
            let mut counted = limiter.take_counted();
            for (n, k) in seen.keys() {
                if *n == name && !counted.contains_key(k) {
                    counted.insert(k.clone(), 0);
                }
            }
            round.extend(counted.into_iter().map(|(k, c)| (Arc::clone(&limiter), k, c)));
        }
        self.sync_profiles(conn).await?;
        if round.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for (limiter, key, n) in &round {
            let rkey = format!("{p}:limit:{}:{key}", limiter.spec().name);
            pipe.cmd("INCRBY").arg(&rkey).arg(*n);
            pipe.cmd("PEXPIRE").arg(&rkey).arg(60_000).ignore();
        }
        let totals: Vec<i64> = pipe.query_async(conn).await.map_err(e)?;
        for ((limiter, key, n), total) in round.into_iter().zip(totals) {
            let id = (limiter.spec().name.clone(), key);
            let others = match seen.get(&id) {
                Some((last, _)) => total - last - i64::from(n),
                // First sight: what others did before is not this node's
                // business; from here on it is.
                None => 0,
            };
            if others > 0 {
                limiter.debit(&id.1, others.min(i64::from(u32::MAX)) as u32);
                self.stats.debited.fetch_add(others as u64, Ordering::Relaxed);
            }
            let at = if n > 0 { now } else { seen.get(&id).map_or(now, |(_, at)| *at) };
            seen.insert(id, (total, at));
        }
        Ok(())
    }

    /// Dialog profiles: this node's members go to its own hash (expiring
    /// 5 s after its last round, so a dead node's calls stop counting),
    /// and the sum of every other node's hash becomes the remote part of
    /// `dlg_profile_size()`. One round trip writes, a SCAN and one HGETALL
    /// per other node read.
    async fn sync_profiles(&self, conn: &mut redis::aio::ConnectionManager) -> Result<(), String> {
        let p = &self.config.prefix;
        let e = |e: redis::RedisError| e.to_string();
        let mine = format!("{p}:profiles:{}", self.token);
        let counts = self.services.dialogs.profile_counts();
        let mut pipe = redis::pipe();
        pipe.atomic().cmd("DEL").arg(&mine).ignore();
        if !counts.is_empty() {
            let mut hset = redis::cmd("HSET");
            hset.arg(&mine);
            for (name, key, n) in &counts {
                hset.arg(format!("{name}\u{1}{key}")).arg(*n);
            }
            pipe.add_command(hset).ignore();
            pipe.cmd("PEXPIRE").arg(&mine).arg(5000).ignore();
        }
        pipe.query_async::<()>(conn).await.map_err(e)?;
        let mut nodes: Vec<String> = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{p}:profiles:*"))
                .arg("COUNT")
                .arg(1000)
                .query_async(conn)
                .await
                .map_err(e)?;
            nodes.extend(keys.into_iter().filter(|k| *k != mine));
            if next == 0 {
                break;
            }
            cursor = next;
        }
        let mut remote: HashMap<(String, String), u32> = HashMap::new();
        if !nodes.is_empty() {
            let mut pipe = redis::pipe();
            for k in &nodes {
                pipe.cmd("HGETALL").arg(k);
            }
            let all: Vec<HashMap<String, u32>> = pipe.query_async(conn).await.map_err(e)?;
            for (field, n) in all.into_iter().flatten() {
                if let Some((name, key)) = field.split_once('\u{1}') {
                    *remote.entry((name.to_owned(), key.to_owned())).or_default() += n;
                }
            }
        }
        self.services.dialogs.set_remote_profiles(remote);
        Ok(())
    }

    /// Follows the other nodes' bans; reads every stored ban on each
    /// (re)connection.
    async fn subscribe(self: Arc<Self>) {
        loop {
            if let Err(e) = self.follow().await {
                tracing::debug!("cluster: Redis subscription: {e}");
            }
            tokio::time::sleep(super::RETRY).await;
        }
    }

    async fn follow(&self) -> Result<(), String> {
        let e = |e: redis::RedisError| e.to_string();
        let p = &self.config.prefix;
        let mut pubsub = tokio::time::timeout(TIMEOUT, self.client.get_async_pubsub())
            .await
            .map_err(|_| "connection timed out".to_string())?
            .map_err(e)?;
        pubsub.subscribe(format!("{p}:bans")).await.map_err(e)?;
        // Subscribed first, then read: a ban set in between is both read
        // and received, never neither.
        let mut conn =
            tokio::time::timeout(TIMEOUT, self.client.get_multiplexed_async_connection())
                .await
                .map_err(|_| "connection timed out".to_string())?
                .map_err(e)?;
        let mut cursor: u64 = 0;
        let mut read = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{p}:ban:*"))
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await
                .map_err(e)?;
            for k in keys {
                let ttl: i64 =
                    redis::cmd("PTTL").arg(&k).query_async(&mut conn).await.map_err(e)?;
                if ttl > 0 {
                    let key = &k[p.len() + ":ban:".len()..];
                    self.services.bans.ban_here(
                        key,
                        Duration::from_millis(ttl as u64),
                        Instant::now(),
                    );
                    read += 1;
                }
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
        if read > 0 {
            tracing::info!("cluster: {read} bans in force read from Redis");
            self.stats.bans_received.fetch_add(read, Ordering::Relaxed);
        }
        let mut messages = pubsub.on_message();
        while let Some(msg) = messages.next().await {
            let Ok(text) = msg.get_payload::<String>() else { continue };
            let mut parts = text.splitn(4, ' ');
            let (Some(token), Some(what), Some(ms), Some(key)) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            if token == self.token {
                continue;
            }
            match (what, ms.parse::<u64>()) {
                ("ban", Ok(ms)) => {
                    if self.services.bans.ban_here(key, Duration::from_millis(ms), Instant::now()) {
                        tracing::info!(key, seconds = ms / 1000, "banned by another node");
                    }
                }
                ("unban", _) => {
                    self.services.bans.unban_here(key);
                }
                _ => continue,
            }
            self.stats.bans_received.fetch_add(1, Ordering::Relaxed);
        }
        Err("subscription ended".into())
    }
}
