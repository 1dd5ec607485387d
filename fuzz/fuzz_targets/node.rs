#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| wasp::fuzzing::node_decode(data));
