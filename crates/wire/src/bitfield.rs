//! An owned piece bit vector in BEP 3 order: piece 0 is the high bit of the first byte.

use crate::Error;

/// Which of `len` pieces a peer (or we) has.
///
/// Invariant: `bytes.len() == ceil(len / 8)` and the spare bits after the last piece are zero, so
/// [`as_bytes`](Self::as_bytes) is always a valid `bitfield` payload.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Bitfield {
    bytes: Vec<u8>,
    len: u32,
}

fn byte_len(len: u32) -> usize {
    (len as usize).div_ceil(8)
}

/// Mask of bit `i` within its byte.
fn mask(i: u32) -> u8 {
    0x80 >> (i % 8)
}

impl Bitfield {
    /// All `len` pieces clear.
    pub fn new(len: u32) -> Self {
        Self {
            bytes: vec![0; byte_len(len)],
            len,
        }
    }

    /// All `len` pieces set (a seeder's bitfield).
    pub fn full(len: u32) -> Self {
        let mut bytes = vec![0xff; byte_len(len)];
        if let Some(last) = bytes.last_mut() {
            let used = len % 8;
            if used != 0 {
                *last = 0xff << (8 - used);
            }
        }
        Self { bytes, len }
    }

    /// Parses a received `bitfield` payload for a torrent of `len` pieces.
    ///
    /// The byte length must be exactly `ceil(len / 8)` and the spare bits must be clear (BEP 3).
    pub fn from_bytes(bytes: &[u8], len: u32) -> Result<Self, Error> {
        let expected = byte_len(len);
        if bytes.len() != expected {
            return Err(Error::BitfieldLength {
                len: bytes.len(),
                expected,
            });
        }
        let used = len % 8;
        if used != 0 && bytes.last().is_some_and(|b| b & (0xff >> used) != 0) {
            return Err(Error::BitfieldSpareBits);
        }
        Ok(Self {
            bytes: bytes.to_vec(),
            len,
        })
    }

    /// Whether piece `i` is set; `false` past the end.
    pub fn get(&self, i: u32) -> bool {
        i < self.len && self.bytes[(i / 8) as usize] & mask(i) != 0
    }

    /// Sets or clears piece `i`; indices past the end are ignored so the spare bits stay clear.
    pub fn set(&mut self, i: u32, v: bool) {
        if i >= self.len {
            return;
        }
        let byte = &mut self.bytes[(i / 8) as usize];
        if v {
            *byte |= mask(i);
        } else {
            *byte &= !mask(i);
        }
    }

    /// Number of pieces set.
    pub fn count_ones(&self) -> u32 {
        self.bytes.iter().map(|b| b.count_ones()).sum()
    }

    /// Number of pieces this bitfield covers.
    pub fn len(&self) -> u32 {
        self.len
    }

    /// Whether it covers no pieces at all (not whether no piece is set).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether every piece is set.
    pub fn all(&self) -> bool {
        self.count_ones() == self.len
    }

    /// The `bitfield` message payload.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Indices of the set pieces, ascending.
    pub fn iter_ones(&self) -> impl Iterator<Item = u32> + '_ {
        self.bytes
            .iter()
            .enumerate()
            .filter(|(_, &b)| b != 0)
            .flat_map(|(n, &b)| {
                (0..8u32)
                    .filter(move |bit| b & (0x80 >> bit) != 0)
                    .map(move |bit| n as u32 * 8 + bit)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msb_first_layout() {
        let mut bf = Bitfield::new(10);
        assert_eq!(bf.as_bytes(), &[0, 0]);
        bf.set(0, true);
        bf.set(9, true);
        bf.set(10, true); // past the end: ignored
        assert_eq!(bf.as_bytes(), &[0b1000_0000, 0b0100_0000]);
        assert!(bf.get(0) && bf.get(9) && !bf.get(1) && !bf.get(10) && !bf.get(u32::MAX));
        assert_eq!(bf.count_ones(), 2);
        assert_eq!(bf.iter_ones().collect::<Vec<_>>(), vec![0, 9]);
        bf.set(0, false);
        assert_eq!(bf.as_bytes(), &[0, 0b0100_0000]);
        assert!(!bf.all());
    }

    #[test]
    fn full_clears_spare_bits() {
        assert_eq!(Bitfield::full(10).as_bytes(), &[0xff, 0b1100_0000]);
        assert_eq!(Bitfield::full(16).as_bytes(), &[0xff, 0xff]);
        assert!(Bitfield::full(10).all());
        assert_eq!(Bitfield::full(10).count_ones(), 10);
        assert_eq!(Bitfield::full(10).iter_ones().count(), 10);
        let empty = Bitfield::full(0);
        assert!(empty.is_empty() && empty.all() && empty.as_bytes().is_empty());
    }

    #[test]
    fn from_bytes_checks_length_and_spare_bits() {
        assert_eq!(
            Bitfield::from_bytes(&[0xff], 10),
            Err(Error::BitfieldLength {
                len: 1,
                expected: 2
            })
        );
        assert_eq!(
            Bitfield::from_bytes(&[0xff, 0xc0, 0], 10),
            Err(Error::BitfieldLength {
                len: 3,
                expected: 2
            })
        );
        assert_eq!(
            Bitfield::from_bytes(&[0xff, 0b1110_0000], 10),
            Err(Error::BitfieldSpareBits)
        );
        assert_eq!(
            Bitfield::from_bytes(&[0xff, 0b0000_0001], 10),
            Err(Error::BitfieldSpareBits)
        );
        let ok = Bitfield::from_bytes(&[0xff, 0b1100_0000], 10).unwrap();
        assert_eq!(ok, Bitfield::full(10));
        assert_eq!(
            Bitfield::from_bytes(&[0x01], 8)
                .unwrap()
                .iter_ones()
                .collect::<Vec<_>>(),
            [7]
        );
        assert!(Bitfield::from_bytes(&[], 0).unwrap().is_empty());
    }
}
