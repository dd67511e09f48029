//! Following the config files on disk.
//!
//! Editors save in different ways: vim writes a new file and renames it over
//! the old one (the watched inode disappears), VS Code truncates and writes
//! in place, others write a temp file and move it over. Watching the files
//! themselves misses some of these, so the *directories* holding the config
//! and its includes are watched, and events are filtered by file name. One
//! save produces several events (truncate, write, close; or create, rename):
//! they are debounced — a reload starts once no event came for
//! [`DEBOUNCE`] — so one save is one reload.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind};
use notify::{RecursiveMode, Watcher};

use super::Reloader;

/// Quiet time after the last event before reloading.
pub const DEBOUNCE: Duration = Duration::from_millis(20);
/// A steady stream of events still reloads after this long.
const MAX_DELAY: Duration = Duration::from_millis(300);

/// The absolute form of `p` used to compare event paths (the file itself
/// may not exist, e.g. an include about to be created).
fn normalize(p: &Path) -> PathBuf {
    if let Ok(c) = p.canonicalize() {
        return c;
    }
    match (p.parent(), p.file_name()) {
        (Some(dir), Some(name)) => {
            let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
            dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf()).join(name)
        }
        _ => p.to_path_buf(),
    }
}

fn matters(kind: &EventKind) -> bool {
    matches!(
        kind,
        EventKind::Create(_)
            | EventKind::Modify(
                ModifyKind::Data(_) | ModifyKind::Name(_) | ModifyKind::Any | ModifyKind::Other
            )
            | EventKind::Access(AccessKind::Close(AccessMode::Write))
    )
}

/// Starts watching the reloader's files; the task runs until aborted.
pub fn spawn(reloader: Arc<Reloader>) -> notify::Result<tokio::task::JoinHandle<()>> {
    let wanted: Arc<Mutex<HashSet<PathBuf>>> = Arc::new(Mutex::new(HashSet::new()));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let filter = Arc::clone(&wanted);
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        let Ok(event) = res else { return };
        if !matters(&event.kind) {
            return;
        }
        let wanted = filter.lock().unwrap_or_else(|e| e.into_inner());
        if event.paths.iter().any(|p| wanted.contains(&normalize(p))) {
            let _ = tx.send(());
        }
    })?;
    let mut files = reloader.files();
    let mut dirs: HashSet<PathBuf> = HashSet::new();
    let mut follow = move |watcher: &mut notify::RecommendedWatcher, list: &[PathBuf]| {
        let mut w = wanted.lock().unwrap_or_else(|e| e.into_inner());
        w.clear();
        for f in list {
            let f = normalize(f);
            if let Some(dir) = f.parent()
                && dirs.insert(dir.to_path_buf())
                && let Err(e) = watcher.watch(dir, RecursiveMode::NonRecursive)
            {
                tracing::warn!("cannot watch {}: {e}", dir.display());
            }
            w.insert(f);
        }
    };
    let initial = files.borrow_and_update().clone();
    follow(&mut watcher, &initial);
    Ok(tokio::spawn(async move {
        while rx.recv().await.is_some() {
            let started = tokio::time::Instant::now();
            loop {
                let left = MAX_DELAY.saturating_sub(started.elapsed());
                tokio::select! {
                    more = rx.recv() => if more.is_none() { return },
                    _ = tokio::time::sleep(DEBOUNCE.min(left)) => break,
                }
            }
            let _ = reloader.reload("file changed").await;
            if files.has_changed().unwrap_or(false) {
                let list = files.borrow_and_update().clone();
                follow(&mut watcher, &list);
            }
        }
    }))
}
