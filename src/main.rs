//! The `sipc` binary: all logic lives in the library's [`sipc::cli`] module so
//! that tests can drive it in-process.

/// mimalloc instead of glibc's malloc: a proxy allocates and frees many
/// small, short-lived buffers per message from several threads, where
/// glibc's arenas spend their time in `malloc_consolidate` and lock traffic
/// (a profile of calls through rtpengine showed a sixth of the proxy's
/// samples in malloc). Figures: docs/architecture.md ("rtpengine control").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    sipc::cli::main()
}
