//! The local control socket: `sipc reload`, `sipc reload --status`, `sipc
//! trace` and `sipc ctl` (JSON-RPC 2.0, [`super::rpc`]).
//!
//! A Unix socket in a per-user directory (mode 0700; the socket itself
//! 0600), so only the user running the proxy (and root) can reload it. The
//! protocol is one command line in (`reload` or `status`), and a reply whose
//! first line is `ok` or `error`, followed by the summary, the status or the
//! diagnostics; a line that starts with `{` is a JSON-RPC request, answered
//! with one JSON line.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;

use super::Reloader;

/// The socket `sipc run CONFIG` listens on unless told otherwise:
/// `$TMPDIR/sipc-<uid>/<hash of the config's absolute path>.sock`.
pub fn default_path(config: &Path) -> PathBuf {
    let abs = config.canonicalize().unwrap_or_else(|_| config.to_path_buf());
    let mut h = DefaultHasher::new();
    abs.hash(&mut h);
    let uid = std::fs::metadata("/proc/self").map_or(0, |m| m.uid());
    std::env::temp_dir().join(format!("sipc-{uid}")).join(format!("{:016x}.sock", h.finish()))
}

/// Whether a running proxy answers on the control socket at `path`.
pub fn answers(path: &Path) -> bool {
    path.exists() && std::os::unix::net::UnixStream::connect(path).is_ok()
}

/// Binds the control socket at `path` and serves it until aborted.
pub fn serve(reloader: Arc<Reloader>, path: &Path) -> io::Result<tokio::task::JoinHandle<()>> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    // A socket left by a proxy that was killed: nobody answers on it.
    if path.exists() && std::os::unix::net::UnixStream::connect(path).is_err() {
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let reloader = Arc::clone(&reloader);
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut line = String::new();
                let mut reader = BufReader::new(tokio::io::AsyncReadExt::take(read, 4096));
                let got = tokio::time::timeout(Duration::from_secs(5), reader.read_line(&mut line));
                if !matches!(got.await, Ok(Ok(_))) {
                    return;
                }
                if line.trim_start().starts_with('{') {
                    let reply = super::rpc::answer(&reloader, line.trim()).await;
                    let _ = write.write_all(reply.as_bytes()).await;
                    let _ = write.shutdown().await;
                    return;
                }
                if let Some(spec) = line.trim().strip_prefix("trace") {
                    let read = reader.into_inner().into_inner();
                    trace_session(&reloader, spec, read, write).await;
                    return;
                }
                let reply = match line.trim() {
                    "reload" => match reloader.reload("sipc reload").await {
                        Ok(summary) => format!("ok\n{summary}\n"),
                        Err(diagnostics) => format!("error\n{diagnostics}"),
                    },
                    "status" => format!("ok\n{}", reloader.status()),
                    other => format!("error\nunknown command `{other}` (reload, status, trace)\n"),
                };
                let _ = write.write_all(reply.as_bytes()).await;
                let _ = write.shutdown().await;
            });
        }
    }))
}

/// Serves `trace {json spec}`: `ok` and then one trace per matching
/// message, until the client closes the connection or a reload ends it.
async fn trace_session(
    reloader: &Reloader,
    spec: &str,
    mut read: tokio::net::unix::OwnedReadHalf,
    mut write: tokio::net::unix::OwnedWriteHalf,
) {
    use tokio::io::AsyncReadExt;
    let spec: super::trace::TraceSpec = match spec.trim() {
        "" => Default::default(),
        json => match serde_json::from_str(json) {
            Ok(s) => s,
            Err(e) => {
                let _ =
                    write.write_all(format!("error\nbad trace request: {e}\n").as_bytes()).await;
                return;
            }
        },
    };
    let mut session = match super::trace::start(reloader, spec).await {
        Ok(s) => s,
        Err(e) => {
            let _ = write.write_all(format!("error\n{e}\n").as_bytes()).await;
            return;
        }
    };
    let mut ok = write.write_all(b"ok\n").await.is_ok();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let mut buf = [0u8; 64];
    while ok {
        tokio::select! {
            text = session.rx.recv() => match text {
                Some(t) => ok = write.write_all(t.as_bytes()).await.is_ok(),
                None => break,
            },
            // The client closed (or sent something: it has nothing to say).
            _ = read.read(&mut buf) => break,
            _ = tick.tick() => {
                if reloader.generation() != session.generation {
                    let note = "=== trace ended: the config was reloaded; trace again\n";
                    let _ = write.write_all(note.as_bytes()).await;
                    break;
                }
            }
        }
    }
    super::trace::stop(reloader, session).await;
    let _ = write.shutdown().await;
}

/// Sends `command` to the control socket at `path`; returns whether the
/// proxy said `ok`, and the rest of its reply.
pub fn request(path: &Path, command: &str, timeout: Duration) -> io::Result<(bool, String)> {
    let reply = request_raw(path, command, timeout)?;
    let (first, rest) = reply.split_once('\n').unwrap_or((reply.as_str(), ""));
    Ok((first == "ok", rest.to_owned()))
}

/// Sends one line to the control socket at `path` and reads the whole
/// reply.
pub fn request_raw(path: &Path, line: &str, timeout: Duration) -> io::Result<String> {
    let mut s = std::os::unix::net::UnixStream::connect(path)?;
    s.set_read_timeout(Some(timeout))?;
    s.write_all(format!("{line}\n").as_bytes())?;
    let mut reply = String::new();
    s.read_to_string(&mut reply)?;
    Ok(reply)
}
