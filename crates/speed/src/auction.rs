//! Seeder allocation: who gets upload each rechoke round, and at what price.
//!
//! Each round the engine hands [`Auction::allocate`] its candidate peers and gets back an
//! [`Allocation`]:
//! - **paid slots**: the top `paid_slots` (k) eligible, interested bids at or above the reserve.
//!   Under [`Mechanism::UniformPrice`] every winner pays the same clearing price,
//!   `max(reserve, (k+1)-th highest eligible bid)`, capped at the lowest winning bid so no one
//!   pays more than it bid. An incumbent (a winner of the previous round) keeps its slot against a
//!   challenger unless the challenger bids more *and* at least `incumbency_margin_bps` more
//!   (`challenger × 10000 ≥ incumbent × (10000 + margin)`), which stops slots flapping between
//!   near-equal bidders.
//! - **free slots**: `free_slots` picks, round robin by peer key, among every other interested
//!   peer (non-payers, losing bidders and plain BitTorrent peers). The engine's optimistic unchoke
//!   comes on top.
//! - **upload weights**: the free class gets `free_share_bps` of upload and the paid class the
//!   rest; if either class is empty the other gets everything (work-conserving). Inside a class
//!   upload is split equally, or, for paid peers under [`Mechanism::ProportionalShare`], in
//!   proportion to the bids (each payer then pays its own bid).
//!
//! Weights are integers in parts per million ([`PPM`]) split by largest remainder, so the
//! shares of a round sum to exactly [`PPM`] whenever anyone is unchoked.

use std::collections::BTreeSet;

/// Basis points in one whole (100 %).
pub const BPS: u32 = 10_000;

/// Parts per million in one whole: the unit of [`Share::weight_ppm`].
pub const PPM: u32 = 1_000_000;

/// An engine-chosen peer handle, unique within one torrent's candidate list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerKey(pub u64);

/// How paid slots are priced and how the paid class's upload is split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mechanism {
    /// Uniform (k+1)-th price with a reserve; paid upload split equally (the default).
    #[default]
    UniformPrice,
    /// Each payer pays its own bid and gets paid upload in proportion to it (for comparison).
    ProportionalShare,
}

/// The seller's allocation parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuctionConfig {
    /// Pricing rule.
    pub mechanism: Mechanism,
    /// Lowest accepted price per byte, in base units.
    pub reserve_price: u64,
    /// Paid slots per round (k).
    pub paid_slots: u32,
    /// Free slots per round for everyone else (besides the engine's optimistic unchoke).
    pub free_slots: u32,
    /// Upload share of the free class when both classes are present, in basis points.
    pub free_share_bps: u32,
    /// How much more, in basis points, a challenger must bid to displace an incumbent.
    pub incumbency_margin_bps: u32,
}

impl Default for AuctionConfig {
    fn default() -> Self {
        Self {
            mechanism: Mechanism::UniformPrice,
            reserve_price: 0,
            paid_slots: 4,
            free_slots: 2,
            free_share_bps: 2_000,
            incumbency_margin_bps: 1_000,
        }
    }
}

/// Why an allocation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuctionError {
    /// A basis-point parameter above 10000.
    #[error("{field} is {value} basis points; use at most 10000 (100 %)")]
    BadBps {
        /// The parameter.
        field: &'static str,
        /// Its value.
        value: u32,
    },
    /// The same peer key twice in one round's candidates.
    #[error("peer {0:?} appears twice among the candidates; pass each peer once per round")]
    DuplicatePeer(PeerKey),
}

/// One peer as the seller sees it this round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// The peer.
    pub peer: PeerKey,
    /// Its standing bid, price per byte in base units; `None` for non-payers and plain peers.
    pub bid_price: Option<u64>,
    /// Whether a bid may win: authenticated, a final funded channel, and in good credit.
    pub eligible: bool,
    /// Whether it held a paid slot last round.
    pub incumbent: bool,
    /// Whether it wants data from us.
    pub interested: bool,
}

