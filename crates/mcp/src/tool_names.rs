//! Upstream tool names `mcp__<server>__<tool>` and allowlist patterns.
//!
//! Each part may use `[A-Za-z0-9_.-]` (users of Linear, Notion, `chrome-devtools` need capitals
//! and hyphens). A pattern may end the tool part with `*` (`mcp__server__*`, or
//! `mcp__server__get_*`): a suffix wildcard, the only wildcard there is.

/// Why a tool name or allowlist pattern was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tool name {name:?} is malformed: {reason}; expected mcp__<server>__<tool> with each part made of A-Z a-z 0-9 _ . - (a trailing * on the tool part is a wildcard)")]
pub struct ToolNameError {
    pub name: String,
    pub reason: &'static str,
}

/// One entry of an allowlist: an exact name, or a server plus a tool-name prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedToolPattern {
    pub server: String,
    /// The tool part without the trailing `*` when `wildcard` is set.
    pub tool: String,
    pub wildcard: bool,
}

fn valid_part(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

impl AllowedToolPattern {
    /// Parse `mcp__<server>__<tool>` or `mcp__<server>__<prefix>*`.
    ///
    /// The server part is split at the first `__` after the prefix, so server names cannot
    /// contain `__` but tool names can.
    pub fn parse(name: &str) -> Result<Self, ToolNameError> {
        let err = |reason| ToolNameError {
            name: name.to_string(),
            reason,
        };
        let rest = name
            .strip_prefix("mcp__")
            .ok_or_else(|| err("it does not start with mcp__"))?;
        let (server, tool) = rest
            .split_once("__")
            .ok_or_else(|| err("there is no __ between the server and the tool"))?;
        if !valid_part(server) {
            return Err(err(
                "the server part is empty or has a character outside A-Z a-z 0-9 _ . -",
            ));
        }
        let (tool, wildcard) = match tool.strip_suffix('*') {
            Some(prefix) => (prefix, true),
            None => (tool, false),
        };
        let bare_wildcard = tool.is_empty() && wildcard;
        if !bare_wildcard && !valid_part(tool) {
            return Err(err(
                "the tool part is empty or has a character outside A-Z a-z 0-9 _ . -",
            ));
        }
        Ok(AllowedToolPattern {
            server: server.to_string(),
            tool: tool.to_string(),
            wildcard,
        })
    }

    /// Whether this pattern allows the concrete tool `server`/`tool`.
    pub fn matches(&self, server: &str, tool: &str) -> bool {
        self.server == server
            && if self.wildcard {
                tool.starts_with(&self.tool)
            } else {
                self.tool == tool
            }
    }

    /// Whether every name this pattern allows is also allowed by `ceiling`.
    pub fn within(&self, ceiling: &AllowedToolPattern) -> bool {
        self.server == ceiling.server
            && match (self.wildcard, ceiling.wildcard) {
                (_, true) => self.tool.starts_with(&ceiling.tool),
                (false, false) => self.tool == ceiling.tool,
                (true, false) => false,
            }
    }
}

impl std::fmt::Display for AllowedToolPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "mcp__{}__{}{}",
            self.server,
            self.tool,
            if self.wildcard { "*" } else { "" }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_capitals_hyphens_dots_and_wildcards() {
        for ok in [
            "mcp__Linear__create_issue",
            "mcp__chrome-devtools__take.screenshot",
            "mcp__figma-context__*",
            "mcp__srv__get_*",
            "mcp__srv__tool__with__underscores",
        ] {
            assert!(AllowedToolPattern::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "fs__read",
            "mcp__server",
            "mcp____tool",
            "mcp__srv__",
            "mcp__s v__t",
            "mcp__srv__t*x",
            "mcp__srv__tööl",
        ] {
            assert!(AllowedToolPattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn wildcard_matching_and_narrowing() {
        let all = AllowedToolPattern::parse("mcp__fs__*").unwrap();
        let get = AllowedToolPattern::parse("mcp__fs__get_*").unwrap();
        let one = AllowedToolPattern::parse("mcp__fs__get_file").unwrap();
        assert!(all.matches("fs", "anything"));
        assert!(!all.matches("other", "anything"));
        assert!(get.matches("fs", "get_file") && !get.matches("fs", "put_file"));
        assert!(one.within(&get) && get.within(&all) && one.within(&one));
        assert!(!all.within(&get) && !get.within(&one));
        assert_eq!(get.to_string(), "mcp__fs__get_*");
    }
}
