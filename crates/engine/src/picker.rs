//! Piece picker: which blocks to ask which peer for.
//!
//! Synchronous and I/O-free. It tracks piece availability across the swarm, the state of every block of
//! the pieces in flight, and who delivered each block (so a piece failing its hash can be pinned on its
//! senders). Policy, in the order [`Picker::pick`] applies it:
//!
//! 1. finish pieces already started (keeps the number of partial pieces, and so memory, low);
//! 2. start a new piece: random among the peer's pieces until [`RANDOM_FIRST_PIECES`] are complete (gets
//!    something to trade quickly), rarest-first with a random tie-break afterwards;
//! 3. endgame: once every missing block is requested, ask a second peer for blocks still in flight.
//!
//! A piece that failed its hash check goes on *parole*: it is downloaded again from one peer only, so
//! a second failure identifies that peer alone.

use std::collections::HashMap;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use wire::{Bitfield, BlockRef, BLOCK_SIZE};

use crate::storage::PieceBuf;

/// Connection-unique peer identifier inside one torrent. Zero is never used.
pub type PeerKey = u64;

/// Pieces picked at random before switching to rarest-first.
pub const RANDOM_FIRST_PIECES: u32 = 4;

/// At most this many peers are asked for the same block in endgame.
const MAX_REQUESTERS: usize = 2;

#[derive(Clone, Copy, Default)]
struct Block {
    received: bool,
    /// Peers with an outstanding request for this block; 0 marks an empty slot.
    requesters: [PeerKey; MAX_REQUESTERS],
    /// Who delivered the block (valid when `received`).
    from: PeerKey,
}

impl Block {
    fn requested_by(&self, peer: PeerKey) -> bool {
        self.requesters.contains(&peer)
    }
    fn requester_count(&self) -> usize {
        self.requesters.iter().filter(|&&p| p != 0).count()
    }
}

struct Partial {
    blocks: Vec<Block>,
    received: u32,
    buf: Option<PieceBuf>,
    /// On parole: only this peer may download the piece (0 = not yet claimed).
    parole_owner: Option<PeerKey>,
}

/// What became of a delivered block.
#[derive(Debug, PartialEq, Eq)]
pub enum BlockOutcome {
    /// Stored. `complete` when it was the piece's last block; `cancel` lists other peers that had
    /// requested the same block (endgame) and should be sent a cancel.
    Stored {
        /// The piece now has all its blocks and waits for [`Picker::take_complete`].
        complete: bool,
        /// Other peers to cancel this block with.
        cancel: Vec<PeerKey>,
    },
    /// Not requested, already received, or not a valid block: dropped.
    Unwanted,
}

/// Picker state for one torrent.
pub struct Picker {
    piece_length: u32,
    total_length: u64,
    num_pieces: u32,
    have: Bitfield,
    /// Pieces being hashed after their last block arrived; not pickable.
    verifying: Bitfield,
    availability: Vec<u32>,
    partial: HashMap<u32, Partial>,
    parole: HashMap<u32, ()>,
    rng: SmallRng,
    /// Pieces taken by [`Picker::take_complete`] and not yet verified or failed.
    verifying_count: usize,
    /// Piece buffers returned by [`Picker::recycle`]. Reusing them keeps the allocator from
    /// scattering megabyte buffers over per-thread arenas (the blocking threads that hash them).
    spare_buffers: Vec<PieceBuf>,
    /// Pieces that end in padding (BEP 47 pad files, v2 file alignment): bytes of real data. The
    /// blocks wholly past it are zeros by definition, never requested and count as received.
    real_len: HashMap<u32, u32>,
}

/// Piece buffers kept for reuse.
const SPARE_BUFFERS: usize = 32;

impl Picker {
    /// A picker for a torrent of `num_pieces` pieces of `piece_length` bytes (the last may be shorter).
    pub fn new(piece_length: u32, total_length: u64, have: Bitfield, seed: u64) -> Self {
        let num_pieces = have.len();
        Self {
            piece_length,
            total_length,
            num_pieces,
            verifying: Bitfield::new(num_pieces),
            have,
            availability: vec![0; num_pieces as usize],
            partial: HashMap::new(),
            parole: HashMap::new(),
            rng: SmallRng::seed_from_u64(seed),
            verifying_count: 0,
            spare_buffers: Vec::new(),
            real_len: HashMap::new(),
        }
    }

    /// Declares that piece `index` holds only `real_len` bytes of data followed by zero padding,
    /// which is filled in locally instead of being downloaded.
    pub fn set_real_len(&mut self, index: u32, real_len: u32) {
        if index < self.num_pieces && real_len < self.piece_size(index) {
            self.real_len.insert(index, real_len);
        }
    }

