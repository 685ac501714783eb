//! Bencode decoding must never panic, and whatever decodes must re-encode canonically to bytes that
//! decode to the same value.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(v) = bencode::decode(data) {
        let canonical = v.encode_to_vec();
        let again = bencode::decode(&canonical).expect("canonical encoding decodes");
        assert_eq!(again.encode_to_vec(), canonical);
    }
    let _ = bencode::decode_prefix(data);
});
