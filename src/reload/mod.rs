//! Hot reload: save the file, and the running proxy routes with the new
//! program — or, if the new config is broken, keeps the old one and says why.
//!
//! - [`build`] checks and JIT-compiles the config (off the async workers, on
//!   a blocking thread), recording every file it read so the watcher knows
//!   what to watch;
//! - [`reloader`] swaps the compiled program into the core (an `ArcSwap`:
//!   each message loads the current program once; a transaction holds the
//!   `Arc` of the program it started with, so its failure, branch and reply
//!   routes run that code, and an old program's JIT memory is freed when the
//!   last transaction holding it ends), keeps the generation, hash, timing
//!   and last failure for `sipc reload --status`, and refuses changes that
//!   need a restart (listen sockets, TLS material) with a diagnostic;
//! - [`watch`] follows the config and its includes with `notify`, watching
//!   their directories (editors save by rename, by truncate-and-write, or by
//!   moving a temp file over the original) and debouncing so one save is one
//!   reload;
//! - [`control`] is the local control socket (`sipc reload`, `--status`,
//!   `sipc trace`): a Unix socket in a directory only the owner can enter;
//! - [`trace`] swaps in a tracing router while `sipc trace` runs.

pub mod build;
pub mod control;
pub mod notify;
pub mod reloader;
pub mod rpc;
pub mod sql_watch;
pub mod trace;
pub mod watch;

pub use build::{Built, build};
pub use reloader::Reloader;
