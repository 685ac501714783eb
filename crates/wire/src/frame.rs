//! A bounded, reusable receive buffer that splits a byte stream into frames.
//!
//! # Invariants
//! - `start <= end <= buf.len()`; `buf[start..end]` holds received bytes not yet returned as frames.
//! - `buf.len()` grows only in [`FrameDecoder::spare`], and never past `max_frame_len + 4`. If the
//!   limit is lowered, the next `spare` shrinks the buffer back once the buffered bytes fit.
//! - Bytes move only when the writable tail is too short and there is room at the front: at most
//!   one partial frame is copied per compaction.

use crate::{Error, Message};

/// Free space [`FrameDecoder::spare`] aims to offer: one whole 16 KiB `piece` message
/// (4-byte length, id, index, begin, data).
const MIN_READ: usize = 16 * 1024 + 13;

/// Splits received bytes into [`Message`]s without copying them.
///
/// ```
/// # use wire::{FrameDecoder, Message};
/// let mut dec = FrameDecoder::new(1024);
/// for &b in &[0u8, 0, 0, 5, 4, 0, 0, 0, 7] {
///     assert_eq!(dec.next().unwrap(), None);
///     dec.spare()[0] = b; // a real driver reads from its socket here
///     dec.advance(1);
/// }
/// assert_eq!(dec.next().unwrap(), Some(Message::Have(7)));
/// ```
#[derive(Debug)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    max_frame_len: usize,
}

impl FrameDecoder {
    /// A decoder that accepts frames of at most `max_frame_len` bytes (after the length prefix).
    ///
    /// Nothing is allocated until the first [`spare`](Self::spare); the buffer then grows on demand
    /// up to `max_frame_len + 4` bytes and never beyond.
    pub fn new(max_frame_len: usize) -> Self {
        Self {
            buf: Vec::new(),
            start: 0,
            end: 0,
            max_frame_len,
        }
    }

    /// Largest buffer this decoder may hold: one maximal frame with its length prefix.
    fn limit(&self) -> usize {
        self.max_frame_len.saturating_add(4)
    }

    /// The writable tail of the buffer; read socket bytes into it, then call
    /// [`advance`](Self::advance).
    ///
    /// Offers at least 16 KiB + 13 bytes (one full block message) when the frame limit allows,
    /// compacting or growing the buffer only when the current tail is shorter than that. The slice
    /// is never empty provided [`next`](Self::next) has been called until it returned `Ok(None)`:
    /// then at most a partial frame is buffered, and a partial frame always leaves room.
    pub fn spare(&mut self) -> &mut [u8] {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        let buffered = self.end - self.start;
        if self.buf.len() > self.limit() && buffered <= self.limit() {
            // The limit was lowered; give the memory back.
            self.compact();
            self.buf.truncate(self.limit());
            self.buf.shrink_to_fit();
        }
        let wanted = MIN_READ.min(self.limit().saturating_sub(buffered));
        if self.buf.len() - self.end < wanted {
            self.compact();
            if self.buf.len() - self.end < wanted {
                let grown = self
                    .buf
                    .len()
                    .saturating_mul(2)
                    .max(self.end + wanted)
                    .min(self.limit());
                if grown > self.buf.len() {
                    self.buf.resize(grown, 0);
                }
            }
        }
        &mut self.buf[self.end..]
    }

    /// Moves the buffered bytes (at most one partial frame) to the front.
    fn compact(&mut self) {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
    }

    /// Marks `n` bytes of the last [`spare`](Self::spare) slice as received. `n` is clamped to that
    /// slice's length.
    pub fn advance(&mut self, n: usize) {
        self.end = self.end.saturating_add(n).min(self.buf.len());
    }

