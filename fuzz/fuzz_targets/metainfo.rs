#![no_main]

//! v1, v2 and hybrid torrents: parsing never panics, and whatever parses keeps its layout
//! invariants and survives a write/read round trip.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(t) = metainfo::Torrent::from_bytes(data) else {
        let _ = metainfo::Info::from_bytes(data);
        return;
    };
    let info = &t.info;
    let mut end = 0;
    for f in &info.files {
        assert_eq!(f.offset, end);
        end += f.length;
    }
    assert_eq!(end, info.total_length);
    if info.version.has_v2() {
        let piece_length = u64::from(info.piece_length);
        for f in info.files.iter().filter(|f| !f.pad && f.length > 0) {
            assert_eq!(f.offset % piece_length, 0);
            assert!(f.pieces_root.is_some());
        }
        // Checking a piece against bogus data is a clean `false` (or unknown), never a panic.
        let zeros = vec![0u8; info.piece_length as usize];
        for p in 0..info.num_pieces().min(64) {
            let _ = t.verify_v2_piece(p, &zeros);
            let _ = info.v2_piece(p);
        }
    }
    assert_eq!(metainfo::Torrent::from_bytes(&t.to_bytes()).as_ref(), Ok(&t));
});
