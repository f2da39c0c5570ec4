//! The policy parser and evaluator on arbitrary input (properties: `strait_policy::fuzzing`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| strait_policy::fuzzing::parse_case(data));
