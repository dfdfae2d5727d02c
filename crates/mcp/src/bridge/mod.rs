//! The tool bridge: how sandboxed code calls the upstream MCP tools.
//!
//! Each run gets its own Unix socket, in a directory of its own that is shared read-only into
//! that run's sandbox (it appears at the same path inside). Nothing else reaches it: every
//! sandbox has a private mount namespace and sees only its own grants, and the guest has no
//! host network, so no TCP port is involved. A per-run token (32 random bytes, hex) must come
//! with every request, which keeps out other host users who can see the path; the token
//! reaches the guest inside its prelude, on stdin, never on a command line. When the run
//! ends the listener stops, open connections are dropped and the directory is removed, so a
//! guest that outlives its run (it cannot: the sandbox is killed) would find nothing.
//!
//! Protocol: one JSON object per line, each way.
//! Request `{"token", "id", "method", "params"}`, reply `{"id", "result"}` or
//! `{"id", "error": {"kind", "message"}}`. Methods:
//! - `callTool {name, arguments}`: the first text content of the tool result, or the whole
//!   result when it has none; an upstream `isError` is an error.
//! - `discover {search?: [string]}`, `getToolSchema {name}`, `searchTools {query, limit?}`:
//!   tool schemas `{name, description, inputSchema, outputSchema?, parameters}` from the cache.
//!
//! A request line longer than [`MAX_LINE`] gets an error (after the rest of the line is
//! drained, so the guest can read it) and the connection is closed; so does a line that is
//! not a JSON request or has a wrong token.

mod calls;
mod methods;
mod prelude;
pub mod upstream;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::config::BridgeLimits;
use crate::params::Permissions;
use crate::runtime::{interpreter_args, GuestRuntime};
use crate::sandbox::{HostGrant, RunSpec};
use crate::tool_names::AllowedToolPattern;
use code_executor::grant::Access;
use methods::{BridgeFault, RunState};
use std::os::unix::fs::OpenOptionsExt;
use upstream::Upstreams;

pub use calls::{audit_lines, call_summary, calls_made, CallRecord};
pub use methods::{tool_schema, DISCOVERY_LIMIT, DISCOVERY_WINDOW};
pub use prelude::with_prelude;

/// Largest request line; a 10 MB argument gets a clear error instead of filling memory.
pub const MAX_LINE: usize = 1024 * 1024;
/// Largest reply line; a bigger tool result is refused with an error.
pub const MAX_REPLY: usize = 16 * 1024 * 1024;
/// Bytes of an oversized line read and thrown away before the error reply, so the guest has
/// finished writing and can read it; past this the connection is simply closed.
const MAX_DRAIN: usize = 64 * 1024 * 1024;
/// Connections served at once per run; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 32;
/// Name of the socket inside the run's bridge directory.
pub const SOCKET_NAME: &str = "mcp.sock";
/// Where a run's bridge directory appears inside its sandbox: the same path in every run (each
/// sees only its own), so no host path of the server reaches the guest.
pub const DIR_INSIDE: &str = "/run/mcp-bridge";

/// The bridge of one run. Dropping it stops the listener and removes the socket directory.
pub struct RunBridge {
    dir: PathBuf,
    socket: PathBuf,
    token: String,
    stop: CancellationToken,
    state: Arc<RunState>,
}

/// Could not set up a run's bridge.
#[derive(Debug, thiserror::Error)]
#[error("tool bridge: cannot create the socket {path}: {source}; check TMPDIR (a Unix socket path must be under 108 bytes)")]
pub struct BridgeError {
    path: PathBuf,
    source: std::io::Error,
}

impl RunBridge {
    /// Create `dir` (mode 0755, so the sandbox's unprivileged uid may use it), bind the
    /// socket in it (0666) and start serving. Must be called inside a tokio runtime.
    pub fn start(
        dir: &Path,
        upstreams: Arc<Upstreams>,
        allowed: Vec<AllowedToolPattern>,
        limits: BridgeLimits,
    ) -> Result<RunBridge, BridgeError> {
        let socket = dir.join(SOCKET_NAME);
        let err = |source| BridgeError {
            path: socket.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(err)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).map_err(err)?;
        let listener = UnixListener::bind(&socket).map_err(err)?;
        std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).map_err(err)?;
        let mut raw = [0u8; 32];
        getrandom::fill(&mut raw).map_err(|e| err(std::io::Error::other(e.to_string())))?;
        let token = hex::encode(raw);
        let state = Arc::new(RunState::new(upstreams, allowed, token.clone(), limits));
        let stop = CancellationToken::new();
        tokio::spawn(serve(listener, state.clone(), stop.clone()));
        Ok(RunBridge {
            dir: dir.to_path_buf(),
            socket,
            token,
            stop,
            state,
        })
    }

    /// The directory to share into the sandbox.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    /// The allowlist of the run that took this bridge's prewarmed sandbox.
    pub fn set_allowed(&self, allowed: Vec<AllowedToolPattern>) {
        self.state.set_allowed(allowed);
    }

    /// `code` with this bridge's prelude (socket path and token) in front.
    /// The guest's code with the bridge prelude, for a warm sandbox launched with `attach`.
    pub fn wrap_code(&self, runtime: GuestRuntime, code: &str) -> String {
        with_prelude(
            runtime,
            code,
            &Path::new(DIR_INSIDE).join(SOCKET_NAME),
            &self.token,
        )
    }

    /// Wire this bridge into a run: the prelude before the code, the directory shared
    /// read-only into the sandbox (connect() needs no write access to the mount), and for
    /// deno its own permission flags (read and write on the directory, net on `unix:<socket>`).
    pub fn attach(&self, spec: &mut RunSpec, perms: &Permissions) -> Result<(), BridgeError> {
        // The directory is the server's own, just created: opened here and shown at a fixed
        // path inside, so the guest sees neither the server's temp directory nor its pid.
        let fd = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC | libc::O_NOFOLLOW)
            .open(&self.dir)
            .map_err(|source| BridgeError {
                path: self.dir.clone(),
                source,
            })?;
        let inside_dir = PathBuf::from(DIR_INSIDE);
        let inside_socket = inside_dir.join(SOCKET_NAME);
        spec.code = with_prelude(spec.runtime, &spec.code, &inside_socket, &self.token);
        if spec.runtime == GuestRuntime::Deno {
            let mut write = spec.write.clone();
            write.push(inside_dir.clone());
            // deno >= 2.x asks for net permission on `unix:<path>` as well.
            let mut perms = perms.clone();
            perms.net.push(format!("unix:{}", inside_socket.display()));
            spec.args = interpreter_args(GuestRuntime::Deno, &spec.read, &write, &perms);
        }
        spec.grants.push(HostGrant {
            fd: Arc::new(fd.into()),
            inside: inside_dir,
            access: Access::ReadOnly,
        });
        Ok(())
    }

    /// Stop serving, remove the socket and return the calls the run made.
    pub fn finish(self) -> Vec<CallRecord> {
        self.stop.cancel();
        self.state.take_records()
    }
}

