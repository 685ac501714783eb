//! [`ConsensusBlock`]: our [`chain_types::Block`] as commonware's block type.
//!
//! On the wire and in marshal's archives a block is a varint length followed by the block's
//! canonical RLP encoding ([`chain_types::Block::encoded`]). The digest consensus votes on is the
//! block hash (keccak256 of the header), carried in commonware's 32-byte digest type.
//!
//! The header hash commits to the transactions only through `transactions_root`, so decoding
//! recomputes that root: a peer cannot pair a valid header with a different body (marshal
//! fetches finalized blocks by digest and would otherwise accept one).

use bytes::{BufMut, Bytes};
use commonware_codec::{Buf, EncodeSize, Error as CodecError, RangeCfg, Read, Write};
use commonware_consensus::{types::Height, Heightable};
use commonware_cryptography::{sha256, Digestible};

/// Consensus digest of a block: the block hash bytes.
pub(crate) type Digest = sha256::Digest;

/// Converts a block hash into the consensus digest.
pub(crate) fn digest_of(hash: chain_types::B256) -> Digest {
    sha256::Digest(hash.0)
}

/// Converts a consensus digest back into a block hash.
pub(crate) fn hash_of(digest: &Digest) -> chain_types::B256 {
    chain_types::B256::from(digest.0)
}

/// A block with its canonical encoding and hash computed once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ConsensusBlock {
    block: chain_types::Block,
    encoded: Bytes,
    digest: Digest,
}

impl ConsensusBlock {
    /// Wraps a block built or accepted by the application.
    pub(crate) fn new(block: chain_types::Block) -> Self {
        let encoded = Bytes::from(block.encoded());
        let digest = digest_of(block.hash());
        Self {
            block,
            encoded,
            digest,
        }
    }

    /// The block itself.
    pub(crate) fn block(&self) -> &chain_types::Block {
        &self.block
    }

    /// Size of the canonical encoding.
    pub(crate) fn encoded_len(&self) -> usize {
        self.encoded.len()
    }

    /// Decodes a block from its canonical encoding, refusing anything else.
    fn from_encoded(encoded: Bytes) -> Result<Self, CodecError> {
        let block = chain_types::Block::decode(&encoded)
            .map_err(|e| CodecError::Wrapped("chain block", Box::new(e)))?;
        if block.encoded() != encoded.as_ref() {
            return Err(CodecError::Invalid(
                "chain block",
                "encoding is not canonical",
            ));
        }
        block
            .verify_roots()
            .map_err(|e| CodecError::Wrapped("chain block", Box::new(e)))?;
        let digest = digest_of(block.hash());
        Ok(Self {
            block,
            encoded,
            digest,
        })
    }
}

/// Largest block encoding a node accepts, in bytes (the codec configuration).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MaxBlockBytes(pub(crate) usize);

impl Write for ConsensusBlock {
    fn write(&self, buf: &mut impl BufMut) {
        self.encoded.write(buf);
    }
}

impl EncodeSize for ConsensusBlock {
    fn encode_size(&self) -> usize {
        self.encoded.encode_size()
    }
}

impl Read for ConsensusBlock {
    type Cfg = MaxBlockBytes;

    fn read_cfg(buf: &mut impl Buf, cfg: &MaxBlockBytes) -> Result<Self, CodecError> {
        let encoded = Bytes::read_cfg(buf, &RangeCfg::from(..=cfg.0))?;
        Self::from_encoded(encoded)
    }
}

impl Digestible for ConsensusBlock {
    type Digest = Digest;

    fn digest(&self) -> Digest {
        self.digest
    }
}

impl Heightable for ConsensusBlock {
    fn height(&self) -> Height {
        Height::new(self.block.header.number)
    }
}

impl commonware_consensus::Block for ConsensusBlock {
    fn parent(&self) -> Digest {
        digest_of(self.block.header.parent_hash)
    }
}

