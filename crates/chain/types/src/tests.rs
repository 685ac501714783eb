//! Unit tests. Expected bytes, hashes and addresses come from outside this code: the EIP-155
//! specification's example, and vectors produced with ethers v6 (`Wallet.signTransaction`,
//! `encodeRlp`, `keccak256`), which signs with RFC 6979 nonces exactly like libsecp256k1, so our
//! own signatures must match its bytes.

use std::num::NonZeroUsize;

use alloy_consensus::crypto::secp256k1::sign_message;
use alloy_consensus::transaction::RlpEcdsaEncodableTx;
use alloy_consensus::{
    SignableTransaction, Signed, Transaction, TxEip1559, TxEip2930, TxEip4844, TxEip7702,
    TxEnvelope, TxLegacy,
};
use alloy_eips::eip2718::Encodable2718;
use alloy_eips::eip2930::{AccessList, AccessListItem};
use alloy_primitives::{
    address, b256, hex, Address, Bloom, Bytes, Log, Signature, TxKind, B256, U256,
};

use crate::*;

const KEY: B256 = b256!("4646464646464646464646464646464646464646464646464646464646464646");
/// The address of `KEY`, from ethers.
const SENDER: Address = address!("9d8A62f656a8d1615C1294fd71e9CFb3E4855A4F");
const TO: Address = address!("3535353535353535353535353535353535353535");
const CHAIN: u64 = 4242;
const BLOCK_GAS: u64 = 30_000_000;

/// EIP-155 specification example (chain id 1).
const EIP155_RAW: [u8; 110] = hex!("f86c098504a817c800825208943535353535353535353535353535353535353535880de0b6b3a76400008025a028ef61340bd939bc2195fe537567866003e1a15d3c71ff63e1590620aa636276a067cbe9d8997f761aecb703304b3800ccf555c9f3dc64214b297fb1966a3b6d83");

/// ethers v6: `{type: 2, chainId: 4242, nonce: 7, maxPriorityFeePerGas: 2 gwei, maxFeePerGas:
/// 30 gwei, gasLimit: 50000, to: TO, value: 1.5 ether, data: 0x00ff}` signed with `KEY`.
const TYPE2_RAW: &[u8] = &hex!("02f8778210920784773594008506fc23ac0082c3509435353535353535353535353535353535353535358814d1120d7b1600008200ffc080a0066533bd0eefd186e2bba31db8ecca46ddaedbbf0e0dfd77dc05840a210d064ba04196b502ad78c0b2d1b52694d9485cfac2cd0bb8180e80cf00dfe49c8d43ae02");
const TYPE2_HASH: B256 = b256!("cef2b7ad0036aa164b87609cf5c8f2875194c80ed350763bdc863135f2fa1c4b");
/// ethers v6: type 1, nonce 0, gasPrice 10 gwei, gasLimit 30000, value 1 wei, access list
/// `[{0x…01, [0x…02]}]`.
const TYPE1_RAW: &[u8] = &hex!("01f8a1821092808502540be4008275309435353535353535353535353535353535353535350180f838f7940000000000000000000000000000000000000001e1a0000000000000000000000000000000000000000000000000000000000000000201a01a2726670f09ecc8bec41fd1768d0e7cd2238e2d2fcc3372950b373599fe23aba0520f6ef712e858450eb2d9e1528b8bf5fffd2faba43c18eba45db8c4bb7f113c");
const TYPE1_HASH: B256 = b256!("a189d6b8bac756f50b2f52fad63f2ea7b4d2c012faf2520801f575ea9efe535a");
/// ethers v6: legacy with EIP-155 chain 4242, nonce 1, gasPrice 10 gwei, gasLimit 21000, value 0.
const LEGACY_RAW: &[u8] = &hex!("f866018502540be4008252089435353535353535353535353535353535353535358080822148a0f3c7603ce29d76f0e035246c470a0208d21cf1a0c0683049b6a935e42c42dfaba0219d7da33253ddb8575b42ee21e969afa98498e54ee0ce3958e4750275ef368a");
const LEGACY_HASH: B256 = b256!("bbb0c20e06198251f838d8da42de59a7e7b4939253d0f6b762abb48308e3ca9b");

fn rules() -> TxRules {
    TxRules::new(CHAIN, BLOCK_GAS)
}

fn sign<T>(tx: T) -> TxEnvelope
where
    T: SignableTransaction<Signature> + RlpEcdsaEncodableTx,
    TxEnvelope: From<Signed<T>>,
{
    let sig = sign_message(KEY, tx.signature_hash()).unwrap();
    tx.into_signed(sig).into()
}

