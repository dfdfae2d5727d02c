//! Upstream MCP servers (the `mcpServers` configuration) and the client pool that calls them.
//!
//! One rmcp client session per upstream, shared by every run: calls on it are concurrent
//! (rmcp matches replies by id), bounded per upstream by a semaphore, and each one is bounded
//! by a timeout. A session that died (the child crashed, the HTTP server went away) is noticed
//! on the next use and reconnected then; an upstream that failed to connect is retried on use
//! and every [`RETRY_EVERY`]. Each upstream's tool list is cached: discovery reads only the
//! cache, so a slow upstream cannot stall it, and the cache is refreshed when the upstream
//! sends `notifications/tools/list_changed`.
//!
//! Children are started with `PR_SET_PDEATHSIG`, so they die with the server even when it is
//! killed; [`Upstreams::shutdown`] closes them cleanly first.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig, Implementation, Tool,
};
use rmcp::service::{NotificationContext, Peer, RunningService, ServiceError};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use serde_json::{json, Map, Value};
use tokio::sync::Semaphore;

use crate::config::{Transport, UpstreamSettings, UpstreamSpec};
use crate::sys::set_parent_death_signal;

/// How often upstreams that are down are retried in the background.
pub const RETRY_EVERY: Duration = Duration::from_secs(30);

/// After a failed connect, calls fail fast with the last error for this long instead of
/// starting the upstream again on every call.
const RETRY_BACKOFF: Duration = Duration::from_secs(2);

/// Why a tool call did not produce a tool result.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    #[error("MCP server `{0}` is not configured")]
    UnknownServer(String),
    #[error("MCP server `{server}` is not connected: {reason}")]
    Unavailable { server: String, reason: String },
    #[error("MCP server `{server}`: timed out after {ms} ms waiting for a free call slot ({max} calls in flight)")]
    Busy {
        server: String,
        ms: u128,
        max: usize,
    },
    #[error("MCP server `{server}`: the call timed out after {ms} ms (the request was cancelled)")]
    Timeout { server: String, ms: u128 },
    #[error("MCP server `{server}` closed the connection during the call (did it crash?): {detail}; the next call reconnects")]
    Disconnected { server: String, detail: String },
    #[error("MCP server `{server}` answered with an error: {message}")]
    Protocol { server: String, message: String },
}

/// Connection state of one upstream, for `health`.
#[derive(Debug, Clone)]
pub enum UpstreamStatus {
    Connecting,
    Connected { tools: usize },
    Failed { reason: String },
}

type Session = RunningService<RoleClient, Handler>;

/// Client-side handler of one session: keeps the tool cache fresh.
#[derive(Clone)]
struct Handler {
    server: String,
    tools: Arc<RwLock<Vec<Tool>>>,
    list_timeout: Duration,
}

impl ClientHandler for Handler {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("code-executor-mcp-bridge", env!("CARGO_PKG_VERSION")),
        )
    }

    async fn on_tool_list_changed(&self, context: NotificationContext<RoleClient>) {
        // Not awaited here: the reply to tools/list is read by the same session loop.
        let (server, tools, limit, peer) = (
            self.server.clone(),
            self.tools.clone(),
            self.list_timeout,
            context.peer,
        );
        tokio::spawn(async move {
            match tokio::time::timeout(limit, peer.list_all_tools()).await {
                Ok(Ok(list)) => {
                    tracing::info!(server, tools = list.len(), "upstream tool list refreshed");
                    *tools.write().unwrap_or_else(|e| e.into_inner()) = list;
                }
                Ok(Err(e)) => tracing::warn!(server, "tool list refresh failed: {e}"),
                Err(_) => tracing::warn!(server, "tool list refresh timed out"),
            }
        });
    }
}

/// The live session of one upstream, with the pid of its child (stdio only).
struct Live {
    session: Session,
    pid: Option<u32>,
}

/// One upstream server and its session.
pub struct Upstream {
    pub spec: UpstreamSpec,
    settings: UpstreamSettings,
    /// Held while connecting, so concurrent callers wait for one connect instead of starting
    /// the upstream several times.
    live: tokio::sync::Mutex<Option<Live>>,
    tools: Arc<RwLock<Vec<Tool>>>,
    status: Mutex<UpstreamStatus>,
    last_failure: Mutex<Option<Instant>>,
    slots: Semaphore,
    /// Cancelled at shutdown: stops a connect in progress (its child is killed with it).
    closing: tokio_util::sync::CancellationToken,
}

