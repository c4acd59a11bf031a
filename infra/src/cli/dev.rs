//! `storefront dev` (the default command): a runtime on 127.0.0.1, embedded or `--aws`.

use std::io::IsTerminal;
use std::net::SocketAddr;

use super::{Cli, CliError, DevArgs, LogFormat, aws_options, options};
use crate::aws::AwsRuntime;
use crate::local::LocalRuntime;

pub(super) fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let result = match format {
        LogFormat::Json => builder.json().with_current_span(true).try_init(),
        LogFormat::Pretty => builder
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr)
            .try_init(),
    };
    // A second init (tests running several runtimes) keeps the first subscriber.
    let _ = result;
}

pub(super) async fn dev(cli: &Cli, args: &DevArgs) -> Result<(), CliError> {
    init_logs(args.log_format);
    // One runtime per data folder: a second would hand out the first's
    // in-flight messages again and move its stream checkpoint.
    let _lock = crate::runtime::DataLock::acquire(&cli.data)?;
    let addr = SocketAddr::new(args.host, args.port);
    if !args.host.is_loopback() {
        eprintln!(
            "warning: listening on {}, not on loopback: anyone who can reach this address can call the API with a dev token, and the local tooling with an admin's; use --host 127.0.0.1 unless you mean it",
            args.host
        );
    }
    let listen = |source| CliError::Listen { addr, source };
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(listen)?;
    let bound = listener.local_addr().map_err(listen)?;
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    if args.target.aws {
        let runtime = AwsRuntime::build(aws_options(cli, args)).await?;
        banner(&runtime.describe(bound), &runtime.keys, bound)?;
        runtime.serve(listener, shutdown).await?;
    } else {
        let runtime = LocalRuntime::build(options(cli, args))?;
        banner(&runtime.describe(bound), &runtime.keys, bound)?;
        runtime.serve(listener, shutdown).await?;
    }
    Ok(())
}

fn banner(
    description: &str,
    keys: &crate::auth::DevKeys,
    bound: SocketAddr,
) -> Result<(), CliError> {
    let example = keys.issue("alice", false, Some("alice@example.com"), 12 * 3600)?;
    println!("{description}");
    println!(
        "Try it (a token for alice, valid 12h; `storefront token --user NAME [--admin]` makes more):"
    );
    println!("  curl -s http://{bound}/products");
    println!(
        "  curl -s -X POST -H 'Authorization: Bearer {example}' -H 'Content-Type: application/json' \\"
    );
    println!(
        "       -d '{{\"email\":\"alice@example.com\",\"name\":\"Alice\"}}' http://{bound}/users"
    );
    println!();
    println!("listening on http://{bound}");
    Ok(())
}
