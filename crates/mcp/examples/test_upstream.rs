//! A small MCP stdio server used as an upstream by the tool-bridge tests and the bridge
//! benchmark. It can be told to misbehave: crash mid-call, hang, return errors, answer slowly.
//!
//! Tools: `echo {text}`, `add {a, b}` (strict schema), `fail {message?}` (isError), `crash`
//! (the process exits mid-call), `hang` (never answers), `slow {ms}`, `pid` (this process id,
//! to see a reconnect), `image` (a non-text result), `register {name}` (adds a tool and sends
//! `notifications/tools/list_changed`).
//!
//! Environment: `TEST_UPSTREAM_LIST_DELAY_MS` delays every `tools/list` answer (a slow
//! upstream); `TEST_UPSTREAM_EXIT_AT_START=1` exits before serving (an upstream that fails).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt};
use serde_json::{json, Map, Value};

#[derive(Clone, Default)]
struct TestUpstream {
    extra: Arc<Mutex<Vec<String>>>,
}

fn schema(v: Value) -> Arc<Map<String, Value>> {
    match v {
        Value::Object(m) => Arc::new(m),
        _ => Arc::new(Map::new()),
    }
}

fn text(s: impl Into<String>) -> Result<CallToolResponse, ErrorData> {
    Ok(CallToolResult::success(vec![ContentBlock::text(s)]).into())
}

impl TestUpstream {
    fn tools(&self) -> Vec<Tool> {
        let empty = || schema(json!({"type": "object", "properties": {}}));
        let mut v = vec![
            Tool::new(
                "echo",
                "Echo back the given text",
                schema(
                    json!({"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}),
                ),
            ),
            Tool::new(
                "add",
                "Add two numbers (strict schema)",
                schema(json!({
                    "type": "object",
                    "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
                    "required": ["a", "b"],
                    "additionalProperties": false
                })),
            ),
            Tool::new(
                "fail",
                "Return a tool error (isError)",
                schema(json!({"type": "object", "properties": {"message": {"type": "string"}}})),
            ),
            Tool::new("crash", "Exit the upstream process mid-call", empty()),
            Tool::new("hang", "Never answer", empty()),
            Tool::new(
                "slow",
                "Answer after ms milliseconds",
                schema(
                    json!({"type": "object", "properties": {"ms": {"type": "integer", "minimum": 0}}, "required": ["ms"]}),
                ),
            ),
            Tool::new("pid", "The process id of this upstream", empty()),
            Tool::new("image", "Return an image (a non-text result)", empty()),
            Tool::new(
                "register",
                "Add a tool named `name` and send notifications/tools/list_changed",
                schema(
                    json!({"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}),
                ),
            ),
        ];
        for name in self.extra.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            v.push(Tool::new(name.clone(), "A tool added at run time", empty()));
        }
        v
    }
}

impl ServerHandler for TestUpstream {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_tool_list_changed()
                .build(),
        )
        .with_server_info(Implementation::new("test-upstream", "1.0"))
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        if let Some(ms) = std::env::var("TEST_UPSTREAM_LIST_DELAY_MS")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
        {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        Ok(ListToolsResult::with_all_items(self.tools()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let args = request.arguments.clone().unwrap_or_default();
        let num = |k: &str| args.get(k).and_then(Value::as_f64).unwrap_or(0.0);
        let string = |k: &str| {
            args.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        match request.name.as_ref() {
            "echo" => text(string("text")),
            "add" => text(format!("{}", num("a") + num("b"))),
            "fail" => {
                let m = string("message");
                let m = if m.is_empty() { "it failed".into() } else { m };
                Ok(CallToolResult::error(vec![ContentBlock::text(m)]).into())
            }
            "crash" => std::process::exit(3),
            "hang" => {
                std::future::pending::<()>().await;
                text("unreachable")
            }
            "slow" => {
                tokio::time::sleep(Duration::from_millis(num("ms") as u64)).await;
                text("done")
            }
            "pid" => text(std::process::id().to_string()),
            "image" => Ok(CallToolResult::success(vec![ContentBlock::image(
                "iVBORw0KGgo=",
                "image/png",
            )])
            .into()),
            "register" => {
                self.extra
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(string("name"));
                let _ = context.peer.notify_tool_list_changed().await;
                text("registered")
            }
            other if self.tools().iter().any(|t| t.name == other) => text(other.to_string()),
            other => Err(ErrorData::invalid_params(
                format!("tool not found: {other}"),
                None,
            )),
        }
    }
}

#[tokio::main]
async fn main() {
    if std::env::var("TEST_UPSTREAM_EXIT_AT_START").as_deref() == Ok("1") {
        eprintln!("test_upstream: told to fail at start");
        std::process::exit(1);
    }
    match TestUpstream::default()
        .serve(rmcp::transport::stdio())
        .await
    {
        Ok(s) => {
            let _ = s.waiting().await;
        }
        Err(e) => eprintln!("test_upstream: {e}"),
    }
}