impl Upstream {
    fn new(spec: UpstreamSpec, settings: UpstreamSettings) -> Self {
        Upstream {
            slots: Semaphore::new(settings.max_in_flight),
            spec,
            settings,
            live: tokio::sync::Mutex::new(None),
            tools: Arc::new(RwLock::new(Vec::new())),
            status: Mutex::new(UpstreamStatus::Connecting),
            last_failure: Mutex::new(None),
            closing: tokio_util::sync::CancellationToken::new(),
        }
    }

    pub fn status(&self) -> UpstreamStatus {
        match &*self.status.lock().unwrap_or_else(|e| e.into_inner()) {
            UpstreamStatus::Connected { .. } => UpstreamStatus::Connected {
                tools: self.tools().len(),
            },
            s => s.clone(),
        }
    }

    fn set_status(&self, s: UpstreamStatus) {
        *self.status.lock().unwrap_or_else(|e| e.into_inner()) = s;
    }

    /// The cached tool list (empty until the first connect).
    pub fn tools(&self) -> Vec<Tool> {
        self.tools.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// A peer of a live session, connecting (or reconnecting) when there is none.
    async fn peer(&self) -> Result<Peer<RoleClient>, CallError> {
        let mut live = self.live.lock().await;
        if let Some(l) = live.as_ref() {
            if !l.session.peer().is_transport_closed() && !l.session.is_closed() {
                return Ok(l.session.peer().clone());
            }
            tracing::warn!(server = %self.spec.name, "upstream session ended; reconnecting");
        }
        // Dropping the old session kills its child.
        *live = None;
        let recent_failure = self
            .last_failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|t| t.elapsed() < RETRY_BACKOFF);
        if recent_failure {
            if let UpstreamStatus::Failed { reason } = self.status() {
                return Err(CallError::Unavailable {
                    server: self.spec.name.clone(),
                    reason: format!("{reason} (retrying in a moment)"),
                });
            }
        }
        if self.closing.is_cancelled() {
            return Err(CallError::Unavailable {
                server: self.spec.name.clone(),
                reason: "the server is shutting down".into(),
            });
        }
        self.set_status(UpstreamStatus::Connecting);
        let connect = tokio::select! {
            r = tokio::time::timeout(self.settings.connect_timeout, self.connect()) => r,
            _ = self.closing.cancelled() => Ok(Err("the server is shutting down".to_string())),
        };
        match connect {
            Ok(Ok((l, list))) => {
                let peer = l.session.peer().clone();
                *self.tools.write().unwrap_or_else(|e| e.into_inner()) = list;
                self.set_status(UpstreamStatus::Connected { tools: 0 });
                *self.last_failure.lock().unwrap_or_else(|e| e.into_inner()) = None;
                tracing::info!(server = %self.spec.name, tools = self.tools().len(), "upstream connected");
                *live = Some(l);
                Ok(peer)
            }
            Ok(Err(reason)) => Err(self.failed(reason)),
            Err(_) => Err(self.failed(format!(
                "no answer to initialize and tools/list within {} ms",
                self.settings.connect_timeout.as_millis()
            ))),
        }
    }

    fn failed(&self, reason: String) -> CallError {
        tracing::warn!(server = %self.spec.name, "upstream unavailable: {reason}");
        self.set_status(UpstreamStatus::Failed {
            reason: reason.clone(),
        });
        *self.last_failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        CallError::Unavailable {
            server: self.spec.name.clone(),
            reason,
        }
    }