    /// The next complete message, or `Ok(None)` when more bytes are needed.
    ///
    /// A frame whose length prefix exceeds the limit is an error as soon as the 4 prefix bytes
    /// arrive, before the buffer grows for its body; the error repeats on every later call, so the
    /// connection should be closed. A frame with a malformed payload is consumed and its error
    /// returned; decoding can continue with the next frame.
    #[allow(clippy::should_implement_trait)] // messages borrow the buffer, so this cannot be an Iterator
    pub fn next(&mut self) -> Result<Option<Message<'_>>, Error> {
        let avail = &self.buf[self.start..self.end];
        let Some(prefix) = avail.get(..4) else {
            return Ok(None);
        };
        let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
        if len > self.max_frame_len {
            return Err(Error::FrameTooLarge(len, self.max_frame_len));
        }
        if avail.len() - 4 < len {
            return Ok(None);
        }
        let body = self.start + 4;
        self.start = body + len;
        if self.start == self.end {
            // Only the indices reset; the returned message still borrows the bytes in place.
            self.start = 0;
            self.end = 0;
        }
        Message::decode(&self.buf[body..body + len]).map(Some)
    }

    /// Bytes received but not yet returned as messages.
    pub fn buffered(&self) -> usize {
        self.end - self.start
    }

    /// Changes the frame limit. The engine raises it once the torrent's bitfield size is known.
    pub fn set_max_frame_len(&mut self, n: usize) {
        self.max_frame_len = n;
    }

    /// The largest frame accepted.
    pub fn max_frame_len(&self) -> usize {
        self.max_frame_len
    }

    /// Bytes currently allocated for the buffer.
    pub fn capacity(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BlockRef;

    /// Owned form of a decoded message or error, so results from separate runs can be compared.
    fn drain(dec: &mut FrameDecoder, out: &mut Vec<Result<String, Error>>) {
        loop {
            match dec.next() {
                Ok(Some(m)) => out.push(Ok(format!("{m:?}"))),
                Ok(None) => return,
                Err(e @ Error::FrameTooLarge(..)) => {
                    out.push(Err(e));
                    return;
                }
                Err(e) => out.push(Err(e)),
            }
        }
    }

    /// Feeds `stream` in chunks of the given sizes (cycled), draining after each.
    fn feed(stream: &[u8], chunks: &[usize], max: usize) -> (Vec<Result<String, Error>>, usize) {
        let mut dec = FrameDecoder::new(max);
        let mut out = Vec::new();
        let mut pos = 0;
        let mut i = 0;
        let mut peak = 0;
        while pos < stream.len() {
            let spare = dec.spare();
            assert!(!spare.is_empty());
            let n = chunks[i % chunks.len()]
                .min(spare.len())
                .min(stream.len() - pos);
            spare[..n].copy_from_slice(&stream[pos..pos + n]);
            dec.advance(n);
            pos += n;
            i += 1;
            peak = peak.max(dec.capacity());
            drain(&mut dec, &mut out);
            if matches!(out.last(), Some(Err(Error::FrameTooLarge(..)))) {
                break;
            }
        }
        assert!(peak <= max + 4, "buffer grew to {peak} with limit {max}");
        (out, dec.buffered())
    }

    fn sample_stream() -> Vec<u8> {
        let block = vec![0x5a; BLOCK_LEN];
        let mut s = Vec::new();
        let msgs = [
            Message::Bitfield(&[0xff, 0x80]),
            Message::KeepAlive,
            Message::Unchoke,
            Message::Request(BlockRef {
                index: 0,
                begin: 0,
                length: 16384,
            }),
            Message::Piece {
                index: 0,
                begin: 0,
                data: &block,
            },
            Message::Have(3),
            Message::Extended {
                id: 1,
                payload: b"d1:ai1ee",
            },
            Message::Piece {
                index: 1,
                begin: 16384,
                data: &block[..100],
            },
            Message::Unknown {
                id: 99,
                payload: &[1, 2, 3],
            },
        ];
        for m in &msgs {
            m.encode(&mut s);
        }
        // A malformed `have` (2-byte payload): reported, then decoding continues.
        s.extend_from_slice(&[0, 0, 0, 3, 4, 0, 0]);
        Message::HaveAll.encode(&mut s);
        s
    }

    const BLOCK_LEN: usize = 16384;

    #[test]
    fn byte_at_a_time_and_big_chunks_agree() {
        let stream = sample_stream();
        let max = 16384 + 9;
        let (one, rest1) = feed(&stream, &[1], max);
        let (big, rest2) = feed(&stream, &[1 << 20], max);
        let (mixed, rest3) = feed(&stream, &[3, 7000, 1, 16397, 5], max);
        assert_eq!(one.len(), 11);
        assert_eq!(one, big);
        assert_eq!(one, mixed);
        assert_eq!((rest1, rest2, rest3), (0, 0, 0));
        assert_eq!(
            one[0],
            Ok(format!("{:?}", Message::Bitfield(&[0xff, 0x80])))
        );
        assert_eq!(
            one[9],
            Err(Error::BadPayloadLength {
                id: 4,
                len: 2,
                expected: 4
            })
        );
        assert_eq!(one[10], Ok("HaveAll".to_string()));
    }

    #[test]
    fn oversized_frame_is_rejected_from_its_prefix() {
        let mut dec = FrameDecoder::new(100);
        let spare = dec.spare();
        spare[..5].copy_from_slice(&[0, 0, 0, 101, 7]);
        dec.advance(5);
        assert_eq!(dec.next(), Err(Error::FrameTooLarge(101, 100)));
        assert_eq!(dec.next(), Err(Error::FrameTooLarge(101, 100)));
        assert!(dec.capacity() <= 104);
        assert_eq!(
            Error::FrameTooLarge(101, 100).to_string(),
            "peer sent a frame of 101 bytes, above the 100-byte limit; close the connection"
        );

        // A 4 GiB claim is refused without allocating anything near it.
        let mut dec = FrameDecoder::new(1 << 20);
        dec.spare()[..4].copy_from_slice(&[0xff; 4]);
        dec.advance(4);
        assert_eq!(dec.next(), Err(Error::FrameTooLarge(0xffff_ffff, 1 << 20)));
        assert!(dec.capacity() <= (1 << 20) + 4);
    }

    #[test]
    fn buffer_never_exceeds_limit_even_for_maximal_frames() {
        for max in [0usize, 1, 12, 13, 100, 16397, 40000] {
            let mut stream = Vec::new();
            for _ in 0..3 {
                stream.extend_from_slice(&(max as u32).to_be_bytes());
                if max > 0 {
                    stream.push(99);
                    stream.extend(std::iter::repeat_n(0xab, max - 1));
                }
            }
            for chunks in [&[1usize][..], &[1 << 20], &[7, 4093]] {
                let (out, rest) = feed(&stream, chunks, max);
                assert_eq!(out.len(), 3, "max {max}");
                assert!(out.iter().all(Result::is_ok));
                assert_eq!(rest, 0);
            }
        }
    }

    #[test]
    fn spare_offers_a_full_block_when_the_limit_allows() {
        let mut dec = FrameDecoder::new(1 << 20);
        assert!(dec.spare().len() >= MIN_READ);
        let mut small = FrameDecoder::new(50);
        assert_eq!(small.spare().len(), 54);
    }

    #[test]
    fn compaction_keeps_partial_frame_intact() {
        let mut dec = FrameDecoder::new(1 << 20);
        let mut stream = Vec::new();
        Message::Have(1).encode(&mut stream);
        Message::Piece {
            index: 2,
            begin: 0,
            data: &[9; 16384],
        }
        .encode(&mut stream);
        // Fill the first spare completely: one `have` plus most of the piece.
        let first = dec.spare().len();
        let n = first.min(stream.len() - 1);
        dec.spare()[..n].copy_from_slice(&stream[..n]);
        dec.advance(n);
        assert_eq!(dec.next().unwrap(), Some(Message::Have(1)));
        assert_eq!(dec.next().unwrap(), None);
        let rest = &stream[n..];
        dec.spare()[..rest.len()].copy_from_slice(rest);
        dec.advance(rest.len());
        match dec.next().unwrap() {
            Some(Message::Piece {
                index: 2,
                begin: 0,
                data,
            }) => assert_eq!(data, &[9; 16384][..]),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(dec.buffered(), 0);
    }

    #[test]
    fn raising_and_lowering_the_limit() {
        let mut dec = FrameDecoder::new(10);
        let mut big = Vec::new();
        Message::Bitfield(&[0xff; 50]).encode(&mut big);
        dec.spare()[..5].copy_from_slice(&big[..5]);
        dec.advance(5);
        assert_eq!(dec.next(), Err(Error::FrameTooLarge(51, 10)));
        dec.set_max_frame_len(51);
        assert_eq!(dec.max_frame_len(), 51);
        assert_eq!(dec.next(), Ok(None));
        let rest = &big[5..];
        dec.spare()[..rest.len()].copy_from_slice(rest);
        dec.advance(rest.len());
        assert_eq!(dec.next(), Ok(Some(Message::Bitfield(&[0xff; 50]))));

        dec.set_max_frame_len(4);
        assert!(dec.spare().len() <= 8);
        assert!(dec.capacity() <= 8);
    }

    #[test]
    fn no_memmove_while_the_tail_has_room() {
        let mut dec = FrameDecoder::new(1 << 20);
        // A 20 000-byte bitfield makes the buffer grow past its first 16 KiB + 13 bytes.
        let mut big = Vec::new();
        Message::Bitfield(&[0; 20000]).encode(&mut big);
        let mut fed = 0;
        while fed < big.len() {
            let spare = dec.spare();
            let n = spare.len().min(big.len() - fed);
            spare[..n].copy_from_slice(&big[fed..fed + n]);
            dec.advance(n);
            fed += n;
        }
        assert!(matches!(dec.next().unwrap(), Some(Message::Bitfield(b)) if b.len() == 20000));
        let cap = dec.capacity();
        assert_eq!(cap, 2 * MIN_READ);

        let mut stream = Vec::new();
        Message::Have(1).encode(&mut stream);
        stream.extend_from_slice(&[0, 0, 0, 20, 7]); // start of a piece frame
        dec.spare()[..stream.len()].copy_from_slice(&stream);
        dec.advance(stream.len());
        assert_eq!(dec.next().unwrap(), Some(Message::Have(1)));
        assert_eq!(dec.next().unwrap(), None);
        // More than a block of tail left: the partial frame stays where it is.
        assert_eq!(dec.spare().len(), cap - stream.len());
        assert_eq!((dec.start, dec.end), (9, stream.len()));
        assert_eq!(dec.capacity(), cap);
    }

    #[test]
    fn advance_is_clamped() {
        let mut dec = FrameDecoder::new(10);
        let len = dec.spare().len();
        dec.advance(len + 100);
        assert_eq!(dec.buffered(), len);
    }
}