fn eip1559(nonce: u64, gas_limit: u64, input: Vec<u8>) -> TxEip1559 {
    TxEip1559 {
        chain_id: CHAIN,
        nonce,
        gas_limit,
        max_fee_per_gas: 30_000_000_000,
        max_priority_fee_per_gas: 2_000_000_000,
        to: TxKind::Call(TO),
        value: U256::from(1_500_000_000_000_000_000u128),
        access_list: AccessList::default(),
        input: input.into(),
    }
}

fn type2_tx() -> TxEip1559 {
    eip1559(7, 50_000, vec![0x00, 0xff])
}

fn encode(tx: &TxEnvelope) -> Vec<u8> {
    tx.encoded_2718()
}

/// Replaces the signature, keeping the transaction (the hash is recomputed).
fn with_signature(tx: TxEnvelope, sig: Signature) -> TxEnvelope {
    match tx {
        TxEnvelope::Eip1559(s) => s.strip_signature().into_signed(sig).into(),
        _ => unreachable!("tests only re-sign type 2"),
    }
}

// ---------------------------------------------------------------- transactions: vectors

#[test]
fn eip155_specification_example() {
    let tx = decode_and_recover(&EIP155_RAW, &TxRules::new(1, BLOCK_GAS)).unwrap();
    assert_eq!(tx.sender(), SENDER);
    assert_eq!(
        tx.hash(),
        b256!("33469b22e9f636356c4160a87eb19df52b7412e8eac32a4a55ffe88ea8350788")
    );
    assert_eq!(
        tx.envelope().signature_hash(),
        b256!("daf5a779ae972f972197303d7b574746c7ef83eadac0f2791ad23db92e4c8e53")
    );
    assert_eq!(tx.encoded_len(), 110);
    let env = tx.envelope();
    assert_eq!(env.chain_id(), Some(1));
    assert_eq!(env.nonce(), 9);
    assert_eq!(env.gas_limit(), 21_000);
    assert_eq!(env.value(), U256::from(10u128.pow(18)));
    assert_eq!(env.to(), Some(TO));
}

#[test]
fn ethers_vectors_decode_to_their_hash_and_sender() {
    for (raw, hash, ty) in [
        (LEGACY_RAW, LEGACY_HASH, TxType::Legacy),
        (TYPE1_RAW, TYPE1_HASH, TxType::Eip2930),
        (TYPE2_RAW, TYPE2_HASH, TxType::Eip1559),
    ] {
        let tx = decode_and_recover(raw, &rules()).unwrap();
        assert_eq!(tx.sender(), SENDER);
        assert_eq!(tx.hash(), hash);
        assert_eq!(tx.envelope().tx_type(), ty);
        assert_eq!(encode(tx.envelope()), raw, "re-encoding is byte-exact");
    }
}

#[test]
fn our_signatures_match_ethers_bytes() {
    assert_eq!(encode(&sign(type2_tx())), TYPE2_RAW);
    let type1 = TxEip2930 {
        chain_id: CHAIN,
        nonce: 0,
        gas_price: 10_000_000_000,
        gas_limit: 30_000,
        to: TxKind::Call(TO),
        value: U256::from(1),
        access_list: AccessList(vec![AccessListItem {
            address: address!("0000000000000000000000000000000000000001"),
            storage_keys: vec![b256!(
                "0000000000000000000000000000000000000000000000000000000000000002"
            )],
        }]),
        input: Bytes::new(),
    };
    assert_eq!(encode(&sign(type1)), TYPE1_RAW);
    let legacy = TxLegacy {
        chain_id: Some(CHAIN),
        nonce: 1,
        gas_price: 10_000_000_000,
        gas_limit: 21_000,
        to: TxKind::Call(TO),
        value: U256::ZERO,
        input: Bytes::new(),
    };
    assert_eq!(encode(&sign(legacy)), LEGACY_RAW);
}

// ---------------------------------------------------------------- transactions: rejections

fn reject(raw: &[u8]) -> TxError {
    decode_and_recover(raw, &rules()).unwrap_err()
}

#[test]
fn refuses_malformed_bytes() {
    assert_eq!(
        reject(&[]),
        TxError::Malformed(alloy_rlp::Error::InputTooShort)
    );
    assert!(matches!(
        reject(&TYPE2_RAW[..TYPE2_RAW.len() - 1]),
        TxError::Malformed(_)
    ));
    let mut trailing = TYPE2_RAW.to_vec();
    trailing.push(0);
    assert!(matches!(reject(&trailing), TxError::Malformed(_)));
    assert!(
        matches!(reject(&[0x80]), TxError::Malformed(_)),
        "{:?}",
        reject(&[0x80])
    );
    assert!(matches!(reject(&[0xc0]), TxError::Malformed(_)));
    assert!(matches!(reject(&[0x02]), TxError::Malformed(_)));
}

