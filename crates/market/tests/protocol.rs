//! The `by_speed` driver between a seller and a buyer over detached links and an in-memory
//! chain: the whole flow with exact amounts, and what a hostile buyer gets.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use engine::ext::{detached, Extension, LinkCommand, LinkProbe, PeerExtension, RechokePeer};
use market::{
    sign_voucher, Books, ChainPort, ClaimPolicy, Market, MarketConfig, MemChain, PaymentStore,
    SellerTerms, SpeedTorrent,
};
use speed::{Address, Amount, AuctionConfig, BidderConfig, ChannelId, ErrorCode, Message, Voucher};
use wallet::{PrivateKey, Signer};

const CHAIN: u64 = 7215;
const PIECE: u64 = 32_768;
const RESERVE: u64 = 1_000;
/// The id each side gives the other's extension messages.
const EXT_ID: u8 = 7;
/// Each side's key for the one connection.
const KEY: u64 = 1;

struct Side {
    torrent: Arc<SpeedTorrent>,
    books: Arc<Books>,
    ext: Box<dyn PeerExtension>,
    probe: LinkProbe,
    wallet: Address,
    signer: Arc<Signer>,
    _dir: tempfile::TempDir,
}

fn addr(s: &Signer) -> Address {
    Address(s.address().0)
}

fn side(mem: &MemChain, seller: bool, budget: u128, default_after: Duration) -> Side {
    side_at(mem, seller.then_some(RESERVE), budget, default_after)
}

fn side_at(mem: &MemChain, reserve: Option<u64>, budget: u128, default_after: Duration) -> Side {
    let dir = tempfile::tempdir().unwrap();
    let wallet = Arc::new(Signer::new(PrivateKey::generate()));
    let signer = Arc::new(Signer::new(PrivateKey::generate()));
    mem.fund(addr(&wallet), Amount(10u128.pow(20)));
    let chain: Arc<dyn ChainPort> = mem.port(addr(&wallet));
    let books = Arc::new(Books::open(dir.path(), chain.clone(), ClaimPolicy::default()).unwrap());
    let config = MarketConfig {
        seller: reserve.map(|reserve_price| SellerTerms {
            auction: AuctionConfig {
                reserve_price,
                paid_slots: 2,
                ..AuctionConfig::default()
            },
            credit_bytes: 0,
        }),
        default_after,
        ..MarketConfig::default()
    };
    let market = Arc::new(Market::new(
        config,
        wallet.clone(),
        signer.clone(),
        chain,
        books.clone() as Arc<dyn PaymentStore>,
    ));
    let bidder = BidderConfig {
        budget: Amount(budget),
        daily_cap: None,
        max_price: 5_000,
        top_up_low_water_pieces: 2,
    };
    let torrent = market.torrent([9; 20], PIECE, 16 * PIECE, bidder);
    let (link, probe) = detached(EXT_ID);
    let ext = torrent.clone().connect(KEY, link);
    Side {
        signer: signer.clone(),
        torrent,
        books,
        ext,
        probe,
        wallet: addr(&wallet),
        _dir: dir,
    }
}

/// Sends each side's handshake entry to the other.
fn handshake(a: &mut Side, b: &mut Side) {
    let mut payloads = Vec::new();
    for s in [&mut *a, &mut *b] {
        let mut hs = wire::ExtendedHandshake::default();
        if let Some(entry) = s.ext.handshake_entry() {
            hs.m.insert(speed::EXTENSION_NAME.into(), EXT_ID);
            hs.extra.insert(speed::EXTENSION_NAME.into(), entry);
        }
        payloads.push(hs.encode());
    }
    b.ext.on_handshake(&payloads[0], Some(EXT_ID));
    a.ext.on_handshake(&payloads[1], Some(EXT_ID));
}

/// Delivers messages both ways and lets the spawned chain tasks run, until all is quiet.
/// Returns everything delivered, decoded, as (from seller?, message).
async fn exchange(seller: &mut Side, buyer: &mut Side) -> Vec<(bool, Message)> {
    let mut seen = Vec::new();
    let mut quiet = 0;
    while quiet < 20 {
        let from_seller = seller.probe.take_sent();
        let from_buyer = buyer.probe.take_sent();
        if from_seller.is_empty() && from_buyer.is_empty() {
            quiet += 1;
            tokio::task::yield_now().await;
            continue;
        }
        quiet = 0;
        for p in from_seller {
            seen.push((true, Message::decode(&p).unwrap()));
            buyer.ext.on_message(&p);
        }
        for p in from_buyer {
            seen.push((false, Message::decode(&p).unwrap()));
            seller.ext.on_message(&p);
        }
    }
    seen
}

