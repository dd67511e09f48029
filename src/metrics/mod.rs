//! Prometheus metrics: `module metrics { listen = "127.0.0.1:9090"; }`
//! serves `GET /metrics` in the OpenMetrics text format, which Prometheus
//! scrapes as it does any exporter.
//!
//! Nothing here runs per message. The proxy already counts what it does in
//! relaxed atomics (the core's [`Stats`](crate::proxy::core::Stats), the
//! dialog, ban and trunk counters); a scrape reads them through one
//! [`Collector`] and `prometheus-client` writes the text, so the format
//! (names, `_total` suffixes, escaping, histogram buckets) is the crate's,
//! not hand-made. The only per-message additions are a counter per method
//! or reply class and a route's run time ([`route_time`]).
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `sipc_messages_received_total` | counter | |
//! | `sipc_requests_received_total` | counter | `method` |
//! | `sipc_replies_received_total` | counter | `class` (`1xx` … `6xx`) |
//! | `sipc_requests_forwarded_total`, `sipc_replies_forwarded_total` | counter | |
//! | `sipc_replies_sent_total` | counter | (replies the proxy made itself) |
//! | `sipc_dropped_total` | counter | `reason`: `malformed`, `stray`, `route`, `overload`, `banned` |
//! | `sipc_send_errors_total` | counter | |
//! | `sipc_transactions` | gauge | (live) |
//! | `sipc_transactions_created_total`, `sipc_retransmissions_absorbed_total` | counter | |
//! | `sipc_route_duration_seconds` | histogram | `route` (`request_route`, `failure_route NAME` …) |
//! | `sipc_config_generation` | gauge | |
//! | `sipc_reloads_total`, `sipc_reload_failures_total` | counter | |
//! | `sipc_location_aors` | gauge | (registrar) |
//! | `sipc_trunk_up`, `sipc_trunk_calls_active` | gauge | `trunk` |
//! | `sipc_trunk_calls_total`, `sipc_trunk_calls_answered_total`, `sipc_trunk_calls_failed_total` | counter | `trunk` |
//! | `sipc_dialogs` | gauge | (live) |
//! | `sipc_dialogs_created_total`, `sipc_dialogs_answered_total`, `sipc_dialogs_failed_total` | counter | |
//! | `sipc_bans` | gauge | (now in force) |
//! | `process_cpu_seconds_total`, `process_resident_memory_bytes` | counter, gauge | |

pub mod route_time;
mod serve;

pub use serve::serve;

use std::fmt::Error;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::reload::Reloader;
use crate::sip::Method;

/// What a scrape reads: the serving proxy, through its reloader.
#[derive(Debug)]
pub struct SipcCollector {
    reloader: Arc<Reloader>,
}