/// A paid-slot winner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Winner {
    /// The peer.
    pub peer: PeerKey,
    /// What it bid per byte.
    pub bid_price: u64,
    /// What it pays per byte this round (≤ its bid, ≥ the reserve).
    pub price_per_byte: u64,
}

/// Which class a share of upload belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// A paid slot.
    Paid,
    /// A free slot.
    Free,
}

/// One unchoked peer's share of upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Share {
    /// The peer.
    pub peer: PeerKey,
    /// Its class.
    pub class: Class,
    /// Its weight in parts per million of the seller's upload.
    pub weight_ppm: u32,
}

/// The result of one round.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Allocation {
    /// Paid-slot winners, best rank first; the slot index is the position.
    pub paid: Vec<Winner>,
    /// The uniform clearing price per byte; `None` under proportional share or with no winners.
    pub clearing_price: Option<u64>,
    /// Free-slot picks in round-robin order.
    pub free: Vec<PeerKey>,
    /// Upload weight of the paid class, ppm.
    pub paid_class_ppm: u32,
    /// Upload weight of the free class, ppm.
    pub free_class_ppm: u32,
    /// Per-peer weights: paid winners first, then free picks.
    pub shares: Vec<Share>,
}

impl Allocation {
    /// Every peer to unchoke this round.
    pub fn unchoked(&self) -> impl Iterator<Item = PeerKey> + '_ {
        self.shares.iter().map(|s| s.peer)
    }
}

/// The seller's allocator; keeps the round-robin position of the free slots between rounds.
#[derive(Debug, Clone)]
pub struct Auction {
    config: AuctionConfig,
    /// The last peer given a free slot; the next round starts after it.
    free_cursor: Option<PeerKey>,
}

impl Auction {
    /// An allocator with `config`.
    pub fn new(config: AuctionConfig) -> Result<Self, AuctionError> {
        for (field, value) in [
            ("free_share_bps", config.free_share_bps),
            ("incumbency_margin_bps", config.incumbency_margin_bps),
        ] {
            if value > BPS {
                return Err(AuctionError::BadBps { field, value });
            }
        }
        Ok(Self {
            config,
            free_cursor: None,
        })
    }

    /// The parameters.
    pub fn config(&self) -> &AuctionConfig {
        &self.config
    }

    /// Changes the reserve price from the next round on.
    pub fn set_reserve_price(&mut self, reserve_price: u64) {
        self.config.reserve_price = reserve_price;
    }

