//! Test helpers: deterministic keys and signed transactions.

use alloy_consensus::crypto::secp256k1::{recover_signer, sign_message};
use alloy_consensus::{SignableTransaction, TxEip1559};
use alloy_primitives::{keccak256, Address, TxKind, B256, U256};
use chain_types::{recover_tx, RecoveredTx, TxEnvelope, TxRules};

/// Chain id the unit tests sign for.
pub(crate) const TEST_CHAIN: u64 = 7215;

/// A secp256k1 key derived from a small number.
pub(crate) struct Key {
    secret: B256,
    address: Address,
}

impl Key {
    pub(crate) fn new(n: u64) -> Self {
        let secret = keccak256(n.to_be_bytes());
        let probe = B256::repeat_byte(1);
        let sig = sign_message(secret, probe).unwrap();
        let address = recover_signer(&sig, probe).unwrap();
        Self { secret, address }
    }

    pub(crate) fn address(&self) -> Address {
        self.address
    }

    /// Signs an EIP-1559 transaction.
    pub(crate) fn sign(&self, tx: TxEip1559) -> RecoveredTx {
        let sig = sign_message(self.secret, tx.signature_hash()).unwrap();
        let envelope: TxEnvelope = tx.into_signed(sig).into();
        recover_tx(envelope, &TxRules::new(TEST_CHAIN, 30_000_000)).unwrap()
    }
}

/// A 1-wei transfer to a fixed address with the given fee cap and tip (in wei per gas).
pub(crate) fn signed_transfer(key: &Key, nonce: u64, max_fee: u128, tip: u128) -> RecoveredTx {
    key.sign(TxEip1559 {
        chain_id: TEST_CHAIN,
        nonce,
        gas_limit: 21_000,
        max_fee_per_gas: max_fee,
        max_priority_fee_per_gas: tip,
        to: TxKind::Call(Address::repeat_byte(0x35)),
        value: U256::from(1),
        access_list: Default::default(),
        input: Default::default(),
    })
}