#[test]
fn refuses_unsupported_types() {
    for ty in [0x00, 0x03, 0x04, 0x05, 0x7f] {
        let mut raw = TYPE2_RAW.to_vec();
        raw[0] = ty;
        assert_eq!(reject(&raw), TxError::TypeNotSupported(ty));
    }
    // Properly signed blob and set-code transactions, also when already decoded.
    let blob = sign(TxEip4844 {
        chain_id: CHAIN,
        gas_limit: 50_000,
        to: TO,
        blob_versioned_hashes: vec![B256::repeat_byte(1)],
        ..Default::default()
    });
    assert_eq!(reject(&encode(&blob)), TxError::TypeNotSupported(3));
    assert_eq!(
        validate_tx(&blob, &rules()),
        Err(TxError::TypeNotSupported(3))
    );
    let set_code = sign(TxEip7702 {
        chain_id: CHAIN,
        gas_limit: 50_000,
        to: TO,
        ..Default::default()
    });
    assert_eq!(reject(&encode(&set_code)), TxError::TypeNotSupported(4));
    assert_eq!(
        validate_tx(&set_code, &rules()),
        Err(TxError::TypeNotSupported(4))
    );
    assert!(reject(&[0x03])
        .to_string()
        .starts_with("transaction type not supported"));
}

#[test]
fn refuses_oversized_before_decoding() {
    let raw = vec![0u8; MAX_TX_BYTES + 1];
    assert_eq!(
        reject(&raw),
        TxError::Oversized {
            size: MAX_TX_BYTES + 1,
            limit: MAX_TX_BYTES
        }
    );
    assert!(reject(&raw).to_string().starts_with("oversized data"));
}

#[test]
fn refuses_pre_eip155_legacy_unless_allowed() {
    let unprotected = sign(TxLegacy {
        chain_id: None,
        gas_price: 1,
        gas_limit: 21_000,
        to: TxKind::Call(TO),
        ..Default::default()
    });
    let raw = encode(&unprotected);
    assert_eq!(reject(&raw), TxError::Unprotected(CHAIN));
    let lenient = TxRules {
        allow_unprotected_legacy: true,
        ..rules()
    };
    assert_eq!(decode_and_recover(&raw, &lenient).unwrap().sender(), SENDER);
}

#[test]
fn refuses_other_chain() {
    assert_eq!(
        reject(&EIP155_RAW),
        TxError::WrongChainId {
            have: 1,
            want: CHAIN
        }
    );
    let mut tx = type2_tx();
    tx.chain_id = CHAIN + 1;
    assert!(matches!(
        reject(&encode(&sign(tx))),
        TxError::WrongChainId { .. }
    ));
}

#[test]
fn refuses_high_s_even_though_it_recovers() {
    let tx = sign(type2_tx());
    let sig = *tx.signature();
    let n = U256::from_be_bytes(hex!(
        "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141"
    ));
    // (r, n - s, !parity) is the other valid signature of the same message by the same key.
    let high = with_signature(tx, Signature::new(sig.r(), n - sig.s(), !sig.v()));
    assert_eq!(recover_sender(&high).unwrap(), SENDER);
    assert_eq!(reject(&encode(&high)), TxError::HighS);
}

#[test]
fn refuses_unrecoverable_signature() {
    let tx = with_signature(
        sign(type2_tx()),
        Signature::new(U256::ZERO, U256::from(1), false),
    );
    assert_eq!(reject(&encode(&tx)), TxError::InvalidSender);
}

#[test]
fn refuses_gas_below_intrinsic_and_floor() {
    // Plain transfer: exactly 21000 passes, one less fails.
    let raw = encode(&sign(eip1559(0, 21_000, vec![])));
    decode_and_recover(&raw, &rules()).unwrap();
    let raw = encode(&sign(eip1559(0, 20_999, vec![])));
    assert_eq!(
        reject(&raw),
        TxError::IntrinsicGasTooLow {
            gas: 20_999,
            needed: 21_000
        }
    );
    assert_eq!(
        reject(&raw).to_string(),
        "intrinsic gas too low: gas 20999, minimum needed 21000"
    );
    // 1000 non-zero bytes: intrinsic 37000, EIP-7623 floor 21000 + 10 × 4000 = 61000.
    let tx = sign(eip1559(0, 40_000, vec![1; 1000]));
    assert_eq!(intrinsic_gas(&tx), 37_000);
    assert_eq!(floor_data_gas(&tx), 61_000);
    assert_eq!(
        reject(&encode(&tx)),
        TxError::FloorDataGas {
            gas: 40_000,
            needed: 61_000
        }
    );
    let no_floor = TxRules {
        calldata_floor: false,
        ..rules()
    };
    validate_tx(&tx, &no_floor).unwrap();
}

