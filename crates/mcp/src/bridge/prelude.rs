//! The guest side of the bridge: the functions (`callMCPTool`, `discoverMCPTools`, ...)
//! defined in front of the user's code, from `prelude/guest.js` and `prelude/guest.py`.

use std::path::Path;

use serde_json::Value;

use crate::runtime::GuestRuntime;

/// The guest prelude of deno and node (one prelude: both have `node:net`).
const JS_PRELUDE: &str = include_str!("prelude/guest.js");
/// The guest prelude of python.
const PY_PRELUDE: &str = include_str!("prelude/guest.py");
/// Markers the python runner looks for (see `runtime::PYTHON_RUNNER`).
const PY_PRELUDE_START: &str = "#code-executor-prelude\n";
const PY_PRELUDE_END: &str = "\n#code-executor-prelude-end\n";

/// The guest program with the bridge functions defined before the user's code.
///
/// JavaScript: the prelude is joined into one line in front of the user's first line, so
/// every line number in a stack trace stays the user's. Python: the runner compiles the
/// prelude on its own. Socket path and token are JSON string literals, valid in both.
pub fn with_prelude(runtime: GuestRuntime, code: &str, socket: &Path, token: &str) -> String {
    let fill = |text: &str| {
        text.replace(
            "__CE_SOCKET__",
            &Value::String(socket.display().to_string()).to_string(),
        )
        .replace(
            "__CE_TOKEN__",
            &Value::String(token.to_string()).to_string(),
        )
    };
    match runtime {
        GuestRuntime::Deno | GuestRuntime::Node => {
            let one_line: Vec<&str> = JS_PRELUDE
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect();
            format!("{} {code}", fill(&one_line.join(" ")))
        }
        GuestRuntime::Python => format!(
            "{PY_PRELUDE_START}{}{PY_PRELUDE_END}{code}",
            fill(PY_PRELUDE)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preludes_keep_line_numbers() {
        let js = with_prelude(GuestRuntime::Node, "a\nb", Path::new("/s"), "tok");
        assert_eq!(js.lines().count(), 2, "{js}");
        assert!(js.contains("\"/s\"") && js.contains("\"tok\"") && js.ends_with(" a\nb"));
        assert!(!js.contains("__CE_"));
        let py = with_prelude(GuestRuntime::Python, "x = 1", Path::new("/s"), "tok");
        assert!(
            py.starts_with(PY_PRELUDE_START) && py.ends_with(&format!("{PY_PRELUDE_END}x = 1"))
        );
    }
}
