//! The `by_speed` extension on live connections.
//!
//! [`Market`] holds the node's keys, chain port and payment books; [`Market::torrent`] gives a
//! torrent its [`SpeedTorrent`], the [`engine::ext::Extension`] that runs `docs/speed.md` on
//! each connection with the `speed` crate's policy: the seller's [`Auction`] each rechoke round
//! and its [`SellerLedger`] before each block, the buyer's [`Bidder`] and [`BuyerLedger`] after
//! each verified piece. Chain reads and transactions run on spawned tasks and answer through the
//! connection's [`PeerLink`]; no engine task ever waits for the chain.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use engine::ext::{Extension, PeerExtension, PeerLink, RechokePeer};
use speed::{
    Amount, Ask, Auction, AuctionConfig, Auth, Bid, BidResponse, Bidder, BidderConfig, BidderError,
    BuyerLedger, Candidate, ChannelId, Class, Close, CreditError, ErrorCode, ErrorMsg, Handshake,
    Message, Nonce, Role, SellerLedger, SellerOffer, Signature, Voucher,
};
use wallet::eip712::{self, Eip712Domain};

use crate::chain::{channel_id, recover_voucher_signer, sign_voucher, ChainPort, ChannelState};
use crate::settle::BuyerChannel;

/// How long a buyer's credit may stay used up before it is in default, by default.
pub const DEFAULT_AFTER: Duration = Duration::from_secs(5);
/// Rechoke rounds between rotations of the optimistic unchoke (3 × 10 s).
const OPTIMISTIC_EVERY: u64 = 3;

/// What the driver needs from the payment books: the seller's accepted vouchers and the
/// buyer's channels, both persisted before the protocol acts on them.
pub trait PaymentStore: Send + Sync + 'static {
    /// The highest voucher amount accepted on channel `id` so far (zero if none).
    fn accepted(&self, id: &ChannelId) -> Amount;
    /// Records an accepted voucher; must be durable when this returns.
    fn record_voucher(
        &self,
        channel: &ChannelState,
        cumulative: Amount,
        sig: Signature,
    ) -> Result<(), String>;
    /// A channel we opened as buyer, with the cumulative amount we have promised on it.
    fn opened(&self, id: &ChannelId) -> Option<BuyerChannel>;
    /// Records a channel we opened or topped up (with its salt), keeping its cumulative.
    fn save_opened(&self, channel: &ChannelState, salt: [u8; 32]) -> Result<(), String>;
    /// Records a new cumulative promise on our channel; must be durable when this returns,
    /// before the voucher leaves.
    fn promise(&self, id: &ChannelId, cumulative: Amount) -> Result<(), String>;
    /// Deposit locked and not yet promised, over all our open channels.
    fn locked_unspent(&self) -> Amount;
}

/// How this node sells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SellerTerms {
    /// Paid slots, reserve price and the free share.
    pub auction: AuctionConfig,
    /// Bytes served to a buyer before payment; 0 means one piece (the most allowed).
    pub credit_bytes: u64,
}

/// The node's market settings.
#[derive(Debug, Clone)]
pub struct MarketConfig {
    /// Selling terms; `None` never sells (plain choking for everyone).
    pub seller: Option<SellerTerms>,
    /// How long new channels stay open, in seconds.
    pub channel_lifetime_s: u64,
    /// A channel expiring within this many seconds is refused by a seller.
    pub expiry_margin_s: u64,
    /// A buyer whose credit stays used up this long is in default and loses its paid slot.
    pub default_after: Duration,
}

impl Default for MarketConfig {
    fn default() -> Self {
        Self {
            seller: None,
            channel_lifetime_s: 7 * 24 * 3600,
            expiry_margin_s: 3600,
            default_after: DEFAULT_AFTER,
        }
    }
}

/// The node's side of the market: keys, chain and books, shared by every torrent.
pub struct Market {
    config: MarketConfig,
    /// Signs AUTH; its address is our wallet.
    wallet: Arc<wallet::Signer>,
    /// The channels' hot key; signs vouchers.
    channel_signer: Arc<wallet::Signer>,
    chain: Arc<dyn ChainPort>,
    store: Arc<dyn PaymentStore>,
}

impl std::fmt::Debug for Market {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Market")
            .field("wallet", &self.wallet.address())
            .field("seller", &self.config.seller)
            .finish_non_exhaustive()
    }
}

