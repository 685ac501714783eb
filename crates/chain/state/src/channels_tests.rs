//! Payment-channel module tests: fixed vectors for the voucher digest, scenarios through real
//! signed transactions with exact balances, refusals that change nothing, journaling through a
//! reverting contract and out of gas, and a model-checked property test over random sequences.

use alloy_consensus::crypto::secp256k1::sign_message;
use alloy_consensus::{SignableTransaction, TxEip1559};
use alloy_primitives::{address, b256, hex, Address, Bytes, Log, TxKind, B256, U256};
use alloy_sol_types::{SolCall, SolEvent};
use chain_types::{recover_tx, RecoveredTx, TxEnvelope, TxRules};

use crate::*;

const GAS: u64 = 300_000;
/// Block time of the first block, seconds.
const T0: u64 = 1_700_000_000;
const PROPOSER: Address = address!("00000000000000000000000000000000000b10c0");
/// The order of secp256k1, to build high-`s` twins of valid signatures.
const SECP256K1_ORDER: U256 = U256::from_be_bytes(hex!(
    "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141"
));

fn key(n: u8) -> B256 {
    B256::repeat_byte(n)
}

fn eth(n: u64) -> U256 {
    U256::from(n) * U256::from(10u64).pow(U256::from(18))
}

fn sign_tx(k: B256, tx: TxEip1559) -> RecoveredTx {
    let sig = sign_message(k, tx.signature_hash()).unwrap();
    let envelope: TxEnvelope = tx.into_signed(sig).into();
    recover_tx(envelope, &TxRules::new(DEVNET_CHAIN_ID, 30_000_000)).unwrap()
}

/// The address of key `k`, recovered by chain-types from a signed transaction (independent of
/// the module's own recovery).
fn address_of(k: B256) -> Address {
    let tx = TxEip1559 {
        chain_id: DEVNET_CHAIN_ID,
        to: TxKind::Call(Address::ZERO),
        gas_limit: 21_000,
        ..Default::default()
    };
    sign_tx(k, tx).sender()
}

/// A 65-byte `r ‖ s ‖ v` voucher signature by `k` over the given domain.
fn voucher_sig(k: B256, chain_id: u64, module: Address, id: B256, cumulative: U256) -> Vec<u8> {
    let digest = voucher_digest(chain_id, module, id, cumulative);
    sign_message(k, B256::from(digest))
        .unwrap()
        .as_bytes()
        .to_vec()
}

/// The high-`s` twin of a valid signature: recovers to the same key under plain `ecrecover`.
fn high_s_twin(sig: &[u8]) -> Vec<u8> {
    let s = U256::from_be_slice(&sig[32..64]);
    let mut out = sig.to_vec();
    out[32..64].copy_from_slice(&(SECP256K1_ORDER - s).to_be_bytes::<32>());
    out[64] = if sig[64] == 27 { 28 } else { 27 };
    out
}

/// What one transaction did.
#[derive(Debug)]
struct Sent {
    success: bool,
    /// Its fee in wei (gas used × the price).
    fee: U256,
    logs: Vec<Log>,
}

/// A chain with funded accounts `1..=n` (100 BTT each) and a clock in seconds.
struct Chain {
    ex: Executor,
    state: MemoryState,
    nonces: Vec<u64>,
    now: u64,
    number: u64,
    base_fee: u64,
}

impl Chain {
    fn new(n: u8, base_fee: u64) -> Self {
        let ex = Executor::new(ChainParams::default());
        let alloc: Vec<_> = (1..=n).map(|i| (address_of(key(i)), eth(100))).collect();
        let mut state = MemoryState::new();
        state.apply(&ex.genesis(&alloc).unwrap());
        Self {
            ex,
            state,
            nonces: vec![0; usize::from(n) + 1],
            now: T0,
            number: 1,
            base_fee,
        }
    }

    fn env(&self) -> BlockEnv {
        BlockEnv {
            number: self.number,
            timestamp_ms: self.now * 1000,
            proposer: PROPOSER,
            base_fee: self.base_fee,
            gas_limit: 30_000_000,
        }
    }

    fn tx(
        &mut self,
        from: u8,
        to: Option<Address>,
        value: U256,
        gas: u64,
        input: Vec<u8>,
    ) -> RecoveredTx {
        let nonce = &mut self.nonces[usize::from(from)];
        let tx = TxEip1559 {
            chain_id: DEVNET_CHAIN_ID,
            nonce: *nonce,
            gas_limit: gas,
            max_fee_per_gas: u128::from(self.base_fee),
            max_priority_fee_per_gas: 0,
            to: to.map_or(TxKind::Create, TxKind::Call),
            value,
            access_list: Default::default(),
            input: input.into(),
        };
        *nonce += 1;
        sign_tx(key(from), tx)
    }

    /// Executes `txs` as one block (built, then re-executed as a validator would) and applies it.
    fn block(&mut self, txs: Vec<RecoveredTx>) -> Vec<Sent> {
        let env = self.env();
        let n = txs.len();
        let built = self.ex.build(&self.state, &env, txs).unwrap();
        assert!(built.rejected.is_empty(), "rejected: {:?}", built.rejected);
        assert_eq!(built.txs.len(), n);
        let executed = self.ex.execute(&self.state, &env, &built.txs).unwrap();
        assert_eq!(executed, built.executed);
        self.state.apply(&executed.changes);
        self.number += 1;
        let mut previous = 0;
        executed
            .receipts
            .iter()
            .map(|r| {
                let gas = r.cumulative_gas_used() - previous;
                previous = r.cumulative_gas_used();
                Sent {
                    success: r.success(),
                    fee: U256::from(gas) * U256::from(self.base_fee),
                    logs: r.logs().to_vec(),
                }
            })
            .collect()
    }

    /// Sends one call to the channel module in its own block.
    fn send<C: SolCall>(&mut self, from: u8, value: U256, call: C) -> Sent {
        let tx = self.tx(from, Some(CHANNELS_ADDRESS), value, GAS, call.abi_encode());
        self.block(vec![tx]).pop().unwrap()
    }

    /// The revert reason an `eth_call` of `call` from `from` gives, or `None` if it succeeds.
    fn dry_run<C: SolCall>(&self, from: u8, value: U256, call: &C) -> Option<String> {
        let req = CallRequest {
            from: Some(address_of(key(from))),
            to: Some(CHANNELS_ADDRESS),
            value: Some(value),
            input: Some(call.abi_encode().into()),
            ..Default::default()
        };
        match self.ex.call(&self.state, &self.env(), &req) {
            Ok(_) => None,
            Err(e) => Some(e.revert_reason().unwrap_or_else(|| e.to_string())),
        }
    }

