//! `code-executor-mcp`: MCP stdio server; every execution runs in the `sandbox-run` sandbox.
//!
//! stdout is the protocol channel, so all logging goes to stderr (level from `RUST_LOG`).
//! On stdin EOF, SIGINT or SIGTERM, running sandboxes are killed, run directories removed and
//! the audit log flushed before exit.
#![forbid(unsafe_code)]

use std::pin::Pin;
use std::process::ExitCode;
use std::task::{Context, Poll};

use code_executor_mcp::config::{Config, ConfigSources};
use code_executor_mcp::server::ExecutorServer;
use rmcp::ServiceExt;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

/// stdin that cancels `on_eof` when the client closes it. rmcp, on EOF, first waits a while
/// for in-flight responses; the client is gone, so the sandboxes are killed right away instead.
struct EofSignal<R> {
    inner: R,
    on_eof: CancellationToken,
}

impl<R: AsyncRead + Unpin> AsyncRead for EofSignal<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &res {
            if buf.filled().len() == before && buf.remaining() > 0 {
                tracing::info!("stdin closed: killing running sandboxes");
                self.on_eof.cancel();
            }
        }
        res
    }
}

fn main() -> ExitCode {
    // Every setting is read and checked first; a bad one stops the start with exit code 2 and
    // a message naming it (logging is not up yet: the log filter is one of the settings).
    let cfg = match Config::load(&ConfigSources::from_process()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("code-executor-mcp: {e}");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(tracing_subscriber::EnvFilter::new(&cfg.log_filter))
        .init();
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
    let code = rt.block_on(serve(cfg));
    // tokio's stdin reader is a blocking thread stuck in read(2) until the client closes the
    // pipe; waiting for it would hang a SIGTERM shutdown. Everything of ours is done by now.
    rt.shutdown_background();
    code
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
    let stop = server.stop_token();
    let session = async move {
        let (stdin, stdout) = rmcp::transport::stdio();
        let stdin = EofSignal {
            inner: stdin,
            on_eof: stop,
        };
        match handler.serve((stdin, stdout)).await {
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