#[test]
fn intrinsic_gas_counts_creation_and_access_lists() {
    // Creation with 33 bytes of initcode (1 zero, 32 non-zero = 2 words):
    // 21000 + 32000 + 2 × 2 + 4 + 32 × 16 = 53520.
    let mut create = eip1559(0, 100_000, [vec![0], vec![7; 32]].concat());
    create.to = TxKind::Create;
    assert_eq!(intrinsic_gas(&sign(create)), 53_520);
    // Two addresses and three keys: 21000 + 2 × 2400 + 3 × 1900 = 31500.
    let mut listed = eip1559(0, 100_000, vec![]);
    listed.access_list = AccessList(vec![
        AccessListItem {
            address: TO,
            storage_keys: vec![B256::ZERO, B256::repeat_byte(1)],
        },
        AccessListItem {
            address: SENDER,
            storage_keys: vec![B256::ZERO],
        },
    ]);
    assert_eq!(intrinsic_gas(&sign(listed)), 31_500);
}

#[test]
fn refuses_gas_above_block_limit() {
    let raw = encode(&sign(eip1559(0, BLOCK_GAS + 1, vec![])));
    assert_eq!(
        reject(&raw),
        TxError::ExceedsBlockGasLimit {
            gas: BLOCK_GAS + 1,
            limit: BLOCK_GAS
        }
    );
    assert!(reject(&raw)
        .to_string()
        .starts_with("exceeds block gas limit"));
}

#[test]
fn refuses_tip_above_fee_cap() {
    let mut tx = type2_tx();
    tx.max_priority_fee_per_gas = tx.max_fee_per_gas + 1;
    let err = reject(&encode(&sign(tx)));
    assert!(matches!(err, TxError::TipAboveFeeCap { .. }));
    assert!(err
        .to_string()
        .starts_with("max priority fee per gas higher than max fee per gas"));
}

#[test]
fn refuses_oversized_initcode() {
    let mut tx = eip1559(0, BLOCK_GAS, vec![1; MAX_INITCODE_BYTES + 1]);
    tx.to = TxKind::Create;
    assert_eq!(
        reject(&encode(&sign(tx))),
        TxError::InitcodeTooLarge {
            size: MAX_INITCODE_BYTES + 1,
            limit: MAX_INITCODE_BYTES
        }
    );
    // The same data in a call is fine (only initcode is capped).
    let call = sign(eip1559(0, BLOCK_GAS, vec![1; MAX_INITCODE_BYTES + 1]));
    validate_tx(&call, &rules()).unwrap();
}

#[test]
fn rpc_codes_and_geth_prefixes() {
    assert_eq!(TxError::InvalidSender.rpc_code(), -32000);
    assert_eq!(AmountError::Empty.rpc_code(), -32602);
    let cases: [(&dyn RpcError, &str); 6] = [
        (
            &AdmissionError::NonceTooLow {
                address: SENDER,
                tx_nonce: 1,
                state_nonce: 2,
            },
            "nonce too low",
        ),
        (
            &AdmissionError::InsufficientFunds {
                address: SENDER,
                have: U256::ZERO,
                want: U256::from(1),
            },
            "insufficient funds for gas * price + value",
        ),
        (
            &TxError::WrongChainId { have: 1, want: 2 },
            "invalid chain id",
        ),
        (
            &TxError::TypeNotSupported(3),
            "transaction type not supported",
        ),
        (
            &TxError::ExceedsBlockGasLimit { gas: 2, limit: 1 },
            "exceeds block gas limit",
        ),
        (&AdmissionError::AlreadyKnown, "already known"),
    ];
    for (err, prefix) in cases {
        assert_eq!(err.rpc_code(), SERVER_ERROR);
        assert!(
            err.rpc_message().starts_with(prefix),
            "{}",
            err.rpc_message()
        );
    }
}

// ---------------------------------------------------------------- batch recovery

fn mixed_batch() -> Vec<Vec<u8>> {
    (0..200u64)
        .map(|nonce| match nonce % 50 {
            13 => EIP155_RAW.to_vec(), // wrong chain
            27 => vec![0x03, 0xc0],    // blob type
            _ => encode(&sign(eip1559(nonce, 21_000 + nonce, vec![]))),
        })
        .collect()
}

#[test]
fn batch_recovery_equals_sequential() {
    let raws = mixed_batch();
    let sequential: Vec<_> = raws
        .iter()
        .map(|r| decode_and_recover(r, &rules()))
        .collect();
    assert_eq!(sequential.iter().filter(|r| r.is_err()).count(), 8);
    for threads in [1, 2, 3, 8] {
        let n = NonZeroUsize::new(threads).unwrap();
        assert_eq!(decode_and_recover_batch(&raws, &rules(), n), sequential);
    }
    let envelopes: Vec<TxEnvelope> = sequential
        .iter()
        .flatten()
        .map(|t| t.envelope().clone())
        .collect();
    let senders = recover_senders(&envelopes, NonZeroUsize::new(4).unwrap());
    assert!(senders.iter().all(|s| *s == Ok(SENDER)));
    let again = recover_tx(envelopes[0].clone(), &rules()).unwrap();
    assert_eq!(again, *sequential[0].as_ref().unwrap());
}