fn interested() -> Vec<RechokePeer> {
    vec![RechokePeer {
        key: KEY,
        interested: true,
        down_rate_bytes_per_s: 0,
        up_rate_bytes_per_s: 0,
        snubbed: false,
        connected_for: Duration::from_secs(1),
    }]
}

fn errors(seen: &[(bool, Message)]) -> Vec<u32> {
    seen.iter()
        .filter_map(|(_, m)| match m {
            Message::Error(e) => Some(e.code),
            _ => None,
        })
        .collect()
}

/// Seller and buyer through AUTH, ASK, CHANNEL, BID and a paid slot at the reserve.
async fn paid_pair(default_after: Duration) -> (MemChain, Side, Side, ChannelId) {
    let mem = MemChain::new(CHAIN);
    let mut seller = side(&mem, true, 0, default_after);
    let mut buyer = side(&mem, false, 10u128.pow(18), default_after);
    handshake(&mut seller, &mut buyer);
    let seen = exchange(&mut seller, &mut buyer).await;
    let kinds: Vec<(bool, u8)> = seen
        .iter()
        .map(|(s, m)| (*s, m.message_type() as u8))
        .collect();
    // AUTH both ways, the seller's ASK, then the buyer's CHANNEL and BID.
    assert_eq!(
        kinds,
        vec![(true, 1), (false, 1), (true, 8), (false, 4), (false, 2)]
    );
    let channel = match &seen[3].1 {
        Message::Channel(c) => c.channel,
        other => panic!("{other:?}"),
    };
    assert!(
        seller.probe.rechoke_asked(),
        "an eligible bid asks for a rechoke"
    );
    let unchoked = seller.torrent.rechoke(&interested(), 4, true).unwrap();
    assert_eq!(unchoked, vec![KEY]);
    // Alone in the allocation, it has the whole upload: one equal share.
    assert_eq!(seller.probe.upload_share(), 100);
    let seen = exchange(&mut seller, &mut buyer).await;
    // One bidder, two slots: it pays the reserve.
    assert!(
        matches!(&seen[..], [(true, Message::BidResponse(r))] if r.accepted && r.clearing_price == RESERVE)
    );
    (mem, seller, buyer, channel)
}

#[tokio::test]
async fn a_paid_piece_end_to_end_with_exact_amounts() {
    let (mem, mut seller, mut buyer, channel) = paid_pair(Duration::from_secs(60)).await;
    // One piece of credit: two blocks, then the queue is held and PAY_REQUIRED sent.
    assert!(seller.ext.on_serve(16_384));
    assert!(seller.ext.on_serve(16_384));
    assert!(!seller.ext.on_serve(16_384));
    let seen = exchange(&mut seller, &mut buyer).await;
    assert!(
        matches!(&seen[..], [(true, Message::PayRequired(p))] if p.unpaid_bytes == PIECE && p.amount_owed == Amount::cost(PIECE, RESERVE))
    );
    // The piece verifies at the buyer: it pays exactly its price, and the seller resumes.
    buyer.torrent.piece_verified(0, &[(KEY, PIECE)]);
    let seen = exchange(&mut seller, &mut buyer).await;
    let price = Amount::cost(PIECE, RESERVE);
    assert!(
        matches!(&seen[0], (false, Message::Voucher(v)) if v.cumulative == price && v.channel == channel)
    );
    assert!(
        matches!(&seen[1], (true, Message::Receipt(r)) if r.cumulative == price && r.bytes_served == PIECE)
    );
    assert!(seller.ext.on_serve(16_384));
    // Both books agree, and the same piece is never paid twice.
    assert_eq!(seller.books.accepted(&channel), price);
    assert_eq!(buyer.books.opened(&channel).unwrap().cumulative, price);
    buyer.torrent.piece_verified(0, &[(KEY, PIECE)]);
    assert!(exchange(&mut seller, &mut buyer).await.is_empty());
    assert_eq!(buyer.torrent.stats().spent, price);
    assert_eq!(seller.torrent.stats().earned, price);
    // The seller claims: its balance rises by exactly the voucher.
    let before = mem
        .port(seller.wallet)
        .balance(seller.wallet)
        .await
        .unwrap();
    let claims = seller.books.settler().claim_all().await;
    assert_eq!(claims.len(), 1);
    assert_eq!(claims[0].1.as_ref().unwrap(), &price);
    let after = mem
        .port(seller.wallet)
        .balance(seller.wallet)
        .await
        .unwrap();
    assert_eq!(after.0 - before.0, price.0);
    // Claiming again pays nothing.
    let again = seller.books.settler().claim_all().await;
    assert!(again
        .iter()
        .all(|(_, r)| r.as_ref().map_or(true, |a| *a == Amount::ZERO)));
    assert_eq!(
        mem.port(seller.wallet)
            .balance(seller.wallet)
            .await
            .unwrap(),
        after
    );
}