    /// Allocates one rechoke round. Refuses (changing nothing) if a peer appears twice.
    pub fn allocate(&mut self, candidates: &[Candidate]) -> Result<Allocation, AuctionError> {
        let mut seen = BTreeSet::new();
        for c in candidates {
            if !seen.insert(c.peer) {
                return Err(AuctionError::DuplicatePeer(c.peer));
            }
        }
        let cfg = &self.config;
        let margin = u128::from(cfg.incumbency_margin_bps);

        // Eligible bids, ranked. The key is a total order, so the ranking is deterministic:
        // score (an incumbent's bid counts `margin` more), then the raw bid (so a challenger
        // that exactly reaches the margin wins the tie), then incumbents, then peer key.
        let mut bids: Vec<&Candidate> = candidates
            .iter()
            .filter(|c| c.interested && c.eligible)
            .filter(|c| c.bid_price.is_some_and(|p| p >= cfg.reserve_price))
            .collect();
        let price = |c: &Candidate| c.bid_price.unwrap_or(0);
        let score = |c: &Candidate| {
            let boost = if c.incumbent { margin } else { 0 };
            u128::from(price(c)) * (u128::from(BPS) + boost)
        };
        bids.sort_by(|a, b| {
            score(b)
                .cmp(&score(a))
                .then(price(b).cmp(&price(a)))
                .then(b.incumbent.cmp(&a.incumbent))
                .then(a.peer.cmp(&b.peer))
        });
        let k = usize::try_from(cfg.paid_slots).unwrap_or(usize::MAX);
        let winners = &bids[..bids.len().min(k)];

        let clearing_price = match cfg.mechanism {
            Mechanism::UniformPrice if !winners.is_empty() => {
                let mut raw: Vec<u64> = bids.iter().map(|c| price(c)).collect();
                raw.sort_unstable_by(|a, b| b.cmp(a));
                let kth_plus_one = raw.get(k).copied().unwrap_or(0);
                let lowest_winner = winners.iter().map(|c| price(c)).min().unwrap_or(0);
                Some(cfg.reserve_price.max(kth_plus_one.min(lowest_winner)))
            }
            _ => None,
        };
        let paid: Vec<Winner> = winners
            .iter()
            .map(|c| Winner {
                peer: c.peer,
                bid_price: price(c),
                price_per_byte: clearing_price.unwrap_or(price(c)),
            })
            .collect();

        // Free slots: `f` plus the paid slots nobody won (so a seller with no payers unchokes
        // as many peers as plain BitTorrent would), round robin by peer key among the
        // interested peers that did not bid (non-payers and plain BitTorrent peers) first, then
        // among losing bidders.
        let paid_set: BTreeSet<PeerKey> = paid.iter().map(|w| w.peer).collect();
        let others = |bidders: bool| -> Vec<PeerKey> {
            candidates
                .iter()
                .filter(|c| c.interested && !paid_set.contains(&c.peer))
                .filter(|c| c.bid_price.is_some() == bidders)
                .map(|c| c.peer)
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect()
        };
        let unused_paid = k.saturating_sub(paid.len());
        let mut want = usize::try_from(cfg.free_slots)
            .unwrap_or(usize::MAX)
            .saturating_add(unused_paid);
        let mut free: Vec<PeerKey> = Vec::new();
        for pool in [others(false), others(true)] {
            let start = match self.free_cursor {
                Some(cursor) => pool.partition_point(|p| *p <= cursor),
                None => 0,
            };
            let n = pool.len().min(want);
            free.extend((0..n).filter_map(|i| pool.get((start + i) % pool.len()).copied()));
            want -= n;
        }

        // Class weights, work-conserving.
        let free_ppm_if_both = cfg.free_share_bps * (PPM / BPS);
        let (paid_class_ppm, free_class_ppm) = match (paid.is_empty(), free.is_empty()) {
            (false, false) => (PPM - free_ppm_if_both, free_ppm_if_both),
            (false, true) => (PPM, 0),
            (true, false) => (0, PPM),
            (true, true) => (0, 0),
        };
        let paid_weights: Vec<u128> = match cfg.mechanism {
            Mechanism::UniformPrice => vec![1; paid.len()],
            Mechanism::ProportionalShare => paid.iter().map(|w| u128::from(w.bid_price)).collect(),
        };
        let mut shares = Vec::with_capacity(paid.len() + free.len());
        for (w, ppm) in paid.iter().zip(split(paid_class_ppm, &paid_weights)) {
            shares.push(Share {
                peer: w.peer,
                class: Class::Paid,
                weight_ppm: ppm,
            });
        }
        for (p, ppm) in free.iter().zip(split(free_class_ppm, &vec![1; free.len()])) {
            shares.push(Share {
                peer: *p,
                class: Class::Free,
                weight_ppm: ppm,
            });
        }

        if let Some(last) = free.last() {
            self.free_cursor = Some(*last);
        }
        Ok(Allocation {
            paid,
            clearing_price,
            free,
            paid_class_ppm,
            free_class_ppm,
            shares,
        })
    }
}