/// Prints the cost of one sender recovery with libsecp256k1 (what we use) and with the pure-Rust
/// k256 crate, and the batch speed-up. Informational: timings are not asserted.
#[test]
fn recovery_speed() {
    use k256::ecdsa::{RecoveryId, Signature as KSig, VerifyingKey};
    use std::time::Instant;

    const N: usize = 2_000;
    let txs: Vec<TxEnvelope> = (0..N as u64)
        .map(|n| sign(eip1559(n, 21_000, vec![])))
        .collect();
    let inputs: Vec<(B256, Signature)> = txs
        .iter()
        .map(|t| (t.signature_hash(), *t.signature()))
        .collect();

    let start = Instant::now();
    for (hash, sig) in &inputs {
        let a = alloy_consensus::crypto::secp256k1::recover_signer_unchecked(sig, *hash).unwrap();
        assert_eq!(a, SENDER);
    }
    let secp = start.elapsed() / N as u32;

    let start = Instant::now();
    for (hash, sig) in &inputs {
        let ksig =
            KSig::from_scalars(sig.r().to_be_bytes::<32>(), sig.s().to_be_bytes::<32>()).unwrap();
        let key = VerifyingKey::recover_from_prehash(
            hash.as_slice(),
            &ksig,
            RecoveryId::new(sig.v(), false),
        )
        .unwrap();
        let point = key.to_encoded_point(false);
        let a = Address::from_slice(&alloy_primitives::keccak256(&point.as_bytes()[1..])[12..]);
        assert_eq!(a, SENDER);
    }
    let k256 = start.elapsed() / N as u32;

    let start = Instant::now();
    let seq = recover_senders(&txs, NonZeroUsize::MIN);
    let seq_time = start.elapsed();
    let threads = std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN);
    let start = Instant::now();
    let par = recover_senders(&txs, threads);
    let par_time = start.elapsed();
    assert_eq!(seq, par);
    println!(
        "sender recovery: libsecp256k1 {secp:?}/sig, k256 {k256:?}/sig ({:.1}x); \
         {N} txs incl. signing hash: 1 thread {seq_time:?}, {threads} threads {par_time:?}",
        k256.as_secs_f64() / secp.as_secs_f64()
    );
}

// ---------------------------------------------------------------- headers and blocks

fn fixture_header() -> Header {
    Header {
        parent_hash: B256::repeat_byte(0x11),
        number: 42,
        timestamp_ms: 1_700_000_000_123,
        proposer: Address::repeat_byte(0x22),
        epoch: 3,
        state_root: B256::repeat_byte(0x33),
        transactions_root: B256::repeat_byte(0x44),
        receipts_root: B256::repeat_byte(0x55),
        logs_bloom: Bloom::repeat_byte(0x66),
        gas_limit: 30_000_000,
        gas_used: 21_000,
        base_fee_per_gas: 1_000_000_000,
        extra_data: Bytes::from_static(b"btt"),
    }
}

/// Frozen: changing the header format changes every block hash. Bytes and hash from ethers'
/// `encodeRlp` and `keccak256` over the same field list.
const HEADER_FIXTURE: &str = "f901b6a011111111111111111111111111111111111111111111111111111111111111112a86018bcfe5687b94222222222222222222222222222222222222222203a03333333333333333333333333333333333333333333333333333333333333333a04444444444444444444444444444444444444444444444444444444444444444a05555555555555555555555555555555555555555555555555555555555555555b90100666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666668401c9c380825208843b9aca0083627474";

#[test]
fn header_encoding_is_frozen() {
    let header = fixture_header();
    let encoded = header.encoded();
    assert_eq!(hex::encode(&encoded), HEADER_FIXTURE);
    assert_eq!(
        header.hash(),
        b256!("24db3248599898563c4f3d14ddc4dbd5fef552a4b904e9a95240461d08c7446a")
    );
    assert_eq!(Header::decode_exact(&encoded).unwrap(), header);
    let default = Header::default();
    assert_eq!(Header::decode_exact(&default.encoded()).unwrap(), default);
}