    /// Index of the first block of `index` that is pure padding (`blocks_in` if none).
    fn first_pad_block(&self, index: u32) -> u32 {
        self.real_len
            .get(&index)
            .map_or(self.blocks_in(index), |&r| r.div_ceil(BLOCK_SIZE).max(1))
    }

    /// Pieces we have (verified).
    pub fn have(&self) -> &Bitfield {
        &self.have
    }

    /// Whether every piece is verified.
    pub fn is_complete(&self) -> bool {
        self.have.all()
    }

    /// Size in bytes of piece `index`.
    pub fn piece_size(&self, index: u32) -> u32 {
        let start = u64::from(index) * u64::from(self.piece_length);
        (self.total_length - start).min(u64::from(self.piece_length)) as u32
    }

    fn blocks_in(&self, index: u32) -> u32 {
        self.piece_size(index).div_ceil(BLOCK_SIZE)
    }

    fn block_ref(&self, index: u32, block: u32) -> BlockRef {
        let begin = block * BLOCK_SIZE;
        BlockRef {
            index,
            begin,
            length: (self.piece_size(index) - begin).min(BLOCK_SIZE),
        }
    }

    /// Number of pieces in flight (partially downloaded).
    pub fn partial_count(&self) -> usize {
        self.partial.len()
    }

    /// A peer announced it has every piece in `bits`.
    pub fn add_peer_pieces(&mut self, bits: &Bitfield) {
        for i in bits.iter_ones() {
            self.availability[i as usize] += 1;
        }
    }

    /// A peer that had `bits` left.
    pub fn remove_peer_pieces(&mut self, bits: &Bitfield) {
        for i in bits.iter_ones() {
            let a = &mut self.availability[i as usize];
            *a = a.saturating_sub(1);
        }
    }

    /// A peer announced piece `index`.
    pub fn add_have(&mut self, index: u32) {
        if let Some(a) = self.availability.get_mut(index as usize) {
            *a += 1;
        }
    }

    /// Whether `peer_has` holds any piece we still need.
    pub fn is_interesting(&self, peer_has: &Bitfield) -> bool {
        peer_has.iter_ones().any(|i| !self.have.get(i))
    }

    fn wanted(&self, i: u32) -> bool {
        !self.have.get(i) && !self.verifying.get(i)
    }

    /// Picks up to `max` blocks for `peer`, which has `peer_has`, appending them to `out`.
    ///
    /// `allowed` restricts picks to a set of pieces (BEP 6 allowed-fast while choked).
    pub fn pick(
        &mut self,
        peer: PeerKey,
        peer_has: &Bitfield,
        max: usize,
        allowed: Option<&[u32]>,
        out: &mut Vec<BlockRef>,
    ) {
        let start_len = out.len();
        let ok = |i: u32| allowed.is_none_or(|a| a.contains(&i));
        // 1. Free blocks of pieces already started.
        let mut started: Vec<u32> = self
            .partial
            .iter()
            .filter(|(i, p)| {
                peer_has.get(**i) && ok(**i) && p.parole_owner.is_none_or(|o| o == 0 || o == peer)
            })
            .map(|(i, _)| *i)
            .collect();
        started.sort_unstable();
        for index in started {
            if out.len() - start_len >= max {
                return;
            }
            self.take_free_blocks(peer, index, max - (out.len() - start_len), out);
        }
        // 2. New pieces.
        while out.len() - start_len < max {
            let Some(index) = self.pick_new_piece(peer_has, allowed) else {
                break;
            };
            let mut blocks = vec![Block::default(); self.blocks_in(index) as usize];
            let first_pad = self.first_pad_block(index) as usize;
            for b in &mut blocks[first_pad..] {
                b.received = true;
            }
            let padding = (blocks.len() - first_pad) as u32;
            let parole_owner = self.parole.contains_key(&index).then_some(peer);
            self.partial.insert(
                index,
                Partial {
                    blocks,
                    received: padding,
                    buf: None,
                    parole_owner,
                },
            );
            self.take_free_blocks(peer, index, max - (out.len() - start_len), out);
        }
        if out.len() > start_len {
            return;
        }
        // 3. Endgame: duplicate requests for blocks in flight at other peers.
        if self.in_endgame() {
            let mut candidates: Vec<(u32, u32)> = Vec::new();
            for (&index, p) in &self.partial {
                if !peer_has.get(index) || !ok(index) || p.parole_owner.is_some() {
                    continue;
                }
                for (b, blk) in p.blocks.iter().enumerate() {
                    if !blk.received
                        && !blk.requested_by(peer)
                        && blk.requester_count() < MAX_REQUESTERS
                    {
                        candidates.push((index, b as u32));
                    }
                }
            }
            candidates.sort_unstable();
            for (index, b) in candidates.into_iter().take(max) {
                let blk = &mut self
                    .partial
                    .get_mut(&index)
                    .expect("candidate is partial")
                    .blocks[b as usize];
                if let Some(slot) = blk.requesters.iter_mut().find(|p| **p == 0) {
                    *slot = peer;
                }
                out.push(self.block_ref(index, b));
            }
        }
    }

