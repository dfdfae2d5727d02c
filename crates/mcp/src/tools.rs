//! The MCP handler: which tools are offered, their schemas, and the dispatch of a call.
//!
//! Tools are listed and dispatched by hand (no `#[tool]` macros) because the set depends on
//! what is installed, and because every bad argument must come back as the structured result
//! shape rather than rmcp's generic deserialization error.

use std::sync::Arc;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, Implementation, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool, ToolAnnotations,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{json, Map};

use crate::execute;
use crate::health;
use crate::output::{self, ErrorType, ExecOutcome};
use crate::params::{self, ExecuteTool, TOOL_PY, TOOL_TS};
use crate::server::ExecutorServer;
use crate::state::ServerState;

pub const TOOL_HEALTH: &str = "health";

impl ExecutorServer {
    /// Names of the tools this server offers, given what is installed.
    pub fn offered_tools(&self) -> Vec<&'static str> {
        offered_tools(&self.state)
    }

    fn tools(&self) -> Vec<Tool> {
        let cfg = &self.state.cfg;
        let exec_schema = Arc::new(output::execute_output_schema());
        let execute = |tool: ExecuteTool, description: &str| {
            Tool::new(
                tool.name(),
                description.to_string(),
                Arc::new(params::input_schema(tool.is_typescript(), cfg)),
            )
            .with_raw_output_schema(exec_schema.clone())
        };
        let mut tools = Vec::new();
        for name in self.offered_tools() {
            tools.push(match name {
                TOOL_TS => execute(
                    ExecuteTool::Typescript,
                    "Run TypeScript (deno, default) or JavaScript (runtime: \"node\", ES module) in an isolated sandbox: \
                     no network and no host files unless granted in `permissions`, fresh /workspace and /tmp per run. \
                     Top-level await works. Print results with console.log.",
                ),
                TOOL_PY => execute(
                    ExecuteTool::Python,
                    "Run Python 3 (CPython) in an isolated sandbox: no network and no host files unless granted in \
                     `permissions`, fresh /workspace and /tmp per run. Top-level await works. Print results with print().",
                ),
                _ => health_tool(),
            });
        }
        tools
    }

    /// Why a known execute tool is not offered (no launcher, no runtime), as its result.
    fn not_offered(&self, tool: ExecuteTool) -> CallToolResponse {
        let s = &self.state;
        let why = s.sandbox_problem.clone().unwrap_or_else(|| {
            let rts = &s.runtimes;
            match tool {
                ExecuteTool::Python => rts.python.problem.clone().unwrap_or_default(),
                ExecuteTool::Typescript => format!(
                    "deno: {}; node: {}",
                    rts.deno.problem.clone().unwrap_or_default(),
                    rts.node.problem.clone().unwrap_or_default()
                ),
            }
        });
        output::to_result(&ExecOutcome::rejected(
            ErrorType::Execution,
            format!("tool {} is not offered on this server: {why}", tool.name()),
        ))
        .into()
    }
}

fn offered_tools(s: &ServerState) -> Vec<&'static str> {
    let mut v = Vec::new();
    if s.sandbox_problem.is_none() {
        if s.runtimes.deno.command.is_some() || s.runtimes.node.command.is_some() {
            v.push(TOOL_TS);
        }
        if s.runtimes.python.command.is_some() {
            v.push(TOOL_PY);
        }
    }
    v.push(TOOL_HEALTH);
    v
}

fn health_tool() -> Tool {
    let mut empty = Map::new();
    empty.insert("type".into(), json!("object"));
    empty.insert("properties".into(), json!({}));
    Tool::new(
        TOOL_HEALTH,
        "Server health: sandbox pool, audit log, available runtimes and what the sandbox enforces on this machine.",
        Arc::new(empty),
    )
    .with_raw_output_schema(Arc::new(output::health_output_schema()))
    .with_annotations(ToolAnnotations::new().read_only(true))
}

impl ServerHandler for ExecutorServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(
                crate::SERVER_NAME,
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions(
                "Runs TypeScript/JavaScript (executeTypescript) and Python (executePython) in a Linux sandbox \
                 (namespaces, Landlock, seccomp). Each run has a fresh /workspace and /tmp, no network and no host \
                 files unless granted via `permissions` within the server's configured roots. `health` reports the \
                 pool, runtimes and the sandbox's enforcement on this machine.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.tools()))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.tools().into_iter().find(|t| t.name == name)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let offered = self.offered_tools();
        let name = request.name.as_ref();
        let args = request.arguments.as_ref();
        if name == TOOL_HEALTH {
            return Ok(health::health(&self.state, &offered).await.into());
        }
        let Some(tool) = ExecuteTool::from_name(name) else {
            return Err(ErrorData::invalid_params(
                format!(
                    "tool not found: {name:?}; this server offers {}",
                    offered.join(", ")
                ),
                None,
            ));
        };
        if !offered.contains(&name) {
            // Known but not offered: say why instead of a bare "not found".
            return Ok(self.not_offered(tool));
        }
        Ok(execute::execute(&self.state, tool, args, &context)
            .await
            .into())
    }
}