#[test]
fn header_decoding_refuses_non_canonical_input() {
    let encoded = fixture_header().encoded();
    let mut trailing = encoded.clone();
    trailing.push(0x80);
    assert!(matches!(
        Header::decode_exact(&trailing),
        Err(BlockError::Malformed(_))
    ));
    assert!(matches!(
        Header::decode_exact(&encoded[..encoded.len() - 1]),
        Err(BlockError::Malformed(_))
    ));
    // number 42 written with a leading zero byte: 0x82 0x00 0x2a instead of 0x2a.
    let mut padded = encoded.clone();
    let at = 3 + 33;
    assert_eq!(padded[at], 0x2a);
    padded.splice(at..at + 1, [0x82, 0x00, 0x2a]);
    padded[2] += 2; // list length 0x01b6 -> 0x01b8
    assert_eq!(
        Header::decode_exact(&padded),
        Err(BlockError::Malformed(alloy_rlp::Error::LeadingZero))
    );
    let mut long_extra = fixture_header();
    long_extra.extra_data = vec![0; 33].into();
    assert_eq!(
        Header::decode_exact(&long_extra.encoded()),
        Err(BlockError::ExtraDataTooLong(33))
    );
    // An extra trailing field inside the list.
    let mut extra_field = encoded[3..].to_vec();
    extra_field.push(0x01);
    let mut framed = vec![0xf9, 0x01, 0xb7];
    framed.extend(extra_field);
    assert!(matches!(
        Header::decode_exact(&framed),
        Err(BlockError::Malformed(_))
    ));
}

fn three_tx_block() -> Block {
    let transactions: Vec<TxEnvelope> = [LEGACY_RAW, TYPE1_RAW, TYPE2_RAW]
        .iter()
        .map(|raw| decode_tx(raw, &rules()).unwrap())
        .collect();
    let header = Header {
        transactions_root: transactions_root(&transactions),
        ..fixture_header()
    };
    Block {
        header,
        transactions,
    }
}

#[test]
fn transactions_root_matches_independent_trie() {
    assert_eq!(transactions_root(&[]), alloy_consensus::EMPTY_ROOT_HASH);
    // One leaf: keccak(rlp([0x2080, tx])), computed with ethers.
    let tx = decode_tx(TYPE2_RAW, &rules()).unwrap();
    assert_eq!(
        transactions_root(&[tx]),
        b256!("c7f9df34dfe1fcacaa88d0dd145dd077e36d8af3e81bec4251f1533a4f04eb2e")
    );
}

#[test]
fn block_round_trips_and_verifies_roots() {
    let block = three_tx_block();
    let encoded = block.encoded();
    let decoded = Block::decode(&encoded).unwrap();
    assert_eq!(decoded, block);
    assert_eq!(decoded.encoded(), encoded);
    assert_eq!(decoded.hash(), block.header.hash());
    decoded.verify_roots().unwrap();
    let senders = decoded
        .validate_transactions(&rules(), NonZeroUsize::new(2).unwrap())
        .unwrap();
    assert_eq!(senders, vec![SENDER; 3]);

    let mut tampered = block.clone();
    tampered.transactions.swap(0, 1);
    assert!(matches!(
        tampered.verify_roots(),
        Err(BlockError::TransactionsRootMismatch { .. })
    ));
    let empty = Block {
        header: Header {
            transactions_root: alloy_consensus::EMPTY_ROOT_HASH,
            ..Header::default()
        },
        transactions: vec![],
    };
    assert_eq!(Block::decode(&empty.encoded()).unwrap(), empty);
    empty.verify_roots().unwrap();
}

#[test]
fn block_decoding_refuses_bad_bodies() {
    let block = three_tx_block();
    let mut encoded = block.encoded();
    encoded.push(0);
    assert!(matches!(
        Block::decode(&encoded),
        Err(BlockError::Malformed(_))
    ));
    let encoded = block.encoded();
    assert!(matches!(
        Block::decode(&encoded[..encoded.len() - 1]),
        Err(BlockError::Malformed(_))
    ));

    let blob = sign(TxEip4844 {
        chain_id: CHAIN,
        gas_limit: 50_000,
        to: TO,
        ..Default::default()
    });
    let with_blob = Block {
        transactions: vec![decode_tx(TYPE2_RAW, &rules()).unwrap(), blob],
        ..block.clone()
    };
    assert_eq!(
        Block::decode(&with_blob.encoded()),
        Err(BlockError::Transaction {
            index: 1,
            error: TxError::TypeNotSupported(3)
        })
    );

    // Decodes (it is a well-formed transaction) but is for another chain.
    let foreign = decode_tx(&EIP155_RAW, &TxRules::new(1, BLOCK_GAS)).unwrap();
    let mut with_foreign = block;
    with_foreign.transactions.push(foreign);
    let decoded = Block::decode(&with_foreign.encoded()).unwrap();
    assert_eq!(
        decoded.validate_transactions(&rules(), NonZeroUsize::MIN),
        Err(BlockError::Transaction {
            index: 3,
            error: TxError::WrongChainId {
                have: 1,
                want: CHAIN
            }
        })
    );
}

// ---------------------------------------------------------------- receipts

fn fixture_log() -> Log {
    Log::new_unchecked(
        Address::repeat_byte(0xaa),
        vec![B256::repeat_byte(0xbb)],
        Bytes::from_static(&[1, 2]),
    )
}