/// One torrent's market figures, for the API and the CLI.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TorrentMarket {
    /// Spent on this torrent as buyer (vouchers sent), base units.
    pub spent: Amount,
    /// Earned on this torrent as seller (vouchers accepted on this run), base units.
    pub earned: Amount,
    /// Bytes sold at a price on this run.
    pub bytes_sold: u64,
    /// Connections that speak `by_speed` and authenticated.
    pub speed_peers: usize,
    /// Buyers holding one of our paid slots.
    pub paying_peers: usize,
    /// Sellers whose paid slot we hold.
    pub paid_sellers: usize,
    /// Our last uniform clearing price as seller.
    pub clearing_price: Option<u64>,
}

impl Market {
    /// A market acting for `wallet`, paying with `channel_signer`, on `chain`.
    pub fn new(
        config: MarketConfig,
        wallet: Arc<wallet::Signer>,
        channel_signer: Arc<wallet::Signer>,
        chain: Arc<dyn ChainPort>,
        store: Arc<dyn PaymentStore>,
    ) -> Self {
        Self {
            config,
            wallet,
            channel_signer,
            chain,
            store,
        }
    }

    /// Our wallet address.
    pub fn wallet(&self) -> speed::Address {
        speed::Address(self.wallet.address().0)
    }

    /// The extension for one torrent: `info_hash` names its channels, `bidder` is its budget
    /// (zero: never buys), `remaining_bytes` what it still has to download.
    pub fn torrent(
        self: &Arc<Self>,
        info_hash: [u8; 20],
        piece_len: u64,
        remaining_bytes: u64,
        bidder: BidderConfig,
    ) -> Arc<SpeedTorrent> {
        let auction = self
            .config
            .seller
            .as_ref()
            .and_then(|s| Auction::new(s.auction.clone()).ok());
        let credit = self
            .config
            .seller
            .as_ref()
            .map(|s| match s.credit_bytes {
                0 => piece_len,
                n => n.min(piece_len),
            })
            .unwrap_or(0);
        Arc::new_cyclic(|me| SpeedTorrent {
            me: me.clone(),
            market: self.clone(),
            info_hash,
            piece_len,
            credit,
            runtime: tokio::runtime::Handle::current(),
            state: Mutex::new(TorrentState {
                peers: BTreeMap::new(),
                auction,
                bidder: Bidder::new(bidder),
                ledger: BuyerLedger::new(piece_len),
                remaining: remaining_bytes,
                round: 0,
                optimistic: None,
                stats: TorrentMarket::default(),
            }),
        })
    }

    fn domain(&self) -> Eip712Domain {
        Eip712Domain {
            name: speed::EIP712_NAME.into(),
            version: speed::EIP712_VERSION.into(),
            chain_id: self.chain.chain_id(),
            verifying_contract: wallet::Address(self.chain.module().0),
        }
    }

    fn role(&self, buys: bool) -> Option<Role> {
        match (self.config.seller.is_some(), buys) {
            (true, true) => Some(Role::Both),
            (true, false) => Some(Role::Seller),
            (false, true) => Some(Role::Buyer),
            (false, false) => None,
        }
    }
}

/// The digest an AUTH signs: `SpeedAuth(wallet, nonce, peerNonce)` under the Speed domain.
pub fn auth_digest(
    domain: &Eip712Domain,
    wallet: speed::Address,
    nonce: &Nonce,
    peer_nonce: &Nonce,
) -> [u8; 32] {
    let fields = [
        eip712::encode_address(&wallet::Address(wallet.0)),
        nonce.0,
        peer_nonce.0,
    ];
    let hash = eip712::hash_struct(&eip712::type_hash(speed::AUTH_TYPE), &fields);
    eip712::signing_hash(&domain.separator(), &hash)
}