    fn view<C: SolCall>(&self, call: C) -> C::Return {
        let req = CallRequest {
            to: Some(CHANNELS_ADDRESS),
            input: Some(call.abi_encode().into()),
            ..Default::default()
        };
        let out = self.ex.call(&self.state, &self.env(), &req).unwrap();
        C::abi_decode_returns(&out.output).unwrap()
    }

    fn channel(&self, id: B256) -> IChannels::channelReturn {
        self.view(IChannels::channelCall { channelId: id })
    }

    fn balance(&self, a: Address) -> U256 {
        self.state
            .account(&a)
            .unwrap()
            .map(|a| a.balance)
            .unwrap_or_default()
    }

    fn sum_of_balances(&self) -> U256 {
        self.state
            .accounts()
            .fold(U256::ZERO, |acc, (_, a)| acc + a.balance)
    }

    fn supply(&self) -> U256 {
        self.state
            .storage(&BANK_ADDRESS, &BANK_TOTAL_SUPPLY_SLOT)
            .unwrap()
    }
}

fn open_call(payee: Address, signer: Address, salt: u8, expiry: u64) -> IChannels::openCall {
    IChannels::openCall {
        payee,
        signer,
        salt: B256::repeat_byte(salt),
        expiry,
    }
}

/// The revert reason as `eth_call` reports it.
fn reason(e: ChannelError) -> Option<String> {
    Some(format!("revert: {e}"))
}

// --- Fixed vectors ---------------------------------------------------------------------------

/// The digest, signature and channel id below were computed with Python's eth_account 0.14.0
/// and eth_abi, independently of this crate:
///
/// ```python
/// data = {"types": {"EIP712Domain": [name string, version string, chainId uint256,
///                                    verifyingContract address],
///                   "Voucher": [channelId bytes32, cumulative uint256]},
///         "primaryType": "Voucher",
///         "domain": {"name": "BTT Speed", "version": "1", "chainId": 7215,
///                    "verifyingContract": "0x0000000000000000000000000000000000b77003"},
///         "message": {"channelId": bytes.fromhex("11" * 32), "cumulative": 1234567890123456789}}
/// Account.sign_typed_data(bytes([0x42] * 32), full_message=data)   # message_hash, signature
/// keccak(eth_abi.encode(["uint256", "address", "address", "address", "address", "bytes32"],
///        [7215, module, 0x…a1, 0x…b2, 0x…c3, bytes.fromhex("22" * 32)]))
/// ```
#[test]
fn voucher_digest_and_channel_id_match_eth_account() {
    let digest = voucher_digest(
        7215,
        CHANNELS_ADDRESS,
        B256::repeat_byte(0x11),
        U256::from(1_234_567_890_123_456_789u64),
    );
    assert_eq!(
        B256::from(digest),
        b256!("4747da3fcf8da6bb88138a6a1267f0e1e4efdc05d131bc06b591aa8ec1ce3a91")
    );
    let sig = hex!(
        "5f9a167131978a89be7c61bb83212e27c7d5983d10e56b1b66d4644ca76e9386"
        "1e825e446c0d7b50ea2ed7dd742b600fa1638ea5efa0211d116b25ce7a846340"
        "1c"
    );
    let signer = address!("17c5185167401eD00cF5F5b2fc97D9BBfDb7D025");
    assert_eq!(recover_signer(&digest, &sig), Ok(signer));
    assert_eq!(address_of(key(0x42)), signer);
    // libsecp256k1 signs deterministically (RFC 6979) like eth_account.
    assert_eq!(
        voucher_sig(
            key(0x42),
            7215,
            CHANNELS_ADDRESS,
            B256::repeat_byte(0x11),
            U256::from(1_234_567_890_123_456_789u64)
        ),
        sig.to_vec()
    );

    let id = channel_id(
        7215,
        CHANNELS_ADDRESS,
        address!("00000000000000000000000000000000000000a1"),
        address!("00000000000000000000000000000000000000b2"),
        address!("00000000000000000000000000000000000000c3"),
        B256::repeat_byte(0x22),
    );
    assert_eq!(
        id,
        b256!("39821ed21710a96abb565db83cff33dc21598a28d26295e955eaf297f3ef7b6f")
    );
}

#[test]
fn recover_signer_is_total_and_strict() {
    let digest = [9u8; 32];
    let sig = sign_message(key(7), B256::from(digest)).unwrap().as_bytes();
    assert_eq!(recover_signer(&digest, &sig), Ok(address_of(key(7))));
    // Wrong lengths, bad v, zero r or s, high s.
    for bad in [
        &sig[..64],
        &[sig.as_slice(), &[0]].concat()[..],
        &[0u8; 65][..],
        &[0xffu8; 65][..],
    ] {
        assert_eq!(
            recover_signer(&digest, bad),
            Err(ChannelError::BadSignature)
        );
    }
    for v in [0u8, 1, 26, 29] {
        let mut s = sig;
        s[64] = v;
        assert_eq!(recover_signer(&digest, &s), Err(ChannelError::BadSignature));
    }
    assert_eq!(
        recover_signer(&digest, &high_s_twin(&sig)),
        Err(ChannelError::BadSignature)
    );
}

#[test]
fn module_is_registered_at_module_3() {
    assert_eq!(CHANNELS_ADDRESS, module_address(3));
    let chain = Chain::new(1, GWEI);
    assert!(chain.ex.module_addresses().any(|a| a == CHANNELS_ADDRESS));
    let account = chain.state.account(&CHANNELS_ADDRESS).unwrap().unwrap();
    assert_eq!(account.nonce, 1);
    assert_eq!(
        chain.view(IChannels::domainSeparatorCall {}),
        B256::from(domain_separator(DEVNET_CHAIN_ID, CHANNELS_ADDRESS))
    );
    let (payer, payee, signer) = (address_of(key(1)), address_of(key(2)), address_of(key(3)));
    assert_eq!(
        chain.view(IChannels::channelIdOfCall {
            payer,
            payee,
            signer,
            salt: B256::repeat_byte(5)
        }),
        channel_id(
            DEVNET_CHAIN_ID,
            CHANNELS_ADDRESS,
            payer,
            payee,
            signer,
            B256::repeat_byte(5)
        )
    );
    // Unknown ids read as all zero.
    let none = chain.channel(B256::repeat_byte(1));
    assert_eq!(none.payer, Address::ZERO);
    assert!(!none.open);
}

