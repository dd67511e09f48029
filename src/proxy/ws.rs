//! SIP over WebSocket (RFC 7118): `listen ws` and `listen wss`.
//!
//! The upgrade is tungstenite's; this module decides whom to let in and
//! then runs each connection as one task:
//!
//! - The handshake must offer the `sip` subprotocol
//!   (`Sec-WebSocket-Protocol: sip`, RFC 7118 §4); anything else is
//!   refused with `400 Bad Request` (Kamailio's answer). When
//!   `module websocket { origins }` lists origins, a browser's `Origin`
//!   must be one of them, or `403 Forbidden`. The handshake must complete
//!   within [`HANDSHAKE_TIMEOUT`], TLS included.
//! - One SIP message per WebSocket message, text or binary, fragments
//!   reassembled by tungstenite; a message over the proxy's maximum SIP
//!   message size, unmasked client frames and other protocol errors close
//!   the connection (and only it).
//! - What the proxy sends goes out as a text message when it is UTF-8 (as
//!   SIP is), else binary.
//! - A ping goes out after `keepalive_interval` without a frame from the
//!   client; after `keepalive_timeout` without one the connection closes.
//!
//! The connection is in the [`Outbound`] table under `(Ws|Wss, peer)` like
//! a TCP connection, so replies, and requests to a binding registered over
//! it, go back over it. The proxy never opens a WebSocket connection: a
//! browser cannot be dialled.

// tungstenite's handshake callback returns its `ErrorResponse` (an HTTP
// response) by value: the size of that error is the crate's choice.
#![allow(clippy::result_large_err)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use super::transport::{Inbound, Outbound, SourceSlot, Transport};

/// How long the upgrade (and TLS before it) may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// `module websocket`: who may connect, and how idle connections are
/// kept and ended.
#[derive(Debug, Clone)]
pub struct WsConfig {
    /// Allowed `Origin` values; empty: any (and none).
    pub origins: Vec<String>,
    pub keepalive_interval: Duration,
    pub keepalive_timeout: Duration,
    /// The largest SIP message accepted in one WebSocket message.
    pub max_message_size: usize,
    /// Keep the bindings registered over a connection after it closes
    /// (until they expire) instead of removing them.
    pub keep_bindings: bool,
}

impl Default for WsConfig {
    fn default() -> Self {
        WsConfig {
            origins: Vec::new(),
            keepalive_interval: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(180),
            max_message_size: 65_535,
            keep_bindings: false,
        }
    }
}

/// What every WebSocket connection of a server shares.
pub struct WsServer {
    pub cfg: WsConfig,
    pub stats: Arc<WsStats>,
    /// Called when a connection has closed (its bindings go).
    pub on_close: Box<dyn Fn(Transport, SocketAddr) + Send + Sync>,
}

impl std::fmt::Debug for WsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsServer").field("cfg", &self.cfg).finish_non_exhaustive()
    }
}

/// What the WebSocket transport has refused and closed, for metrics and
/// `sipc ctl stats`.
#[derive(Debug, Default)]
pub struct WsStats {
    /// Upgrades completed.
    pub accepted: AtomicU64,
    /// Handshakes refused or failed (no `sip` subprotocol, an origin not
    /// allowed, not an upgrade, too slow, bad TLS).
    pub refused: AtomicU64,
    /// Connections closed for a protocol error (oversize, unmasked,
    /// invalid frames) or for silence past `keepalive_timeout`.
    pub closed_bad: AtomicU64,
    /// TCP, TLS and WebSocket connections closed at accept because their
    /// source had `tcp_max_connections_per_source` open.
    pub refused_source: AtomicU64,
}

fn header_has_token(req: &Request, name: &str, token: &str) -> bool {
    req.headers().get_all(name).iter().any(|v| {
        v.to_str().is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    })
}

fn refuse(status: StatusCode, why: &str) -> ErrorResponse {
    let mut r = ErrorResponse::new(Some(why.to_owned()));
    *r.status_mut() = status;
    r
}

