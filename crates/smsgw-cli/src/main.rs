//! The `smsgw` binary: the command of [`smsgw_cli`] with the built-in providers.

fn main() -> std::process::ExitCode {
    smsgw_cli::main()
}
