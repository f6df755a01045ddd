//! `smsgw` with one more provider: naming the provider crate links it (and its harness) in, and
//! `smsgw_cli::main` does the rest.

use smsgw_provider_example as _;

fn main() -> std::process::ExitCode {
    smsgw_cli::main()
}