// --- Scenarios -------------------------------------------------------------------------------

const PAYER: u8 = 1;
const PAYEE: u8 = 2;
const OTHER: u8 = 3;
const SIGNER_KEY: u8 = 0x51;

struct Opened {
    chain: Chain,
    id: B256,
    payer: Address,
    payee: Address,
    other: Address,
    deposit: U256,
    expiry: u64,
}

/// A chain where PAYER opened a 1 BTT channel to PAYEE, expiring in an hour.
fn opened() -> Opened {
    let mut chain = Chain::new(3, GWEI);
    let (payer, payee, other) = (
        address_of(key(PAYER)),
        address_of(key(PAYEE)),
        address_of(key(OTHER)),
    );
    let signer = address_of(key(SIGNER_KEY));
    let deposit = eth(1);
    let expiry = T0 + 3600;
    let before = chain.balance(payer);
    let supply = chain.supply();
    let sent = chain.send(PAYER, deposit, open_call(payee, signer, 1, expiry));
    assert!(sent.success);
    // Gas budget for wallets: about 127k (five fresh slots and a log).
    assert!(sent.fee < U256::from(140_000u64 * GWEI));
    let id = channel_id(
        DEVNET_CHAIN_ID,
        CHANNELS_ADDRESS,
        payer,
        payee,
        signer,
        B256::repeat_byte(1),
    );
    assert_eq!(chain.balance(payer), before - deposit - sent.fee);
    assert_eq!(chain.balance(CHANNELS_ADDRESS), deposit);
    // Only the fee was destroyed.
    assert_eq!(chain.supply(), supply - sent.fee);
    assert_eq!(chain.sum_of_balances(), chain.supply());
    // The event.
    assert_eq!(sent.logs.len(), 1);
    assert_eq!(sent.logs[0].address, CHANNELS_ADDRESS);
    let ev = IChannels::ChannelOpened::decode_log_data(&sent.logs[0].data).unwrap();
    assert_eq!(
        (
            ev.channelId,
            ev.payer,
            ev.payee,
            ev.signer,
            ev.deposit,
            ev.expiry
        ),
        (id, payer, payee, signer, deposit, expiry)
    );
    let ch = chain.channel(id);
    assert_eq!(
        (ch.payer, ch.payee, ch.signer, ch.deposit, ch.paid, ch.expiry, ch.open),
        (payer, payee, signer, deposit, U256::ZERO, expiry, true)
    );
    Opened {
        chain,
        id,
        payer,
        payee,
        other,
        deposit,
        expiry,
    }
}

fn sig_for(id: B256, cumulative: U256) -> Bytes {
    voucher_sig(
        key(SIGNER_KEY),
        DEVNET_CHAIN_ID,
        CHANNELS_ADDRESS,
        id,
        cumulative,
    )
    .into()
}

fn claim(id: B256, cumulative: U256, sig: Bytes) -> IChannels::claimCall {
    IChannels::claimCall {
        channelId: id,
        cumulative,
        sig,
    }
}

#[test]
fn open_claim_twice_then_claim_and_close() {
    let Opened {
        mut chain,
        id,
        payer,
        payee,
        other,
        deposit,
        ..
    } = opened();
    let payer_start = chain.balance(payer);
    let payee_start = chain.balance(payee);
    let other_start = chain.balance(other);

    // A third party submits the first voucher: the payee gets 0.3 BTT.
    let c1 = eth(3) / U256::from(10);
    let sent = chain.send(OTHER, U256::ZERO, claim(id, c1, sig_for(id, c1)));
    assert!(sent.success);
    // About 70k: six reads, the signature check, one write, one transfer.
    assert!(sent.fee < U256::from(80_000u64 * GWEI));
    assert_eq!(chain.balance(payee), payee_start + c1);
    assert_eq!(chain.balance(other), other_start - sent.fee);
    assert_eq!(chain.balance(CHANNELS_ADDRESS), deposit - c1);
    let ev = IChannels::ChannelClaimed::decode_log_data(&sent.logs[0].data).unwrap();
    assert_eq!(
        (ev.channelId, ev.payee, ev.amount, ev.cumulative),
        (id, payee, c1, c1)
    );

    // The payee submits the second: only the delta is paid.
    let c2 = eth(7) / U256::from(10);
    let sent = chain.send(PAYEE, U256::ZERO, claim(id, c2, sig_for(id, c2)));
    assert!(sent.success);
    let payee_now = payee_start + c2 - sent.fee;
    assert_eq!(chain.balance(payee), payee_now);
    assert_eq!(chain.balance(CHANNELS_ADDRESS), deposit - c2);
    let ch = chain.channel(id);
    assert_eq!((ch.paid, ch.open), (c2, true));

    // The payee closes with a third voucher: 0.1 more to the payee, 0.2 back to the payer.
    let c3 = eth(8) / U256::from(10);
    let sent = chain.send(
        PAYEE,
        U256::ZERO,
        IChannels::claimAndCloseCall {
            channelId: id,
            cumulative: c3,
            sig: sig_for(id, c3),
        },
    );
    assert!(sent.success);
    assert!(sent.fee < U256::from(110_000u64 * GWEI));
    assert_eq!(chain.balance(payee), payee_now + (c3 - c2) - sent.fee);
    assert_eq!(chain.balance(payer), payer_start + (deposit - c3));
    assert_eq!(chain.balance(CHANNELS_ADDRESS), U256::ZERO);
    assert_eq!(sent.logs.len(), 2);
    let closed = IChannels::ChannelClosed::decode_log_data(&sent.logs[1].data).unwrap();
    assert_eq!(
        (closed.channelId, closed.paid, closed.refund),
        (id, c3, deposit - c3)
    );
    let ch = chain.channel(id);
    assert_eq!((ch.deposit, ch.paid, ch.open), (deposit, c3, false));
    assert_eq!(chain.sum_of_balances(), chain.supply());

    // Closed for good: no more claims, and the id can never be opened again.
    assert_eq!(
        chain.dry_run(PAYEE, U256::ZERO, &claim(id, deposit, sig_for(id, deposit))),
        reason(ChannelError::Closed(id))
    );
    let signer = address_of(key(SIGNER_KEY));
    assert_eq!(
        chain.dry_run(PAYER, eth(1), &open_call(payee, signer, 1, T0 + 7200)),
        reason(ChannelError::AlreadyExists(id))
    );
}