/// The upgrade's answer: `sip` agreed, or the refusal.
fn check_upgrade(
    req: &Request,
    mut resp: Response,
    cfg: &WsConfig,
) -> Result<Response, ErrorResponse> {
    if !header_has_token(req, "sec-websocket-protocol", "sip") {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "this is a SIP WebSocket server: ask for the `sip` subprotocol (RFC 7118)\n",
        ));
    }
    if !cfg.origins.is_empty() {
        let origin = req.headers().get("origin").and_then(|v| v.to_str().ok());
        if !origin.is_some_and(|o| cfg.origins.iter().any(|a| a.eq_ignore_ascii_case(o))) {
            return Err(refuse(StatusCode::FORBIDDEN, "origin not allowed\n"));
        }
    }
    resp.headers_mut().insert("sec-websocket-protocol", HeaderValue::from_static("sip"));
    Ok(resp)
}

/// Upgrades `stream` (TCP, or TLS already accepted) to a SIP WebSocket
/// connection and serves it until it closes. Refusals and failures are
/// counted; nothing else is affected. `slot`, the connection's place in
/// its source's count, is held until then.
///
/// The future returned is what an idle connection costs for as long as
/// it is open (the task holding it is allocated at its size), so it is
/// kept to the WebSocket stream and the loop's state: the upgrade's
/// future, which holds the handshake's buffers and another copy of the
/// stream, is boxed and freed when the upgrade ends, and `stream` is
/// moved into it here, not kept as an argument of an `async fn` (whose
/// arguments keep their own slot in the future for its whole life).
/// Over TLS this took the task from 13.0 kB to 1.1 kB
/// (docs/websocket.md, "Memory per connection").
pub fn serve<S>(
    stream: S,
    inbound: Inbound,
    outbound: Arc<Outbound>,
    on_message: Arc<dyn Fn(Bytes, Inbound) + Send + Sync>,
    server: Arc<WsServer>,
    slot: Option<SourceSlot>,
) -> impl Future<Output = ()> + Send + 'static
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let ws_config = WebSocketConfig::default()
        // Small buffers: thousands of idle browsers each hold one. Reads
        // take up to 2 KiB at a time (a REGISTER or a reply whole; a
        // WebRTC INVITE in 2–3 reads, which over TLS are copies from
        // rustls's buffer, not system calls).
        .read_buffer_size(2048)
        .write_buffer_size(0)
        .max_write_buffer_size(1 << 20)
        .max_message_size(Some(server.cfg.max_message_size))
        .max_frame_size(Some(server.cfg.max_message_size));
    let checker = Arc::clone(&server);
    let check = move |req: &Request, resp: Response| check_upgrade(req, resp, &checker.cfg);
    // Boxed twice over: the handshake's state only while it runs, and the
    // stream after it, so that the connection's future holds pointers
    // where the stream would otherwise sit in more than one of its slots.
    let upgrade = Box::pin(async move {
        let accept =
            tokio_tungstenite::accept_hdr_async_with_config(stream, check, Some(ws_config));
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, accept).await {
            Ok(Ok(ws)) => Ok(Box::new(ws)),
            Ok(Err(e)) => Err(format!("websocket upgrade refused: {e}")),
            Err(_) => Err("websocket upgrade timed out".to_owned()),
        }
    });
    async move {
        let _slot = slot;
        let Inbound { transport, peer, .. } = inbound;
        let (cfg, stats) = (&server.cfg, &server.stats);
        let mut ws = match upgrade.await {
            Ok(ws) => ws,
            Err(e) => {
                stats.refused.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%peer, "{e}");
                return;
            }
        };
        stats.accepted.fetch_add(1, Ordering::Relaxed);
        let (tx, mut rx) = mpsc::channel::<Bytes>(64);
        if let Err(e) = outbound.register(transport, peer, tx.clone()) {
            tracing::debug!(%peer, "websocket connection not taken: {e}");
            let _ = (*ws).close(None).await;
            return;
        }
        let mut last_heard = tokio::time::Instant::now();
        let mut ping =
            tokio::time::interval_at(last_heard + cfg.keepalive_interval, cfg.keepalive_interval);
        let bad = loop {
            tokio::select! {
                out = rx.recv() => {
                    let Some(data) = out else { break false };
                    // A clone of `Bytes` is a reference count, not a copy.
                    let msg = match Utf8Bytes::try_from(data.clone()) {
                        Ok(text) => Message::Text(text),
                        Err(_) => Message::Binary(data),
                    };
                    if ws.send(msg).await.is_err() {
                        break false;
                    }
                }
                got = ws.next() => {
                    last_heard = tokio::time::Instant::now();
                    match got {
                        Some(Ok(Message::Text(t))) => on_message(Bytes::from(t), inbound),
                        Some(Ok(Message::Binary(b))) => on_message(b, inbound),
                        Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                        Some(Ok(Message::Close(_))) | None => break false,
                        Some(Err(e)) => {
                            tracing::debug!(%peer, "closing websocket connection: {e}");
                            break true;
                        }
                    }
                }
                _ = ping.tick() => {
                    if last_heard.elapsed() >= cfg.keepalive_timeout {
                        tracing::debug!(%peer, "closing silent websocket connection");
                        break true;
                    }
                    if last_heard.elapsed() >= cfg.keepalive_interval
                        && ws.send(Message::Ping(Bytes::new())).await.is_err()
                    {
                        break false;
                    }
                }
            }
        };
        if bad {
            stats.closed_bad.fetch_add(1, Ordering::Relaxed);
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), (*ws).close(None)).await;
        outbound.unregister(transport, peer, &tx);
        (server.on_close)(transport, peer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)]) -> Request {
        let mut b = Request::builder().uri("/");
        for (n, v) in headers {
            b = b.header(*n, *v);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn the_sip_subprotocol_is_required_and_agreed() {
        let cfg = WsConfig::default();
        let ok = check_upgrade(
            &request(&[("Sec-WebSocket-Protocol", "chat, sip")]),
            Response::new(()),
            &cfg,
        )
        .unwrap();
        assert_eq!(ok.headers()["sec-websocket-protocol"], "sip");
        let no =
            check_upgrade(&request(&[("Sec-WebSocket-Protocol", "chat")]), Response::new(()), &cfg)
                .unwrap_err();
        assert_eq!(no.status(), StatusCode::BAD_REQUEST);
        let none = check_upgrade(&request(&[]), Response::new(()), &cfg).unwrap_err();
        assert_eq!(none.status(), StatusCode::BAD_REQUEST);
    }

    /// A stream far larger than any real one: the connection's future must
    /// not grow with it (the stream lives in boxes on the heap), since
    /// every idle connection holds that future for as long as it is open.
    #[test]
    fn the_connection_future_does_not_hold_the_stream() {
        struct Big {
            io: tokio::io::DuplexStream,
            _ballast: [u8; 16 * 1024],
        }
        impl AsyncRead for Big {
            fn poll_read(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &mut tokio::io::ReadBuf<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut self.io).poll_read(cx, buf)
            }
        }
        impl AsyncWrite for Big {
            fn poll_write(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                std::pin::Pin::new(&mut self.io).poll_write(cx, buf)
            }
            fn poll_flush(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut self.io).poll_flush(cx)
            }
            fn poll_shutdown(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut self.io).poll_shutdown(cx)
            }
        }
        let udp = Arc::new(std::net::UdpSocket::bind("127.0.0.1:0").unwrap());
        let outbound = Arc::new(Outbound::new(vec![udp], Vec::new()));
        let server = Arc::new(WsServer {
            cfg: WsConfig::default(),
            stats: Arc::default(),
            on_close: Box::new(|_, _| {}),
        });
        let addr: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let inbound = Inbound { transport: Transport::Ws, local: addr, peer: addr };
        let (io, _peer) = tokio::io::duplex(64);
        let big = Big { io, _ballast: [0; 16 * 1024] };
        let conn = serve(big, inbound, outbound, Arc::new(|_, _| {}), server, None);
        let size = std::mem::size_of_val(&conn);
        assert!(size < 2048, "the connection's future is {size} bytes");
    }

    #[test]
    fn origins_outside_the_list_are_forbidden() {
        let cfg =
            WsConfig { origins: vec!["https://app.example.com".into()], ..WsConfig::default() };
        let from = |o: &str| {
            check_upgrade(
                &request(&[("Sec-WebSocket-Protocol", "sip"), ("Origin", o)]),
                Response::new(()),
                &cfg,
            )
        };
        assert!(from("https://app.example.com").is_ok());
        assert_eq!(from("https://evil.example.net").unwrap_err().status(), StatusCode::FORBIDDEN);
        let no_origin =
            check_upgrade(&request(&[("Sec-WebSocket-Protocol", "sip")]), Response::new(()), &cfg);
        assert_eq!(no_origin.unwrap_err().status(), StatusCode::FORBIDDEN);
    }
}