/// ethers: `0x02 || encodeRlp([1, 21000, bloom, [[0xaa…, [0xbb…], 0x0102]]])`, bloom computed
/// from the Yellow Paper's M3:2048 definition.
const RECEIPT_FIXTURE: &str = "02f9014501825208b9010000200000000000000000000000000000000000000040004000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000002000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000002000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000020000000000000000000000000000000f83cf83a94aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaae1a0bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb820102";

#[test]
fn receipt_encoding_matches_ethereum() {
    let receipt = Receipt::new(TxType::Eip1559, true, 21_000, vec![fixture_log()]);
    let encoded = receipt.encoded_2718();
    assert_eq!(hex::encode(&encoded), RECEIPT_FIXTURE);
    assert!(receipt
        .bloom()
        .contains_input(alloy_primitives::BloomInput::Raw(
            Address::repeat_byte(0xaa).as_slice()
        )));
    let decoded = Receipt::decode_2718(&encoded).unwrap();
    assert_eq!(decoded, receipt);
    assert!(decoded.success());
    assert_eq!(decoded.tx_type(), TxType::Eip1559);
    assert_eq!(decoded.cumulative_gas_used(), 21_000);
    assert_eq!(decoded.logs(), &[fixture_log()]);
    // One-leaf receipts trie, computed with ethers.
    assert_eq!(
        receipts_root(&[receipt]),
        b256!("49ceccb13069b3161b5741292871fa0a0eaeceaed28f1ee7705839dc08ccc2d3")
    );
    let legacy = Receipt::new(TxType::Legacy, false, 5, vec![]);
    assert_eq!(
        legacy.encoded_2718()[0],
        0xf9,
        "legacy receipts have no type byte"
    );
    assert_eq!(
        Receipt::decode_2718(&legacy.encoded_2718()).unwrap(),
        legacy
    );
}

#[test]
fn receipt_decoding_refuses_bad_input() {
    let mut encoded = hex::decode(RECEIPT_FIXTURE).unwrap();
    encoded[12] ^= 0x20; // flip a set bloom bit
    assert_eq!(
        Receipt::decode_2718(&encoded),
        Err(ReceiptError::BloomMismatch)
    );
    let mut typed3 = hex::decode(RECEIPT_FIXTURE).unwrap();
    typed3[0] = 3;
    assert_eq!(
        Receipt::decode_2718(&typed3),
        Err(ReceiptError::TypeNotSupported(3))
    );
    assert!(matches!(
        Receipt::decode_2718(&[0x02]),
        Err(ReceiptError::Malformed(_))
    ));
    assert!(matches!(
        Receipt::decode_2718(&[]),
        Err(ReceiptError::Malformed(_))
    ));
    // Pre-Byzantium: a 32-byte post-state root where the status belongs.
    let mut post_state = vec![0x02, 0xf9, 0x01, 0x45 + 32, 0xa0];
    post_state.extend([0x77; 32]);
    post_state.extend(&hex::decode(RECEIPT_FIXTURE).unwrap()[5..]);
    assert_eq!(
        Receipt::decode_2718(&post_state),
        Err(ReceiptError::PostState)
    );
}

#[test]
fn block_verifies_receipts() {
    let block = three_tx_block();
    let receipts = vec![
        Receipt::new(TxType::Legacy, true, 21_000, vec![]),
        Receipt::new(TxType::Eip2930, true, 50_000, vec![fixture_log()]),
        Receipt::new(TxType::Eip1559, false, 80_000, vec![]),
    ];
    let mut good = block.clone();
    good.header.receipts_root = receipts_root(&receipts);
    good.header.logs_bloom = logs_bloom(&receipts);
    good.header.gas_used = 80_000;
    good.verify_receipts(&receipts).unwrap();

    assert!(matches!(
        good.verify_receipts(&receipts[..2]),
        Err(BlockError::ReceiptCountMismatch { .. })
    ));
    let mut bad = good.clone();
    bad.header.receipts_root = B256::ZERO;
    assert!(matches!(
        bad.verify_receipts(&receipts),
        Err(BlockError::ReceiptsRootMismatch { .. })
    ));
    let mut bad = good.clone();
    bad.header.logs_bloom = Bloom::ZERO;
    assert_eq!(
        bad.verify_receipts(&receipts),
        Err(BlockError::LogsBloomMismatch)
    );
    let mut bad = good.clone();
    bad.header.gas_used = 79_999;
    assert!(matches!(
        bad.verify_receipts(&receipts),
        Err(BlockError::GasUsedMismatch { .. })
    ));
    let mut bad = good;
    bad.header.gas_limit = 79_999;
    assert!(matches!(
        bad.verify_receipts(&receipts),
        Err(BlockError::GasLimitExceeded { .. })
    ));
}

// ---------------------------------------------------------------- amounts