impl Drop for RunBridge {
    fn drop(&mut self) {
        self.stop.cancel();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn serve(listener: UnixListener, state: Arc<RunState>, stop: CancellationToken) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            _ = stop.cancelled() => return,
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
        };
        let conn = tokio::select! {
            _ = stop.cancelled() => return,
            c = listener.accept() => c,
        };
        let Ok((stream, _)) = conn else { continue };
        let (state, stop) = (state.clone(), stop.clone());
        tokio::spawn(async move {
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = connection(stream, &state) => {}
            }
            drop(permit);
        });
    }
}

/// Outcome of reading one request line.
enum Line {
    Eof,
    Text(Vec<u8>),
    TooLong(usize),
}

async fn read_line(r: &mut BufReader<tokio::net::unix::OwnedReadHalf>) -> std::io::Result<Line> {
    let mut line = Vec::new();
    let mut seen = 0usize;
    loop {
        let buf = r.fill_buf().await?;
        if buf.is_empty() {
            return Ok(if seen == 0 {
                Line::Eof
            } else if seen > MAX_LINE {
                Line::TooLong(seen)
            } else {
                Line::Text(line)
            });
        }
        let (chunk, done) = match buf.iter().position(|b| *b == b'\n') {
            Some(i) => (&buf[..i], Some(i + 1)),
            None => (buf, None),
        };
        if seen + chunk.len() <= MAX_LINE {
            line.extend_from_slice(chunk);
        } else {
            line.clear();
        }
        seen += chunk.len();
        let used = done.unwrap_or(chunk.len());
        r.consume(used);
        if done.is_some() {
            return Ok(if seen > MAX_LINE {
                Line::TooLong(seen)
            } else {
                Line::Text(line)
            });
        }
        if seen > MAX_DRAIN {
            return Ok(Line::TooLong(seen));
        }
    }
}

async fn connection(stream: UnixStream, state: &RunState) {
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    loop {
        let line = match read_line(&mut r).await {
            Ok(Line::Eof) | Err(_) => return,
            Ok(Line::TooLong(n)) => {
                let msg = format!(
                    "request too large: {n} bytes, the limit is {MAX_LINE} bytes (1 MiB); pass smaller arguments"
                );
                let _ = reply(&mut w, Value::Null, Err(BridgeFault::new("too_large", msg))).await;
                return;
            }
            Ok(Line::Text(t)) => t,
        };
        let req: Value = match serde_json::from_slice(&line) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                let _ = reply(
                    &mut w,
                    Value::Null,
                    Err(BridgeFault::new(
                        "bad_request",
                        "malformed request: expected one JSON object per line with token, id, method, params",
                    )),
                )
                .await;
                return;
            }
        };
        let id = req.get("id").cloned().unwrap_or(Value::Null);
        let token = req.get("token").and_then(Value::as_str).unwrap_or_default();
        if !state.token_is(token) {
            let _ = reply(
                &mut w,
                id,
                Err(BridgeFault::new(
                    "unauthorized",
                    "wrong or missing token for this run's tool bridge",
                )),
            )
            .await;
            return;
        }
        let method = req
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let params = req.get("params").cloned().unwrap_or(Value::Null);
        let result = methods::handle(state, method, params).await;
        if reply(&mut w, id, result).await.is_err() {
            return;
        }
    }
}

async fn reply(
    w: &mut tokio::net::unix::OwnedWriteHalf,
    id: Value,
    result: Result<Value, BridgeFault>,
) -> std::io::Result<()> {
    let mut text = match &result {
        Ok(v) => json!({"id": id, "result": v}),
        Err(f) => json!({"id": id, "error": {"kind": f.kind, "message": f.message}}),
    }
    .to_string();
    if text.len() > MAX_REPLY {
        text = json!({"id": id, "error": {"kind": "too_large", "message": format!(
            "the result is {} bytes, more than the bridge passes ({MAX_REPLY} bytes)", text.len())}})
        .to_string();
    }
    text.push('\n');
    w.write_all(text.as_bytes()).await?;
    w.flush().await
}
