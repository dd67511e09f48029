pub fn dump_file(_: &std::path::Path) -> std::process::ExitCode {
    std::process::ExitCode::SUCCESS
}