#[test]
fn amounts_parse_exactly() {
    let wei = |s: &str| Wei::parse_btt(s).map(Wei::as_u256);
    assert_eq!(wei("1.5"), Ok(U256::from(1_500_000_000_000_000_000u128)));
    assert_eq!(wei("0"), Ok(U256::ZERO));
    assert_eq!(wei("0.000000000000000001"), Ok(U256::from(1)));
    assert_eq!(wei("007.10"), Ok(U256::from(7_100_000_000_000_000_000u128)));
    assert_eq!(Wei::parse_btt("2"), Ok(Wei::from_btt(2)));
    // The largest value: floor(MAX / 10^18) BTT and MAX % 10^18 wei.
    let max = U256::MAX;
    let text = format!(
        "{}.{:0>18}",
        max / WEI_PER_BTT,
        (max % WEI_PER_BTT).to_string()
    );
    assert_eq!(wei(&text), Ok(max));
    assert_eq!(Wei(max).to_btt_string(), text);
}

#[test]
fn amounts_refuse_bad_text() {
    let err = |s: &str| Wei::parse_btt(s).unwrap_err();
    assert_eq!(err(""), AmountError::Empty);
    assert_eq!(err("-1"), AmountError::Negative);
    assert_eq!(
        err("0.0000000000000000001"),
        AmountError::TooManyDecimals(19)
    );
    assert_eq!(
        err("1.5000000000000000000"),
        AmountError::TooManyDecimals(19)
    );
    assert_eq!(err(".5"), AmountError::MissingDigits);
    assert_eq!(err("1."), AmountError::MissingDigits);
    assert_eq!(err("."), AmountError::MissingDigits);
    assert_eq!(
        err("1.2.3"),
        AmountError::InvalidCharacter {
            found: '.',
            position: 3
        }
    );
    assert_eq!(
        err(" 1"),
        AmountError::InvalidCharacter {
            found: ' ',
            position: 0
        }
    );
    assert_eq!(
        err("+1"),
        AmountError::InvalidCharacter {
            found: '+',
            position: 0
        }
    );
    assert_eq!(
        err("1e18"),
        AmountError::InvalidCharacter {
            found: 'e',
            position: 1
        }
    );
    assert_eq!(
        err("١"), // Arabic-Indic digit one: not ASCII
        AmountError::InvalidCharacter {
            found: '١',
            position: 0
        }
    );
    // One wei above the maximum, and a whole part that overflows before scaling.
    let max = U256::MAX;
    let over = format!(
        "{}.{:0>18}",
        max / WEI_PER_BTT,
        (max % WEI_PER_BTT + U256::from(1)).to_string()
    );
    assert_eq!(err(&over), AmountError::Overflow);
    assert_eq!(err(&"9".repeat(100)), AmountError::Overflow);
    assert_eq!(
        err(&format!("1.{}", "9".repeat(100))),
        AmountError::TooManyDecimals(100)
    );
}

#[test]
fn amounts_format_without_trailing_zeros() {
    assert_eq!(Wei::ZERO.to_btt_string(), "0");
    assert_eq!(Wei::ONE_BTT.to_btt_string(), "1");
    assert_eq!(Wei::from_wei(1).to_btt_string(), "0.000000000000000001");
    assert_eq!(
        Wei::from_wei(1_500_000_000_000_000_000).to_string(),
        "1.5 BTT"
    );
    assert_eq!(
        Wei::from_wei(10_000_000_000_000_000_010).to_btt_string(),
        "10.00000000000000001"
    );
    assert_eq!(Wei::from_btt(3).checked_sub(Wei::from_btt(4)), None);
    assert_eq!(Wei(U256::MAX).checked_add(Wei::from_wei(1)), None);
    assert_eq!(Wei::from_wei(3).checked_mul(7), Some(Wei::from_wei(21)));
    for text in [
        "0.1",
        "123.456",
        "0.000000000000000001",
        "18446744073709551616.999999999999999999",
    ] {
        assert_eq!(Wei::parse_btt(text).unwrap().to_btt_string(), text);
    }
}

#[test]
fn cached_recovery_trusts_known_senders_and_still_validates() {
    let tx = sign(type2_tx());
    let hash = *tx.tx_hash();
    let elsewhere = address!("00000000000000000000000000000000000000aa");
    // A sender known for this hash is taken as is (no recovery) ...
    let known = recover_tx_cached(tx.clone(), &rules(), |h| (*h == hash).then_some(elsewhere));
    assert_eq!(known.unwrap().sender(), elsewhere);
    // ... an unknown one is recovered ...
    let recovered = recover_tx_cached(tx.clone(), &rules(), |_| None).unwrap();
    assert_eq!(recovered.sender(), SENDER);
    // ... and the stateless rules apply either way.
    let other_chain = TxRules::new(CHAIN + 1, BLOCK_GAS);
    assert!(recover_tx_cached(tx, &other_chain, |_| Some(elsewhere)).is_err());
}
