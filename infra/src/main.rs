//! `storefront`: `cargo run --release` starts the local storefront; see `--help` for the operator commands.

use std::process::ExitCode;

use clap::Parser;

/// The local runtime allocates a little for every request, event and
/// message (JSON values, envelopes, SQL rows) from many threads; glibc's
/// allocator was an eighth of its CPU under `storefront load`, mimalloc
/// spends less of it (BENCHMARKS.md section 4).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = storefront::cli::Cli::parse();
    // The load generator runs on one thread: it shares the machine with the
    // runtime it drives, and on one thread its requests cost it less (no
    // wake-ups across threads); everything else gets a worker per core.
    let mut builder = match cli.command {
        Some(storefront::cli::Command::Load(_)) => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(storefront::cli::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
