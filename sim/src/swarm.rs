//! The swarm model: one torrent, seeders and leechers, stepped in fixed time steps.
//!
//! Each step every uploader splits its upload capacity among the peers it unchoked by their
//! weights (weighted max-min water-filling, capped by each receiver's download capacity, leftover
//! going first to positive-weight flows and then to zero-weight ones), and the bytes land in the
//! piece each link is fetching. Every `rechoke_ms` the unchoke sets are recomputed: leechers by
//! tit-for-tat (the best `leecher_slots` uploaders to them last round plus one optimistic slot),
//! seeders by the scenario's [`MechanismKind`]. A piece verifies when its last byte arrives: the
//! buyer pays every seller that served bytes of it at a price, and the seller accepts the voucher.
//!
//! Invariants checked at every serve and every payment (each failure counts one violation):
//! a buyer's unpaid bytes at a seller stay within the credit limit; a buyer's cumulative vouchers
//! on a channel stay within its deposit, and so does what the seller accepted; a seller never
//! accepted more than the buyer paid it; a buyer's spend stays within its budget and equals the
//! sum of its vouchers; nobody is charged above its own bid.

use std::collections::{BTreeMap, BTreeSet};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use speed::{
    Amount, Ask, Auction, AuctionConfig, Auth, Bid, BidResponse, Bidder, BidderConfig, BuyerLedger,
    Candidate, Channel, ChannelId, Class, Handshake, Mechanism, Message, Nonce, PayRequired,
    PeerKey, Receipt, Role, SellerLedger, Signature, Voucher,
};

use crate::{Capacities, MechanismKind, RunReport, Scenario, KIB, MIB};

/// Framing around each `by_speed` message: 4-byte length, BEP 10 message id, extension id.
const FRAMING: u64 = 6;

/// A buyer's channel deposit covers this many pieces at its bid; it is topped up by as much
/// when less than two pieces' worth is left.
const DEPOSIT_WINDOW_PIECES: u64 = 8;

/// A fixed-size bit set over pieces.
#[derive(Debug, Clone)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(n: u32) -> Self {
        Self(vec![0; (n as usize).div_ceil(64)])
    }

    fn full(n: u32) -> Self {
        let mut b = Self::new(n);
        for i in 0..n {
            b.set(i);
        }
        b
    }

    fn get(&self, i: u32) -> bool {
        self.0[(i / 64) as usize] >> (i % 64) & 1 == 1
    }

    fn set(&mut self, i: u32) {
        self.0[(i / 64) as usize] |= 1 << (i % 64);
    }

    fn clear(&mut self, i: u32) {
        self.0[(i / 64) as usize] &= !(1 << (i % 64));
    }
}

/// One unchoked peer of an uploader.
#[derive(Debug, Clone, Copy)]
struct Slot {
    to: usize,
    /// Upload weight; zero means it only gets what positive-weight flows cannot take.
    weight: f64,
    /// Price per byte of pieces this seller starts for this peer this round (0 = free).
    price: u64,
    /// Whether a seeder serves it in its free class (everything but paid slots).
    free: bool,
}

/// Bytes of one piece one source supplied, at the price fixed when it sent the first of them.
#[derive(Debug, Clone, Copy)]
struct Contribution {
    src: usize,
    bytes: u64,
    price: u64,
}

#[derive(Debug, Clone, Default)]
struct Partial {
    done: u64,
    from: Vec<Contribution>,
}

#[derive(Debug, Clone)]
struct Peer {
    seed: bool,
    payer: bool,
    up: f64,
    down: f64,
    have: Bits,
    have_count: u32,
    done_ms: Option<u64>,
    neighbors: Vec<usize>,
    /// Copies of each piece among present neighbours.
    avail: Vec<u32>,
    partial: BTreeMap<u32, Partial>,
    partial_bits: Bits,
    /// Pieces some incoming link is fetching.
    assigned: Bits,
    slots: Vec<Slot>,
    optimistic: Option<usize>,
    /// Round-robin position of a seeder's slots (plain and pay-as-bid).
    rr_cursor: Option<usize>,
    seed_bytes_in: u64,
}

impl Peer {
    fn present(&self) -> bool {
        self.seed || self.done_ms.is_none()
    }

    fn leeching(&self) -> bool {
        !self.seed && self.done_ms.is_none()
    }
}

/// A seller's market state.
#[derive(Debug)]
struct Seller {
    auction: Option<Auction>,
    incumbents: BTreeSet<usize>,
    ledgers: BTreeMap<usize, SellerLedger>,
    last_bid: BTreeMap<usize, u64>,
    last_response: BTreeMap<usize, (bool, u64, u32)>,
    stalled: BTreeSet<usize>,
}

/// A paying leecher's market state.
#[derive(Debug)]
struct Buyer {
    bidder: Bidder,
    ledger: BuyerLedger,
    budget: Amount,
    deposits: BTreeMap<usize, Amount>,
}

#[derive(Debug, Default)]
struct Stats {
    seed_bytes: u64,
    paid_bytes: u64,
    payload: u64,
    contended_total: u64,
    contended_nonpayer: u64,
    contended_free: u64,
    uncontended_price_sum: f64,
    uncontended_rounds: u64,
    msg_bytes: u64,
    violations: u64,
    voucher_rejections: u64,
    refused_payments: u64,
    credit_stalls: u64,
}

#[derive(Debug, Clone, Copy)]
struct Flow {
    u: usize,
    d: usize,
    weight: f64,
    price: u64,
    free: bool,
    cap: f64,
    rate: f64,
}

struct Swarm<'a> {
    sc: &'a Scenario,
    n: usize,
    peers: Vec<Peer>,
    /// Piece each link `u × n + d` is fetching.
    link_piece: Vec<Option<u32>>,
    /// Bytes `a` received from `b` this round and last round, at `a × n + b`.
    recv_cur: Vec<u64>,
    recv_prev: Vec<u64>,
    sellers: BTreeMap<usize, Seller>,
    buyers: BTreeMap<usize, Buyer>,
    rng: SmallRng,
    stats: Stats,
    contended: Vec<bool>,
}

fn msg_len(m: &Message) -> u64 {
    m.encode_to_vec().map_or(0, |v| v.len() as u64) + FRAMING
}

fn channel_id(seller: usize, buyer: usize) -> ChannelId {
    let mut id = [0u8; 32];
    id[..8].copy_from_slice(&(seller as u64).to_be_bytes());
    id[8..16].copy_from_slice(&(buyer as u64).to_be_bytes());
    ChannelId(id)
}

