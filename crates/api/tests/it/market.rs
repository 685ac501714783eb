//! The Speed market through the node's API: a selling node and a buying node on an in-memory
//! chain, real sessions on 127.0.0.1. What the buyer spent is exactly what the seller earned,
//! holds as claimable, and is paid by a claim; a node without a market shows zeros and refuses
//! budgets.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use market::{Books, ChainPort, ClaimPolicy, Market, MarketConfig, MemChain, SellerTerms};
use serde_json::{json, Value};
use speed::{Address, Amount, AuctionConfig};
use wallet::{PrivateKey, Signer};

use crate::{data, make_torrent, TestNode};

const LIMIT: Duration = Duration::from_secs(60);
const PIECE: u32 = 32_768;
const RESERVE: u64 = 1_000;

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A funded wallet's market on `mem`, selling at `reserve` when given.
fn node_market(
    mem: &MemChain,
    dir: &Path,
    reserve: Option<u64>,
) -> (Arc<api::NodeMarket>, Address) {
    let wallet = Arc::new(Signer::new(PrivateKey::generate()));
    let who = Address(wallet.address().0);
    mem.fund(who, Amount(10u128.pow(20)));
    let chain: Arc<dyn ChainPort> = mem.port(who);
    let books = Arc::new(Books::open(dir, chain.clone(), ClaimPolicy::default()).unwrap());
    let seller = reserve.map(|r| SellerTerms {
        auction: AuctionConfig {
            reserve_price: r,
            ..AuctionConfig::default()
        },
        credit_bytes: 0,
    });
    let market = Arc::new(Market::new(
        MarketConfig {
            seller: seller.clone(),
            ..MarketConfig::default()
        },
        wallet,
        Arc::new(Signer::new(PrivateKey::generate())),
        chain.clone(),
        books.clone(),
    ));
    let node = api::NodeMarket::new(market, books, seller).with_balance_from(chain);
    (Arc::new(node), who)
}

fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn get(node: &TestNode, path: &str) -> Value {
    let (status, body) = node.raw("GET", path, &[], b"").await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_selling_node_earns_exactly_what_a_buying_node_spends_and_claims_it() {
    let tmp = tempfile::tempdir().unwrap();
    let mem = MemChain::new(7215);
    // Channels expire a week after the chain's time; views judge liveness by the wall clock.
    mem.set_now(now_s());
    let content = data(2 * 1024 * 1024, 42);
    let total = content.len() as u64;

    let (seller_market, seller_wallet) =
        node_market(&mem, &tmp.path().join("s-market"), Some(RESERVE));
    let seller = TestNode::start_with(&tmp.path().join("s"), Some(seller_market)).await;
    // The seller's data is in its download directory already.
    let t = make_torrent(&seller.downloads, "paid", &[("paid.bin", &content)], PIECE);
    let (status, body) = seller
        .call(
            "POST",
            "/api/v1/torrents",
            Some(json!({"torrent": b64(&t.to_bytes())})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    // Limited upload, so the market has time to act.
    let (status, body) = seller
        .call(
            "PATCH",
            "/api/v1/torrents/1",
            Some(json!({"upload_limit": 1024 * 1024})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    seller.wait_for(1, LIMIT, |t| t["state"] == "seeding").await;
    let seller_addr = format!("127.0.0.1:{}", seller.library.session().listen_port());

    let (buyer_market, _) = node_market(&mem, &tmp.path().join("b-market"), None);
    let buyer = TestNode::start_with(&tmp.path().join("b"), Some(buyer_market)).await;
    let budget = Amount::cost(total, 4_000);
    let (status, body) = buyer
        .call(
            "POST",
            "/api/v1/torrents",
            Some(json!({
                "torrent": b64(&t.to_bytes()),
                "peers": [seller_addr],
                "budget": budget.0.to_string(),
                "max_price": 4_000,
            })),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["torrent"]["budget_wei"], budget.0.to_string());
    assert_eq!(body["torrent"]["max_price"], 4_000);
    buyer.wait_for(1, LIMIT, |t| t["state"] == "seeding").await;
    assert_eq!(
        std::fs::read(buyer.downloads.join("paid/paid.bin")).unwrap(),
        content
    );
    // The last voucher leaves after the last piece verifies: wait until the seller has it.
    let deadline = tokio::time::Instant::now() + LIMIT;
    let (spent, earned) = loop {
        let b = get(&buyer, "/api/v1/torrents/1").await;
        let s = get(&seller, "/api/v1/torrents/1").await;
        let spent = b["torrent"]["spent_wei"].as_str().unwrap().to_string();
        let earned = s["torrent"]["earnings_wei"].as_str().unwrap().to_string();
        if spent != "0" && spent == earned {
            break (spent, earned);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "spent {spent} never matched earned {earned}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let spent_amount: u128 = spent.parse().unwrap();
    assert!(spent_amount > 0 && spent_amount <= budget.0);
    // The buyer's own earnings and the seller's spending stay zero.
    assert_eq!(
        get(&buyer, "/api/v1/torrents/1").await["torrent"]["earnings_wei"],
        "0"
    );
    assert_eq!(
        get(&seller, "/api/v1/torrents/1").await["torrent"]["spent_wei"],
        "0"
    );

    // The buyer's panel: one channel to the seller with exactly that promised.
    let m = get(&buyer, "/api/v1/market").await;
    assert_eq!(m["enabled"], true);
    assert_eq!(m["selling"], false);
    assert_eq!(m["channels"].as_array().unwrap().len(), 1, "{m}");
    assert_eq!(m["channels"][0]["promised"], spent);
    assert_eq!(
        m["channels"][0]["payee"],
        wallet::Address(seller_wallet.0).to_checksum()
    );
    buyer.stop().await;

    // The seller's panel: the voucher is claimable, nothing claimed yet.
    let m = get(&seller, "/api/v1/market").await;
    assert_eq!(m["enabled"], true);
    assert_eq!(m["wallet"], wallet::Address(seller_wallet.0).to_checksum());
    assert_eq!(m["reserve_price"], RESERVE);
    assert_eq!(m["paid_slots"], 4);
    assert_eq!(m["free_share_bps"], 2_000);
    assert_eq!(m["wallet_view"]["claimable"], earned);
    assert_eq!(m["wallet_view"]["claimed"], "0");
    assert_eq!(m["wallet_view"]["free"], 10u128.pow(20).to_string());
    assert_eq!(m["earnings"]["total"], earned);
    assert_eq!(m["claimable_wei"], earned);
    let w = get(&seller, "/api/v1/wallet").await;
    assert_eq!(w["market"]["wallet_view"]["claimable"], earned);

    // A claim changes state: refused without the session id.
    let (status, _) = seller.raw("POST", "/api/v1/market/claim", &[], b"").await;
    assert_eq!(status, 409);
    let port = mem.port(seller_wallet);
    let before = port.balance(seller_wallet).await.unwrap();
    let (status, claimed) = seller.call("POST", "/api/v1/market/claim", None).await;
    assert_eq!(status, 200, "{claimed}");
    assert_eq!(claimed["total"], earned);
    assert_eq!(claimed["claims"].as_array().unwrap().len(), 1);
    let after = port.balance(seller_wallet).await.unwrap();
    assert_eq!((after.0 - before.0).to_string(), earned);

    let m = get(&seller, "/api/v1/market").await;
    assert_eq!(m["wallet_view"]["claimable"], "0");
    assert_eq!(m["wallet_view"]["claimed"], earned);
    assert_eq!(m["wallet_view"]["free"], after.0.to_string());
    // Claiming again pays nothing more.
    let (_, again) = seller.call("POST", "/api/v1/market/claim", None).await;
    assert_eq!(again["total"], "0");
    let text = String::from_utf8(seller.reply("GET", "/metrics", &[], b"").await.body).unwrap();
    assert!(
        text.contains(&format!("\nbtt_market_earnings_wei_total {earned}\n")),
        "{text}"
    );

    // The earnings survive a restart of the seller, from library.json.
    seller.stop().await;
    let (seller_market, _) = node_market(&mem, &tmp.path().join("s-market"), Some(RESERVE));
    let seller = TestNode::start_with(&tmp.path().join("s"), Some(seller_market)).await;
    assert_eq!(
        get(&seller, "/api/v1/torrents/1").await["torrent"]["earnings_wei"],
        earned
    );
    seller.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_market_nothing_is_bought_or_sold_and_budgets_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let node = TestNode::start(&tmp.path().join("n")).await;
    let t = make_torrent(&node.downloads, "free", &[("f", &data(100_000, 5))], 16_384);

    let m = get(&node, "/api/v1/market").await;
    assert_eq!(m["enabled"], false);
    assert_eq!(m["wallet_view"]["claimable"], "0");
    assert_eq!(m["earnings_wei"], "0");
    assert_eq!(
        get(&node, "/api/v1/wallet").await["market"]["enabled"],
        false
    );
    let (status, body) = node.call("POST", "/api/v1/market/claim", None).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "market_off");

    // A budget needs the market; bad amounts are refused whatever the market; nothing is added.
    for (budget, max_price) in [
        (json!("1000"), Value::Null),
        (json!("abc"), Value::Null),
        (json!("1.5"), Value::Null),
        (json!("-1"), Value::Null),
        (json!(1000), Value::Null),
        (json!("0"), json!(5)),
    ] {
        let (status, body) = node
            .call(
                "POST",
                "/api/v1/torrents",
                Some(json!({"torrent": b64(&t.to_bytes()), "budget": budget, "max_price": max_price})),
            )
            .await;
        assert_eq!(status, 400, "{budget}: {body}");
    }
    let (_, list) = node.raw("GET", "/api/v1/torrents", &[], b"").await;
    assert_eq!(list["total"], 0);

    let (status, body) = node
        .call(
            "POST",
            "/api/v1/torrents",
            Some(json!({"torrent": b64(&t.to_bytes()), "budget": "0"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let v = node.wait_for(1, LIMIT, |t| t["state"] == "seeding").await;
    assert_eq!(v["earnings_wei"], "0");
    assert_eq!(v["spent_wei"], "0");
    assert_eq!(v["budget_wei"], "0");
    let (status, body) = node
        .call(
            "PATCH",
            "/api/v1/torrents/1",
            Some(json!({"budget": "12x"})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = node
        .call("PATCH", "/api/v1/torrents/1", Some(json!({"budget": "5"})))
        .await;
    assert_eq!(status, 400, "{body}");
    let (_, list) = node.raw("GET", "/api/v1/torrents", &[], b"").await;
    for t in list["torrents"].as_array().unwrap() {
        assert_eq!(t["earnings_wei"], "0");
        assert_eq!(t["budget_wei"], "0");
    }
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_set_later_is_kept_across_restarts() {
    let tmp = tempfile::tempdir().unwrap();
    let mem = MemChain::new(7215);
    mem.set_now(now_s());
    let (m, _) = node_market(&mem, &tmp.path().join("m"), None);
    let node = TestNode::start_with(&tmp.path().join("n"), Some(m)).await;
    let t = make_torrent(
        &tmp.path().join("src"),
        "later",
        &[("f", &data(50_000, 6))],
        16_384,
    );
    let (status, body) = node
        .call(
            "POST",
            "/api/v1/torrents",
            Some(json!({"torrent": b64(&t.to_bytes()), "paused": true})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["torrent"]["budget_wei"], "0");
    let big = u128::MAX.to_string();
    let (status, body) = node
        .call(
            "PATCH",
            "/api/v1/torrents/1",
            Some(json!({"budget": big, "max_price": 9})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["torrent"]["budget_wei"], big);
    assert_eq!(body["torrent"]["max_price"], 9);
    node.stop().await;
    let (m, _) = node_market(&mem, &tmp.path().join("m"), None);
    let node = TestNode::start_with(&tmp.path().join("n"), Some(m)).await;
    let v = get(&node, "/api/v1/torrents/1").await;
    assert_eq!(v["torrent"]["budget_wei"], big);
    assert_eq!(v["torrent"]["max_price"], 9);
    node.stop().await;
}
