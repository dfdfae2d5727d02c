//! The checks behind the fuzz targets. They live in `checks.rs` so that
//! `tests/fuzz_regressions.rs` in the main crate can include the very same file and replay
//! seeds and crash inputs in a plain `cargo test`.

#[path = "checks.rs"]
pub mod checks;