#[test]
fn top_up_and_extend() {
    let Opened {
        mut chain,
        id,
        payer,
        deposit,
        expiry,
        ..
    } = opened();
    let start = chain.balance(payer);
    let sent = chain.send(PAYER, eth(2), IChannels::topUpCall { channelId: id });
    assert!(sent.success);
    assert_eq!(chain.balance(payer), start - eth(2) - sent.fee);
    assert_eq!(chain.balance(CHANNELS_ADDRESS), deposit + eth(2));
    let ev = IChannels::ChannelToppedUp::decode_log_data(&sent.logs[0].data).unwrap();
    assert_eq!((ev.amount, ev.deposit), (eth(2), deposit + eth(2)));
    assert_eq!(chain.channel(id).deposit, deposit + eth(2));

    // A voucher for more than the first deposit is now good.
    let c = eth(2);
    assert!(
        chain
            .send(OTHER, U256::ZERO, claim(id, c, sig_for(id, c)))
            .success
    );

    let sent = chain.send(
        PAYER,
        U256::ZERO,
        IChannels::extendCall {
            channelId: id,
            newExpiry: expiry + 10,
        },
    );
    assert!(sent.success);
    let ev = IChannels::ChannelExtended::decode_log_data(&sent.logs[0].data).unwrap();
    assert_eq!(ev.expiry, expiry + 10);
    assert_eq!(chain.channel(id).expiry, expiry + 10);
    assert_eq!(
        chain.dry_run(
            PAYER,
            U256::ZERO,
            &IChannels::extendCall {
                channelId: id,
                newExpiry: expiry + 10
            }
        ),
        reason(ChannelError::ExpiryNotLater {
            new: expiry + 10,
            current: expiry + 10
        })
    );
    // Claims work until the new expiry.
    chain.now = expiry + 5;
    let c = eth(2) + U256::ONE;
    assert!(
        chain
            .send(PAYEE, U256::ZERO, claim(id, c, sig_for(id, c)))
            .success
    );
}

#[test]
fn reclaim_after_expiry_and_no_claim_after_it() {
    let Opened {
        mut chain,
        id,
        payer,
        payee,
        deposit,
        expiry,
        ..
    } = opened();
    let c = U256::from(123_456u64);
    assert!(
        chain
            .send(PAYEE, U256::ZERO, claim(id, c, sig_for(id, c)))
            .success
    );

    // Too early to reclaim, one second before the expiry.
    chain.now = expiry - 1;
    let early = IChannels::reclaimCall { channelId: id };
    assert_eq!(
        chain.dry_run(PAYER, U256::ZERO, &early),
        reason(ChannelError::NotExpired {
            id,
            expiry,
            now: expiry - 1
        })
    );

    // At the expiry: claims, top-ups and extensions are refused, the payer reclaims.
    chain.now = expiry;
    let c2 = U256::from(200_000u64);
    let payee_before = chain.balance(payee);
    assert_eq!(
        chain.dry_run(PAYEE, U256::ZERO, &claim(id, c2, sig_for(id, c2))),
        reason(ChannelError::Expired {
            id,
            expiry,
            now: expiry
        })
    );
    let sent = chain.send(PAYEE, U256::ZERO, claim(id, c2, sig_for(id, c2)));
    assert!(!sent.success);
    assert_eq!(chain.balance(payee), payee_before - sent.fee);
    assert_eq!(chain.balance(CHANNELS_ADDRESS), deposit - c);
    assert_eq!(
        chain.dry_run(PAYER, U256::ONE, &IChannels::topUpCall { channelId: id }),
        reason(ChannelError::Expired {
            id,
            expiry,
            now: expiry
        })
    );

    // Someone else cannot reclaim.
    assert_eq!(
        chain.dry_run(OTHER, U256::ZERO, &early),
        reason(ChannelError::NotPayer(payer))
    );
    let payer_before = chain.balance(payer);
    let sent = chain.send(PAYER, U256::ZERO, early.clone());
    assert!(sent.success);
    assert_eq!(
        chain.balance(payer),
        payer_before + (deposit - c) - sent.fee
    );
    assert_eq!(chain.balance(CHANNELS_ADDRESS), U256::ZERO);
    let closed = IChannels::ChannelClosed::decode_log_data(&sent.logs[0].data).unwrap();
    assert_eq!((closed.paid, closed.refund), (c, deposit - c));
    assert!(!chain.channel(id).open);
    // Twice is refused.
    assert_eq!(
        chain.dry_run(PAYER, U256::ZERO, &early),
        reason(ChannelError::Closed(id))
    );
}

/// Sends `call` from `from` expecting the revert `want`; checks that nothing but the sender's
/// fee changed.
fn refused<C: SolCall + Clone>(
    chain: &mut Chain,
    id: B256,
    from: u8,
    value: U256,
    call: C,
    want: ChannelError,
) {
    assert_eq!(
        chain.dry_run(from, value, &call),
        reason(want.clone()),
        "{want}"
    );
    let watched: Vec<Address> = (1..=3)
        .map(|i| address_of(key(i)))
        .chain([CHANNELS_ADDRESS, PROPOSER])
        .collect();
    let before: Vec<U256> = watched.iter().map(|a| chain.balance(*a)).collect();
    let record = chain.channel(id);
    let supply = chain.supply();
    let sent = chain.send(from, value, call);
    assert!(!sent.success, "{want}");
    assert!(sent.logs.is_empty());
    let sender = address_of(key(from));
    for (a, b) in watched.iter().zip(before) {
        let want_balance = if *a == sender { b - sent.fee } else { b };
        assert_eq!(
            chain.balance(*a),
            want_balance,
            "balance of {a} after: {want}"
        );
    }
    let after = chain.channel(id);
    assert_eq!(
        (after.deposit, after.paid, after.expiry, after.open),
        (record.deposit, record.paid, record.expiry, record.open)
    );
    assert_eq!(chain.supply(), supply - sent.fee);
}

