//! The wildcard matcher against a reference matcher (properties: `strait_policy::fuzzing`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| strait_policy::fuzzing::glob_case(data));
