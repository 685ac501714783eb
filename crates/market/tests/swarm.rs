//! Real engine sessions on 127.0.0.1 with the market on an in-memory chain: a seller with a
//! reserve, a paying buyer and a plain leecher. Everyone completes with the right bytes, and
//! what the buyer promised is exactly what the seller accepted and then claimed.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use engine::testkit::{config, data, make_torrent};
use engine::{AddTorrent, Session};
use market::{
    Books, ChainPort, ClaimPolicy, Market, MarketConfig, MemChain, PaymentStore, SellerTerms,
};
use speed::{Address, Amount, AuctionConfig, BidderConfig};
use wallet::{PrivateKey, Signer};

const PIECE: u32 = 32_768;
const RESERVE: u64 = 1_000;

fn market(
    mem: &MemChain,
    dir: &std::path::Path,
    seller: bool,
) -> (Arc<Market>, Arc<Books>, Address) {
    let wallet = Arc::new(Signer::new(PrivateKey::generate()));
    let who = Address(wallet.address().0);
    mem.fund(who, Amount(10u128.pow(20)));
    let chain: Arc<dyn ChainPort> = mem.port(who);
    let books = Arc::new(Books::open(dir, chain.clone(), ClaimPolicy::default()).unwrap());
    let config = MarketConfig {
        seller: seller.then(|| SellerTerms {
            auction: AuctionConfig {
                reserve_price: RESERVE,
                ..AuctionConfig::default()
            },
            credit_bytes: 0,
        }),
        ..MarketConfig::default()
    };
    let signer = Arc::new(Signer::new(PrivateKey::generate()));
    let m = Market::new(
        config,
        wallet,
        signer,
        chain,
        books.clone() as Arc<dyn PaymentStore>,
    );
    (Arc::new(m), books, who)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paying_and_a_plain_leecher_complete_and_the_seller_claims_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let content = data(2 * 1024 * 1024, 42);
    let torrent = make_torrent(tmp.path(), "paid", &[("paid.bin", &content)], PIECE);
    let total = content.len() as u64;
    let mem = MemChain::new(7215);

    // The seller: limited upload so the market has time to act.
    let (seller_market, seller_books, seller_wallet) =
        market(&mem, &tmp.path().join("s-market"), true);
    let seller = Session::start(config(&tmp.path().join("s"))).await.unwrap();
    let seller_ext = seller_market.torrent(
        torrent.info_hash.0,
        u64::from(PIECE),
        0,
        BidderConfig::default(),
    );
    let mut add = AddTorrent::new(torrent.clone(), tmp.path().to_owned());
    add.seed_only = true;
    add.upload_rate_limit = 1024 * 1024;
    add.extension = Some(seller_ext.clone());
    let _seed = seller.add_torrent(add).await.unwrap();
    let seller_addr = std::net::SocketAddr::from(([127, 0, 0, 1], seller.listen_port()));

    // The buyer.
    let budget = Amount::cost(total, 4_000);
    let (buyer_market, buyer_books, _) = market(&mem, &tmp.path().join("b-market"), false);
    let buyer = Session::start(config(&tmp.path().join("b"))).await.unwrap();
    let bidder = BidderConfig {
        budget,
        daily_cap: None,
        max_price: 4_000,
        top_up_low_water_pieces: 2,
    };
    let buyer_ext = buyer_market.torrent(torrent.info_hash.0, u64::from(PIECE), total, bidder);
    let mut add = AddTorrent::new(torrent.clone(), tmp.path().join("b-out"));
    add.peers = vec![seller_addr];
    add.extension = Some(buyer_ext.clone());
    let b = buyer.add_torrent(add).await.unwrap();

    // A plain leecher: no extension at all.
    let plain = Session::start(config(&tmp.path().join("p"))).await.unwrap();
    let mut add = AddTorrent::new(torrent.clone(), tmp.path().join("p-out"));
    add.peers = vec![seller_addr];
    let p = plain.add_torrent(add).await.unwrap();

    b.wait_complete().await.unwrap();
    p.wait_complete().await.unwrap();
    for dir in ["b-out", "p-out"] {
        assert_eq!(
            std::fs::read(tmp.path().join(dir).join("paid/paid.bin")).unwrap(),
            content
        );
    }
    // Stopping the buyer's session flushes nothing more: every promise was sent before this.
    buyer.shutdown().await;
    plain.shutdown().await;

    let spent = buyer_ext.stats().spent;
    assert!(spent > Amount::ZERO, "the buyer paid for priority");
    assert!(spent <= budget);
    let channels = buyer_books.channels().entries();
    assert_eq!(channels.len(), 1);
    assert_eq!(channels[0].cumulative, spent);
    assert_eq!(channels[0].payee, seller_wallet);
    // The seller accepted exactly what was promised, never more than one piece ahead of it.
    let entries = seller_books.settler().entries();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].cumulative, spent);
    let s = seller_ext.stats();
    assert_eq!(s.earned, spent);
    // Never more than one piece's worth served unpaid. (A buyer may pay a little more than was
    // sold at a price: blocks it got in the free class just before winning a slot are paid
    // with their piece.)
    let served_value = Amount::cost(s.bytes_sold, RESERVE);
    assert!(served_value.0.saturating_sub(spent.0) <= Amount::cost(u64::from(PIECE), RESERVE).0);
    // Claims pay the seller exactly the voucher total.
    let before = mem
        .port(seller_wallet)
        .balance(seller_wallet)
        .await
        .unwrap();
    for (_, r) in seller_books.settler().claim_all().await {
        r.unwrap();
    }
    let after = mem
        .port(seller_wallet)
        .balance(seller_wallet)
        .await
        .unwrap();
    assert_eq!(after.0 - before.0, spent.0);
    seller.shutdown().await;
}
