//! secp256k1 accounts and pre-signed EIP-1559 transfers.

use alloy_consensus::crypto::secp256k1::{recover_signer, sign_message};
use alloy_consensus::{SignableTransaction, TxEip1559};
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{hex, keccak256, Address, TxKind, B256, U256};
use anyhow::{Context, Result};

/// Gas of a plain value transfer.
pub(crate) const TRANSFER_GAS: u64 = 21_000;

/// A secret key and its address.
#[derive(Clone)]
pub(crate) struct Key {
    secret: B256,
    /// The account's address.
    pub(crate) address: Address,
}

impl Key {
    /// The key with this 32-byte secret.
    pub(crate) fn from_secret(secret: B256) -> Result<Self> {
        let probe = B256::repeat_byte(1);
        let sig = sign_message(secret, probe).context("not a valid secp256k1 secret key")?;
        let address = recover_signer(&sig, probe).context("cannot derive the address")?;
        Ok(Self { secret, address })
    }

    /// A key from `0x`-hex text.
    pub(crate) fn from_hex(text: &str) -> Result<Self> {
        Self::from_secret(
            text.trim()
                .parse()
                .context("a private key is 32 bytes of hex")?,
        )
    }

    /// A deterministic key for sender `index` of a run with this seed.
    pub(crate) fn derived(seed: u64, index: u64) -> Result<Self> {
        let mut material = Vec::with_capacity(32);
        material.extend_from_slice(b"btt-chain-load/");
        material.extend_from_slice(&seed.to_be_bytes());
        material.extend_from_slice(&index.to_be_bytes());
        Self::from_secret(keccak256(&material))
    }
}

/// Fees every transfer offers, in wei per gas.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Fees {
    /// `max_fee_per_gas`.
    pub(crate) max_fee: u128,
    /// `max_priority_fee_per_gas`.
    pub(crate) tip: u128,
}

/// A signed transaction ready to send.
pub(crate) struct Signed {
    /// Its hash, as blocks list it.
    pub(crate) hash: B256,
    /// `0x`-hex of its EIP-2718 encoding.
    pub(crate) raw_hex: String,
}

/// Signs a transfer of `value` wei from `from` to `to`.
pub(crate) fn transfer(
    from: &Key,
    chain_id: u64,
    nonce: u64,
    to: Address,
    value: U256,
    fees: Fees,
) -> Result<Signed> {
    let tx = TxEip1559 {
        chain_id,
        nonce,
        gas_limit: TRANSFER_GAS,
        max_fee_per_gas: fees.max_fee,
        max_priority_fee_per_gas: fees.tip,
        to: TxKind::Call(to),
        value,
        access_list: Default::default(),
        input: Default::default(),
    };
    let sig = sign_message(from.secret, tx.signature_hash()).context("signing failed")?;
    let signed = tx.into_signed(sig);
    Ok(Signed {
        hash: *signed.hash(),
        raw_hex: format!("0x{}", hex::encode(signed.encoded_2718())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_consensus::TxEnvelope;
    use alloy_eips::eip2718::Decodable2718;

    #[test]
    fn a_signed_transfer_decodes_to_its_sender_and_hash() {
        let key = Key::derived(7, 1).expect("key");
        let fees = Fees {
            max_fee: 2_000_000_000,
            tip: 1,
        };
        let s =
            transfer(&key, 7215, 3, Address::repeat_byte(9), U256::from(5), fees).expect("signs");
        let bytes = hex::decode(&s.raw_hex).expect("hex");
        let env = TxEnvelope::decode_2718(&mut bytes.as_slice()).expect("decodes");
        assert_eq!(*env.tx_hash(), s.hash);
        assert_eq!(keccak256(&bytes), s.hash);
        let alloy_consensus::TxEnvelope::Eip1559(signed) = env else {
            panic!("not EIP-1559");
        };
        let sender = recover_signer(signed.signature(), signed.signature_hash()).expect("recovers");
        assert_eq!(sender, key.address);
        assert_eq!(signed.tx().nonce, 3);
    }

    #[test]
    fn derived_keys_differ_by_seed_and_index() {
        let a = Key::derived(1, 0).expect("key").address;
        assert_ne!(a, Key::derived(1, 1).expect("key").address);
        assert_ne!(a, Key::derived(2, 0).expect("key").address);
        assert_eq!(a, Key::derived(1, 0).expect("key").address);
    }
}
