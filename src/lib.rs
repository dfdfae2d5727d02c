//! code-executor: a Linux-native process sandbox for untrusted, AI-written code.
pub mod mcp;