/// Splits `total` in proportion to `weights` by largest remainder (ties to the earlier entry),
/// so the parts sum to exactly `total` when there is at least one weight. All-zero weights split
/// equally.
fn split(total: u32, weights: &[u128]) -> Vec<u32> {
    if weights.is_empty() {
        return Vec::new();
    }
    let sum: u128 = weights.iter().sum();
    let ones;
    let (weights, sum) = if sum == 0 {
        ones = vec![1u128; weights.len()];
        (&ones[..], ones.len() as u128)
    } else {
        (weights, sum)
    };
    let total_w = u128::from(total);
    // total ≤ 2^32 and each weight ≤ 2^64, so the products fit in u128.
    let mut parts: Vec<u32> = weights
        .iter()
        .map(|w| u32::try_from(total_w * w / sum).unwrap_or(u32::MAX))
        .collect();
    let assigned: u32 = parts.iter().sum();
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by(|&a, &b| {
        let ra = total_w * weights[a] % sum;
        let rb = total_w * weights[b] % sum;
        rb.cmp(&ra).then(a.cmp(&b))
    });
    for &i in order.iter().take((total - assigned) as usize) {
        parts[i] += 1;
    }
    parts
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A small deterministic PRNG (splitmix64) for property tests.
    pub(crate) struct Rng(pub(crate) u64);

    impl Rng {
        pub(crate) fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        /// Uniform in `0..n` (n > 0).
        pub(crate) fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }

        pub(crate) fn chance(&mut self, percent: u64) -> bool {
            self.below(100) < percent
        }
    }

    fn bidder(id: u64, price: u64) -> Candidate {
        Candidate {
            peer: PeerKey(id),
            bid_price: Some(price),
            eligible: true,
            incumbent: false,
            interested: true,
        }
    }

    fn plain(id: u64) -> Candidate {
        Candidate {
            peer: PeerKey(id),
            bid_price: None,
            eligible: false,
            incumbent: false,
            interested: true,
        }
    }

    fn auction(k: u32, free: u32, reserve: u64) -> Auction {
        Auction::new(AuctionConfig {
            reserve_price: reserve,
            paid_slots: k,
            free_slots: free,
            ..AuctionConfig::default()
        })
        .unwrap()
    }

    fn peers(w: &[Winner]) -> Vec<u64> {
        w.iter().map(|w| w.peer.0).collect()
    }

    #[test]
    fn k_plus_one_price_with_reserve() {
        let mut a = auction(2, 1, 100);
        let c = [
            bidder(1, 500),
            bidder(2, 300),
            bidder(3, 200),
            bidder(4, 50),
            plain(5),
        ];
        let r = a.allocate(&c).unwrap();
        assert_eq!(peers(&r.paid), [1, 2]);
        assert_eq!(r.clearing_price, Some(200));
        assert!(r.paid.iter().all(|w| w.price_per_byte == 200));
        // The free slot goes to the peer that did not bid before the losing bidders.
        assert_eq!(r.free, [PeerKey(5)]);
        assert_eq!((r.paid_class_ppm, r.free_class_ppm), (800_000, 200_000));
        assert_eq!(
            r.shares.iter().map(|s| s.weight_ppm).collect::<Vec<_>>(),
            [400_000, 400_000, 200_000]
        );
    }

    #[test]
    fn uncontended_seller_earns_the_reserve() {
        let mut a = auction(4, 1, 100);
        let r = a.allocate(&[bidder(1, 900), plain(2)]).unwrap();
        assert_eq!(r.clearing_price, Some(100));
        // Without a reserve the original design earned nothing.
        let mut a = auction(4, 1, 0);
        let r = a.allocate(&[bidder(1, 900)]).unwrap();
        assert_eq!(r.clearing_price, Some(0));
        // Work-conserving: no free peer, so the payer gets everything.
        assert_eq!((r.paid_class_ppm, r.free_class_ppm), (PPM, 0));
    }

    #[test]
    fn ineligible_uninterested_and_below_reserve_do_not_win() {
        let mut a = auction(4, 4, 100);
        let mut ineligible = bidder(1, 1_000);
        ineligible.eligible = false;
        let mut bored = bidder(2, 1_000);
        bored.interested = false;
        let r = a.allocate(&[ineligible, bored, bidder(3, 99)]).unwrap();
        assert!(r.paid.is_empty());
        assert_eq!(r.clearing_price, None);
        assert_eq!(r.free, [PeerKey(1), PeerKey(3)]);
        assert_eq!(r.free_class_ppm, PPM);
    }

    #[test]
    fn incumbent_keeps_slot_unless_beaten_by_the_margin() {
        // Margin 10 %: incumbent at 100 holds against 109, loses to 110.
        let mut a = auction(1, 0, 0);
        let mut inc = bidder(1, 100);
        inc.incumbent = true;
        let r = a.allocate(&[inc, bidder(2, 109)]).unwrap();
        assert_eq!(peers(&r.paid), [1]);
        // The price never exceeds the winner's own bid.
        assert_eq!(r.clearing_price, Some(100));
        let r = a.allocate(&[inc, bidder(2, 110)]).unwrap();
        assert_eq!(peers(&r.paid), [2]);
        assert_eq!(r.clearing_price, Some(100));
        // Equal bids: the incumbent stays even with no margin.
        let mut a = Auction::new(AuctionConfig {
            paid_slots: 1,
            incumbency_margin_bps: 0,
            ..AuctionConfig::default()
        })
        .unwrap();
        let r = a.allocate(&[bidder(0, 100), inc]).unwrap();
        assert_eq!(peers(&r.paid), [1]);
    }

    #[test]
    fn proportional_share_splits_by_bid() {
        let mut a = Auction::new(AuctionConfig {
            mechanism: Mechanism::ProportionalShare,
            paid_slots: 3,
            free_slots: 0,
            ..AuctionConfig::default()
        })
        .unwrap();
        let r = a
            .allocate(&[bidder(1, 100), bidder(2, 300), bidder(3, 600)])
            .unwrap();
        assert_eq!(r.clearing_price, None);
        let by_peer: Vec<(u64, u32, u64)> = r
            .paid
            .iter()
            .zip(&r.shares)
            .map(|(w, s)| (w.peer.0, s.weight_ppm, w.price_per_byte))
            .collect();
        assert_eq!(
            by_peer,
            [(3, 600_000, 600), (2, 300_000, 300), (1, 100_000, 100)]
        );
    }

    #[test]
    fn free_slots_round_robin() {
        let mut a = auction(0, 2, 0);
        let c: Vec<Candidate> = (1..=5).map(plain).collect();
        let rounds: Vec<Vec<u64>> = (0..4)
            .map(|_| a.allocate(&c).unwrap().free.iter().map(|p| p.0).collect())
            .collect();
        assert_eq!(rounds, [vec![1, 2], vec![3, 4], vec![5, 1], vec![2, 3]]);
    }

    #[test]
    fn rejects_bad_config_and_duplicates() {
        assert_eq!(
            Auction::new(AuctionConfig {
                free_share_bps: 10_001,
                ..AuctionConfig::default()
            })
            .unwrap_err(),
            AuctionError::BadBps {
                field: "free_share_bps",
                value: 10_001
            }
        );
        let mut a = auction(1, 1, 0);
        a.allocate(&[plain(1), plain(2)]).unwrap();
        let before = a.free_cursor;
        assert_eq!(
            a.allocate(&[plain(3), plain(3)]),
            Err(AuctionError::DuplicatePeer(PeerKey(3)))
        );
        assert_eq!(a.free_cursor, before);
    }

    #[test]
    fn split_is_exact() {
        assert_eq!(split(10, &[1, 1, 1]), [4, 3, 3]);
        assert_eq!(split(PPM, &[0, 0]), [500_000, 500_000]);
        assert_eq!(split(7, &[]), Vec::<u32>::new());
        assert_eq!(
            split(PPM, &[u128::from(u64::MAX), 1]).iter().sum::<u32>(),
            PPM
        );
    }

    /// Checks every invariant of one round.
    fn check_round(cfg: &AuctionConfig, c: &[Candidate], r: &Allocation) {
        let margin = u128::from(cfg.incumbency_margin_bps);
        let k = cfg.paid_slots as usize;
        let eligible: Vec<&Candidate> = c
            .iter()
            .filter(|c| c.interested && c.eligible)
            .filter(|c| c.bid_price.is_some_and(|p| p >= cfg.reserve_price))
            .collect();
        let find = |p: PeerKey| c.iter().find(|c| c.peer == p).unwrap();
        let winners: BTreeSet<PeerKey> = r.paid.iter().map(|w| w.peer).collect();
        assert_eq!(winners.len(), r.paid.len(), "duplicate winner");
        assert_eq!(r.paid.len(), eligible.len().min(k), "paid slots not filled");
        for w in &r.paid {
            let cand = find(w.peer);
            assert!(cand.interested && cand.eligible);
            assert_eq!(cand.bid_price, Some(w.bid_price));
            assert!(w.bid_price >= cfg.reserve_price);
            assert!(w.price_per_byte >= cfg.reserve_price);
            assert!(w.price_per_byte <= w.bid_price, "pays above its bid");
        }
        // No losing eligible bid ranks above a winner.
        let beats = |a: &Candidate, b: &Candidate| {
            let (pa, pb) = (
                u128::from(a.bid_price.unwrap()),
                u128::from(b.bid_price.unwrap()),
            );
            match (a.incumbent, b.incumbent) {
                (false, true) => pa * 10_000 >= pb * (10_000 + margin) && pa > pb,
                (true, false) => pa * (10_000 + margin) > pb * 10_000 || pa == pb,
                _ => pa > pb,
            }
        };
        for l in eligible.iter().filter(|l| !winners.contains(&l.peer)) {
            for w in &r.paid {
                assert!(!beats(l, find(w.peer)), "{l:?} should beat {w:?}");
            }
        }
        match cfg.mechanism {
            Mechanism::UniformPrice => {
                if r.paid.is_empty() {
                    assert_eq!(r.clearing_price, None);
                } else {
                    let p = r.clearing_price.unwrap();
                    assert!(r.paid.iter().all(|w| w.price_per_byte == p));
                    let mut raw: Vec<u64> = eligible.iter().map(|c| c.bid_price.unwrap()).collect();
                    raw.sort_unstable_by(|a, b| b.cmp(a));
                    let next = raw.get(k).copied().unwrap_or(0);
                    if eligible.iter().all(|c| !c.incumbent) {
                        assert_eq!(p, cfg.reserve_price.max(next));
                    }
                }
            }
            Mechanism::ProportionalShare => {
                assert_eq!(r.clearing_price, None);
                assert!(r.paid.iter().all(|w| w.price_per_byte == w.bid_price));
            }
        }
        // Free picks.
        let pool = c
            .iter()
            .filter(|c| c.interested && !winners.contains(&c.peer))
            .count();
        let unused_paid = (cfg.paid_slots as usize).saturating_sub(r.paid.len());
        assert_eq!(
            r.free.len(),
            pool.min(cfg.free_slots as usize + unused_paid)
        );
        // Peers that did not bid come first: a losing bidder is picked only when every
        // interested non-bidder is.
        if r.free.iter().any(|p| find(*p).bid_price.is_some()) {
            assert!(c
                .iter()
                .filter(|c| c.interested && c.bid_price.is_none())
                .all(|c| r.free.contains(&c.peer)));
        }
        let free: BTreeSet<PeerKey> = r.free.iter().copied().collect();
        assert_eq!(free.len(), r.free.len());
        assert!(free.is_disjoint(&winners));
        assert!(r.free.iter().all(|p| find(*p).interested));
        // Weights: exact, work-conserving, by class.
        let total: u32 = r.shares.iter().map(|s| s.weight_ppm).sum();
        let paid_sum: u32 = r
            .shares
            .iter()
            .filter(|s| s.class == Class::Paid)
            .map(|s| s.weight_ppm)
            .sum();
        assert_eq!(paid_sum, r.paid_class_ppm);
        assert_eq!(total, r.paid_class_ppm + r.free_class_ppm);
        assert_eq!(r.shares.len(), r.paid.len() + r.free.len());
        match (r.paid.is_empty(), r.free.is_empty()) {
            (true, true) => assert_eq!(total, 0),
            (false, true) => assert_eq!(r.paid_class_ppm, PPM),
            (true, false) => assert_eq!(r.free_class_ppm, PPM),
            (false, false) => {
                assert_eq!(total, PPM);
                assert_eq!(r.free_class_ppm, cfg.free_share_bps * 100);
            }
        }
        if cfg.mechanism == Mechanism::ProportionalShare {
            let bids: u128 = r.paid.iter().map(|w| u128::from(w.bid_price)).sum();
            for (w, s) in r.paid.iter().zip(&r.shares) {
                if bids > 0 {
                    let exact = u128::from(r.paid_class_ppm) * u128::from(w.bid_price);
                    let got = u128::from(s.weight_ppm) * bids;
                    assert!(got.abs_diff(exact) <= bids, "share not ∝ bid");
                }
            }
        }
    }

    #[test]
    fn property_invariants_hold_every_round() {
        let mut rng = Rng(7);
        for case in 0..400 {
            let cfg = AuctionConfig {
                mechanism: if rng.chance(30) {
                    Mechanism::ProportionalShare
                } else {
                    Mechanism::UniformPrice
                },
                reserve_price: if rng.chance(30) { 0 } else { rng.below(500) },
                paid_slots: rng.below(6) as u32,
                free_slots: rng.below(4) as u32,
                free_share_bps: rng.below(10_001) as u32,
                incumbency_margin_bps: rng.below(3_000) as u32,
            };
            let mut a = Auction::new(cfg.clone()).unwrap();
            let n = rng.below(25);
            let mut c: Vec<Candidate> = (0..n)
                .map(|i| Candidate {
                    peer: PeerKey(i * 3 + case),
                    bid_price: rng.chance(60).then(|| rng.below(1_000)),
                    eligible: rng.chance(80),
                    incumbent: false,
                    interested: rng.chance(85),
                })
                .collect();
            for _round in 0..20 {
                let r = a.allocate(&c).unwrap();
                check_round(&cfg, &c, &r);
                // Next round: last round's winners are incumbents; some bids move.
                let winners: BTreeSet<PeerKey> = r.paid.iter().map(|w| w.peer).collect();
                for cand in &mut c {
                    cand.incumbent = winners.contains(&cand.peer);
                    if rng.chance(20) {
                        cand.bid_price = rng.chance(70).then(|| rng.below(1_000));
                    }
                    if rng.chance(5) {
                        cand.interested = !cand.interested;
                    }
                }
            }
        }
    }

    #[test]
    fn property_free_slots_reach_everyone() {
        let mut rng = Rng(11);
        for _ in 0..200 {
            let k = rng.below(4) as u32;
            let free = 1 + rng.below(3) as u32;
            let mut a = auction(k, free, 10);
            let n = 1 + rng.below(20);
            let c: Vec<Candidate> = (0..n)
                .map(|i| {
                    if rng.chance(40) {
                        bidder(i, rng.below(100))
                    } else {
                        plain(i)
                    }
                })
                .collect();
            let first = a.allocate(&c).unwrap();
            let winners: BTreeSet<PeerKey> = first.paid.iter().map(|w| w.peer).collect();
            // Every peer that did not bid is reached within one cycle of the free slots (the
            // configured ones plus the paid slots nobody won); losing bidders come after them.
            let slots = free as usize + (k as usize).saturating_sub(winners.len());
            let non_bidders: BTreeSet<PeerKey> = c
                .iter()
                .filter(|c| c.bid_price.is_none())
                .map(|c| c.peer)
                .collect();
            let losers: BTreeSet<PeerKey> = c
                .iter()
                .map(|c| c.peer)
                .filter(|p| !winners.contains(p) && !non_bidders.contains(p))
                .collect();
            let (pool, rounds) = if non_bidders.len() < slots {
                let for_losers = slots - non_bidders.len();
                let pool: BTreeSet<PeerKey> = non_bidders.union(&losers).copied().collect();
                (pool, losers.len().div_ceil(for_losers).max(1))
            } else {
                let rounds = non_bidders.len().div_ceil(slots);
                (non_bidders, rounds)
            };
            let mut served: BTreeSet<PeerKey> = first.free.iter().copied().collect();
            for _ in 1..rounds {
                let r = a.allocate(&c).unwrap();
                served.extend(r.free.iter().copied());
            }
            assert!(
                served.is_superset(&pool),
                "a peer waited more than one full cycle"
            );
        }
    }
}