impl commonware_consensus::BoundedBlock for ConsensusBlock {
    fn max_encode_size(cfg: &MaxBlockBytes) -> usize {
        cfg.0.encode_size() + cfg.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use commonware_codec::{Decode, Encode};
    use commonware_consensus::{Block as _, BoundedBlock as _};

    fn sample(number: u64) -> chain_types::Block {
        let mut header = chain_types::Header {
            number,
            timestamp_ms: 1_700_000_000_000 + number,
            gas_limit: 30_000_000,
            ..Default::default()
        };
        header.parent_hash = chain_types::B256::repeat_byte(7);
        header.transactions_root = chain_types::transactions_root(&[]);
        chain_types::Block {
            header,
            transactions: Vec::new(),
        }
    }

    #[test]
    fn round_trip_is_exact_and_digest_is_the_block_hash() {
        let block = sample(3);
        let wrapped = ConsensusBlock::new(block.clone());
        let bytes = wrapped.encode();
        // A two-byte LEB128 length (the bloom alone is 256 bytes), then exactly the canonical
        // encoding.
        let canonical = block.encoded();
        let len = canonical.len();
        assert!((128..16_384).contains(&len));
        assert_eq!(bytes[..2], [(len & 0x7f) as u8 | 0x80, (len >> 7) as u8]);
        assert_eq!(&bytes[2..], canonical.as_slice());
        assert_eq!(bytes.len(), wrapped.encode_size());

        let cfg = MaxBlockBytes(1 << 20);
        let decoded = ConsensusBlock::decode_cfg(bytes, &cfg).unwrap();
        assert_eq!(decoded, wrapped);
        assert_eq!(decoded.digest().0, block.hash().0);
        assert_eq!(decoded.parent().0, [7; 32]);
        assert_eq!(decoded.height(), Height::new(3));
        assert!(ConsensusBlock::max_encode_size(&cfg) >= (1 << 20) + 3);
    }

    #[test]
    fn decode_refuses_bad_blocks() {
        let cfg = MaxBlockBytes(1 << 20);
        let canonical = sample(1).encoded();

        // Longer than the configured bound.
        let small = MaxBlockBytes(canonical.len() - 1);
        let bytes = ConsensusBlock::new(sample(1)).encode();
        assert!(matches!(
            ConsensusBlock::decode_cfg(bytes.clone(), &small),
            Err(CodecError::InvalidLength(_))
        ));

        // Truncated.
        assert!(ConsensusBlock::decode_cfg(bytes.slice(..bytes.len() - 1), &cfg).is_err());

        // A transactions root that does not match the (empty) body.
        let mut lying = sample(1);
        lying.header.transactions_root = chain_types::B256::repeat_byte(1);
        let bytes = ConsensusBlock::new(lying).encode();
        assert!(matches!(
            ConsensusBlock::decode_cfg(bytes, &cfg),
            Err(CodecError::Wrapped("chain block", _))
        ));

        // Garbage inside a well-formed length prefix.
        let mut garbage = vec![4u8];
        garbage.extend_from_slice(&[0xc3, 0x01, 0x02, 0x03]);
        assert!(ConsensusBlock::decode_cfg(Bytes::from(garbage), &cfg).is_err());
    }

    #[test]
    fn decode_refuses_non_canonical_rlp() {
        // Re-encode the number field (1) as a one-byte string `0x81 0x01`, which RLP forbids
        // for values below 0x80; a lenient decoder would accept it and hash a different header.
        let canonical = sample(1).encoded();
        // Layout: outer list header (3 bytes), header list header (3), parent hash (0xa0 + 32).
        assert_eq!(canonical[6], 0xa0);
        let number_at = 6 + 33;
        assert_eq!(canonical[number_at], 0x01);
        let mut bad = canonical[..number_at].to_vec();
        bad.extend_from_slice(&[0x81, 0x01]);
        bad.extend_from_slice(&canonical[number_at + 1..]);
        // Fix up the two enclosing list lengths (outer block list and header list), each a
        // two-byte big-endian length after 0xf9 because the bloom alone is 256 bytes.
        for at in [0, 3] {
            assert_eq!(bad[at], 0xf9);
            let len = u16::from_be_bytes([bad[at + 1], bad[at + 2]]) + 1;
            bad[at + 1..at + 3].copy_from_slice(&len.to_be_bytes());
        }
        let mut framed = Vec::new();
        bad.len().write(&mut framed);
        framed.extend_from_slice(&bad);
        assert!(ConsensusBlock::decode_cfg(Bytes::from(framed), &MaxBlockBytes(1 << 20)).is_err());
    }
}
