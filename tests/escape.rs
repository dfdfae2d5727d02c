//! Escape and abuse attempts against the real sandbox (issue 6). Each attempt is a real program
//! (tests/escape/probes/) run by python3, node or deno inside `sandbox-run`, and asserted on its
//! specific outcome. The same probe groups also run bare on the host (as root, in a private
//! mount+UTS namespace) to show each attempt works there, so no check passes vacuously.
//!
//! Run: `cargo test --test escape` (as root, like CI).
#![deny(unsafe_code)]

#[path = "escape_support/mod.rs"]
mod support;

#[path = "escape/sys.rs"]
mod sys;

#[path = "escape/fs.rs"]
mod fs;

#[path = "escape/limits.rs"]
mod limits;

#[path = "escape/procs.rs"]
mod procs;

#[path = "escape/hostres.rs"]
mod hostres;
