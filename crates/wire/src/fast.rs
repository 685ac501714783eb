//! BEP 6 allowed-fast set generation.

use std::net::Ipv4Addr;

use sha1::{Digest, Sha1};

/// The `k` pieces a peer at `ip` may request while choked (BEP 6 "Allowed Fast").
///
/// Both sides compute the same set: the address is masked to its /24 (so peers behind one NAT
/// share a set), prefixed to the info-hash and hashed with SHA-1; each digest yields five
/// big-endian words taken modulo `num_pieces`, skipping repeats, and is re-hashed until `k`
/// distinct indices are found. `k` is capped at `num_pieces`, so a torrent with fewer pieces than
/// `k` allows all of them and a torrent with none allows nothing.
pub fn allowed_fast_set(ip: Ipv4Addr, info_hash: &[u8; 20], num_pieces: u32, k: usize) -> Vec<u32> {
    let k = k.min(num_pieces as usize);
    let mut set = Vec::with_capacity(k);
    if k == 0 {
        return set;
    }
    let masked = u32::from(ip) & 0xffff_ff00;
    let mut x = [0u8; 24];
    x[..4].copy_from_slice(&masked.to_be_bytes());
    x[4..].copy_from_slice(info_hash);
    let mut digest: [u8; 20] = Sha1::digest(x).into();
    loop {
        for word in digest.chunks_exact(4) {
            let index = u32::from_be_bytes([word[0], word[1], word[2], word[3]]) % num_pieces;
            if !set.contains(&index) {
                set.push(index);
                if set.len() == k {
                    return set;
                }
            }
        }
        digest = Sha1::digest(digest).into();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: Ipv4Addr = Ipv4Addr::new(80, 4, 4, 200);

    /// The worked examples in the BEP 6 text.
    #[test]
    fn matches_bep6_vectors() {
        let seven = [1059, 431, 808, 1217, 287, 376, 1188];
        assert_eq!(allowed_fast_set(IP, &[0xaa; 20], 1313, 7), seven);
        let nine = [1059, 431, 808, 1217, 287, 376, 1188, 353, 508];
        assert_eq!(allowed_fast_set(IP, &[0xaa; 20], 1313, 9), nine);
    }

    #[test]
    fn same_slash_24_same_set() {
        let other = Ipv4Addr::new(80, 4, 4, 1);
        assert_eq!(
            allowed_fast_set(other, &[0xaa; 20], 1313, 7),
            allowed_fast_set(IP, &[0xaa; 20], 1313, 7)
        );
        let elsewhere = Ipv4Addr::new(80, 4, 5, 200);
        assert_ne!(
            allowed_fast_set(elsewhere, &[0xaa; 20], 1313, 7),
            allowed_fast_set(IP, &[0xaa; 20], 1313, 7)
        );
    }

    #[test]
    fn small_torrents_terminate() {
        assert!(allowed_fast_set(IP, &[0xaa; 20], 0, 10).is_empty());
        assert_eq!(allowed_fast_set(IP, &[0xaa; 20], 1, 10), vec![0]);
        let mut all = allowed_fast_set(IP, &[0xaa; 20], 5, 10);
        all.sort_unstable();
        assert_eq!(all, vec![0, 1, 2, 3, 4]);
    }
}
