//! The `/metrics` endpoint: one HTTP/1.1 request per connection, answered
//! and closed, which is how Prometheus scrapes.
//!
//! The HTTP here is the least a scraper needs (a request line, headers up
//! to an empty line, one response), so it is bounded: a request must
//! arrive whole within 5 s and 8 KiB, at most 64 connections are served at
//! once, and anything but `GET /metrics` gets 404 or 405. Bind it to
//! loopback or a management network: it tells whoever asks how busy the
//! proxy is.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::reload::Reloader;

const MAX_REQUEST: usize = 8 * 1024;
const READ_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_CONNECTIONS: usize = 64;

/// Listens on `addr` and serves the metrics of the proxy `reloader`
/// serves until the task is dropped.
pub async fn serve(
    addr: SocketAddr,
    reloader: Arc<Reloader>,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let listener = TcpListener::bind(addr).await?;
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    Ok(tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
                continue; // too many at once: closed unanswered
            };
            let reloader = Arc::clone(&reloader);
            tokio::spawn(async move {
                if let Err(e) = answer(stream, &reloader).await {
                    tracing::debug!("metrics request: {e}");
                }
                drop(permit);
            });
        }
    }))
}

async fn answer(mut stream: TcpStream, reloader: &Arc<Reloader>) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let head = tokio::time::timeout(READ_TIMEOUT, async {
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                return Ok(end);
            }
            if buf.len() >= MAX_REQUEST {
                return Err(std::io::Error::other("request too large"));
            }
            let mut chunk = [0u8; 1024];
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(std::io::Error::other("closed before the request ended"));
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    })
    .await
    .map_err(|_| std::io::Error::other("request not complete within 5 s"))??;
    let line = String::from_utf8_lossy(&buf[..head]);
    let mut parts = line.lines().next().unwrap_or("").split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let (status, ctype, body) = match (method, path) {
        ("GET" | "HEAD", "/metrics") => (
            "200 OK",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            super::render(reloader),
        ),
        (_, "/metrics") => ("405 Method Not Allowed", "text/plain", "GET /metrics\n".into()),
        _ => ("404 Not Found", "text/plain", "metrics are at /metrics\n".into()),
    };
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if method != "HEAD" {
        out.push_str(&body);
    }
    stream.write_all(out.as_bytes()).await?;
    stream.shutdown().await
}