/// Who signed AUTH `digest` with `sig`, if it is a valid signature.
fn recover(digest: &[u8; 32], sig: &Signature) -> Option<speed::Address> {
    let sig = wallet::Signature::from_bytes(&sig.0).ok()?;
    sig.recover(digest).ok().map(|a| speed::Address(a.0))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Our channel to a seller, as buyer.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outgoing {
    None,
    /// An open or top-up transaction is under way.
    Opening,
    Ready(ChannelId),
    /// The seller sent bad data or we stopped buying from it.
    Stopped,
}

/// A buyer's channel to us, as seller. (One per connection, so the size of `Ready` is no
/// concern.)
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
enum Incoming {
    None,
    Checking,
    Ready {
        channel: ChannelState,
        ledger: SellerLedger,
    },
}

/// One connection's market state.
struct Peer {
    link: PeerLink,
    nonce: Nonce,
    /// The peer's compatible `by_speed` entry.
    theirs: Option<Handshake>,
    /// The peer proved its wallet (a valid AUTH).
    authed: bool,
    // As buyer, towards this seller.
    ask: Option<Ask>,
    outgoing: Outgoing,
    /// Price per byte while we hold this seller's paid slot.
    slot_price: Option<u64>,
    /// A top-up transaction is under way.
    topping_up: bool,
    // As seller, towards this buyer.
    incoming: Incoming,
    bid: Option<Bid>,
    /// Price per byte while the buyer holds one of our paid slots.
    paid_price: Option<u64>,
    last_response: Option<BidResponse>,
    exhausted_since: Option<Instant>,
}

impl Peer {
    fn send(&self, m: &Message) {
        if let Ok(payload) = m.encode_to_vec() {
            self.link.send(&payload);
        }
    }

    fn error(&self, code: ErrorCode, text: &str) {
        let text = text.as_bytes();
        self.send(&Message::Error(ErrorMsg {
            code: code.code(),
            text: text[..text.len().min(speed::MAX_ERROR_TEXT)].to_vec(),
        }));
    }

    /// As buyer: names our channel `id` and bids `bid` per byte.
    fn start_buying(&mut self, id: ChannelId, bid: u64) {
        self.outgoing = Outgoing::Ready(id);
        self.send(&Message::Channel(speed::Channel { channel: id }));
        self.send(&Message::Bid(Bid {
            price_per_byte: bid,
            max_bytes: 0,
        }));
    }

    fn in_default(&self, now: Instant, after: Duration) -> bool {
        self.exhausted_since
            .is_some_and(|t| now.duration_since(t) >= after)
    }
}

struct TorrentState {
    peers: BTreeMap<u64, Peer>,
    auction: Option<Auction>,
    bidder: Bidder,
    ledger: BuyerLedger,
    remaining: u64,
    round: u64,
    optimistic: Option<u64>,
    stats: TorrentMarket,
}

/// One torrent's market: the engine's [`Extension`].
pub struct SpeedTorrent {
    /// Itself, for the tasks it spawns.
    me: Weak<SpeedTorrent>,
    market: Arc<Market>,
    info_hash: [u8; 20],
    piece_len: u64,
    /// Credit per buyer, bytes (0 when not selling).
    credit: u64,
    runtime: tokio::runtime::Handle,
    state: Mutex<TorrentState>,
}

impl std::fmt::Debug for SpeedTorrent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpeedTorrent")
            .field("piece_len", &self.piece_len)
            .finish_non_exhaustive()
    }
}

