//! Dangerous-pattern detection: a hint for the reader of a result, NOT a security boundary.
//!
//! Any such list is trivially bypassed (`globalThis["ev"+"al"]`) and, used as a gate, blocks
//! legitimate code, which is what went wrong in code-executor-mcp 1.0.5. The sandbox is the
//! boundary; these matches are reported as warnings, and only block a run when the
//! configuration sets `security.blockDangerousPatterns`.

/// Language family of the code being checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    JavaScript,
    Python,
}

const JS_PATTERNS: &[(&str, &str)] = &[
    ("eval(", "eval() runs a string as code"),
    ("new Function(", "new Function() runs a string as code"),
    ("child_process", "child_process starts programs"),
    ("Deno.Command", "Deno.Command starts programs"),
    ("Deno.run(", "Deno.run starts programs"),
    ("process.binding(", "process.binding reaches node internals"),
];

const PY_PATTERNS: &[(&str, &str)] = &[
    ("eval(", "eval() runs a string as code"),
    ("exec(", "exec() runs a string as code"),
    ("__import__(", "__import__ loads modules dynamically"),
    ("subprocess", "subprocess starts programs"),
    ("os.system(", "os.system starts programs"),
    ("os.popen(", "os.popen starts programs"),
    ("pickle.loads(", "pickle.loads can run arbitrary code"),
    ("ctypes", "ctypes calls native code"),
];

/// Warnings for `code`, one per pattern found, in a stable order.
pub fn scan(code: &str, lang: Language) -> Vec<String> {
    let list = match lang {
        Language::JavaScript => JS_PATTERNS,
        Language::Python => PY_PATTERNS,
    };
    list.iter()
        .filter(|(needle, _)| contains_call(code, needle))
        .map(|(needle, why)| format!("dangerous pattern `{needle}`: {why}"))
        .collect()
}

/// Substring match that does not fire inside a longer identifier (`myeval(` is not `eval(`).
fn contains_call(code: &str, needle: &str) -> bool {
    code.match_indices(needle).any(|(i, _)| {
        code[..i]
            .chars()
            .next_back()
            .is_none_or(|c| !(c.is_alphanumeric() || c == '_'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_patterns_without_false_prefix_matches() {
        assert_eq!(scan("print(1)", Language::Python), Vec::<String>::new());
        let w = scan("import subprocess\nexec('1')", Language::Python);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(scan("myeval(1); compile(x)", Language::JavaScript).is_empty());
        assert_eq!(scan("eval('1')", Language::JavaScript).len(), 1);
    }
}