#[test]
fn bad_vouchers_and_wrong_callers_revert_and_change_nothing() {
    let Opened {
        mut chain,
        id,
        payer,
        payee,
        deposit,
        expiry,
        ..
    } = opened();
    let signer = address_of(key(SIGNER_KEY));
    // A second channel with the same signer, so a voucher for it is well signed.
    assert!(
        chain
            .send(PAYER, eth(1), open_call(payee, signer, 2, expiry))
            .success
    );
    let other_id = channel_id(
        DEVNET_CHAIN_ID,
        CHANNELS_ADDRESS,
        payer,
        payee,
        signer,
        B256::repeat_byte(2),
    );
    let c = U256::from(1_000u64);
    assert!(
        chain
            .send(PAYEE, U256::ZERO, claim(id, c, sig_for(id, c)))
            .success
    );

    let c2 = U256::from(5_000u64);
    // Forged: signed by the payer's wallet key instead of the channel's signer.
    let forged = voucher_sig(key(PAYER), DEVNET_CHAIN_ID, CHANNELS_ADDRESS, id, c2);
    refused(
        &mut chain,
        id,
        PAYEE,
        U256::ZERO,
        claim(id, c2, forged.into()),
        ChannelError::WrongSigner {
            recovered: payer,
            signer,
        },
    );
    // Replays of a good signature elsewhere recover to some unrelated key.
    let wrong = |sig: Vec<u8>, cumulative: U256| {
        let digest = voucher_digest(DEVNET_CHAIN_ID, CHANNELS_ADDRESS, id, cumulative);
        ChannelError::WrongSigner {
            recovered: recover_signer(&digest, &sig).unwrap(),
            signer,
        }
    };
    let for_other_channel = sig_for(other_id, c2).to_vec();
    refused(
        &mut chain,
        id,
        OTHER,
        U256::ZERO,
        claim(id, c2, for_other_channel.clone().into()),
        wrong(for_other_channel, c2),
    );
    let other_chain = voucher_sig(
        key(SIGNER_KEY),
        DEVNET_CHAIN_ID + 1,
        CHANNELS_ADDRESS,
        id,
        c2,
    );
    refused(
        &mut chain,
        id,
        OTHER,
        U256::ZERO,
        claim(id, c2, other_chain.clone().into()),
        wrong(other_chain, c2),
    );
    let other_module = voucher_sig(key(SIGNER_KEY), DEVNET_CHAIN_ID, module_address(4), id, c2);
    refused(
        &mut chain,
        id,
        OTHER,
        U256::ZERO,
        claim(id, c2, other_module.clone().into()),
        wrong(other_module, c2),
    );
    // A good signature over another amount.
    let tampered = sig_for(id, c2).to_vec();
    refused(
        &mut chain,
        id,
        OTHER,
        U256::ZERO,
        claim(id, c2 + U256::ONE, tampered.clone().into()),
        wrong(tampered, c2 + U256::ONE),
    );
    // The high-s twin of a good signature, and garbage.
    refused(
        &mut chain,
        id,
        OTHER,
        U256::ZERO,
        claim(id, c2, high_s_twin(&sig_for(id, c2)).into()),
        ChannelError::BadSignature,
    );
    refused(
        &mut chain,
        id,
        OTHER,
        U256::ZERO,
        claim(id, c2, Bytes::from_static(b"not a signature")),
        ChannelError::BadSignature,
    );
    // Replayed older (and equal) cumulative.
    for old in [U256::from(999u64), c] {
        refused(
            &mut chain,
            id,
            PAYEE,
            U256::ZERO,
            claim(id, old, sig_for(id, old)),
            ChannelError::Stale {
                cumulative: old,
                paid: c,
            },
        );
    }
    // More than the deposit, even well signed.
    let over = deposit + U256::ONE;
    refused(
        &mut chain,
        id,
        PAYEE,
        U256::ZERO,
        claim(id, over, sig_for(id, over)),
        ChannelError::OverDeposit {
            cumulative: over,
            deposit,
        },
    );
    // Wrong callers.
    refused(
        &mut chain,
        id,
        OTHER,
        eth(1),
        IChannels::topUpCall { channelId: id },
        ChannelError::NotPayer(payer),
    );
    refused(
        &mut chain,
        id,
        PAYEE,
        U256::ZERO,
        IChannels::extendCall {
            channelId: id,
            newExpiry: expiry + 100,
        },
        ChannelError::NotPayer(payer),
    );
    refused(
        &mut chain,
        id,
        PAYER,
        U256::ZERO,
        IChannels::claimAndCloseCall {
            channelId: id,
            cumulative: c2,
            sig: sig_for(id, c2),
        },
        ChannelError::NotPayee(payee),
    );
    chain.now = expiry;
    refused(
        &mut chain,
        id,
        PAYEE,
        U256::ZERO,
        IChannels::reclaimCall { channelId: id },
        ChannelError::NotPayer(payer),
    );
    // And the channel still works for the right people.
    assert!(
        chain
            .send(PAYER, U256::ZERO, IChannels::reclaimCall { channelId: id })
            .success
    );
}

#[test]
fn open_refusals() {
    let mut chain = Chain::new(3, GWEI);
    let (payee, signer) = (address_of(key(PAYEE)), address_of(key(SIGNER_KEY)));
    let none = B256::ZERO;
    let cases = [
        (
            U256::ZERO,
            open_call(payee, signer, 1, T0 + 1),
            ChannelError::NoDeposit,
        ),
        (
            U256::ONE,
            open_call(Address::ZERO, signer, 1, T0 + 1),
            ChannelError::ZeroAddress("payee"),
        ),
        (
            U256::ONE,
            open_call(payee, Address::ZERO, 1, T0 + 1),
            ChannelError::ZeroAddress("signer"),
        ),
        (
            U256::ONE,
            open_call(CHANNELS_ADDRESS, signer, 1, T0 + 1),
            ChannelError::PayeeIsModule,
        ),
        (
            U256::ONE,
            open_call(payee, signer, 1, T0),
            ChannelError::ExpiryNotFuture {
                expiry: T0,
                now: T0,
            },
        ),
    ];
    for (value, call, want) in cases {
        refused(&mut chain, none, PAYER, value, call, want);
    }
    // Value is refused where it is not expected, and unknown calls are refused.
    refused(
        &mut chain,
        none,
        PAYER,
        U256::ONE,
        claim(none, U256::ONE, Bytes::new()),
        ChannelError::NotPayable,
    );
    refused(
        &mut chain,
        none,
        PAYER,
        U256::ZERO,
        claim(none, U256::ONE, Bytes::new()),
        ChannelError::Unknown(none),
    );
    refused(
        &mut chain,
        none,
        PAYER,
        U256::ZERO,
        abi::IBank::totalSupplyCall {},
        ChannelError::BadCall("0x18160ddd".into()),
    );
    // The one that works, then the same id again.
    assert!(
        chain
            .send(PAYER, U256::ONE, open_call(payee, signer, 1, T0 + 1))
            .success
    );
    let id = channel_id(
        DEVNET_CHAIN_ID,
        CHANNELS_ADDRESS,
        address_of(key(PAYER)),
        payee,
        signer,
        B256::repeat_byte(1),
    );
    refused(
        &mut chain,
        id,
        PAYER,
        U256::ONE,
        open_call(payee, signer, 1, T0 + 10),
        ChannelError::AlreadyExists(id),
    );
}

