//! `code-executor-mcp`: MCP stdio server; every execution runs in the `sandbox-run` sandbox.
//!
//! stdout is the protocol channel, so all logging goes to stderr (level from `RUST_LOG`).
//! On stdin EOF, SIGINT or SIGTERM, running sandboxes are killed, run directories removed and
//! the audit log flushed before exit.

use std::process::ExitCode;

use code_executor::mcp::config::{Config, ConfigSources};
use code_executor::mcp::server::ExecutorServer;
use rmcp::ServiceExt;
use tokio::signal::unix::{signal, SignalKind};

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cfg = match Config::load(&ConfigSources::from_process()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("code-executor-mcp: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("code-executor-mcp: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(serve(cfg))
}

async fn serve(cfg: Config) -> ExitCode {
    let server = match ExecutorServer::new(cfg) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("code-executor-mcp: {e}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(tools = ?server.offered_tools(), "code-executor-mcp starting");
    let (mut term, mut int) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(t), Ok(i)) => (t, i),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("code-executor-mcp: cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let handler = server.clone();
    let session = async move {
        match handler.serve(rmcp::transport::stdio()).await {
            Ok(running) => {
                let r = running.waiting().await;
                tracing::info!(reason = ?r, "client session ended");
            }
            // EOF before `initialize` is a client that went away, not a server failure.
            Err(e) => tracing::info!("session did not start: {e}"),
        }
    };
    tokio::select! {
        _ = session => {}
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
    server.shutdown().await;
    tracing::info!("shutdown complete");
    ExitCode::SUCCESS
}
