#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    code_executor_fuzz::checks::mcp_args(data);
});