    async fn connect(&self) -> Result<(Live, Vec<Tool>), String> {
        let handler = Handler {
            server: self.spec.name.clone(),
            tools: self.tools.clone(),
            list_timeout: self.settings.connect_timeout,
        };
        let (session, pid) = match &self.spec.transport {
            Transport::Stdio { command, args, env } => {
                let mut cmd = tokio::process::Command::new(command);
                cmd.args(args)
                    .envs(env)
                    .stderr(std::process::Stdio::inherit());
                set_parent_death_signal(&mut cmd);
                let transport = TokioChildProcess::new(cmd)
                    .map_err(|e| format!("cannot start `{command}`: {e}"))?;
                let pid = transport.id();
                let session = handler
                    .serve(transport)
                    .await
                    .map_err(|e| format!("`{command}` did not complete initialize: {e}"))?;
                (session, pid)
            }
            Transport::Http { url, headers } => {
                let mut map = HashMap::new();
                for (k, v) in headers {
                    let name = http::HeaderName::from_bytes(k.as_bytes())
                        .map_err(|e| format!("header name {k:?}: {e}"))?;
                    let value =
                        http::HeaderValue::from_str(v).map_err(|e| format!("header {k:?}: {e}"))?;
                    map.insert(name, value);
                }
                let cfg =
                    StreamableHttpClientTransportConfig::with_uri(url.as_str()).custom_headers(map);
                let transport = StreamableHttpClientTransport::from_config(cfg);
                let session = handler
                    .serve(transport)
                    .await
                    .map_err(|e| format!("{url} did not complete initialize: {e}"))?;
                (session, None)
            }
        };
        let list = session
            .peer()
            .list_all_tools()
            .await
            .map_err(|e| format!("tools/list failed: {e}"))?;
        Ok((Live { session, pid }, list))
    }

    /// Call one tool, within the per-call timeout (slot wait and reconnect included).
    pub async fn call(
        &self,
        tool: &str,
        arguments: Map<String, Value>,
    ) -> Result<CallToolResult, CallError> {
        self.call_within(tool, arguments, self.settings.call_timeout)
            .await
    }

    /// Calls holding a slot right now.
    pub fn calls_in_flight(&self) -> usize {
        self.settings
            .max_in_flight
            .saturating_sub(self.slots.available_permits())
    }

    /// [`Upstream::call`] with its own time limit.
    pub async fn call_within(
        &self,
        tool: &str,
        arguments: Map<String, Value>,
        limit: Duration,
    ) -> Result<CallToolResult, CallError> {
        let server = self.spec.name.clone();
        let started = Instant::now();
        let _slot = tokio::time::timeout(limit, self.slots.acquire())
            .await
            .map_err(|_| CallError::Busy {
                server: server.clone(),
                ms: limit.as_millis(),
                max: self.settings.max_in_flight,
            })?
            .map_err(|_| CallError::Unavailable {
                server: server.clone(),
                reason: "the server is shutting down".into(),
            })?;
        let left = limit.saturating_sub(started.elapsed());
        let peer = tokio::time::timeout(left, self.peer())
            .await
            .map_err(|_| CallError::Timeout {
                server: server.clone(),
                ms: limit.as_millis(),
            })??;
        let params = CallToolRequestParams::new(tool.to_string()).with_arguments(arguments);
        let left = limit.saturating_sub(started.elapsed());
        // Dropping the call on timeout makes rmcp send notifications/cancelled upstream.
        match tokio::time::timeout(left, peer.call_tool(params)).await {
            Err(_) => Err(CallError::Timeout {
                server,
                ms: limit.as_millis(),
            }),
            Ok(Ok(r)) => Ok(r),
            Ok(Err(ServiceError::McpError(e))) => Err(CallError::Protocol {
                server,
                message: e.message.to_string(),
            }),
            Ok(Err(e)) => {
                self.set_status(UpstreamStatus::Failed {
                    reason: format!("connection lost: {e}"),
                });
                Err(CallError::Disconnected {
                    server,
                    detail: e.to_string(),
                })
            }
        }
    }

    /// Connect now if there is no live session (used at start and by the retry loop).
    pub async fn ensure_connected(&self) {
        let _ = self.peer().await;
    }

    /// Refresh the tool cache now (when a tool is not in it: the upstream may have added it
    /// without telling).
    pub async fn refresh_tools(&self) {
        let Ok(peer) = tokio::time::timeout(self.settings.call_timeout, self.peer()).await else {
            return;
        };
        let Ok(peer) = peer else { return };
        if let Ok(Ok(list)) =
            tokio::time::timeout(self.settings.call_timeout, peer.list_all_tools()).await
        {
            *self.tools.write().unwrap_or_else(|e| e.into_inner()) = list;
        }
    }

    fn is_live(&self) -> bool {
        matches!(self.status(), UpstreamStatus::Connected { .. })
    }