impl SpeedTorrent {
    fn lock(&self) -> MutexGuard<'_, TorrentState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn this(&self) -> Option<Arc<Self>> {
        self.me.upgrade()
    }

    /// This torrent's market figures.
    pub fn stats(&self) -> TorrentMarket {
        let st = self.lock();
        let mut s = st.stats.clone();
        s.spent = st.bidder.spent();
        s.speed_peers = st.peers.values().filter(|p| p.authed).count();
        s.paying_peers = st.peers.values().filter(|p| p.paid_price.is_some()).count();
        s.paid_sellers = st.peers.values().filter(|p| p.slot_price.is_some()).count();
        s
    }

    /// The channel salt for this torrent: one channel per (torrent, seller).
    fn salt(&self) -> [u8; 32] {
        let mut data = Vec::with_capacity(28);
        data.extend_from_slice(b"by_speed");
        data.extend_from_slice(&self.info_hash);
        wallet::keccak256(data)
    }

    fn channel_id(&self, payee: speed::Address) -> ChannelId {
        let m = &self.market;
        channel_id(
            m.chain.chain_id(),
            m.chain.module(),
            m.wallet(),
            payee,
            speed::Address(m.channel_signer.address().0),
            self.salt(),
        )
    }

    fn on_handshake(&self, key: u64, payload: &[u8], their_id: Option<u8>) {
        let mut st = self.lock();
        let Some(peer) = st.peers.get_mut(&key) else {
            return;
        };
        let theirs = match (their_id, Handshake::from_extended_handshake(payload)) {
            (Some(_), Ok(Some(h))) => h,
            _ => return,
        };
        let chain = &self.market.chain;
        if theirs.chain_id != chain.chain_id() || theirs.module != chain.module() {
            peer.send(&Message::Close(Close {
                reason: ErrorCode::WrongChain.code(),
            }));
            return;
        }
        let wallet = self.market.wallet();
        let digest = auth_digest(&self.market.domain(), wallet, &peer.nonce, &theirs.nonce);
        let sig = Signature(self.market.wallet.sign_hash(&digest).to_bytes());
        peer.send(&Message::Auth(Auth {
            nonce: peer.nonce,
            peer_nonce: theirs.nonce,
            sig,
        }));
        peer.theirs = Some(theirs);
    }

    fn on_message(self: &Arc<Self>, key: u64, payload: &[u8]) {
        let msg = match Message::decode(payload) {
            Ok(m) => m,
            Err(e) => {
                if let Some(p) = self.lock().peers.get(&key) {
                    let code = match e {
                        speed::MsgError::UnknownType(_) => ErrorCode::UnknownType,
                        _ => ErrorCode::Malformed,
                    };
                    p.error(code, &e.to_string());
                }
                return;
            }
        };
        let mut st = self.lock();
        let st = &mut *st;
        let Some(peer) = st.peers.get_mut(&key) else {
            return;
        };
        let Some(theirs) = peer.theirs.clone() else {
            return;
        };
        match msg {
            Message::Auth(a) => {
                let digest = auth_digest(
                    &self.market.domain(),
                    theirs.wallet,
                    &a.nonce,
                    &a.peer_nonce,
                );
                let ok = a.nonce == theirs.nonce
                    && a.peer_nonce == peer.nonce
                    && recover(&digest, &a.sig) == Some(theirs.wallet);
                if !ok {
                    peer.error(ErrorCode::AuthFailed, "auth failed");
                    return;
                }
                peer.authed = true;
                if let Some(auction) = &st.auction {
                    let c = auction.config();
                    peer.send(&Message::Ask(Ask {
                        reserve_price: c.reserve_price,
                        slots: c.paid_slots,
                    }));
                }
            }
            Message::Close(_) => {
                // Plain BitTorrent from here on.
                peer.theirs = None;
                peer.authed = false;
                peer.paid_price = None;
                peer.slot_price = None;
                peer.link.resume();
            }
            Message::Error(e) => {
                tracing::debug!(peer = key, code = e.code, "speed error from peer");
            }
            _ if !peer.authed => peer.error(ErrorCode::UnexpectedMessage, "auth first"),
            Message::Ask(ask) => {
                peer.ask = Some(ask);
                self.maybe_buy(st);
            }
            Message::BidResponse(r) => {
                peer.slot_price = r.accepted.then_some(r.clearing_price);
            }
            Message::Receipt(_) | Message::PayRequired(_) => {}
            Message::Channel(c) => self.on_channel(st, key, c.channel),
            Message::Bid(bid) => {
                let Some(auction) = &st.auction else {
                    peer.error(ErrorCode::UnexpectedMessage, "not selling");
                    return;
                };
                if bid.price_per_byte < auction.config().reserve_price {
                    peer.error(ErrorCode::BidTooLow, "bid below the reserve");
                }
                let changed = peer.bid.as_ref() != Some(&bid);
                peer.bid = Some(bid);
                if changed && matches!(peer.incoming, Incoming::Ready { .. }) {
                    // A new eligible bid is auctioned now, not at the next round.
                    peer.link.rechoke_soon();
                }
            }
            Message::Voucher(v) => self.on_voucher(st, key, v),
        }
    }

    /// As buyer: opens (or reuses) our channel to a seller that asked a price we pay, then
    /// names it and bids.
    ///
    /// Sellers asking at most our bid are taken cheapest first; each channel is sized for an
    /// even part of what is left to download, within the budget not yet spent or locked, so
    /// the cheapest sellers are funded first and the budget runs out on the dearest.
    fn maybe_buy(self: &Arc<Self>, st: &mut TorrentState) {
        let Some(bid) = st.bidder.bid_price(st.remaining, now_ms()) else {
            return;
        };
        let sells = |p: &Peer| p.authed && p.theirs.as_ref().is_some_and(|t| t.role.sells());
        let offers: Vec<SellerOffer> = st
            .peers
            .iter()
            .filter(|(_, p)| sells(p) && p.outgoing == Outgoing::None)
            .filter_map(|(k, p)| {
                p.ask.as_ref().map(|a| SellerOffer {
                    seller: speed::PeerKey(*k),
                    price: a.reserve_price,
                })
            })
            .collect();
        let ranked = st.bidder.rank_sellers(&offers, bid);
        let buying = st
            .peers
            .values()
            .filter(|p| matches!(p.outgoing, Outgoing::Ready(_) | Outgoing::Opening))
            .count();
        let sellers = (buying + ranked.len()).max(1) as u64;
        for seller in ranked {
            self.buy_from(st, seller.0, bid, st.remaining.div_ceil(sellers));
        }
    }

    /// Opens (or reuses) our channel to the seller on `key`, sized for `expected_bytes` at
    /// `bid`, then names it and bids.
    fn buy_from(self: &Arc<Self>, st: &mut TorrentState, key: u64, bid: u64, expected_bytes: u64) {
        let Some(peer) = st.peers.get_mut(&key) else {
            return;
        };
        let Some(theirs) = &peer.theirs else {
            return;
        };
        let payee = theirs.wallet;
        let id = self.channel_id(payee);
        if let Some(channel) = self.market.store.opened(&id) {
            if channel.locked() >= Amount::cost(self.piece_len, bid) {
                let added = st.ledger.add_seller(
                    speed::PeerKey(key),
                    id,
                    channel.deposit,
                    channel.cumulative,
                );
                if added.is_ok() {
                    peer.start_buying(id, bid);
                }
                return;
            }
        }
        let locked = self.market.store.locked_unspent();
        let deposit = st.bidder.channel_deposit(expected_bytes, bid, locked);
        if deposit < Amount::cost(self.piece_len.min(st.remaining.max(1)), bid) {
            return;
        }
        peer.outgoing = Outgoing::Opening;
        let this = self.clone();
        self.runtime.spawn(async move {
            let result = this.open_channel(id, payee, deposit).await;
            let mut st = this.lock();
            let st = &mut *st;
            let Some(peer) = st.peers.get_mut(&key) else {
                return;
            };
            match result {
                Ok((channel, cumulative)) => {
                    let added =
                        st.ledger
                            .add_seller(speed::PeerKey(key), id, channel.deposit, cumulative);
                    if added.is_err() {
                        let _ = st.ledger.top_up(speed::PeerKey(key), channel.deposit);
                    }
                    peer.start_buying(id, bid);
                }
                Err(e) => {
                    tracing::warn!("cannot open a payment channel: {e}");
                    peer.outgoing = Outgoing::Stopped;
                }
            }
        });
    }

    /// Opens our channel `id` to `payee` with `deposit`, or tops it up if it exists.
    async fn open_channel(
        &self,
        id: ChannelId,
        payee: speed::Address,
        deposit: Amount,
    ) -> Result<(ChannelState, Amount), String> {
        let m = &self.market;
        let chain = &m.chain;
        let existing = chain.channel(id).await.map_err(|e| e.to_string())?;
        let channel = match existing {
            Some(c) if c.open => {
                let add = deposit.saturating_sub(c.deposit.saturating_sub(c.paid));
                if add > Amount::ZERO {
                    chain.top_up(id, add).await.map_err(|e| e.to_string())?
                } else {
                    c
                }
            }
            _ => {
                let now = chain.now().await.map_err(|e| e.to_string())?;
                let signer = speed::Address(m.channel_signer.address().0);
                chain
                    .open(
                        payee,
                        signer,
                        self.salt(),
                        now + m.config.channel_lifetime_s,
                        deposit,
                    )
                    .await
                    .map_err(|e| e.to_string())?
            }
        };
        m.store.save_opened(&channel, self.salt())?;
        let cumulative = m
            .store
            .opened(&id)
            .map_or(channel.paid, |c| c.cumulative)
            .max(channel.paid);
        Ok((channel, cumulative))
    }

    /// As seller: a buyer named its channel; check it on chain before it counts.
    fn on_channel(self: &Arc<Self>, st: &mut TorrentState, key: u64, id: ChannelId) {
        let Some(peer) = st.peers.get_mut(&key) else {
            return;
        };
        if st.auction.is_none() {
            peer.error(ErrorCode::UnexpectedMessage, "not selling");
            return;
        }
        if matches!(peer.incoming, Incoming::Checking) {
            return;
        }
        let payer = peer.theirs.as_ref().map(|t| t.wallet);
        // A channel named again (after a top-up) keeps its ledger while it is re-read.
        if matches!(peer.incoming, Incoming::None) {
            peer.incoming = Incoming::Checking;
        }
        let this = self.clone();
        self.runtime.spawn(async move {
            let m = &this.market;
            let checked = async {
                let c = m.chain.channel(id).await.map_err(|e| e.to_string())?;
                let c = c.ok_or("unknown channel")?;
                let now = m.chain.now().await.map_err(|e| e.to_string())?;
                if c.payee != m.wallet() || Some(c.payer) != payer {
                    return Err("channel is not from this peer to us".to_string());
                }
                if !c.open || c.expiry < now + m.config.expiry_margin_s {
                    return Err("channel closed or expiring".into());
                }
                if c.deposit <= c.paid {
                    return Err("channel is empty".into());
                }
                Ok(c)
            }
            .await;
            let mut st = this.lock();
            let Some(peer) = st.peers.get_mut(&key) else {
                return;
            };
            match checked {
                Ok(channel) => {
                    let baseline = m.store.accepted(&id).max(channel.paid);
                    // A channel named again (after a top-up) keeps the ledger, with the new deposit.
                    if let Incoming::Ready { ledger, channel: c } = &mut peer.incoming {
                        if c.id == id {
                            let _ = ledger.set_deposit(channel.deposit);
                            *c = channel;
                            return;
                        }
                    }
                    let price = peer.paid_price.unwrap_or(0);
                    match SellerLedger::new(
                        id,
                        this.piece_len,
                        this.credit,
                        price,
                        channel.deposit,
                        baseline,
                    ) {
                        Ok(ledger) => {
                            peer.incoming = Incoming::Ready { channel, ledger };
                            if peer.bid.is_some() {
                                peer.link.rechoke_soon();
                            }
                        }
                        Err(e) => {
                            peer.incoming = Incoming::None;
                            peer.error(ErrorCode::BadChannel, &e.to_string());
                        }
                    }
                }
                Err(e) => {
                    if matches!(peer.incoming, Incoming::Checking) {
                        peer.incoming = Incoming::None;
                    }
                    peer.error(ErrorCode::BadChannel, &e);
                }
            }
        });
    }

    /// As seller: a payment.
    fn on_voucher(&self, st: &mut TorrentState, key: u64, v: Voucher) {
        let Some(peer) = st.peers.get_mut(&key) else {
            return;
        };
        let Incoming::Ready { channel, ledger } = &mut peer.incoming else {
            peer.error(ErrorCode::UnexpectedMessage, "no accepted channel");
            return;
        };
        if v.channel != channel.id {
            peer.error(ErrorCode::VoucherRejected, "voucher for another channel");
            return;
        }
        let chain = &self.market.chain;
        // The module's own rules (v is 27 or 28, low s), so a voucher accepted here is one the
        // chain pays.
        let signer = recover_voucher_signer(
            chain.chain_id(),
            chain.module(),
            v.channel,
            v.cumulative,
            &v.sig,
        );
        if signer != Some(channel.signer) {
            peer.error(ErrorCode::BadSignature, "voucher signature");
            return;
        }
        let before = ledger.accepted();
        if let Err(e) = ledger.on_voucher(&v.channel, v.cumulative) {
            let code = match e {
                speed::CreditError::OverDeposit { .. } => ErrorCode::InsufficientFunds,
                _ => ErrorCode::VoucherRejected,
            };
            peer.error(code, &e.to_string());
            return;
        }
        if let Err(e) = self
            .market
            .store
            .record_voucher(channel, v.cumulative, v.sig)
        {
            tracing::error!("cannot record a voucher: {e}");
            return;
        }
        let gained = ledger.accepted().saturating_sub(before);
        let receipt = ledger.receipt();
        if ledger.may_serve(1) {
            peer.exhausted_since = None;
        }
        peer.send(&Message::Receipt(receipt));
        peer.link.resume();
        st.stats.earned = st
            .stats
            .earned
            .checked_add(gained)
            .unwrap_or(st.stats.earned);
    }

    /// As seller: may the writer send `len` more bytes to this buyer?
    fn on_serve(&self, key: u64, len: u32) -> bool {
        let mut st = self.lock();
        let st = &mut *st;
        let Some(peer) = st.peers.get_mut(&key) else {
            return true;
        };
        let Some(price) = peer.paid_price else {
            return true;
        };
        let Incoming::Ready { ledger, .. } = &mut peer.incoming else {
            return true;
        };
        let len = u64::from(len);
        if ledger.may_serve(len) && ledger.on_served(len).is_ok() {
            if price > 0 {
                st.stats.bytes_sold += len;
            }
            return true;
        }
        if peer.exhausted_since.is_none() {
            peer.exhausted_since = Some(Instant::now());
            if let Some(pr) = ledger.pay_required(len) {
                peer.send(&Message::PayRequired(pr));
            }
        }
        false
    }

    /// As buyer: pay each seller that supplied a verified piece while we held its paid slot.
    fn on_verified(&self, index: u32, sources: &[(u64, u64)]) {
        let mut st = self.lock();
        let st = &mut *st;
        let total: u64 = sources.iter().map(|(_, b)| b).sum();
        st.remaining = st.remaining.saturating_sub(total);
        let now = now_ms();
        for &(key, bytes) in sources {
            let Some(peer) = st.peers.get_mut(&key) else {
                continue;
            };
            let (Outgoing::Ready(id), Some(price)) = (&peer.outgoing, peer.slot_price) else {
                continue;
            };
            let id = *id;
            let due = st.bidder.pay_for_piece(
                &mut st.ledger,
                speed::PeerKey(key),
                index,
                bytes,
                price,
                now,
            );
            let due = match due {
                Ok(Some(due)) => due,
                Ok(None) | Err(BidderError::Credit(CreditError::AlreadyPaid(_))) => continue,
                Err(e) => {
                    tracing::info!(peer = key, "not paying: {e}");
                    peer.outgoing = Outgoing::Stopped;
                    peer.send(&Message::Close(Close { reason: 0 }));
                    continue;
                }
            };
            if let Err(e) = self.market.store.promise(&id, due.cumulative) {
                tracing::error!("cannot record a payment, not sending it: {e}");
                continue;
            }
            let chain = &self.market.chain;
            let sig = sign_voucher(
                &self.market.channel_signer,
                chain.chain_id(),
                chain.module(),
                id,
                due.cumulative,
            );
            peer.send(&Message::Voucher(Voucher {
                channel: id,
                cumulative: due.cumulative,
                sig,
            }));
            // Keep the channel funded for what is left, within the budget.
            let unspent = st.ledger.remaining_deposit(speed::PeerKey(key));
            let locked = self.market.store.locked_unspent();
            let add = unspent.and_then(|u| {
                st.bidder
                    .top_up(u, st.remaining, price, self.piece_len, locked)
            });
            if let (Some(add), false) = (add, peer.topping_up) {
                peer.topping_up = true;
                self.top_up(key, id, add);
            }
        }
    }

    /// As buyer: adds `add` to our channel `id` to the seller on `key`, then names the channel
    /// again so the seller re-reads the deposit.
    fn top_up(&self, key: u64, id: ChannelId, add: Amount) {
        let Some(this) = self.this() else {
            return;
        };
        self.runtime.spawn(async move {
            let result = async {
                let channel = this
                    .market
                    .chain
                    .top_up(id, add)
                    .await
                    .map_err(|e| e.to_string())?;
                this.market.store.save_opened(&channel, this.salt())?;
                Ok::<_, String>(channel)
            }
            .await;
            let mut st = this.lock();
            let st = &mut *st;
            match result {
                Ok(channel) => {
                    let _ = st.ledger.top_up(speed::PeerKey(key), channel.deposit);
                    if let Some(peer) = st.peers.get_mut(&key) {
                        peer.topping_up = false;
                        peer.send(&Message::Channel(speed::Channel { channel: id }));
                    }
                }
                Err(e) => tracing::warn!("cannot top up a payment channel: {e}"),
            }
        });
    }

    /// As buyer: a piece failed; its sellers are never paid again.
    fn on_failed(&self, sources: &[(u64, u64)]) {
        let mut st = self.lock();
        let st = &mut *st;
        for &(key, _) in sources {
            let Some(peer) = st.peers.get_mut(&key) else {
                continue;
            };
            if let Outgoing::Ready(_) = peer.outgoing {
                st.ledger.on_piece_failed(speed::PeerKey(key));
                peer.outgoing = Outgoing::Stopped;
                peer.slot_price = None;
                peer.error(ErrorCode::BadData, "a piece you sent failed its hash check");
            }
        }
    }

    /// As seller: the round's allocation, or `None` when not selling.
    fn allocate(&self, peers: &[RechokePeer]) -> Option<Vec<u64>> {
        let mut st = self.lock();
        let st = &mut *st;
        let now = Instant::now();
        let reserve = st.auction.as_ref()?.config().reserve_price;
        let mut candidates = Vec::with_capacity(peers.len());
        for rp in peers {
            let p = st.peers.get(&rp.key);
            let (bid_price, eligible, incumbent) = match p {
                Some(p) => {
                    let ready = matches!(p.incoming, Incoming::Ready { .. });
                    let bid = p.bid.as_ref().map(|b| b.price_per_byte);
                    let eligible = p.authed
                        && ready
                        && !p.in_default(now, self.market.config.default_after)
                        && bid.is_some_and(|b| b >= reserve);
                    (bid, eligible, p.paid_price.is_some())
                }
                None => (None, false, false),
            };
            candidates.push(Candidate {
                peer: speed::PeerKey(rp.key),
                bid_price,
                eligible,
                incumbent,
                interested: rp.interested && !rp.snubbed,
            });
        }
        let alloc = st.auction.as_mut()?.allocate(&candidates).ok()?;
        st.stats.clearing_price = alloc.clearing_price;
        let mut unchoke: Vec<u64> = alloc.unchoked().map(|k| k.0).collect();
        // The usual optimistic unchoke on top, rotated every third round among the rest.
        if st.round.is_multiple_of(OPTIMISTIC_EVERY)
            || st.optimistic.is_none_or(|o| unchoke.contains(&o))
        {
            let pool: Vec<u64> = peers
                .iter()
                .filter(|p| p.interested && !unchoke.contains(&p.key))
                .map(|p| p.key)
                .collect();
            st.optimistic = (!pool.is_empty())
                .then(|| pool[(st.round / OPTIMISTIC_EVERY) as usize % pool.len()]);
        }
        st.round += 1;
        if let Some(o) = st.optimistic.filter(|o| peers.iter().any(|p| p.key == *o)) {
            if !unchoke.contains(&o) {
                unchoke.push(o);
            }
        }
        // Upload weights: each unchoked peer's share relative to an equal split (100), so the
        // paid and free classes get their ppm when upload is the bottleneck.
        let n = alloc.shares.len() as u64;
        let pct = |ppm: u32| u32::try_from(u64::from(ppm) * n / 10_000).unwrap_or(u32::MAX);
        let free_pct = alloc
            .shares
            .iter()
            .find(|s| s.class == Class::Free)
            .map_or(100, |s| pct(s.weight_ppm));
        for (key, peer) in st.peers.iter() {
            let share = alloc.shares.iter().find(|s| s.peer.0 == *key);
            // The optimistic unchoke gets a free-class share.
            peer.link
                .set_upload_share(share.map_or(free_pct, |s| pct(s.weight_ppm)).max(1));
        }
        for (key, peer) in st.peers.iter_mut() {
            let won = alloc
                .paid
                .iter()
                .position(|w| w.peer.0 == *key)
                .map(|slot| (slot, alloc.paid[slot].price_per_byte));
            peer.paid_price = won.map(|(_, price)| price);
            if let Incoming::Ready { ledger, .. } = &mut peer.incoming {
                ledger.set_price(peer.paid_price.unwrap_or(0));
            }
            if peer.bid.is_some() {
                let response = match won {
                    Some((slot, price)) => BidResponse {
                        accepted: true,
                        clearing_price: price,
                        slot: slot as u32,
                    },
                    None => BidResponse {
                        accepted: false,
                        clearing_price: alloc.clearing_price.unwrap_or(reserve),
                        slot: 0,
                    },
                };
                if peer.last_response.as_ref() != Some(&response) {
                    peer.send(&Message::BidResponse(response.clone()));
                    peer.last_response = Some(response);
                }
            }
            if won.is_none() {
                // Out of the paid class: what it gets now is free, so nothing is held back.
                peer.exhausted_since = None;
                peer.link.resume();
            }
        }
        Some(unchoke)
    }
}

