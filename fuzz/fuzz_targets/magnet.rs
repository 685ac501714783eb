#![no_main]

//! Magnet links: parsing never panics, and a parsed link prints to one that parses back equal.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(m) = metainfo::Magnet::parse(s) {
        assert_eq!(metainfo::Magnet::parse(&m.to_string()).as_ref(), Ok(&m));
    }
});
