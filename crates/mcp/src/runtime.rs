//! Which interpreters exist on this machine, and the command line that runs guest code in each.
//!
//! Guest code always arrives on the interpreter's stdin, so no file crosses the sandbox
//! boundary: deno reads `-` as TypeScript, node reads stdin as an ES module (top-level await),
//! and CPython runs a small runner that compiles stdin with top-level `await` allowed.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::config::Config;
use super::params::{JsRuntime, Permissions};

/// An interpreter the server can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GuestRuntime {
    Deno,
    Node,
    Python,
}

impl GuestRuntime {
    pub fn name(self) -> &'static str {
        match self {
            GuestRuntime::Deno => "deno",
            GuestRuntime::Node => "node",
            GuestRuntime::Python => "python",
        }
    }

    /// The `--policy` preset of sandbox-run for this interpreter.
    pub fn policy(self) -> &'static str {
        self.name()
    }

    fn command_name(self) -> &'static str {
        match self {
            GuestRuntime::Deno => "deno",
            GuestRuntime::Node => "node",
            GuestRuntime::Python => "python3",
        }
    }
}

impl From<JsRuntime> for GuestRuntime {
    fn from(r: JsRuntime) -> Self {
        match r {
            JsRuntime::Deno => GuestRuntime::Deno,
            JsRuntime::Node => GuestRuntime::Node,
        }
    }
}

/// Result of looking for one interpreter.
#[derive(Debug, Clone)]
pub struct DetectedRuntime {
    pub runtime: GuestRuntime,
    /// The command given to sandbox-run: a configured absolute path, or the bare name that
    /// sandbox-run resolves through PATH itself (it also resolves version-manager shims).
    pub command: Option<PathBuf>,
    /// Why it is unavailable, for `health`.
    pub problem: Option<String>,
}

/// All interpreters, found once at startup.
#[derive(Debug, Clone)]
pub struct GuestRuntimes {
    pub deno: DetectedRuntime,
    pub node: DetectedRuntime,
    pub python: DetectedRuntime,
}

impl GuestRuntimes {
    pub fn detect(cfg: &Config) -> Self {
        let typescript = |configured: &Option<PathBuf>| Wanted {
            configured: configured.clone(),
            enabled: cfg.typescript_enabled,
            key: "executors.typescript",
        };
        let python = Wanted {
            configured: cfg.python_path.clone(),
            enabled: cfg.python_enabled,
            key: "executors.python",
        };
        let path = &cfg.search_path;
        GuestRuntimes {
            deno: detect_one(GuestRuntime::Deno, typescript(&cfg.deno_path), path),
            node: detect_one(GuestRuntime::Node, typescript(&cfg.node_path), path),
            python: detect_one(GuestRuntime::Python, python, path),
        }
    }

    pub fn get(&self, rt: GuestRuntime) -> &DetectedRuntime {
        match rt {
            GuestRuntime::Deno => &self.deno,
            GuestRuntime::Node => &self.node,
            GuestRuntime::Python => &self.python,
        }
    }
}

/// What the configuration says about one interpreter.
struct Wanted {
    /// Its configured path; `None`: look for it on `PATH`.
    configured: Option<PathBuf>,
    enabled: bool,
    /// The configuration key that holds `enabled`, for the message when it is off.
    key: &'static str,
}

fn detect_one(rt: GuestRuntime, wanted: Wanted, search_path: &[PathBuf]) -> DetectedRuntime {
    let found = |command: PathBuf| DetectedRuntime {
        runtime: rt,
        command: Some(command),
        problem: None,
    };
    let missing = |problem: String| DetectedRuntime {
        runtime: rt,
        command: None,
        problem: Some(problem),
    };
    if !wanted.enabled {
        return missing(format!(
            "disabled by configuration ({}.enabled = false)",
            wanted.key
        ));
    }
    match wanted.configured {
        Some(p) if is_executable(&p) => found(p),
        Some(p) => missing(format!(
            "configured path {} is not an executable file",
            p.display()
        )),
        // The bare name: sandbox-run resolves it through PATH itself (version-manager shims
        // included).
        None if search_path
            .iter()
            .any(|d| is_executable(&d.join(rt.command_name()))) =>
        {
            found(PathBuf::from(rt.command_name()))
        }
        None => missing(format!(
            "`{}` not found on PATH; install it or set its path in the configuration",
            rt.command_name()
        )),
    }
}

fn is_executable(p: &Path) -> bool {
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// CPython runner: reads the program from stdin, allows top-level `await` (as Pyodide did),
/// and hides its own frame from tracebacks.
pub const PYTHON_RUNNER: &str = r#"import sys
def _ce_main():
    src = sys.stdin.read()
    try:
        sys.stdin.close()
    except Exception:
        pass
    g = {"__name__": "__main__", "__builtins__": __builtins__}
    # The tool bridge's prelude (see bridge/prelude.rs) comes first on stdin, compiled apart so the
    # user's line numbers stay right.
    if src.startswith('#code-executor-prelude\n'):
        pre, _, src = src.partition('\n#code-executor-prelude-end\n')
        exec(compile(pre, "<mcp-prelude>", "exec"), g)
    try:
        # 0x2000 = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, 0x80 = inspect.CO_COROUTINE: literal values
        # keep `ast`, `inspect` and `asyncio` out of every start (asyncio alone costs ~30 ms).
        code = compile(src, "<code>", "exec", flags=0x2000)
        if code.co_flags & 0x80:
            import asyncio
            asyncio.run(eval(code, g))
        else:
            exec(code, g)
    except SystemExit:
        raise
    except BaseException as e:
        import traceback
        tb = e.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename != "<code>":
            tb = tb.tb_next
        traceback.print_exception(type(e), e, tb)
        sys.stdout.flush()
        sys.exit(1)
_ce_main()
"#;

/// Arguments after the interpreter command for one run.
///
/// deno keeps its own permission checks as a second layer inside the OS sandbox, mirroring
/// exactly what the sandbox grants (`/workspace`, `/tmp`, and the run's resolved paths).
pub fn interpreter_args(
    rt: GuestRuntime,
    read: &[PathBuf],
    write: &[PathBuf],
    perms: &Permissions,
) -> Vec<String> {
    match rt {
        GuestRuntime::Deno => {
            let join = |extra: &[&[PathBuf]]| {
                let mut v = vec!["/workspace".to_string(), "/tmp".to_string()];
                for list in extra {
                    v.extend(list.iter().map(|p| p.display().to_string()));
                }
                v.join(",")
            };
            let mut a = vec![
                "run".to_string(),
                "--no-prompt".into(),
                "--no-config".into(),
                "--no-lock".into(),
                "--ext=ts".into(),
                format!("--allow-read={}", join(&[read, write])),
                format!("--allow-write={}", join(&[write])),
                "--allow-env".into(),
            ];
            let net: Vec<&str> = perms
                .net
                .iter()
                .map(String::as_str)
                .filter(|n| !n.is_empty())
                .collect();
            if !net.is_empty() {
                a.push(format!("--allow-net={}", net.join(",")));
            }
            a.push("-".into());
            a
        }
        GuestRuntime::Node => vec!["--input-type=module".into(), "-".into()],
        GuestRuntime::Python => vec!["-c".into(), PYTHON_RUNNER.into()],
    }
}