fn handshake_len(role: Role, reserve: u64, credit: u64) -> u64 {
    let hs = Handshake {
        version: speed::VERSION,
        chain_id: 0x0042_5454,
        module: speed::Address([0x11; 20]),
        wallet: speed::Address([0x22; 20]),
        role,
        reserve_price: reserve,
        credit_limit_bytes: credit,
        prepay_limit: Amount::ZERO,
        nonce: Nonce([0x33; 32]),
    };
    let mut out = Vec::new();
    hs.encode(&mut out).map_or(0, |()| out.len() as u64)
}

/// Weighted max-min water-filling of `capacity` over `idx` (flows of one uploader): flows with
/// weight > 0 first, in proportion to weight, each capped at its `cap`; what they cannot take goes
/// to the zero-weight flows in equal parts.
fn fill(capacity: f64, flows: &mut [Flow], idx: &[usize]) {
    let mut left = capacity;
    for tier in [true, false] {
        let mut members: Vec<usize> = idx
            .iter()
            .copied()
            .filter(|&i| (flows[i].weight > 0.0) == tier)
            .collect();
        if members.is_empty() || left <= 0.0 {
            continue;
        }
        let w = |f: &Flow| if tier { f.weight } else { 1.0 };
        members.sort_by(|&a, &b| {
            let ka = flows[a].cap / w(&flows[a]);
            let kb = flows[b].cap / w(&flows[b]);
            ka.total_cmp(&kb).then(a.cmp(&b))
        });
        let mut total_w: f64 = members.iter().map(|&i| w(&flows[i])).sum();
        for (pos, &i) in members.iter().enumerate() {
            let fair = left * w(&flows[i]) / total_w;
            if flows[i].cap <= fair {
                flows[i].rate = flows[i].cap;
                left -= flows[i].cap;
                total_w -= w(&flows[i]);
            } else {
                for &j in &members[pos..] {
                    flows[j].rate = left * w(&flows[j]) / total_w;
                }
                left = 0.0;
                break;
            }
        }
    }
}