impl Extension for SpeedTorrent {
    fn name(&self) -> &'static str {
        speed::EXTENSION_NAME
    }

    fn connect(self: Arc<Self>, peer: u64, link: PeerLink) -> Box<dyn PeerExtension> {
        self.lock().peers.insert(
            peer,
            Peer {
                link,
                nonce: Nonce(rand::random()),
                theirs: None,
                authed: false,
                ask: None,
                outgoing: Outgoing::None,
                slot_price: None,
                topping_up: false,
                incoming: Incoming::None,
                bid: None,
                paid_price: None,
                last_response: None,
                exhausted_since: None,
            },
        );
        Box::new(SpeedPeer {
            torrent: Some(self),
            key: peer,
        })
    }

    fn rechoke(&self, peers: &[RechokePeer], _slots: usize, _seeding: bool) -> Option<Vec<u64>> {
        self.allocate(peers)
    }

    fn piece_verified(&self, index: u32, sources: &[(u64, u64)]) {
        self.on_verified(index, sources);
    }

    fn piece_failed(&self, _index: u32, sources: &[(u64, u64)]) {
        self.on_failed(sources);
    }
}

/// One connection's handle on its torrent's market.
struct SpeedPeer {
    torrent: Option<Arc<SpeedTorrent>>,
    key: u64,
}