/// A voucher as the buyer's side would send it, signed by `key` under `chain_id`.
fn voucher(key: &Signer, chain_id: u64, channel: ChannelId, cumulative: Amount) -> Vec<u8> {
    let module = Address(chain_state::CHANNELS_ADDRESS.0 .0);
    Message::Voucher(Voucher {
        channel,
        cumulative,
        sig: sign_voucher(key, chain_id, module, channel, cumulative),
    })
    .encode_to_vec()
    .unwrap()
}

#[tokio::test]
async fn forged_replayed_and_over_limit_vouchers_are_rejected() {
    let (_mem, mut seller, mut buyer, channel) = paid_pair(Duration::from_secs(60)).await;
    assert!(seller.ext.on_serve(16_384));
    let stranger = Signer::new(PrivateKey::generate());
    let one_block = Amount::cost(16_384, RESERVE);
    let buyer_signer = buyer.signer.clone();
    let v0 = {
        let mut m = Message::decode(&voucher(&buyer_signer, CHAIN, channel, one_block)).unwrap();
        if let Message::Voucher(v) = &mut m {
            v.sig.0[64] -= 27;
        }
        m.encode_to_vec().unwrap()
    };
    let cases = [
        // Signed by a key that is not the channel's signer.
        (
            voucher(&stranger, CHAIN, channel, one_block),
            ErrorCode::BadSignature,
        ),
        // The buyer's own signer under another chain id: recovers to someone else.
        (
            voucher(&buyer_signer, CHAIN + 1, channel, one_block),
            ErrorCode::BadSignature,
        ),
        // The right signature with v = 0 instead of 27: the module refuses it, so must we.
        (v0, ErrorCode::BadSignature),
        // For a channel this connection never named.
        (
            voucher(&stranger, CHAIN, ChannelId([0xee; 32]), one_block),
            ErrorCode::VoucherRejected,
        ),
    ];
    for (payload, code) in cases {
        seller.ext.on_message(&payload);
        let seen = exchange(&mut seller, &mut buyer).await;
        assert_eq!(errors(&seen), vec![code.code()]);
    }
    assert_eq!(seller.books.accepted(&channel), Amount::ZERO);
    // The buyer's real signer, replayed from another chain: recovers to someone else.
    buyer.torrent.piece_verified(3, &[(KEY, 16_384)]);
    let seen = exchange(&mut seller, &mut buyer).await;
    let good = seen
        .iter()
        .find_map(|(_, m)| match m {
            Message::Voucher(v) => Some(v.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(errors(&seen), Vec::<u32>::new());
    assert_eq!(seller.books.accepted(&channel), one_block);
    // Same voucher again: a harmless repeat. A lower amount: rejected.
    let replay = Message::Voucher(good.clone()).encode_to_vec().unwrap();
    seller.ext.on_message(&replay);
    assert_eq!(
        errors(&exchange(&mut seller, &mut buyer).await),
        Vec::<u32>::new()
    );
    let mut lower = good.clone();
    lower.cumulative = Amount(good.cumulative.0 - 1);
    seller
        .ext
        .on_message(&Message::Voucher(lower).encode_to_vec().unwrap());
    let seen = exchange(&mut seller, &mut buyer).await;
    assert_eq!(errors(&seen).len(), 1);
    // More than one piece's price in one step, even if correctly signed, is refused; so is
    // a voucher above the deposit. Nothing changes in the book.
    let over_piece = Amount(good.cumulative.0 + Amount::cost(PIECE, RESERVE).0 + 1);
    let bad_sig_over = voucher(&stranger, CHAIN, channel, over_piece);
    seller.ext.on_message(&bad_sig_over);
    assert_eq!(
        errors(&exchange(&mut seller, &mut buyer).await),
        vec![ErrorCode::BadSignature.code()]
    );
    assert_eq!(seller.books.accepted(&channel), one_block);
}

#[tokio::test]
async fn a_buyer_that_stops_paying_gets_one_piece_then_loses_its_slot() {
    let (_mem, mut seller, mut buyer, _channel) = paid_pair(Duration::ZERO).await;
    let mut served = 0u64;
    while seller.ext.on_serve(16_384) {
        served += 16_384;
        assert!(served <= PIECE, "served past the credit");
    }
    assert_eq!(served, PIECE);
    assert!(!seller.ext.on_serve(1), "not even one more byte");
    // It never pays; at the next round it is in default and out of the paid class.
    let _ = exchange(&mut seller, &mut buyer).await;
    let unchoked = seller.torrent.rechoke(&interested(), 4, true).unwrap();
    let seen = exchange(&mut seller, &mut buyer).await;
    assert!(matches!(&seen[..], [(true, Message::BidResponse(r))] if !r.accepted));
    assert_eq!(seller.torrent.stats().paying_peers, 0);
    // Whatever it gets now is the free share: never counted as owed.
    assert_eq!(unchoked, vec![KEY]);
    assert!(seller.ext.on_serve(16_384));
    assert_eq!(seller.torrent.stats().bytes_sold, PIECE);
    assert_eq!(seller.torrent.stats().earned, Amount::ZERO);
    assert!(seller
        .probe
        .take_commands()
        .iter()
        .all(|c| *c != LinkCommand::Disconnect));
}

#[tokio::test]
async fn a_seller_whose_piece_fails_is_never_paid() {
    let (_mem, mut seller, mut buyer, channel) = paid_pair(Duration::from_secs(60)).await;
    buyer.torrent.piece_failed(2, &[(KEY, PIECE)]);
    let seen = exchange(&mut seller, &mut buyer).await;
    assert_eq!(errors(&seen), vec![ErrorCode::BadData.code()]);
    buyer.torrent.piece_verified(3, &[(KEY, PIECE)]);
    let seen = exchange(&mut seller, &mut buyer).await;
    assert!(seen.iter().all(|(_, m)| !matches!(m, Message::Voucher(_))));
    assert_eq!(
        buyer.books.opened(&channel).unwrap().cumulative,
        Amount::ZERO
    );
    assert_eq!(buyer.torrent.stats().spent, Amount::ZERO);
}

#[tokio::test]
async fn paid_and_free_classes_get_weighted_upload_shares() {
    let (_mem, seller, _buyer, _channel) = paid_pair(Duration::from_secs(60)).await;
    // A plain BitTorrent peer on the same torrent: no by_speed at all.
    let (link, plain_probe) = detached(0);
    let _plain = seller.torrent.clone().connect(2, link);
    let mut peers = interested();
    peers.push(RechokePeer { key: 2, ..peers[0] });
    let unchoked = seller.torrent.rechoke(&peers, 4, true).unwrap();
    assert_eq!(unchoked, vec![KEY, 2]);
    // Two unchoked: the paid class has 80 % (1.6 equal shares), the free class 20 % (0.4).
    assert_eq!(seller.probe.upload_share(), 160);
    assert_eq!(plain_probe.upload_share(), 40);
}

#[tokio::test]
async fn the_buyer_pays_only_sellers_asking_at_most_its_bid() {
    let mem = MemChain::new(CHAIN);
    // Budget for 2000 per byte over the whole torrent: that is the bid.
    let remaining = 16 * PIECE;
    let mut buyer = side(
        &mem,
        false,
        u128::from(remaining) * 2_000,
        Duration::from_secs(60),
    );
    let mut dear = side_at(&mem, Some(3_000), 0, Duration::from_secs(60));
    let mut cheap = side_at(&mem, Some(1_000), 0, Duration::from_secs(60));
    // The buyer's first connection goes to the dear seller, a second one to the cheap seller.
    handshake(&mut dear, &mut buyer);
    let seen = exchange(&mut dear, &mut buyer).await;
    assert!(seen
        .iter()
        .all(|(_, m)| !matches!(m, Message::Channel(_) | Message::Bid(_))));
    let (link, probe) = detached(EXT_ID);
    let mut to_cheap = Side {
        ext: buyer.torrent.clone().connect(2, link),
        probe,
        torrent: buyer.torrent.clone(),
        books: buyer.books.clone(),
        wallet: buyer.wallet,
        signer: buyer.signer.clone(),
        _dir: tempfile::tempdir().unwrap(),
    };
    handshake(&mut cheap, &mut to_cheap);
    let seen = exchange(&mut cheap, &mut to_cheap).await;
    let bid = seen.iter().find_map(|(_, m)| match m {
        Message::Bid(b) => Some(b.price_per_byte),
        _ => None,
    });
    assert_eq!(bid, Some(2_000));
    let channels = buyer.books.channels().entries();
    assert_eq!(channels.len(), 1);
    assert_eq!(channels[0].payee, cheap.wallet);
    // Sized for what is left at the bid, within the budget.
    assert_eq!(channels[0].deposit, Amount::cost(remaining, 2_000));
}