impl<'a> Swarm<'a> {
    fn new(sc: &'a Scenario, seed: u64) -> Self {
        // The world (capacities, graph, payers, budgets) comes from its own stream so that every
        // mechanism sees the same world for the same seed.
        let mut world = SmallRng::seed_from_u64(seed ^ 0x005E_ED0F_5A4D);
        let seeds = sc.seeds() as usize;
        let leechers = sc.leechers as usize;
        let n = seeds + leechers;
        let pieces = sc.pieces;
        let mut peers = Vec::with_capacity(n);
        for i in 0..n {
            let up = match sc.capacities {
                Capacities::Homogeneous => MIB as f64,
                Capacities::Heterogeneous => {
                    [256 * KIB, MIB, 4 * MIB][world.gen_range(0..3usize)] as f64
                }
            };
            let down = match sc.capacities {
                Capacities::Homogeneous => 4.0 * MIB as f64,
                Capacities::Heterogeneous => 4.0 * up,
            };
            let seed = i < seeds;
            peers.push(Peer {
                seed,
                payer: false,
                up,
                down,
                have: if seed {
                    Bits::full(pieces)
                } else {
                    Bits::new(pieces)
                },
                have_count: if seed { pieces } else { 0 },
                done_ms: None,
                neighbors: Vec::new(),
                avail: vec![0; pieces as usize],
                partial: BTreeMap::new(),
                partial_bits: Bits::new(pieces),
                assigned: Bits::new(pieces),
                slots: Vec::new(),
                optimistic: None,
                rr_cursor: None,
                seed_bytes_in: 0,
            });
        }
        // Payers: a random subset of the leechers.
        let mut order: Vec<usize> = (seeds..n).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, world.gen_range(0..=i));
        }
        for &p in order.iter().take(sc.payers() as usize) {
            peers[p].payer = true;
        }
        // A random symmetric graph: each peer asks for `neighbors` peers among those with room.
        let target = (sc.neighbors as usize).min(n - 1);
        let room = target + target / 4 + 1;
        let mut adj: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); n];
        for i in 0..n {
            if adj[i].len() >= target {
                continue;
            }
            let mut cands: Vec<usize> = (0..n)
                .filter(|&j| j != i && !adj[i].contains(&j) && adj[j].len() < room)
                .collect();
            for k in (1..cands.len()).rev() {
                cands.swap(k, world.gen_range(0..=k));
            }
            let need = target - adj[i].len();
            for &j in cands.iter().take(need) {
                adj[i].insert(j);
                adj[j].insert(i);
            }
        }
        for (peer, a) in peers.iter_mut().zip(adj) {
            peer.neighbors = a.into_iter().collect();
            let seed_neighbors = peer.neighbors.iter().filter(|&&j| j < seeds).count();
            peer.avail = vec![seed_neighbors as u32; pieces as usize];
        }

        let mut swarm = Swarm {
            sc,
            n,
            peers,
            link_piece: vec![None; n * n],
            recv_cur: vec![0; n * n],
            recv_prev: vec![0; n * n],
            sellers: BTreeMap::new(),
            buyers: BTreeMap::new(),
            rng: SmallRng::seed_from_u64(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1CE),
            stats: Stats::default(),
            contended: vec![false; n],
        };
        swarm.open_market(&mut world);
        swarm
    }

    fn auction_config(&self) -> Option<AuctionConfig> {
        let sc = self.sc;
        let base = AuctionConfig {
            paid_slots: sc.paid_slots,
            free_slots: sc.free_slots,
            ..AuctionConfig::default()
        };
        match sc.mechanism {
            MechanismKind::Plain | MechanismKind::PayAsBid => None,
            MechanismKind::UniformNoReserve => Some(AuctionConfig {
                reserve_price: 0,
                free_share_bps: 0,
                ..base
            }),
            MechanismKind::Ours => Some(AuctionConfig {
                reserve_price: sc.reserve_price,
                ..base
            }),
            MechanismKind::ProportionalShare => Some(AuctionConfig {
                mechanism: Mechanism::ProportionalShare,
                reserve_price: sc.reserve_price,
                ..base
            }),
        }
    }

    /// Budgets, sellers and the channels between seeders and their paying neighbours.
    fn open_market(&mut self, world: &mut SmallRng) {
        let sc = self.sc;
        let r = sc.reserve_price.max(1);
        // Budgets are drawn for every peer (payer or not) so the stream does not depend on
        // the payer share or the mechanism.
        let budgets: Vec<u64> = (0..self.n)
            .map(|_| world.gen_range(2 * r..=6 * r))
            .collect();
        if !sc.mechanism.has_market() {
            return;
        }
        let cfg = self.auction_config();
        for s in (0..self.n).filter(|&s| self.peers[s].seed) {
            let auction = match &cfg {
                Some(c) => match Auction::new(c.clone()) {
                    Ok(a) => Some(a),
                    Err(_) => {
                        self.stats.violations += 1;
                        None
                    }
                },
                None => None,
            };
            self.sellers.insert(
                s,
                Seller {
                    auction,
                    incumbents: BTreeSet::new(),
                    ledgers: BTreeMap::new(),
                    last_bid: BTreeMap::new(),
                    last_response: BTreeMap::new(),
                    stalled: BTreeSet::new(),
                },
            );
        }
        for d in (0..self.n).filter(|&d| self.peers[d].payer) {
            let budget = Amount::cost(sc.total_bytes(), budgets[d]);
            let bidder = Bidder::new(BidderConfig {
                budget,
                daily_cap: None,
                max_price: 8 * r,
                top_up_low_water_pieces: 2,
            });
            self.buyers.insert(
                d,
                Buyer {
                    bidder,
                    ledger: BuyerLedger::new(sc.piece_len),
                    budget,
                    deposits: BTreeMap::new(),
                },
            );
        }
        for a in 0..self.n {
            for i in 0..self.peers[a].neighbors.len() {
                let b = self.peers[a].neighbors[i];
                if a < b {
                    self.on_connect(a, b, 0);
                }
            }
        }
    }

    fn reserve(&self) -> u64 {
        self.sellers
            .values()
            .find_map(|s| s.auction.as_ref())
            .map_or(0, |a| a.config().reserve_price)
    }

    /// The `by_speed` setup on a new connection: the seller's handshake entry; with a payer,
    /// the buyer's entry, AUTH both ways, ASK, and a channel sized by the bidder.
    fn on_connect(&mut self, a: usize, b: usize, now: u64) {
        if !self.sc.mechanism.has_market() {
            return;
        }
        let (s, d) = match (self.sellers.contains_key(&a), self.sellers.contains_key(&b)) {
            (true, false) => (a, b),
            (false, true) => (b, a),
            _ => return,
        };
        let sc = self.sc;
        let reserve = self.reserve();
        self.stats.msg_bytes += handshake_len(Role::Seller, reserve, sc.piece_len);
        let remaining = self.remaining_bytes(d);
        let Some(buyer) = self.buyers.get_mut(&d) else {
            return;
        };
        self.stats.msg_bytes += handshake_len(Role::Buyer, 0, 0);
        let auth = Message::Auth(Auth {
            nonce: Nonce([1; 32]),
            peer_nonce: Nonce([2; 32]),
            sig: Signature([3; 65]),
        });
        self.stats.msg_bytes += 2 * msg_len(&auth);
        self.stats.msg_bytes += msg_len(&Message::Ask(Ask {
            reserve_price: reserve,
            slots: sc.paid_slots,
        }));
        let key = PeerKey(s as u64);
        if buyer.ledger.is_paying(key) || remaining == 0 {
            return;
        }
        let bid = buyer.bidder.bid_price(remaining, now).unwrap_or(0);
        let locked = Amount(
            buyer
                .deposits
                .keys()
                .filter_map(|&x| buyer.ledger.remaining_deposit(PeerKey(x as u64)))
                .map(|a| a.0)
                .sum(),
        );
        let deposit =
            buyer
                .bidder
                .channel_deposit(DEPOSIT_WINDOW_PIECES * sc.piece_len, bid, locked);
        if deposit == Amount::ZERO {
            return;
        }
        let ch = channel_id(s, d);
        let seller_ledger =
            SellerLedger::new(ch, sc.piece_len, sc.piece_len, 0, deposit, Amount::ZERO);
        match (
            buyer.ledger.add_seller(key, ch, deposit, Amount::ZERO),
            seller_ledger,
        ) {
            (Ok(()), Ok(sl)) => {
                buyer.deposits.insert(s, deposit);
                if let Some(seller) = self.sellers.get_mut(&s) {
                    seller.ledgers.insert(d, sl);
                }
                self.stats.msg_bytes += msg_len(&Message::Channel(Channel { channel: ch }));
            }
            _ => self.stats.violations += 1,
        }
    }

    fn wants(&self, d: usize, u: usize) -> bool {
        let (pd, pu) = (&self.peers[d], &self.peers[u]);
        pd.leeching() && pu.present() && pu.have.0.iter().zip(&pd.have.0).any(|(a, b)| a & !b != 0)
    }

    fn remaining_bytes(&self, d: usize) -> u64 {
        u64::from(self.sc.pieces - self.peers[d].have_count) * self.sc.piece_len
    }

    fn release_link(&mut self, u: usize, d: usize) {
        if let Some(p) = self.link_piece[u * self.n + d].take() {
            self.peers[d].assigned.clear(p);
        }
    }

    /// Picks the piece link `u → d` fetches next: a partial piece `u` already sent bytes of,
    /// then any other partial piece, then the rarest among neighbours (ties broken by a salted
    /// hash, so the choice is random but reproducible).
    ///
    /// Between a seller and a paying buyer at most one paid piece is in flight: while one is
    /// unfinished the link continues it (or waits if another link holds it), and a new paid
    /// piece starts only when the buyer owes nothing and its channel covers the piece. So the
    /// unpaid bytes never pass one piece and a buyer cannot strand itself above its credit.
    fn pick_piece(&mut self, u: usize, d: usize, price: u64) -> Option<u32> {
        let (pu, pd) = (&self.peers[u], &self.peers[d]);
        let can = |p: u32| pu.have.get(p) && !pd.have.get(p) && !pd.assigned.get(p);
        if self.governed(u, d) {
            let paid = pd.partial.iter().find_map(|(&p, part)| {
                part.from
                    .iter()
                    .any(|c| c.src == u && c.price > 0)
                    .then_some(p)
            });
            if let Some(p) = paid {
                return can(p).then_some(p);
            }
            if price > 0 && !self.can_start(u, d, price) {
                return None;
            }
        }
        let (pu, pd) = (&self.peers[u], &self.peers[d]);
        let can = |p: u32| pu.have.get(p) && !pd.have.get(p) && !pd.assigned.get(p);
        // A seller serves each piece at the price it started it at, so a partial piece it
        // started at another price comes last (only if nothing else is left).
        let mut other_partial = None;
        let mut other_price = None;
        for (&p, part) in &pd.partial {
            if !can(p) {
                continue;
            }
            match part.from.iter().find(|c| c.src == u) {
                Some(c) if c.price == price => return Some(p),
                Some(_) => {
                    other_price.get_or_insert(p);
                }
                None => {
                    other_partial.get_or_insert(p);
                }
            }
        }
        if other_partial.is_some() {
            return other_partial;
        }
        let salt: u32 = self.rng.gen();
        let mut best: Option<(u32, u32, u32)> = None;
        for (w, ((h, mine), taken)) in pu
            .have
            .0
            .iter()
            .zip(&pd.have.0)
            .zip(&pd.assigned.0)
            .enumerate()
        {
            let mut bits = h & !mine & !taken;
            while bits != 0 {
                let p = w as u32 * 64 + bits.trailing_zeros();
                bits &= bits - 1;
                let key = (pd.avail[p as usize], p.wrapping_mul(0x9E37_79B1) ^ salt, p);
                if best.is_none_or(|b| key < b) {
                    best = Some(key);
                }
            }
        }
        best.map(|b| b.2).or(other_price)
    }

    /// Like a tracker re-announce: departed neighbours are dropped, and a peer left with fewer
    /// than half its wanted neighbours connects to random present peers with room.
    fn reannounce(&mut self, now: u64) {
        let n = self.n;
        let target = (self.sc.neighbors as usize).min(n - 1);
        let room = target + target / 4 + 1;
        for i in 0..n {
            let keep: Vec<usize> = self.peers[i]
                .neighbors
                .iter()
                .copied()
                .filter(|&j| self.peers[j].present())
                .collect();
            self.peers[i].neighbors = keep;
        }
        for i in 0..n {
            if !self.peers[i].present() || self.peers[i].neighbors.len() >= target / 2 {
                continue;
            }
            let mut cands: Vec<usize> = (0..n)
                .filter(|&j| {
                    j != i
                        && self.peers[j].present()
                        && self.peers[j].neighbors.len() < room
                        && !self.peers[i].neighbors.contains(&j)
                        && !(self.peers[i].seed && self.peers[j].seed)
                })
                .collect();
            for k in (1..cands.len()).rev() {
                cands.swap(k, self.rng.gen_range(0..=k));
            }
            let need = target - self.peers[i].neighbors.len();
            for &j in cands.iter().take(need) {
                self.connect(i, j, now);
            }
        }
    }

    fn connect(&mut self, a: usize, b: usize, now: u64) {
        for (x, y) in [(a, b), (b, a)] {
            let pos = self.peers[x].neighbors.partition_point(|&z| z < y);
            self.peers[x].neighbors.insert(pos, y);
            for p in 0..self.sc.pieces {
                if self.peers[y].have.get(p) {
                    self.peers[x].avail[p as usize] += 1;
                }
            }
        }
        self.on_connect(a, b, now);
    }

    fn rechoke(&mut self, now: u64) {
        self.reannounce(now);
        std::mem::swap(&mut self.recv_cur, &mut self.recv_prev);
        self.recv_cur.iter_mut().for_each(|x| *x = 0);
        let optimistic_turn = now.is_multiple_of(self.sc.optimistic_ms.max(1));
        for u in 0..self.n {
            let slots = std::mem::take(&mut self.peers[u].slots);
            for s in &slots {
                self.release_link(u, s.to);
            }
            if !self.peers[u].present() {
                continue;
            }
            let slots = if self.peers[u].seed {
                let mut slots = self.seed_slots(u, now);
                if self.sc.mechanism.has_market() {
                    // The engine's optimistic unchoke comes on top of the allocation; it gets
                    // only upload the allocated peers cannot take.
                    let pool: Vec<usize> = self.peers[u]
                        .neighbors
                        .iter()
                        .copied()
                        .filter(|&d| self.wants(d, u) && slots.iter().all(|x| x.to != d))
                        .collect();
                    let keep = self.peers[u]
                        .optimistic
                        .filter(|o| !optimistic_turn && pool.contains(o));
                    let pick = keep.or_else(|| {
                        (!pool.is_empty()).then(|| pool[self.rng.gen_range(0..pool.len())])
                    });
                    self.peers[u].optimistic = pick;
                    slots.extend(pick.map(|to| Slot {
                        to,
                        weight: 0.0,
                        price: 0,
                        free: true,
                    }));
                }
                slots
            } else {
                self.leecher_slots(u, optimistic_turn)
            };
            self.peers[u].slots = slots;
        }
    }

    fn leecher_slots(&mut self, u: usize, optimistic_turn: bool) -> Vec<Slot> {
        let n = self.n;
        let mut cands: Vec<(u64, u64, usize)> = Vec::new();
        for &d in &self.peers[u].neighbors {
            if !self.peers[d].seed && self.wants(d, u) {
                cands.push((self.recv_prev[u * n + d], self.rng.gen(), d));
            }
        }
        cands.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let regular: Vec<usize> = cands
            .iter()
            .take(self.sc.leecher_slots as usize)
            .map(|c| c.2)
            .collect();
        let rest: Vec<usize> = cands
            .iter()
            .map(|c| c.2)
            .filter(|d| !regular.contains(d))
            .collect();
        let keep = self.peers[u]
            .optimistic
            .filter(|o| !optimistic_turn && rest.contains(o));
        let optimistic =
            keep.or_else(|| (!rest.is_empty()).then(|| rest[self.rng.gen_range(0..rest.len())]));
        self.peers[u].optimistic = optimistic;
        regular
            .into_iter()
            .chain(optimistic)
            .map(|to| Slot {
                to,
                weight: 1.0,
                price: 0,
                free: true,
            })
            .collect()
    }

    /// Round robin: `count` peers of `pool` (sorted) after the seeder's cursor.
    fn round_robin(&mut self, u: usize, pool: &[usize], count: usize) -> Vec<usize> {
        if pool.is_empty() || count == 0 {
            return Vec::new();
        }
        let start = match self.peers[u].rr_cursor {
            Some(c) => pool.partition_point(|&p| p <= c),
            None => 0,
        };
        let picked: Vec<usize> = (0..count.min(pool.len()))
            .map(|i| pool[(start + i) % pool.len()])
            .collect();
        self.peers[u].rr_cursor = picked.last().copied();
        picked
    }

    /// The standing bid of payer `d` at seller `s`, if it may bid there: it has a channel to
    /// `s` holding at least one piece's worth at the bid (topped up first if it runs low), and
    /// its credit there is not exhausted.
    fn bid_of(&mut self, s: usize, d: usize, now: u64) -> Option<u64> {
        let piece_len = self.sc.piece_len;
        let remaining = self.remaining_bytes(d);
        let bid = {
            let ledger = self.sellers.get(&s)?.ledgers.get(&d)?;
            if ledger.unpaid_bytes() >= piece_len {
                return None;
            }
            self.buyers.get(&d)?.bidder.bid_price(remaining, now)?
        };
        self.top_up(d, s, bid);
        let unspent = self
            .buyers
            .get(&d)?
            .ledger
            .remaining_deposit(PeerKey(s as u64))?;
        (unspent >= Amount::cost(piece_len, bid)).then_some(bid)
    }

    /// Tops up buyer `d`'s channel to seller `s` when less than two pieces' worth at `price` is
    /// unspent, adding up to a window of [`DEPOSIT_WINDOW_PIECES`] pieces within the budget not
    /// spent or locked. No chain latency is modelled: the new deposit counts at once.
    fn top_up(&mut self, d: usize, s: usize, price: u64) {
        let piece_len = self.sc.piece_len;
        let key = PeerKey(s as u64);
        let (Some(buyer), Some(seller)) = (self.buyers.get_mut(&d), self.sellers.get_mut(&s))
        else {
            return;
        };
        let Some(seller_ledger) = seller.ledgers.get_mut(&d) else {
            return;
        };
        let unspent = buyer.ledger.remaining_deposit(key).unwrap_or(Amount::ZERO);
        let locked = Amount(
            buyer
                .deposits
                .keys()
                .filter_map(|&x| buyer.ledger.remaining_deposit(PeerKey(x as u64)))
                .map(|a| a.0)
                .sum(),
        );
        let window = DEPOSIT_WINDOW_PIECES * piece_len;
        if let Some(add) = buyer
            .bidder
            .top_up(unspent, window, price, piece_len, locked)
        {
            let deposit = buyer.deposits.entry(s).or_default();
            let new = Amount(deposit.0 + add.0);
            if buyer.ledger.top_up(key, new).is_ok() && seller_ledger.set_deposit(new).is_ok() {
                *deposit = new;
            } else {
                self.stats.violations += 1;
            }
        }
    }

    fn seed_slots(&mut self, u: usize, now: u64) -> Vec<Slot> {
        let sc = self.sc;
        let pool: Vec<usize> = self.peers[u]
            .neighbors
            .iter()
            .copied()
            .filter(|&d| self.wants(d, u))
            .collect();
        let total_slots = (sc.paid_slots + sc.free_slots) as usize;
        match sc.mechanism {
            MechanismKind::Plain => self
                .round_robin(u, &pool, total_slots)
                .into_iter()
                .map(|to| Slot {
                    to,
                    weight: 1.0,
                    price: 0,
                    free: true,
                })
                .collect(),
            MechanismKind::PayAsBid => {
                let mut bids: Vec<(u64, usize)> = Vec::new();
                for &d in &pool {
                    if let Some(p) = self.bid_of(u, d, now) {
                        bids.push((p, d));
                    }
                }
                self.send_bids(u, &bids);
                bids.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
                let winners: Vec<(u64, usize)> = bids.iter().take(total_slots).copied().collect();
                if !winners.is_empty() && bids.len() <= sc.paid_slots as usize {
                    let mean =
                        winners.iter().map(|w| w.0 as f64).sum::<f64>() / winners.len() as f64;
                    self.stats.uncontended_price_sum += mean;
                    self.stats.uncontended_rounds += 1;
                }
                let responses: Vec<(usize, bool, u64, u32)> = bids
                    .iter()
                    .map(|&(p, d)| {
                        let slot = winners.iter().position(|w| w.1 == d);
                        (d, slot.is_some(), p, slot.unwrap_or(0) as u32)
                    })
                    .collect();
                self.send_responses(u, &responses);
                let won: BTreeSet<usize> = winners.iter().map(|w| w.1).collect();
                let rest: Vec<usize> = pool.iter().copied().filter(|d| !won.contains(d)).collect();
                let extra = self.round_robin(u, &rest, total_slots - winners.len());
                winners
                    .iter()
                    .map(|&(p, d)| Slot {
                        to: d,
                        weight: 1.0,
                        price: p,
                        free: false,
                    })
                    .chain(extra.into_iter().map(|to| Slot {
                        to,
                        weight: 0.0,
                        price: 0,
                        free: true,
                    }))
                    .collect()
            }
            MechanismKind::UniformNoReserve
            | MechanismKind::Ours
            | MechanismKind::ProportionalShare => self.auction_slots(u, &pool, now),
        }
    }

    fn send_bids(&mut self, s: usize, bids: &[(u64, usize)]) {
        let Some(seller) = self.sellers.get_mut(&s) else {
            return;
        };
        for &(p, d) in bids {
            if seller.last_bid.insert(d, p) != Some(p) {
                self.stats.msg_bytes += msg_len(&Message::Bid(Bid {
                    price_per_byte: p,
                    max_bytes: 0,
                }));
            }
        }
    }

    fn send_responses(&mut self, s: usize, responses: &[(usize, bool, u64, u32)]) {
        let Some(seller) = self.sellers.get_mut(&s) else {
            return;
        };
        for &(d, accepted, price, slot) in responses {
            let r = (accepted, price, slot);
            if seller.last_response.insert(d, r) != Some(r) {
                self.stats.msg_bytes += msg_len(&Message::BidResponse(BidResponse {
                    accepted,
                    clearing_price: price,
                    slot,
                }));
            }
        }
    }

    fn auction_slots(&mut self, u: usize, pool: &[usize], now: u64) -> Vec<Slot> {
        let mut cands = Vec::with_capacity(pool.len());
        let mut bids = Vec::new();
        for &d in pool {
            let bid = self.bid_of(u, d, now);
            if let Some(p) = bid {
                bids.push((p, d));
            }
            let incumbent = self
                .sellers
                .get(&u)
                .is_some_and(|s| s.incumbents.contains(&d));
            cands.push(Candidate {
                peer: PeerKey(d as u64),
                bid_price: bid,
                eligible: bid.is_some(),
                incumbent,
                interested: true,
            });
        }
        self.send_bids(u, &bids);
        let Some(seller) = self.sellers.get_mut(&u) else {
            return Vec::new();
        };
        let Some(auction) = seller.auction.as_mut() else {
            return Vec::new();
        };
        let reserve = auction.config().reserve_price;
        let k = auction.config().paid_slots as usize;
        let alloc = match auction.allocate(&cands) {
            Ok(a) => a,
            Err(_) => {
                self.stats.violations += 1;
                return Vec::new();
            }
        };
        seller.incumbents = alloc.paid.iter().map(|w| w.peer.0 as usize).collect();
        let eligible = bids.iter().filter(|b| b.0 >= reserve).count();
        if !alloc.paid.is_empty() && eligible <= k {
            let mean = alloc
                .paid
                .iter()
                .map(|w| w.price_per_byte as f64)
                .sum::<f64>()
                / alloc.paid.len() as f64;
            self.stats.uncontended_price_sum += mean;
            self.stats.uncontended_rounds += 1;
        }
        for w in &alloc.paid {
            if w.price_per_byte > w.bid_price || w.price_per_byte < reserve {
                self.stats.violations += 1;
            }
        }
        let hint = alloc.clearing_price.unwrap_or(reserve);
        let responses: Vec<(usize, bool, u64, u32)> = bids
            .iter()
            .map(
                |&(_, d)| match alloc.paid.iter().position(|w| w.peer.0 as usize == d) {
                    Some(i) => (d, true, alloc.paid[i].price_per_byte, i as u32),
                    None => (d, false, hint, 0),
                },
            )
            .collect();
        self.send_responses(u, &responses);
        alloc
            .shares
            .iter()
            .map(|s| {
                let to = s.peer.0 as usize;
                let price = match s.class {
                    Class::Paid => alloc
                        .paid
                        .iter()
                        .find(|w| w.peer == s.peer)
                        .map_or(0, |w| w.price_per_byte),
                    Class::Free => 0,
                };
                Slot {
                    to,
                    weight: f64::from(s.weight_ppm),
                    price,
                    free: s.class == Class::Free,
                }
            })
            .collect()
    }

    /// Whether a seller's ledger governs the link `u → d` (a seeder and a paying buyer with a
    /// channel between them).
    fn governed(&self, u: usize, d: usize) -> bool {
        self.sellers
            .get(&u)
            .is_some_and(|s| s.ledgers.contains_key(&d))
            && self.buyers.contains_key(&d)
    }

    /// Whether buyer `d` starts a new piece from seller `u` at `price`: only if it owes `u`
    /// nothing and its channel (topped up first if low) covers the piece.
    fn can_start(&mut self, u: usize, d: usize, price: u64) -> bool {
        self.top_up(d, u, price);
        let owed = self
            .sellers
            .get(&u)
            .and_then(|s| s.ledgers.get(&d))
            .map_or(Amount::ZERO, |l| l.unpaid_value());
        if owed > Amount::ZERO {
            return false;
        }
        let unspent = self
            .buyers
            .get(&d)
            .and_then(|b| b.ledger.remaining_deposit(PeerKey(u as u64)))
            .unwrap_or(Amount::ZERO);
        unspent.saturating_sub(owed) >= Amount::cost(self.sc.piece_len, price)
    }

    /// Bytes seller `u` may still serve `d` on credit at `price`, or `None` if no ledger
    /// governs the link.
    fn credit_room(&self, u: usize, d: usize, price: u64) -> Option<u64> {
        let ledger = self.sellers.get(&u)?.ledgers.get(&d)?;
        if price == 0 {
            return None;
        }
        Some(self.sc.piece_len.saturating_sub(ledger.unpaid_bytes()))
    }

    fn piece_price(&self, u: usize, d: usize, p: u32, slot_price: u64) -> u64 {
        if !self.sellers.contains_key(&u) || !self.buyers.contains_key(&d) {
            return 0;
        }
        self.peers[d]
            .partial
            .get(&p)
            .and_then(|part| part.from.iter().find(|c| c.src == u))
            .map_or(slot_price, |c| c.price)
    }

    fn build_flows(&mut self) -> Vec<Flow> {
        let mut flows = Vec::new();
        for u in 0..self.n {
            if !self.peers[u].present() {
                continue;
            }
            for si in 0..self.peers[u].slots.len() {
                let slot = self.peers[u].slots[si];
                let d = slot.to;
                if !self.peers[d].leeching() {
                    continue;
                }
                let link = u * self.n + d;
                if self.link_piece[link].is_none() {
                    match self.pick_piece(u, d, slot.price) {
                        Some(p) => {
                            self.link_piece[link] = Some(p);
                            self.peers[d].assigned.set(p);
                        }
                        None => continue,
                    }
                }
                let Some(p) = self.link_piece[link] else {
                    continue;
                };
                let price = self.piece_price(u, d, p, slot.price);
                if self.credit_room(u, d, price) == Some(0) {
                    self.stall(u, d);
                    continue;
                }
                flows.push(Flow {
                    u,
                    d,
                    weight: slot.weight,
                    price: slot.price,
                    free: slot.free,
                    cap: self.peers[d].down,
                    rate: 0.0,
                });
            }
        }
        flows
    }

    fn stall(&mut self, u: usize, d: usize) {
        let Some(seller) = self.sellers.get_mut(&u) else {
            return;
        };
        if seller.stalled.insert(d) {
            self.stats.credit_stalls += 1;
            if let Some(l) = seller.ledgers.get(&d) {
                let pr = l.pay_required(1).unwrap_or(PayRequired {
                    amount_owed: l.unpaid_value(),
                    unpaid_bytes: l.unpaid_bytes(),
                });
                self.stats.msg_bytes += msg_len(&Message::PayRequired(pr));
            }
        }
    }

    /// Rates for `flows`: each uploader water-fills its capacity; receivers above their download
    /// capacity scale their inflows down and the uploaders refill with the freed capacity.
    fn allocate_rates(&self, flows: &mut [Flow]) {
        let mut by_u: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        let mut by_d: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (i, f) in flows.iter().enumerate() {
            by_u.entry(f.u).or_default().push(i);
            by_d.entry(f.d).or_default().push(i);
        }
        for _ in 0..3 {
            for (&u, idx) in &by_u {
                fill(self.peers[u].up, flows, idx);
            }
            let mut changed = false;
            for (&d, idx) in &by_d {
                let inflow: f64 = idx.iter().map(|&i| flows[i].rate).sum();
                let cap = self.peers[d].down;
                if inflow > cap * (1.0 + 1e-9) {
                    let k = cap / inflow;
                    for &i in idx {
                        flows[i].cap = flows[i].rate * k;
                    }
                    changed = true;
                }
            }
            if !changed {
                return;
            }
        }
        for (&d, idx) in &by_d {
            let inflow: f64 = idx.iter().map(|&i| flows[i].rate).sum();
            let cap = self.peers[d].down;
            if inflow > cap {
                for &i in idx {
                    flows[i].rate *= cap / inflow;
                }
            }
        }
    }

    fn mark_contended(&mut self) {
        for u in 0..self.n {
            if !self.peers[u].seed {
                continue;
            }
            let (mut payer, mut free) = (false, false);
            for &d in &self.peers[u].neighbors {
                if self.peers[d].leeching() {
                    if self.peers[d].payer {
                        payer = true;
                    } else {
                        free = true;
                    }
                }
            }
            self.contended[u] = payer && free;
        }
    }

    fn transfer(&mut self, flows: &[Flow], end_ms: u64) {
        let dt = self.sc.step_ms as f64 / 1000.0;
        for f in flows {
            let (u, d) = (f.u, f.d);
            let mut left = (f.rate * dt).round() as u64;
            // An uploader that finished earlier in this step has left.
            while left > 0 && self.peers[d].leeching() && self.peers[u].present() {
                let link = u * self.n + d;
                let current = self.link_piece[link];
                let p = match current {
                    Some(p) => p,
                    None => match self.pick_piece(u, d, f.price) {
                        Some(p) => {
                            self.link_piece[link] = Some(p);
                            self.peers[d].assigned.set(p);
                            p
                        }
                        None => break,
                    },
                };
                let price = self.piece_price(u, d, p, f.price);
                let done = self.peers[d].partial.get(&p).map_or(0, |x| x.done);
                let mut chunk = left.min(self.sc.piece_len - done);
                if let Some(room) = self.credit_room(u, d, price) {
                    chunk = chunk.min(room);
                    if chunk == 0 {
                        self.stall(u, d);
                        break;
                    }
                }
                if !self.serve(u, d, price, chunk) {
                    break;
                }
                self.record(u, d, p, price, chunk, f.free);
                left -= chunk;
                if done + chunk == self.sc.piece_len {
                    self.link_piece[link] = None;
                    self.complete(d, p, end_ms);
                }
            }
        }
    }

    /// The seller's ledger records `len` bytes served to `d` at `price`; false if refused.
    fn serve(&mut self, u: usize, d: usize, price: u64, len: u64) -> bool {
        let limit = self.sc.piece_len;
        let Some(seller) = self.sellers.get_mut(&u) else {
            return true;
        };
        let Some(ledger) = seller.ledgers.get_mut(&d) else {
            return true;
        };
        ledger.set_price(price);
        if !ledger.may_serve(len) {
            return false;
        }
        if ledger.on_served(len).is_err() {
            self.stats.violations += 1;
            return false;
        }
        seller.stalled.remove(&d);
        if ledger.unpaid_bytes() > limit {
            self.stats.violations += 1;
        }
        true
    }

    fn record(&mut self, u: usize, d: usize, p: u32, price: u64, len: u64, free: bool) {
        let n = self.n;
        let peer = &mut self.peers[d];
        let part = peer.partial.entry(p).or_default();
        peer.partial_bits.set(p);
        part.done += len;
        match part.from.iter_mut().find(|c| c.src == u) {
            Some(c) => c.bytes += len,
            None => part.from.push(Contribution {
                src: u,
                bytes: len,
                price,
            }),
        }
        self.recv_cur[d * n + u] += len;
        self.stats.payload += len;
        if self.peers[u].seed {
            self.peers[d].seed_bytes_in += len;
            self.stats.seed_bytes += len;
            if price > 0 {
                self.stats.paid_bytes += len;
            }
            if self.contended[u] {
                self.stats.contended_total += len;
                if !self.peers[d].payer {
                    self.stats.contended_nonpayer += len;
                }
                if free {
                    self.stats.contended_free += len;
                }
            }
        }
    }

    fn complete(&mut self, d: usize, p: u32, now: u64) {
        let part = {
            let peer = &mut self.peers[d];
            peer.partial_bits.clear(p);
            peer.assigned.clear(p);
            peer.have.set(p);
            peer.have_count += 1;
            peer.partial.remove(&p).unwrap_or_default()
        };
        for i in 0..self.peers[d].neighbors.len() {
            let nb = self.peers[d].neighbors[i];
            self.peers[nb].avail[p as usize] += 1;
        }
        for c in &part.from {
            if c.price > 0 {
                self.pay(d, c.src, p, c.bytes, c.price, now);
            }
        }
        if self.peers[d].have_count == self.sc.pieces {
            self.finish(d, now);
        }
    }

    /// Buyer `d` pays seller `s` for `bytes` of verified piece `p` at `price`.
    fn pay(&mut self, d: usize, s: usize, p: u32, bytes: u64, price: u64, now: u64) {
        self.top_up(d, s, price);
        let piece_len = self.sc.piece_len;
        let key = PeerKey(s as u64);
        let (Some(buyer), Some(seller)) = (self.buyers.get_mut(&d), self.sellers.get_mut(&s))
        else {
            return;
        };
        let Some(seller_ledger) = seller.ledgers.get_mut(&d) else {
            return;
        };
        match buyer
            .bidder
            .pay_for_piece(&mut buyer.ledger, key, p, bytes, price, now)
        {
            Ok(Some(due)) => {
                let voucher = Message::Voucher(Voucher {
                    channel: due.channel,
                    cumulative: due.cumulative,
                    sig: Signature([0; 65]),
                });
                self.stats.msg_bytes += msg_len(&voucher);
                match seller_ledger.on_voucher(&due.channel, due.cumulative) {
                    Ok(_) => {
                        let Receipt {
                            cumulative,
                            bytes_served,
                        } = seller_ledger.receipt();
                        self.stats.msg_bytes += msg_len(&Message::Receipt(Receipt {
                            cumulative,
                            bytes_served,
                        }));
                    }
                    Err(_) => self.stats.voucher_rejections += 1,
                }
            }
            Ok(None) => {}
            Err(_) => self.stats.refused_payments += 1,
        }
        // Invariants after every payment.
        let deposit = buyer.deposits.get(&s).copied().unwrap_or(Amount::ZERO);
        let paid = buyer.ledger.cumulative(key).unwrap_or(Amount::ZERO);
        let accepted = seller_ledger.accepted();
        let mut bad = 0;
        bad += u64::from(paid > deposit);
        bad += u64::from(accepted > deposit);
        bad += u64::from(accepted > paid);
        bad += u64::from(buyer.bidder.spent() > buyer.budget);
        bad += u64::from(buyer.ledger.total_paid() != buyer.bidder.spent());
        bad += u64::from(seller_ledger.unpaid_bytes() > piece_len);
        self.stats.violations += bad;
    }

    /// Leecher `d` has every piece: it leaves the swarm.
    fn finish(&mut self, d: usize, now: u64) {
        self.peers[d].done_ms = Some(now);
        self.peers[d].slots.clear();
        for x in 0..self.n {
            self.release_link(d, x);
            self.link_piece[x * self.n + d] = None;
        }
        let pieces = self.sc.pieces;
        for i in 0..self.peers[d].neighbors.len() {
            let nb = self.peers[d].neighbors[i];
            for p in 0..pieces as usize {
                self.peers[nb].avail[p] = self.peers[nb].avail[p].saturating_sub(1);
            }
        }
        self.peers[d].partial.clear();
    }

    fn all_done(&self) -> bool {
        self.peers.iter().all(|p| p.seed || p.done_ms.is_some())
    }

    fn report(&self, seed: u64, end_ms: u64) -> RunReport {
        let leechers: Vec<&Peer> = self.peers.iter().filter(|p| !p.seed).collect();
        let secs = |p: &Peer| p.done_ms.unwrap_or(end_ms).max(1) as f64 / 1000.0;
        let mean_rate = |payer: bool| {
            let xs: Vec<f64> = leechers
                .iter()
                .filter(|p| p.payer == payer)
                .map(|p| p.seed_bytes_in as f64 / secs(p))
                .collect();
            (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64)
        };
        let completed = leechers.iter().filter(|p| p.done_ms.is_some()).count() as u32;
        let makespan_s = leechers
            .iter()
            .map(|p| secs(p))
            .fold(0.0f64, f64::max)
            .max(0.001);
        let mean_completion_s =
            leechers.iter().map(|p| secs(p)).sum::<f64>() / leechers.len().max(1) as f64;
        let seller_earned = self
            .sellers
            .values()
            .flat_map(|s| s.ledgers.values())
            .map(|l| l.earned().0)
            .sum();
        let st = &self.stats;
        RunReport {
            seed,
            seeds: self.sc.seeds(),
            leechers: self.sc.leechers,
            payers: self.sc.payers(),
            completed,
            makespan_s,
            mean_completion_s,
            payer_seed_rate: mean_rate(true),
            nonpayer_seed_rate: mean_rate(false),
            nonpayer_share_contended: (st.contended_total > 0)
                .then(|| st.contended_nonpayer as f64 / st.contended_total as f64),
            free_class_share_contended: (st.contended_total > 0)
                .then(|| st.contended_free as f64 / st.contended_total as f64),
            seed_bytes: st.seed_bytes,
            paid_bytes: st.paid_bytes,
            seller_earned,
            uncontended_price: (st.uncontended_rounds > 0)
                .then(|| st.uncontended_price_sum / st.uncontended_rounds as f64),
            goodput: st.payload as f64 / makespan_s,
            payload_bytes: st.payload,
            payment_msg_bytes: st.msg_bytes,
            violations: st.violations,
            voucher_rejections: st.voucher_rejections,
            refused_payments: st.refused_payments,
            credit_stalls: st.credit_stalls,
        }
    }
}

