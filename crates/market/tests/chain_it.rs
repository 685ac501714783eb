//! `RpcChain` against a real chain node: one validator started in this process, JSON-RPC on
//! 127.0.0.1, a dev account funded in genesis. Opens, tops up, claims (twice), closes and
//! reclaims channels through the channel module (the reclaim through the buyer's book) and
//! checks every amount to the wei.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use alloy_primitives::U256;
use chain_consensus::{namespace, ValidatorKeys};
use chain_node::{
    Genesis, GenesisAccount, GenesisValidator, Node, NodeConfig, P2pConfig, RpcConfig,
    DEFAULT_LEADER_TIMEOUT_MS,
};
use chain_state::{ChainParams, DEVNET_CHAIN_ID};
use market::{
    reclaim_expired, sign_voucher, ChainError, ChainPort, ChannelBook, ClaimPolicy, RpcChain,
    Settler, SignerKey, VoucherBook,
};
use speed::{Address, Amount, ChannelId};

const BTT: u128 = 1_000_000_000_000_000_000;

/// A secp256k1 key from a small number (never zero, always below the group order).
fn dev_key(n: u8) -> wallet::PrivateKey {
    let mut bytes = [0x5au8; 32];
    bytes[31] = n;
    wallet::PrivateKey::from_bytes(&bytes).unwrap()
}

fn addr(k: &wallet::PrivateKey) -> Address {
    Address(k.address().0)
}