#[test]
fn claim_and_close_without_a_new_voucher_refunds_the_rest() {
    let Opened {
        mut chain,
        id,
        payer,
        deposit,
        ..
    } = opened();
    let payer_before = chain.balance(payer);
    // Nothing was ever paid: the payee releases the whole deposit with no signature.
    let sent = chain.send(
        PAYEE,
        U256::ZERO,
        IChannels::claimAndCloseCall {
            channelId: id,
            cumulative: U256::ZERO,
            sig: Bytes::new(),
        },
    );
    assert!(sent.success);
    assert_eq!(chain.balance(payer), payer_before + deposit);
    assert_eq!(chain.balance(CHANNELS_ADDRESS), U256::ZERO);
    assert_eq!(sent.logs.len(), 1, "no claim event for a zero payment");
}

// --- Journaling ------------------------------------------------------------------------------

/// Creation code that deploys `runtime`.
fn initcode(runtime: &[u8]) -> Vec<u8> {
    let len = u8::try_from(runtime.len()).unwrap();
    // PUSH1 len, DUP1, PUSH1 9, PUSH0, CODECOPY, PUSH0, RETURN
    let mut code = vec![0x60, len, 0x80, 0x60, 0x09, 0x5f, 0x39, 0x5f, 0xf3];
    code.extend_from_slice(runtime);
    code
}

/// A contract that forwards its calldata and value to the channel module, then stops or
/// reverts whatever the module did.
fn forwarder(revert_after: bool) -> Vec<u8> {
    // CALLDATASIZE PUSH0 PUSH0 CALLDATACOPY
    let mut code = vec![0x36, 0x5f, 0x5f, 0x37];
    // CALL(GAS, module, CALLVALUE, 0, CALLDATASIZE, 0, 0)
    code.extend_from_slice(&[0x5f, 0x5f, 0x36, 0x5f, 0x34, 0x73]);
    code.extend_from_slice(CHANNELS_ADDRESS.as_slice());
    code.extend_from_slice(&[0x5a, 0xf1]);
    if revert_after {
        // PUSH0 PUSH0 REVERT
        code.extend_from_slice(&[0x5f, 0x5f, 0xfd]);
    } else {
        // STOP
        code.push(0x00);
    }
    code
}

#[test]
fn a_failed_call_reverts_the_module_effects() {
    let Opened {
        mut chain,
        id,
        payee,
        deposit,
        ..
    } = opened();
    let deployer = address_of(key(OTHER));
    let mut contracts = Vec::new();
    for revert_after in [true, false] {
        let nonce = chain.nonces[usize::from(OTHER)];
        let tx = chain.tx(
            OTHER,
            None,
            U256::ZERO,
            200_000,
            initcode(&forwarder(revert_after)),
        );
        assert!(chain.block(vec![tx])[0].success);
        contracts.push(deployer.create(nonce));
    }
    let c = U256::from(777u64);
    let input = claim(id, c, sig_for(id, c)).abi_encode();

    // The module pays inside, then the caller reverts: nothing happened.
    let payee_before = chain.balance(payee);
    let tx = chain.tx(OTHER, Some(contracts[0]), U256::ZERO, GAS, input.clone());
    let sent = chain.block(vec![tx]).pop().unwrap();
    assert!(!sent.success);
    assert_eq!(chain.balance(payee), payee_before);
    assert_eq!(chain.balance(CHANNELS_ADDRESS), deposit);
    assert_eq!(chain.channel(id).paid, U256::ZERO);

    // The same call through the forwarder that does not revert pays.
    let tx = chain.tx(OTHER, Some(contracts[1]), U256::ZERO, GAS, input);
    let sent = chain.block(vec![tx]).pop().unwrap();
    assert!(sent.success);
    assert_eq!(chain.balance(payee), payee_before + c);
    assert_eq!(chain.channel(id).paid, c);
    assert_eq!(sent.logs.len(), 1);

    // Out of gas part-way through claimAndClose (after the claim's writes): nothing happened.
    let c2 = U256::from(1_000u64);
    let close = IChannels::claimAndCloseCall {
        channelId: id,
        cumulative: c2,
        sig: sig_for(id, c2),
    };
    let req = CallRequest {
        from: Some(payee),
        to: Some(CHANNELS_ADDRESS),
        input: Some(close.abi_encode().into()),
        ..Default::default()
    };
    let needed = chain
        .ex
        .estimate_gas(&chain.state, &chain.env(), &req)
        .unwrap();
    let tx = chain.tx(
        PAYEE,
        Some(CHANNELS_ADDRESS),
        U256::ZERO,
        needed - 1_000,
        close.abi_encode(),
    );
    let payee_before = chain.balance(payee);
    let sent = chain.block(vec![tx]).pop().unwrap();
    assert!(!sent.success);
    assert_eq!(chain.balance(payee), payee_before - sent.fee);
    assert_eq!(chain.balance(CHANNELS_ADDRESS), deposit - c);
    let ch = chain.channel(id);
    assert_eq!((ch.paid, ch.open), (c, true));
    let tx = chain.tx(
        PAYEE,
        Some(CHANNELS_ADDRESS),
        U256::ZERO,
        needed,
        close.abi_encode(),
    );
    assert!(chain.block(vec![tx])[0].success);
    assert!(!chain.channel(id).open);
}

// --- Property test ---------------------------------------------------------------------------

/// SplitMix64: a tiny deterministic generator, so every seed replays exactly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// The model of one channel.
#[derive(Debug, Clone)]
struct ModelChannel {
    id: B256,
    payer: u8,
    payee: Address,
    signer_key: u8,
    deposit: U256,
    paid: U256,
    expiry: u64,
    open: bool,
    /// The highest cumulative the signer has handed out.
    issued: U256,
}

/// A voucher held off chain: `good_for` is the channel it is validly signed for.
#[derive(Debug, Clone)]
struct HeldVoucher {
    channel: B256,
    cumulative: U256,
    sig: Vec<u8>,
    good_for: Option<B256>,
}

/// Actors are accounts 1..=4; signer keys 0x51..=0x53.
const ACTORS: u8 = 4;

