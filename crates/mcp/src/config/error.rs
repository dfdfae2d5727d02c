//! Why the configuration could not be loaded.

use std::path::PathBuf;

use crate::tool_names::ToolNameError;

/// Why the configuration could not be loaded. The server refuses to start on any of these,
/// because running with a half-understood security configuration is worse than not running.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config {file}: cannot read the file: {source}; fix its permissions or unset CODE_EXECUTOR_CONFIG_PATH")]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "config {file}: invalid JSON at line {line}, column {column}: {message}; fix the syntax"
    )]
    Syntax {
        file: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("config {file}: unknown key `{key}`; known keys here are: {known}")]
    UnknownKey {
        file: PathBuf,
        key: String,
        known: String,
    },
    #[error("config {file}: key `{key}` must be {expected}, found {found}")]
    WrongType {
        file: PathBuf,
        key: String,
        expected: &'static str,
        found: String,
    },
    #[error("config {file}: key `{key}` refers to environment variable {var}, which is not set; set it or change the value")]
    MissingEnv {
        file: PathBuf,
        key: String,
        var: String,
    },
    #[error("environment variable {var}={value:?} is invalid: {reason}")]
    BadEnv {
        var: &'static str,
        value: String,
        reason: String,
    },
    #[error("config {origin}: `{key}` is invalid: {reason}")]
    BadValue {
        origin: String,
        key: String,
        reason: String,
    },
    #[error("config {origin}: allowed root {path} (allowRead, allowWrite or ALLOWED_PROJECTS) cannot be resolved: {source}; create it or remove it from the configuration")]
    BadRoot {
        origin: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {origin}: `allowedTools` entry is invalid: {source}")]
    BadToolName {
        origin: String,
        source: ToolNameError,
    },
}