fn localhost_any() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// A free TCP port on 127.0.0.1 (the consensus network needs a fixed one).
fn free_port() -> SocketAddr {
    std::net::TcpListener::bind(localhost_any())
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Writes a single-validator chain into `dir` with `funded` accounts holding 1000 BTT each,
/// and starts its node.
async fn start_chain(dir: &Path, funded: &[Address]) -> Node {
    let chain_id = DEVNET_CHAIN_ID;
    let keys = ValidatorKeys::generate([7; 32]);
    let genesis = Genesis {
        params: ChainParams {
            chain_id,
            ..ChainParams::default()
        },
        timestamp_ms: chain_node::now_ms(),
        alloc: funded
            .iter()
            .map(|a| {
                (
                    alloy_primitives::Address::from(a.0),
                    GenesisAccount {
                        balance: U256::from(1_000 * BTT),
                    },
                )
            })
            .collect::<BTreeMap<_, _>>(),
        validators: vec![GenesisValidator {
            fee_recipient: alloy_primitives::Address::repeat_byte(0xfe),
            keys: keys.public(&namespace(chain_id)),
            stake: chain_node::default_stake(),
            commission_bps: 1_000,
        }],
        epoch_length: chain_node::DEFAULT_EPOCH_LENGTH,
        governance: Default::default(),
    };
    let genesis_path = dir.join("genesis.json");
    genesis.save(&genesis_path).unwrap();
    let key_path = dir.join("validator.key");
    std::fs::write(&key_path, keys.to_hex()).unwrap();
    let config = NodeConfig {
        data_dir: dir.join("data"),
        genesis: genesis_path,
        validator_key: Some(key_path),
        node_key: None,
        block_interval_ms: 50,
        leader_timeout_ms: DEFAULT_LEADER_TIMEOUT_MS,
        rpc: RpcConfig {
            listen: localhost_any(),
        },
        p2p: P2pConfig {
            listen: free_port(),
            peers: Vec::new(),
            followers: Vec::new(),
        },
        equivocate: false,
    };
    Node::start(&config).await.unwrap()
}

fn refusal(e: ChainError) -> String {
    match e {
        ChainError::Reverted { reason, .. } => reason,
        other => panic!("expected the module to refuse, got {other}"),
    }
}

/// Waits until the chain's clock reaches `t` (blocks keep coming while we wait).
async fn wait_for_time(chain: &RpcChain, t: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while chain.now().await.unwrap() < t {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the chain's clock stopped"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_on_a_real_chain() {
    let dir = tempfile::tempdir().unwrap();
    let (buyer_key, seller_key) = (dev_key(1), dev_key(2));
    let (buyer_addr, seller_addr) = (addr(&buyer_key), addr(&seller_key));
    let node = start_chain(dir.path(), &[buyer_addr, seller_addr]).await;
    let url = format!("http://{}", node.rpc_addr());

    // One decrypted key, shared by the port and anything else that signs as the wallet.
    let buyer_signer = Arc::new(wallet::Signer::new(buyer_key));
    let buyer = RpcChain::with_signer(&url, buyer_signer.clone())
        .await
        .unwrap();
    assert_eq!(buyer_signer.address().0, buyer_addr.0);
    let seller = RpcChain::new(&url, seller_key).await.unwrap();
    assert_eq!(buyer.chain_id(), DEVNET_CHAIN_ID);
    assert_eq!(buyer.wallet(), buyer_addr);
    // The channel signer is a hot key of its own, kept in a file.
    let signer = SignerKey::load_or_create(&dir.path().join("signer.key")).unwrap();
    let signer_addr = Address(signer.address().0);
    let (chain_id, module) = (buyer.chain_id(), buyer.module());

    // Open: the state read back (by the other side) is final and as asked.
    let now = buyer.now().await.unwrap();
    assert!(now > 1_600_000_000, "block time in unix seconds: {now}");
    let expiry = now + 3_600;
    let before = buyer.balance(buyer_addr).await.unwrap();
    let ch = buyer
        .open(seller_addr, signer_addr, [1; 32], expiry, Amount(BTT))
        .await
        .unwrap();
    let open_fee = buyer.last_receipt().unwrap().fee().0;
    assert_eq!(
        buyer.balance(buyer_addr).await.unwrap().0,
        before.0 - BTT - u128::try_from(open_fee).unwrap()
    );
    assert_eq!(
        (ch.payer, ch.payee, ch.signer, ch.deposit, ch.paid, ch.expiry, ch.open),
        (
            buyer_addr,
            seller_addr,
            signer_addr,
            Amount(BTT),
            Amount(0),
            expiry,
            true
        )
    );
    assert_eq!(seller.channel(ch.id).await.unwrap(), Some(ch.clone()));
    assert_eq!(seller.channel(ChannelId([9; 32])).await.unwrap(), None);
    // The same salt again is refused, before anything is sent.
    let fees = buyer.fees_paid();
    let err = buyer
        .open(seller_addr, signer_addr, [1; 32], expiry, Amount(BTT))
        .await
        .unwrap_err();
    assert!(refusal(err).contains("already exists"));
    assert_eq!(buyer.fees_paid(), fees);

    // Top up.
    let ch = buyer.top_up(ch.id, Amount(BTT / 2)).await.unwrap();
    assert_eq!(ch.deposit, Amount(3 * BTT / 2));

    // Claim a voucher: the payee gets exactly the voucher, less its own gas.
    let v1 = Amount(4 * BTT / 10);
    let sig1 = sign_voucher(&signer, chain_id, module, ch.id, v1);
    let seller_before = seller.balance(seller_addr).await.unwrap();
    assert_eq!(seller.claim(ch.id, v1, sig1, false).await.unwrap(), v1);
    let receipt = seller.last_receipt().unwrap();
    assert!(receipt.success);
    let fee = u128::try_from(receipt.fee().0).unwrap();
    assert!(fee > 0);
    let seller_after = seller.balance(seller_addr).await.unwrap();
    assert_eq!(seller_after.0, seller_before.0 + v1.0 - fee);
    assert_eq!(seller.channel(ch.id).await.unwrap().unwrap().paid, v1);

    // The same voucher again pays nothing: refused, no transaction, no fee.
    let err = seller.claim(ch.id, v1, sig1, false).await.unwrap_err();
    assert!(refusal(err).contains("pays nothing"));
    assert_eq!(seller.balance(seller_addr).await.unwrap(), seller_after);
    assert_eq!(seller.last_receipt().unwrap(), receipt);
    // A voucher from another key is refused too.
    let forged = sign_voucher(
        &wallet::Signer::new(dev_key(3)),
        chain_id,
        module,
        ch.id,
        Amount(BTT),
    );
    let err = seller
        .claim(ch.id, Amount(BTT), forged, false)
        .await
        .unwrap_err();
    assert!(refusal(err).contains("not the channel's signer"));

    // The settler claims the next voucher from its book.
    let book_dir = dir.path().join("seller");
    let seller_port: Arc<dyn ChainPort> = Arc::new(RpcChain::new(&url, dev_key(2)).await.unwrap());
    let settler = Settler::new(
        seller_port,
        VoucherBook::open(&book_dir).unwrap(),
        ClaimPolicy {
            threshold: Amount(BTT / 10),
            expiry_margin_s: 60,
        },
    );
    let v2 = Amount(6 * BTT / 10);
    let sig2 = sign_voucher(&signer, chain_id, module, ch.id, v2);
    let state = seller.channel(ch.id).await.unwrap().unwrap();
    assert!(settler.record(&state, v2, sig2).unwrap());
    assert_eq!(settler.due(now), vec![ch.id]);
    let results = settler.claim_due(now).await;
    assert_eq!(results[0].1.as_ref().unwrap(), &Amount(v2.0 - v1.0));
    assert!(settler.due(now).is_empty());
    assert_eq!(settler.claim(ch.id).await.unwrap(), Amount(0));

    // claimAndClose on the next voucher: pays the rest of it and refunds the payer.
    let v3 = Amount(7 * BTT / 10);
    let sig3 = sign_voucher(&signer, chain_id, module, ch.id, v3);
    let buyer_before = buyer.balance(buyer_addr).await.unwrap();
    // Only the payee may close.
    let err = buyer.claim(ch.id, v3, sig3, true).await.unwrap_err();
    assert!(refusal(err).contains("only the payee"));
    assert_eq!(
        seller.claim(ch.id, v3, sig3, true).await.unwrap(),
        Amount(v3.0 - v2.0)
    );
    let refund = 3 * BTT / 2 - v3.0;
    assert_eq!(
        buyer.balance(buyer_addr).await.unwrap().0,
        buyer_before.0 + refund
    );
    let closed = buyer.channel(ch.id).await.unwrap().unwrap();
    assert_eq!((closed.paid, closed.open), (v3, false));
    let err = buyer.reclaim(ch.id).await.unwrap_err();
    assert!(refusal(err).contains("is closed"));

    // The buyer's book of the same story.
    let mut book = ChannelBook::open(&dir.path().join("buyer")).unwrap();
    book.insert(&ch, [1; 32]).unwrap();
    book.pay(ch.id, v3).unwrap();
    book.update(&closed).unwrap();
    assert_eq!(book.locked(), Amount(0));

    // A channel that expires: reclaimed by the payer only, after its expiry.
    let now = buyer.now().await.unwrap();
    let short = buyer
        .open(seller_addr, signer_addr, [2; 32], now + 2, Amount(BTT / 4))
        .await
        .unwrap();
    let err = buyer.reclaim(short.id).await.unwrap_err();
    assert!(refusal(err).contains("reclaim after that"));
    wait_for_time(&buyer, short.expiry).await;
    let err = seller.reclaim(short.id).await.unwrap_err();
    assert!(refusal(err).contains("only the payer"));
    // The buyer's book reclaims it by the chain's clock; the channel closed by the seller
    // above is already closed in the book, so it is left alone.
    book.insert(&short, [2; 32]).unwrap();
    assert_eq!(book.locked(), Amount(BTT / 4));
    let buyer_before = buyer.balance(buyer_addr).await.unwrap();
    let chain_now = buyer.now().await.unwrap();
    let results = reclaim_expired(&buyer, &mut book, chain_now).await;
    assert_eq!(results.len(), 1, "{results:?}");
    assert_eq!(results[0].0, short.id);
    assert_eq!(results[0].1.as_ref().unwrap(), &Amount(BTT / 4));
    let fee = u128::try_from(buyer.last_receipt().unwrap().fee().0).unwrap();
    assert_eq!(
        buyer.balance(buyer_addr).await.unwrap().0,
        buyer_before.0 + BTT / 4 - fee
    );
    assert!(!buyer.channel(short.id).await.unwrap().unwrap().open);
    assert!(book.get(short.id).unwrap().closed);
    assert_eq!(book.locked(), Amount(0));
    // Again: nothing to reclaim, nothing sent.
    let fees = buyer.fees_paid();
    assert!(reclaim_expired(&buyer, &mut book, chain_now)
        .await
        .is_empty());
    assert_eq!(buyer.fees_paid(), fees);

    // An account without funds gets a clear error, not a failed transaction.
    let broke = RpcChain::new(&url, dev_key(4)).await.unwrap();
    let err = broke
        .open(seller_addr, signer_addr, [3; 32], now + 600, Amount(1))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ChainError::InsufficientFunds { have: 0, .. }),
        "{err}"
    );

    node.stop().await.unwrap();
}
