//! The local control socket: `sipc reload` and `sipc reload --status`.
//!
//! A Unix socket in a per-user directory (mode 0700; the socket itself
//! 0600), so only the user running the proxy (and root) can reload it. The
//! protocol is one command line in (`reload` or `status`), and a reply whose
//! first line is `ok` or `error`, followed by the summary, the status or the
//! diagnostics.

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
                let mut reader = BufReader::new(tokio::io::AsyncReadExt::take(read, 256));
                let got = tokio::time::timeout(Duration::from_secs(5), reader.read_line(&mut line));
                if !matches!(got.await, Ok(Ok(_))) {
                    return;
                }
                let reply = match line.trim() {
                    "reload" => match reloader.reload("sipc reload").await {
                        Ok(summary) => format!("ok\n{summary}\n"),
                        Err(diagnostics) => format!("error\n{diagnostics}"),
                    },
                    "status" => format!("ok\n{}", reloader.status()),
                    other => format!("error\nunknown command `{other}` (reload, status)\n"),
                };
                let _ = write.write_all(reply.as_bytes()).await;
                let _ = write.shutdown().await;
            });
        }
    }))
}

/// Sends `command` to the control socket at `path`; returns whether the
/// proxy said `ok`, and the rest of its reply.
pub fn request(path: &Path, command: &str, timeout: Duration) -> io::Result<(bool, String)> {
    let mut s = std::os::unix::net::UnixStream::connect(path)?;
    s.set_read_timeout(Some(timeout))?;
    s.write_all(format!("{command}\n").as_bytes())?;
    let mut reply = String::new();
    s.read_to_string(&mut reply)?;
    let (first, rest) = reply.split_once('\n').unwrap_or((reply.as_str(), ""));
    Ok((first == "ok", rest.to_owned()))
}
