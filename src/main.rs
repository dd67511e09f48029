//! The `sipc` binary: all logic lives in the library's [`sipc::cli`] module so
//! that tests can drive it in-process.

fn main() -> std::process::ExitCode {
    sipc::cli::main()
}