    async fn close(&self) {
        self.closing.cancel();
        self.slots.close();
        let Some(mut l) = self.live.lock().await.take() else {
            return;
        };
        let _ = l.session.close_with_timeout(Duration::from_secs(2)).await;
        if let Some(pid) = l.pid {
            kill_if_our_child(pid);
        }
    }
}

/// SIGKILL `pid` if it is still a child of this process (never a reused pid of someone else).
fn kill_if_our_child(pid: u32) {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return;
    };
    let ppid = stat
        .rsplit_once(')')
        .and_then(|(_, r)| r.split_whitespace().nth(1))
        .and_then(|p| p.parse::<u32>().ok());
    if ppid == Some(std::process::id()) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// All upstreams of the server.
pub struct Upstreams {
    servers: BTreeMap<String, Arc<Upstream>>,
    /// Problems met while reading the configuration, for `health`.
    pub config_problems: Vec<String>,
    pub settings: UpstreamSettings,
}

impl Upstreams {
    pub fn new(
        specs: Vec<UpstreamSpec>,
        problems: Vec<String>,
        settings: UpstreamSettings,
    ) -> Self {
        let servers = specs
            .into_iter()
            .map(|s| (s.name.clone(), Arc::new(Upstream::new(s, settings.clone()))))
            .collect();
        Upstreams {
            servers,
            config_problems: problems,
            settings,
        }
    }

    /// No upstream configured.
    pub fn empty() -> Self {
        Self::new(Vec::new(), Vec::new(), UpstreamSettings::default())
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Upstream>> {
        self.servers.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &String> {
        self.servers.keys()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Upstream>> {
        self.servers.values()
    }

    /// Connect every upstream in parallel (each within the connect timeout). Failures are
    /// recorded in the status, never returned.
    pub async fn connect_all(&self) {
        let tasks: Vec<_> = self
            .servers
            .values()
            .map(|u| {
                let u = u.clone();
                tokio::spawn(async move { u.ensure_connected().await })
            })
            .collect();
        for t in tasks {
            let _ = t.await;
        }
    }

    /// Connect at start, then retry the upstreams that are down every [`RETRY_EVERY`] until
    /// `stop` is cancelled.
    pub fn spawn_maintenance(self: &Arc<Self>, stop: tokio_util::sync::CancellationToken) {
        if self.servers.is_empty() {
            return;
        }
        let me = self.clone();
        tokio::spawn(async move {
            me.connect_all().await;
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(RETRY_EVERY) => {}
                }
                for u in me.servers.values().filter(|u| !u.is_live()) {
                    let u = u.clone();
                    tokio::spawn(async move { u.ensure_connected().await });
                }
            }
        });
    }

    /// Start a reconnect in the background for each upstream that is down, without waiting
    /// (discovery uses this: it must not stall on a slow upstream).
    pub fn nudge_down(&self) {
        for u in self.servers.values() {
            if let UpstreamStatus::Failed { .. } = u.status() {
                let u = u.clone();
                tokio::spawn(async move { u.ensure_connected().await });
            }
        }
    }

    /// `health.mcpClients`: servers connected (counted as servers), each failed one with its
    /// reason, and the configuration problems.
    pub fn health(&self) -> Value {
        let mut connected = 0;
        let mut failed = Vec::new();
        let mut servers = Vec::new();
        for (name, u) in &self.servers {
            let st = u.status();
            let (state, extra) = match &st {
                UpstreamStatus::Connected { tools } => {
                    connected += 1;
                    ("connected", json!({"tools": tools}))
                }
                UpstreamStatus::Connecting => ("connecting", json!({})),
                UpstreamStatus::Failed { reason } => {
                    failed.push(json!({"name": name, "reason": reason}));
                    ("failed", json!({"reason": reason}))
                }
            };
            let mut o = json!({"name": name, "status": state});
            if let (Some(o), Value::Object(e)) = (o.as_object_mut(), extra) {
                o.extend(e);
            }
            servers.push(o);
        }
        json!({
            "connected": connected,
            "configured": self.servers.len(),
            "servers": servers,
            "failed": failed,
            "configProblems": self.config_problems,
        })
    }

    /// Close every session and make sure no child outlives the server.
    pub async fn shutdown(&self) {
        let closes: Vec<_> = self.servers.values().map(|u| u.close()).collect();
        for c in closes {
            c.await;
        }
    }
}