#[derive(Default)]
struct Model {
    channels: Vec<ModelChannel>,
    vouchers: Vec<HeldVoucher>,
    /// Expected balances of the actors and the module (fees are zero in this test).
    balances: std::collections::BTreeMap<Address, U256>,
    /// What the payees received from claims, to compare with Σ paid.
    received: U256,
}

impl Model {
    fn find(&mut self, id: B256) -> Option<&mut ModelChannel> {
        self.channels.iter_mut().find(|c| c.id == id)
    }

    fn credit(&mut self, a: Address, amount: U256) {
        *self.balances.entry(a).or_default() += amount;
    }

    fn debit(&mut self, a: Address, amount: U256) {
        let b = self.balances.entry(a).or_default();
        *b = b.checked_sub(amount).unwrap();
    }
}

/// One random step: a transaction with the model's prediction, or an off-chain voucher.
fn random_step(rng: &mut Rng, chain: &mut Chain, model: &mut Model) -> Option<(RecoveredTx, bool)> {
    let now = chain.now;
    let actor = 1 + rng.below(u64::from(ACTORS)) as u8;
    let known: Vec<B256> = model.channels.iter().map(|c| c.id).collect();
    let some_id = |rng: &mut Rng| {
        if known.is_empty() || rng.chance(5) {
            B256::repeat_byte(0xee)
        } else {
            *rng.pick(&known)
        }
    };
    let small = |rng: &mut Rng| U256::from(rng.below(1_000));
    let me = CHANNELS_ADDRESS;
    match rng.below(100) {
        // open
        0..=19 => {
            let payee = match rng.below(20) {
                0 => Address::ZERO,
                1 => me,
                _ => address_of(key(1 + rng.below(u64::from(ACTORS)) as u8)),
            };
            let signer_key = 0x51 + rng.below(3) as u8;
            let signer = if rng.chance(3) {
                Address::ZERO
            } else {
                address_of(key(signer_key))
            };
            let salt = rng.below(4) as u8;
            let expiry = (now + rng.below(120)).saturating_sub(5);
            let value = small(rng);
            let payer = address_of(key(actor));
            let id = channel_id(
                DEVNET_CHAIN_ID,
                me,
                payer,
                payee,
                signer,
                B256::repeat_byte(salt),
            );
            let ok = !value.is_zero()
                && !payee.is_zero()
                && !signer.is_zero()
                && payee != me
                && expiry > now
                && !known.contains(&id);
            if ok {
                model.channels.push(ModelChannel {
                    id,
                    payer: actor,
                    payee,
                    signer_key,
                    deposit: value,
                    paid: U256::ZERO,
                    expiry,
                    open: true,
                    issued: U256::ZERO,
                });
                model.debit(payer, value);
                model.credit(me, value);
            }
            let tx = chain.tx(
                actor,
                Some(me),
                value,
                GAS,
                open_call(payee, signer, salt, expiry).abi_encode(),
            );
            Some((tx, ok))
        }
        // topUp
        20..=29 => {
            let id = some_id(rng);
            let value = small(rng);
            let payer = address_of(key(actor));
            let ok = match model.find(id) {
                Some(c) => {
                    let ok = !value.is_zero() && c.open && c.payer == actor && now < c.expiry;
                    if ok {
                        c.deposit += value;
                    }
                    ok
                }
                None => false,
            };
            if ok {
                model.debit(payer, value);
                model.credit(me, value);
            }
            let tx = chain.tx(
                actor,
                Some(me),
                value,
                GAS,
                IChannels::topUpCall { channelId: id }.abi_encode(),
            );
            Some((tx, ok))
        }
        // extend
        30..=34 => {
            let id = some_id(rng);
            let current = model
                .channels
                .iter()
                .find(|c| c.id == id)
                .map_or(now, |c| c.expiry);
            // Sometimes not later than the current expiry.
            let new_expiry = (current + rng.below(30)).saturating_sub(2);
            let ok = match model.find(id) {
                Some(c) => {
                    let ok = c.open && c.payer == actor && now < c.expiry && new_expiry > c.expiry;
                    if ok {
                        c.expiry = new_expiry;
                    }
                    ok
                }
                None => false,
            };
            let call = IChannels::extendCall {
                channelId: id,
                newExpiry: new_expiry,
            };
            Some((
                chain.tx(actor, Some(me), U256::ZERO, GAS, call.abi_encode()),
                ok,
            ))
        }
        // The signer hands out a voucher (off chain), sometimes a bad one.
        35..=59 => {
            if known.is_empty() {
                return None;
            }
            let c = model.channels[rng.below(known.len() as u64) as usize].clone();
            // Mostly within the deposit, sometimes over it.
            let step = U256::from(1 + rng.below(200));
            let cumulative = c.issued + step;
            let (sig, good_for) = match rng.below(10) {
                0 => (
                    voucher_sig(
                        key(c.signer_key ^ 0x0f),
                        DEVNET_CHAIN_ID,
                        me,
                        c.id,
                        cumulative,
                    ),
                    None,
                ),
                1 => (
                    voucher_sig(key(c.signer_key), DEVNET_CHAIN_ID + 1, me, c.id, cumulative),
                    None,
                ),
                2 => (
                    high_s_twin(&voucher_sig(
                        key(c.signer_key),
                        DEVNET_CHAIN_ID,
                        me,
                        c.id,
                        cumulative,
                    )),
                    None,
                ),
                _ => {
                    if let Some(m) = model.find(c.id) {
                        m.issued = cumulative;
                    }
                    (
                        voucher_sig(key(c.signer_key), DEVNET_CHAIN_ID, me, c.id, cumulative),
                        Some(c.id),
                    )
                }
            };
            model.vouchers.push(HeldVoucher {
                channel: c.id,
                cumulative,
                sig,
                good_for,
            });
            None
        }
        // claim or claimAndClose with a held voucher, sometimes against another channel.
        60..=89 => {
            if model.vouchers.is_empty() {
                return None;
            }
            // Mostly one of the newest vouchers, sometimes any older one (a replay).
            let newest = model.vouchers.len().saturating_sub(3);
            let v = if rng.chance(70) {
                rng.pick(&model.vouchers[newest..]).clone()
            } else {
                rng.pick(&model.vouchers).clone()
            };
            let id = if rng.chance(10) {
                some_id(rng)
            } else {
                v.channel
            };
            let close = rng.chance(25);
            let caller = address_of(key(actor));
            let sig_ok = v.good_for == Some(id);
            let mut effects = None;
            let ok = match model.find(id) {
                Some(c) => {
                    let live = c.open && now < c.expiry && v.cumulative <= c.deposit;
                    let ok = if close {
                        live && caller == c.payee
                            && (v.cumulative > c.paid && sig_ok || v.cumulative == c.paid)
                    } else {
                        live && v.cumulative > c.paid && sig_ok
                    };
                    if ok {
                        let amount = v.cumulative - c.paid;
                        c.paid = v.cumulative;
                        let refund = if close {
                            c.open = false;
                            c.deposit - c.paid
                        } else {
                            U256::ZERO
                        };
                        effects = Some((c.payee, amount, model_payer(c), refund));
                    }
                    ok
                }
                None => false,
            };
            if let Some((payee, amount, payer, refund)) = effects {
                model.debit(me, amount + refund);
                model.credit(payee, amount);
                model.credit(payer, refund);
                model.received += amount;
            }
            let input = if close {
                IChannels::claimAndCloseCall {
                    channelId: id,
                    cumulative: v.cumulative,
                    sig: v.sig.into(),
                }
                .abi_encode()
            } else {
                claim(id, v.cumulative, v.sig.into()).abi_encode()
            };
            Some((chain.tx(actor, Some(me), U256::ZERO, GAS, input), ok))
        }
        // reclaim
        _ => {
            let id = some_id(rng);
            let mut effects = None;
            let ok = match model.find(id) {
                Some(c) => {
                    let ok = c.open && c.payer == actor && now >= c.expiry;
                    if ok {
                        c.open = false;
                        effects = Some(c.deposit - c.paid);
                    }
                    ok
                }
                None => false,
            };
            if let Some(refund) = effects {
                model.debit(me, refund);
                model.credit(address_of(key(actor)), refund);
            }
            let call = IChannels::reclaimCall { channelId: id };
            Some((
                chain.tx(actor, Some(me), U256::ZERO, GAS, call.abi_encode()),
                ok,
            ))
        }
    }
}