impl PeerExtension for SpeedPeer {
    fn handshake_entry(&mut self) -> Option<Vec<u8>> {
        let t = self.torrent.as_ref()?;
        let st = t.lock();
        let role = t.market.role(st.bidder.is_enabled())?;
        let nonce = st.peers.get(&self.key)?.nonce;
        let reserve = st.auction.as_ref().map_or(0, |a| a.config().reserve_price);
        let hs = Handshake {
            version: speed::VERSION,
            chain_id: t.market.chain.chain_id(),
            module: t.market.chain.module(),
            wallet: t.market.wallet(),
            role,
            reserve_price: reserve,
            credit_limit_bytes: t.credit,
            prepay_limit: Amount::ZERO,
            nonce,
        };
        hs.encode_to_vec().ok()
    }

    fn on_handshake(&mut self, payload: &[u8], their_id: Option<u8>) {
        if let Some(t) = &self.torrent {
            t.on_handshake(self.key, payload, their_id);
        }
    }

    fn on_message(&mut self, payload: &[u8]) {
        if let Some(t) = &self.torrent {
            t.on_message(self.key, payload);
        }
    }

    fn on_serve(&mut self, len: u32) -> bool {
        self.torrent
            .as_ref()
            .is_none_or(|t| t.on_serve(self.key, len))
    }

    fn on_close(&mut self) {
        if let Some(t) = self.torrent.take() {
            t.lock().peers.remove(&self.key);
        }
    }
}