    /// Endgame: every missing piece is in flight or verifying, so no new piece can be started.
    pub fn in_endgame(&self) -> bool {
        (0..self.num_pieces).all(|i| !self.wanted(i) || self.partial.contains_key(&i))
    }

    fn take_free_blocks(&mut self, peer: PeerKey, index: u32, max: usize, out: &mut Vec<BlockRef>) {
        let n_blocks = self.blocks_in(index);
        let Some(p) = self.partial.get_mut(&index) else {
            return;
        };
        if let Some(owner) = p.parole_owner.as_mut() {
            if *owner == 0 {
                *owner = peer;
            }
        }
        let mut taken = 0;
        for b in 0..n_blocks {
            if taken >= max {
                break;
            }
            let blk = &mut p.blocks[b as usize];
            if !blk.received && blk.requester_count() == 0 {
                blk.requesters[0] = peer;
                taken += 1;
                let begin = b * BLOCK_SIZE;
                let size = (self.total_length - u64::from(index) * u64::from(self.piece_length))
                    .min(u64::from(self.piece_length)) as u32;
                out.push(BlockRef {
                    index,
                    begin,
                    length: (size - begin).min(BLOCK_SIZE),
                });
            }
        }
    }

    fn pick_new_piece(&mut self, peer_has: &Bitfield, allowed: Option<&[u32]>) -> Option<u32> {
        let n = self.num_pieces;
        if n == 0 {
            return None;
        }
        let candidate = |s: &Self, i: u32| {
            s.wanted(i)
                && !s.partial.contains_key(&i)
                && peer_has.get(i)
                && allowed.is_none_or(|a| a.contains(&i))
        };
        let offset = self.rng.gen_range(0..n);
        if self.have.count_ones() < RANDOM_FIRST_PIECES {
            return (0..n)
                .map(|k| (offset + k) % n)
                .find(|&i| candidate(self, i));
        }
        let mut best: Option<(u32, u32)> = None;
        for k in 0..n {
            let i = (offset + k) % n;
            if !candidate(self, i) {
                continue;
            }
            let a = self.availability[i as usize];
            if best.is_none_or(|(_, ba)| a < ba) {
                best = Some((i, a));
                if a <= 1 {
                    break;
                }
            }
        }
        best.map(|(i, _)| i)
    }

    /// Stores a delivered block. The data is copied into the piece's buffer.
    pub fn on_block(&mut self, peer: PeerKey, index: u32, begin: u32, data: &[u8]) -> BlockOutcome {
        if index >= self.num_pieces || !begin.is_multiple_of(BLOCK_SIZE) {
            return BlockOutcome::Unwanted;
        }
        let b = (begin / BLOCK_SIZE) as usize;
        let expect = self.block_ref(index, b as u32);
        let piece_size = self.piece_size(index) as usize;
        let pad_from = (self.first_pad_block(index) * BLOCK_SIZE) as usize;
        let Some(p) = self.partial.get_mut(&index) else {
            return BlockOutcome::Unwanted;
        };
        if data.len() != expect.length as usize || b >= p.blocks.len() {
            return BlockOutcome::Unwanted;
        }
        let blk = &mut p.blocks[b];
        if blk.received {
            return BlockOutcome::Unwanted;
        }
        // Accept unrequested blocks only from a requester: anything else is noise or an attack.
        if !blk.requested_by(peer) {
            return BlockOutcome::Unwanted;
        }
        let cancel = blk
            .requesters
            .iter()
            .copied()
            .filter(|&q| q != 0 && q != peer)
            .collect();
        blk.received = true;
        blk.from = peer;
        blk.requesters = [0; MAX_REQUESTERS];
        let buf = p.buf.get_or_insert_with(|| {
            let mut b = self.spare_buffers.pop().unwrap_or_default();
            b.set_len(piece_size);
            if let Some(pad) = b.get_mut(pad_from..) {
                pad.fill(0);
            }
            b
        });
        buf[begin as usize..begin as usize + data.len()].copy_from_slice(data);
        p.received += 1;
        let complete = p.received as usize == p.blocks.len();
        BlockOutcome::Stored { complete, cancel }
    }