fn model_payer(c: &ModelChannel) -> Address {
    address_of(key(c.payer))
}

fn check_invariants(chain: &Chain, model: &Model, supply: U256, last_paid: &mut Vec<U256>) {
    // Exact balances of every actor and the module.
    for (a, want) in &model.balances {
        assert_eq!(chain.balance(*a), *want, "balance of {a}");
    }
    // The module holds exactly what open channels still owe.
    let owed = model
        .channels
        .iter()
        .filter(|c| c.open)
        .fold(U256::ZERO, |acc, c| acc + (c.deposit - c.paid));
    assert_eq!(chain.balance(CHANNELS_ADDRESS), owed);
    // No fees in this test: the supply never moves, and it is still the sum of balances.
    assert_eq!(chain.supply(), supply);
    assert_eq!(chain.sum_of_balances(), supply);
    // Every record matches the model; paid never exceeds the deposit and never goes down.
    let mut paid_total = U256::ZERO;
    last_paid.resize(model.channels.len(), U256::ZERO);
    for (i, c) in model.channels.iter().enumerate() {
        let on_chain = chain.channel(c.id);
        assert_eq!(
            (
                on_chain.payer,
                on_chain.payee,
                on_chain.deposit,
                on_chain.paid,
                on_chain.expiry,
                on_chain.open
            ),
            (model_payer(c), c.payee, c.deposit, c.paid, c.expiry, c.open)
        );
        assert!(on_chain.paid <= on_chain.deposit);
        assert!(on_chain.paid >= last_paid[i]);
        last_paid[i] = on_chain.paid;
        paid_total += on_chain.paid;
    }
    // No double spend: payees received exactly Σ paid.
    assert_eq!(model.received, paid_total);
}

#[test]
fn random_channel_sequences_keep_the_invariants() {
    let (mut opened, mut claimed, mut closed, mut refused) = (0, 0, 0, 0);
    for seed in 0..100u64 {
        let mut rng = Rng(seed);
        // Base fee zero and unpriced transactions: balances move only through channels.
        let mut chain = Chain::new(ACTORS, 0);
        let mut model = Model::default();
        for a in (1..=ACTORS)
            .map(|i| address_of(key(i)))
            .chain([CHANNELS_ADDRESS])
        {
            model.balances.insert(a, chain.balance(a));
        }
        let supply = chain.supply();
        let mut last_paid = Vec::new();
        for _block in 0..25 {
            let mut txs = Vec::new();
            let mut expected = Vec::new();
            for _ in 0..1 + rng.below(4) {
                if let Some((tx, ok)) = random_step(&mut rng, &mut chain, &mut model) {
                    txs.push(tx);
                    expected.push(ok);
                }
            }
            if !txs.is_empty() {
                let sent = chain.block(txs);
                let got: Vec<bool> = sent.iter().map(|s| s.success).collect();
                assert_eq!(got, expected, "seed {seed} block {}", chain.number - 1);
                for s in &sent {
                    let has = |topic: B256| s.logs.iter().any(|l| l.topics()[0] == topic);
                    opened += usize::from(has(IChannels::ChannelOpened::SIGNATURE_HASH));
                    claimed += usize::from(has(IChannels::ChannelClaimed::SIGNATURE_HASH));
                    closed += usize::from(has(IChannels::ChannelClosed::SIGNATURE_HASH));
                    refused += usize::from(!s.success);
                }
            }
            check_invariants(&chain, &model, supply, &mut last_paid);
            chain.now += rng.below(8);
        }
        // Settle: after every expiry each payer reclaims what is left; the module ends empty.
        chain.now += 1_000;
        let open: Vec<ModelChannel> = model.channels.iter().filter(|c| c.open).cloned().collect();
        let txs: Vec<RecoveredTx> = open
            .iter()
            .map(|c| {
                let call = IChannels::reclaimCall { channelId: c.id };
                chain.tx(
                    c.payer,
                    Some(CHANNELS_ADDRESS),
                    U256::ZERO,
                    GAS,
                    call.abi_encode(),
                )
            })
            .collect();
        for c in &open {
            let refund = c.deposit - c.paid;
            model.debit(CHANNELS_ADDRESS, refund);
            model.credit(model_payer(c), refund);
            model.find(c.id).unwrap().open = false;
        }
        if !txs.is_empty() {
            assert!(chain.block(txs).iter().all(|s| s.success));
        }
        check_invariants(&chain, &model, supply, &mut last_paid);
        assert_eq!(chain.balance(CHANNELS_ADDRESS), U256::ZERO);
    }
    // The generator reaches every path often.
    println!("opened {opened}, claimed {claimed}, closed {closed}, refused {refused}");
    assert!(opened > 100 && claimed > 100 && closed > 20 && refused > 200);
}