/// Runs `scenario` with `seed` to the end (every leecher complete, or the time limit) and
/// reports what it measured. The same pair always gives the same report.
pub fn run(scenario: &Scenario, seed: u64) -> RunReport {
    let mut swarm = Swarm::new(scenario, seed);
    let step = scenario.step_ms.max(1);
    let rechoke = scenario.rechoke_ms.max(step);
    let mut now = 0;
    while !swarm.all_done() && now < scenario.max_time_ms {
        if now.is_multiple_of(rechoke) {
            swarm.rechoke(now);
        }
        swarm.mark_contended();
        let mut flows = swarm.build_flows();
        swarm.allocate_rates(&mut flows);
        now += step;
        swarm.transfer(&flows, now);
    }
    swarm.report(seed, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(u: usize, d: usize, weight: f64, cap: f64) -> Flow {
        Flow {
            u,
            d,
            weight,
            price: 0,
            free: false,
            cap,
            rate: 0.0,
        }
    }

    #[test]
    fn water_filling_is_weighted_capped_and_work_conserving() {
        // 100 units over weights 8:2 with a zero-weight flow; the first flow is capped at 30.
        let mut f = vec![
            flow(0, 1, 8.0, 30.0),
            flow(0, 2, 2.0, 1e9),
            flow(0, 3, 0.0, 1e9),
        ];
        fill(100.0, &mut f, &[0, 1, 2]);
        assert_eq!(f[0].rate, 30.0);
        assert_eq!(f[1].rate, 70.0);
        assert_eq!(f[2].rate, 0.0);
        // When the weighted flows are all capped, the zero-weight flow gets the rest.
        let mut f = vec![
            flow(0, 1, 8.0, 30.0),
            flow(0, 2, 2.0, 10.0),
            flow(0, 3, 0.0, 1e9),
        ];
        fill(100.0, &mut f, &[0, 1, 2]);
        assert_eq!((f[0].rate, f[1].rate, f[2].rate), (30.0, 10.0, 60.0));
        // Uncapped: proportional to weight.
        let mut f = vec![flow(0, 1, 800_000.0, 1e9), flow(0, 2, 200_000.0, 1e9)];
        fill(10.0, &mut f, &[0, 1]);
        assert!((f[0].rate - 8.0).abs() < 1e-9 && (f[1].rate - 2.0).abs() < 1e-9);
    }

    #[test]
    fn bits() {
        let mut b = Bits::new(130);
        assert_eq!(b.0.len(), 3);
        b.set(129);
        assert!(b.get(129) && !b.get(128));
        b.clear(129);
        assert!(!b.get(129));
        assert!(Bits::full(130).get(129));
    }
}
