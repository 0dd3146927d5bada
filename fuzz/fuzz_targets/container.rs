//! Any bytes: the container parser returns a value or an error, never panics.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = codec_core::container::Packed::from_bytes(data);
});