fn load(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

fn counter(enc: &mut DescriptorEncoder<'_>, name: &str, help: &str, v: u64) -> Result<(), Error> {
    let m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    ConstCounter::new(v).encode(m)
}

fn gauge(enc: &mut DescriptorEncoder<'_>, name: &str, help: &str, v: i64) -> Result<(), Error> {
    let m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    ConstGauge::new(v).encode(m)
}

/// One counter (or gauge) per label value.
fn family(
    enc: &mut DescriptorEncoder<'_>,
    (name, help, ty): (&str, &str, MetricType),
    label: &str,
    values: &[(String, u64)],
) -> Result<(), Error> {
    let mut fam = enc.encode_descriptor(name, help, None, ty)?;
    for (l, v) in values {
        let labels = [(label, l.as_str())];
        let m = fam.encode_family(&labels)?;
        match ty {
            MetricType::Gauge => ConstGauge::new(*v as i64).encode(m)?,
            _ => ConstCounter::new(*v).encode(m)?,
        }
    }
    Ok(())
}

/// Every method with a name of its own, then `other`.
pub const METHOD_LIST: [Method; crate::proxy::core::METHODS] = [
    Method::Invite,
    Method::Ack,
    Method::Bye,
    Method::Cancel,
    Method::Register,
    Method::Options,
    Method::Info,
    Method::Update,
    Method::Prack,
    Method::Subscribe,
    Method::Notify,
    Method::Refer,
    Method::Message,
    Method::Publish,
    Method::Extension,
];

impl Collector for SipcCollector {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> Result<(), Error> {
        let core = self.reloader.core();
        let s = &core.stats;
        counter(
            &mut enc,
            "sipc_messages_received",
            "SIP messages received (requests and replies, keep-alives included).",
            load(&s.received),
        )?;
        let by_method: Vec<(String, u64)> = METHOD_LIST
            .iter()
            .map(|m| {
                let name = m.as_str().unwrap_or("other").to_owned();
                (name, load(&s.requests_by_method[*m as usize]))
            })
            .collect();
        family(
            &mut enc,
            ("sipc_requests_received", "Requests received, by method.", MetricType::Counter),
            "method",
            &by_method,
        )?;
        let by_class: Vec<(String, u64)> =
            (0..6).map(|i| (format!("{}xx", i + 1), load(&s.replies_by_class[i]))).collect();
        family(
            &mut enc,
            ("sipc_replies_received", "Replies received, by class.", MetricType::Counter),
            "class",
            &by_class,
        )?;
        counter(
            &mut enc,
            "sipc_requests_forwarded",
            "Request copies sent on (each branch counts).",
            load(&s.forwarded_requests),
        )?;
        counter(
            &mut enc,
            "sipc_replies_forwarded",
            "Replies passed on upstream.",
            load(&s.forwarded_responses),
        )?;
        counter(
            &mut enc,
            "sipc_replies_sent",
            "Replies the proxy made itself (reply(), 100 Trying, errors).",
            load(&s.replied),
        )?;
        let services = core.services();
        let drops: Vec<(String, u64)> =
            drops(core).iter().map(|(r, v)| (r.to_string(), *v)).collect();
        family(
            &mut enc,
            ("sipc_dropped", "Messages dropped, by reason.", MetricType::Counter),
            "reason",
            &drops,
        )?;
        counter(&mut enc, "sipc_send_errors", "Sends that failed.", load(&s.send_errors))?;
        gauge(&mut enc, "sipc_transactions", "Live transactions.", core.transactions() as i64)?;
        counter(
            &mut enc,
            "sipc_transactions_created",
            "Transactions relay() created.",
            load(&s.transactions),
        )?;
        counter(
            &mut enc,
            "sipc_retransmissions_absorbed",
            "Request retransmissions a transaction absorbed.",
            load(&s.absorbed),
        )?;
        self.route_times(&mut enc)?;
        gauge(
            &mut enc,
            "sipc_config_generation",
            "The configuration generation serving (1 at start, +1 per good reload).",
            self.reloader.generation() as i64,
        )?;
        let (reloads, failures) = self.reloader.counts();
        counter(&mut enc, "sipc_reloads", "Reloads attempted.", reloads)?;
        counter(
            &mut enc,
            "sipc_reload_failures",
            "Reloads refused (the old config kept serving).",
            failures,
        )?;
        if let Some(loc) = &services.location {
            gauge(
                &mut enc,
                "sipc_location_aors",
                "Addresses of record with at least one binding.",
                loc.aor_count() as i64,
            )?;
        }
        self.trunks(&mut enc)?;
        let d = &services.dialogs;
        gauge(&mut enc, "sipc_dialogs", "Live dialogs (early or confirmed).", d.len() as i64)?;
        counter(&mut enc, "sipc_dialogs_created", "Dialogs started.", load(&d.stats.created))?;
        counter(&mut enc, "sipc_dialogs_answered", "Dialogs answered.", load(&d.stats.answered))?;
        counter(
            &mut enc,
            "sipc_dialogs_failed",
            "Dialogs whose INVITE failed.",
            load(&d.stats.failed),
        )?;
        gauge(&mut enc, "sipc_bans", "Bans in force.", services.bans.len() as i64)?;
        if let Some(l) = services.cluster.location.get() {
            counter(
                &mut enc,
                "sipc_cluster_location_written",
                "Binding changes written to the shared location table.",
                load(&l.written),
            )?;
            counter(
                &mut enc,
                "sipc_cluster_location_write_failures",
                "Writes to the shared location table that failed (each is tried again).",
                load(&l.write_failures),
            )?;
            counter(
                &mut enc,
                "sipc_cluster_location_refreshed",
                "AORs read back after another node changed them.",
                load(&l.refreshed),
            )?;
            gauge(
                &mut enc,
                "sipc_cluster_location_up",
                "1 while the shared location table's notifications are followed.",
                i64::from(l.connected.load(Ordering::Relaxed)),
            )?;
        }
        if let Some(r) = services.cluster.redis.get() {
            gauge(
                &mut enc,
                "sipc_cluster_redis_up",
                "1 while Redis answers (bans and limits shared), 0 while this node counts alone.",
                i64::from(r.up.load(Ordering::Relaxed)),
            )?;
            counter(
                &mut enc,
                "sipc_cluster_bans_published",
                "Bans set here and told to the other nodes.",
                load(&r.bans_published),
            )?;
            counter(
                &mut enc,
                "sipc_cluster_bans_received",
                "Bans told by the other nodes (or read on connection).",
                load(&r.bans_received),
            )?;
            counter(
                &mut enc,
                "sipc_cluster_limit_debited",
                "Messages the other nodes let through, taken from this node's rate-limit buckets.",
                load(&r.debited),
            )?;
        }
        gauge(
            &mut enc,
            "sipc_connections",
            "Open TCP, TLS and WebSocket connections.",
            core.outbound().tcp_connections() as i64,
        )?;
        let ws = &core.outbound().ws_stats;
        let upgrades: Vec<(String, u64)> =
            vec![("accepted".into(), load(&ws.accepted)), ("refused".into(), load(&ws.refused))];
        family(
            &mut enc,
            (
                "sipc_websocket_upgrades",
                "WebSocket upgrades, accepted or refused (no sip subprotocol, origin, not an upgrade, too slow, bad TLS).",
                MetricType::Counter,
            ),
            "result",
            &upgrades,
        )?;
        counter(
            &mut enc,
            "sipc_connections_refused_per_source",
            "TCP, TLS and WebSocket connections closed at accept: their source had tcp_max_connections_per_source open.",
            load(&ws.refused_source),
        )?;
        counter(
            &mut enc,
            "sipc_websocket_closed_bad",
            "WebSocket connections closed for a protocol error or silence.",
            load(&ws.closed_bad),
        )?;
        if let Some(hep) = &services.hep {
            let by: Vec<(String, u64)> = vec![
                ("sent".into(), load(&hep.stats.sent)),
                ("dropped".into(), load(&hep.stats.dropped)),
            ];
            family(
                &mut enc,
                ("sipc_hep_packets", "HEP capture packets, sent or dropped.", MetricType::Counter),
                "result",
                &by,
            )?;
        }
        if let Some((cpu, rss)) = process() {
            let m = enc.encode_descriptor(
                "process_cpu_seconds",
                "User and system CPU time of the process.",
                None,
                MetricType::Counter,
            )?;
            ConstCounter::new(cpu).encode(m)?;
            gauge(&mut enc, "process_resident_memory_bytes", "Resident memory.", rss as i64)?;
        }
        Ok(())
    }
}

/// A metric family's name, help and type, and its value per label.
type Family = (&'static str, &'static str, MetricType, Vec<(String, u64)>);

impl SipcCollector {
    fn route_times(&self, enc: &mut DescriptorEncoder<'_>) -> Result<(), Error> {
        let mut fam = enc.encode_descriptor(
            "sipc_route_duration_seconds",
            "How long each route block took to run.",
            None,
            MetricType::Histogram,
        )?;
        for (label, t) in route_time::all() {
            let (sum, count, buckets) = t.read();
            let labels = [("route", label.as_str())];
            fam.encode_family(&labels)?
                .encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
        }
        Ok(())
    }

    fn trunks(&self, enc: &mut DescriptorEncoder<'_>) -> Result<(), Error> {
        let trunks = self.reloader.core().services().trunks.all();
        if trunks.is_empty() {
            return Ok(());
        }
        let each = |f: &dyn Fn(&crate::routing::health::TrunkState) -> u64| -> Vec<(String, u64)> {
            trunks.iter().map(|t| (t.name.clone(), f(t))).collect()
        };
        let families: [Family; 5] = [
            (
                "sipc_trunk_up",
                "1 while the trunk is up.",
                MetricType::Gauge,
                each(&|t| u64::from(t.is_up())),
            ),
            (
                "sipc_trunk_calls_active",
                "Answered calls up on the trunk.",
                MetricType::Gauge,
                each(&|t| load(&t.active)),
            ),
            (
                "sipc_trunk_calls",
                "INVITEs sent to the trunk.",
                MetricType::Counter,
                each(&|t| load(&t.calls)),
            ),
            (
                "sipc_trunk_calls_answered",
                "INVITEs the trunk answered.",
                MetricType::Counter,
                each(&|t| load(&t.answered)),
            ),
            (
                "sipc_trunk_calls_failed",
                "INVITEs the trunk failed.",
                MetricType::Counter,
                each(&|t| load(&t.failed)),
            ),
        ];
        for (name, help, ty, values) in &families {
            family(enc, (name, help, *ty), "trunk", values)?;
        }
        Ok(())
    }
}

/// Messages dropped, by reason (`sipc_dropped_total`, `sipc ctl stats`).
pub fn drops(core: &crate::proxy::core::Core) -> [(&'static str, u64); 5] {
    let s = &core.stats;
    [
        ("malformed", load(&s.dropped_malformed)),
        ("stray", load(&s.dropped_stray)),
        ("route", load(&s.dropped_by_route)),
        ("overload", load(&s.dropped_overload)),
        ("banned", load(&core.services().bans.dropped)),
    ]
}

/// CPU seconds and resident bytes of this process, from `/proc/self`
/// (`None` elsewhere than Linux). The CPU times in `stat` are in
/// USER_HZ, which Linux fixes at 100 for user space.
fn process() -> Option<(f64, u64)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The fields after the command name, which is in parentheses and may
    // hold spaces: utime and stime are the 12th and 13th.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse::<u64>()
        .ok()?;
    Some((ticks as f64 / 100.0, kb * 1024))
}

/// The metrics text a scrape gets.
pub fn render(reloader: &Arc<Reloader>) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(SipcCollector { reloader: Arc::clone(reloader) }));
    let mut out = String::with_capacity(8192);
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &registry) {
        tracing::warn!("metrics could not be written: {e}");
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn process_figures_are_read() {
        let (cpu, rss) = super::process().expect("Linux /proc");
        assert!(cpu >= 0.0);
        assert!(rss > 1 << 20, "{rss}");
    }
}
