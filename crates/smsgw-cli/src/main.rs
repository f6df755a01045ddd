//! The `smsgw` binary: the command of [`smsgw_cli`] with the built-in providers.

/// `smsgw serve` allocates for every request, row and send: under load glibc's malloc and free
/// were ~16 % of the samples, and with mimalloc end to end went up 0-30 % in five alternating
/// runs (docs/benchmarks.md). The benchmark's process uses the same allocator.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    smsgw_cli::main()
}