    /// Withdraws `peer`'s outstanding request for `block` (choke, reject, disconnect, timeout).
    pub fn release(&mut self, peer: PeerKey, block: BlockRef) {
        let Some(p) = self.partial.get_mut(&block.index) else {
            return;
        };
        let Some(blk) = p.blocks.get_mut((block.begin / BLOCK_SIZE) as usize) else {
            return;
        };
        for slot in &mut blk.requesters {
            if *slot == peer {
                *slot = 0;
            }
        }
        // A parole piece whose owner gave up may be claimed by someone else.
        if p.parole_owner == Some(peer)
            && p.blocks
                .iter()
                .all(|b| b.received || b.requester_count() == 0)
        {
            p.parole_owner = Some(0);
        }
        if p.received == 0 && p.blocks.iter().all(|b| b.requester_count() == 0) {
            self.partial.remove(&block.index);
        }
    }

    /// Takes a complete piece's data and, per block, the peer that delivered it; marks it as verifying.
    pub fn take_complete(&mut self, index: u32) -> Option<(PieceBuf, Vec<PeerKey>)> {
        let p = self.partial.get(&index)?;
        if p.received as usize != p.blocks.len() {
            return None;
        }
        let p = self.partial.remove(&index)?;
        let from: Vec<PeerKey> = p.blocks.iter().map(|b| b.from).collect();
        self.verifying.set(index, true);
        self.verifying_count += 1;
        Some((p.buf?, from))
    }

    /// Pieces waiting for (or in) their hash check.
    pub fn verifying_count(&self) -> usize {
        self.verifying_count
    }

    /// Returns a piece buffer for reuse.
    pub fn recycle(&mut self, buf: PieceBuf) {
        if self.spare_buffers.len() < SPARE_BUFFERS {
            self.spare_buffers.push(buf);
        }
    }

    /// The hash check of `index` passed.
    pub fn piece_verified(&mut self, index: u32) {
        self.verifying.set(index, false);
        self.verifying_count = self.verifying_count.saturating_sub(1);
        self.have.set(index, true);
        self.parole.remove(&index);
    }

    /// The hash check of `index` failed: download it again, from a single peer.
    pub fn piece_failed(&mut self, index: u32) {
        self.verifying.set(index, false);
        self.verifying_count = self.verifying_count.saturating_sub(1);
        self.parole.insert(index, ());
    }

    /// Marks a piece as had without download (found on disk).
    pub fn mark_have(&mut self, index: u32) {
        self.have.set(index, true);
    }

