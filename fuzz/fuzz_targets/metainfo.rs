#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = metainfo::Torrent::from_bytes(data);
});
