//! A request while it waits and runs: progress notifications to the client, and the two
//! things that end it early, the client's cancellation and the server's shutdown.
//!
//! Ending early means dropping the future that runs the sandbox, which kills it
//! (`kill_on_drop` and the launcher's process-group guard, see `sandbox`).

use std::future::Future;
use std::time::{Duration, Instant};

use rmcp::model::ProgressNotificationParam;
use rmcp::service::RequestContext;
use rmcp::RoleServer;
use tokio_util::sync::CancellationToken;

/// Interval between progress notifications of a long run.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// Why a request ended before its run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interrupted {
    /// The client sent `notifications/cancelled` for the request.
    ByClient,
    /// The server is stopping (signal or stdin closed).
    ByShutdown,
}

/// What was going on when a request was interrupted; it changes the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Waiting in the pool's queue: no sandbox yet.
    Queued,
    /// The sandbox was running, and is killed.
    Running,
}

impl Interrupted {
    /// The result's error text.
    pub fn message(self, stage: Stage) -> &'static str {
        match (self, stage) {
            (Interrupted::ByClient, Stage::Queued) => {
                "cancelled: the client cancelled the request while it was queued"
            }
            (Interrupted::ByShutdown, Stage::Queued) => "cancelled: the server is shutting down",
            (Interrupted::ByClient, Stage::Running) => {
                "cancelled: the client cancelled the request; the sandbox was killed"
            }
            (Interrupted::ByShutdown, Stage::Running) => {
                "cancelled: the server is shutting down; the sandbox was killed"
            }
        }
    }
}

/// `work` to its end, unless the client cancels or the server shuts down first.
pub async fn unless_interrupted<F: Future>(
    work: F,
    ctx: &RequestContext<RoleServer>,
    shutdown: &CancellationToken,
) -> Result<F::Output, Interrupted> {
    tokio::select! {
        r = work => Ok(r),
        _ = ctx.ct.cancelled() => Err(Interrupted::ByClient),
        _ = shutdown.cancelled() => Err(Interrupted::ByShutdown),
    }
}

/// `run` to its end, as [`unless_interrupted`], telling the client every [`PROGRESS_EVERY`]
/// how long it has been running (when the request asked for progress with a token).
pub async fn with_progress<F: Future>(
    run: F,
    ctx: &RequestContext<RoleServer>,
    shutdown: &CancellationToken,
    timeout_ms: u64,
) -> Result<F::Output, Interrupted> {
    let started = Instant::now();
    let progress_token = ctx.meta.get_progress_token();
    let mut tick =
        tokio::time::interval_at(tokio::time::Instant::now() + PROGRESS_EVERY, PROGRESS_EVERY);
    let mut run = std::pin::pin!(run);
    loop {
        tokio::select! {
            r = &mut run => return Ok(r),
            // Returning drops `run`, which kills the sandbox.
            _ = ctx.ct.cancelled() => {
                tracing::info!("run cancelled by the client; sandbox killed");
                return Err(Interrupted::ByClient);
            }
            _ = shutdown.cancelled() => return Err(Interrupted::ByShutdown),
            _ = tick.tick() => {
                if let Some(token) = &progress_token {
                    let secs = started.elapsed().as_secs_f64();
                    let _ = ctx.peer.notify_progress(
                        ProgressNotificationParam::new(token.clone(), secs.floor())
                            .with_total((timeout_ms as f64 / 1000.0).ceil())
                            .with_message(format!("running for {secs:.0}s")),
                    ).await;
                }
            }
        }
    }
}