    /// Bytes still missing.
    pub fn bytes_left(&self) -> u64 {
        let have: u64 = self
            .have
            .iter_ones()
            .map(|i| u64::from(self.piece_size(i)))
            .sum();
        self.total_length - have
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn picker(pieces: u32) -> Picker {
        Picker::new(
            2 * BLOCK_SIZE,
            u64::from(pieces) * u64::from(2 * BLOCK_SIZE) - 100,
            Bitfield::new(pieces),
            7,
        )
    }

    #[test]
    fn picks_only_what_the_peer_has_and_we_lack() {
        let mut p = picker(8);
        let mut has = Bitfield::new(8);
        has.set(3, true);
        p.add_peer_pieces(&has);
        let mut out = Vec::new();
        p.pick(1, &has, 10, None, &mut out);
        assert_eq!(
            out,
            vec![
                BlockRef {
                    index: 3,
                    begin: 0,
                    length: BLOCK_SIZE
                },
                BlockRef {
                    index: 3,
                    begin: BLOCK_SIZE,
                    length: BLOCK_SIZE
                }
            ]
        );
        // Nothing left to pick and not yet endgame for others.
        let mut more = Vec::new();
        p.pick(1, &has, 10, None, &mut more);
        assert!(more.is_empty());
    }

    #[test]
    fn last_block_is_short() {
        let mut p = picker(2);
        let mut has = Bitfield::new(2);
        has.set(1, true);
        let mut out = Vec::new();
        p.pick(1, &has, 10, None, &mut out);
        assert_eq!(
            out[1],
            BlockRef {
                index: 1,
                begin: BLOCK_SIZE,
                length: BLOCK_SIZE - 100
            }
        );
    }

    #[test]
    fn rarest_first_after_random_start() {
        let mut p = picker(10);
        for i in 0..RANDOM_FIRST_PIECES {
            p.mark_have(i);
        }
        let full = Bitfield::full(10);
        for _ in 0..3 {
            p.add_peer_pieces(&full);
        }
        // Piece 7 is the rarest: only one peer has it... make it rarer by removing availability elsewhere.
        let mut rare = Bitfield::full(10);
        rare.set(7, false);
        p.add_peer_pieces(&rare);
        let mut out = Vec::new();
        p.pick(1, &full, 1, None, &mut out);
        assert_eq!(out[0].index, 7);
    }

    #[test]
    fn endgame_duplicates_and_cancels() {
        let mut p = picker(1);
        let has = Bitfield::full(1);
        let mut a = Vec::new();
        p.pick(1, &has, 10, None, &mut a);
        assert_eq!(a.len(), 2);
        assert!(p.in_endgame());
        let mut b = Vec::new();
        p.pick(2, &has, 10, None, &mut b);
        assert_eq!(a, b, "second peer gets the same blocks in endgame");
        let data = vec![0u8; BLOCK_SIZE as usize];
        assert_eq!(
            p.on_block(2, 0, 0, &data),
            BlockOutcome::Stored {
                complete: false,
                cancel: vec![1]
            }
        );
        // Peer 1's late copy is dropped.
        assert_eq!(p.on_block(1, 0, 0, &data), BlockOutcome::Unwanted);
        let tail = vec![0u8; (BLOCK_SIZE - 100) as usize];
        assert_eq!(
            p.on_block(1, 0, BLOCK_SIZE, &tail),
            BlockOutcome::Stored {
                complete: true,
                cancel: vec![2]
            }
        );
        let (buf, from) = p.take_complete(0).unwrap();
        assert_eq!(buf.len(), (2 * BLOCK_SIZE - 100) as usize);
        assert_eq!(from, vec![2, 1], "sender of each block");
    }

    #[test]
    fn unrequested_and_malformed_blocks_are_dropped() {
        let mut p = picker(2);
        let has = Bitfield::full(2);
        let data = vec![0u8; BLOCK_SIZE as usize];
        assert_eq!(p.on_block(1, 0, 0, &data), BlockOutcome::Unwanted);
        let mut out = Vec::new();
        p.pick(1, &has, 1, None, &mut out);
        let r = out[0];
        assert_eq!(
            p.on_block(9, r.index, r.begin, &data),
            BlockOutcome::Unwanted,
            "not the requester"
        );
        assert_eq!(
            p.on_block(1, r.index, r.begin + 1, &data),
            BlockOutcome::Unwanted,
            "misaligned"
        );
        assert_eq!(
            p.on_block(1, r.index, r.begin, &data[1..]),
            BlockOutcome::Unwanted,
            "short"
        );
        assert_eq!(
            p.on_block(1, 99, 0, &data),
            BlockOutcome::Unwanted,
            "out of range"
        );
    }

    #[test]
    fn failed_piece_goes_on_parole_to_one_peer() {
        let mut p = picker(1);
        let has = Bitfield::full(1);
        let data = vec![0u8; BLOCK_SIZE as usize];
        let tail = vec![0u8; (BLOCK_SIZE - 100) as usize];
        let mut out = Vec::new();
        p.pick(1, &has, 1, None, &mut out);
        p.pick(2, &has, 1, None, &mut out);
        p.on_block(1, 0, 0, &data);
        p.on_block(2, 0, BLOCK_SIZE, &tail);
        let (_, from) = p.take_complete(0).unwrap();
        assert_eq!(from, vec![1, 2]);
        p.piece_failed(0);
        let mut a = Vec::new();
        p.pick(3, &has, 1, None, &mut a);
        assert_eq!(a.len(), 1);
        let mut b = Vec::new();
        p.pick(4, &has, 10, None, &mut b);
        assert!(
            b.is_empty(),
            "parole piece is reserved for its first picker"
        );
        let mut c = Vec::new();
        p.pick(3, &has, 10, None, &mut c);
        assert_eq!(c.len(), 1, "the owner gets the rest");
    }

    #[test]
    fn release_returns_blocks_to_the_pool() {
        let mut p = picker(1);
        let has = Bitfield::full(1);
        let mut out = Vec::new();
        p.pick(1, &has, 10, None, &mut out);
        for r in &out {
            p.release(1, *r);
        }
        assert_eq!(p.partial_count(), 0);
        let mut again = Vec::new();
        p.pick(2, &has, 10, None, &mut again);
        assert_eq!(again, out);
    }
}
