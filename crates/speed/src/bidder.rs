//! The buyer's auto-bidder: spends a bounded budget on faster downloads, and nothing by default.
//!
//! One [`Bidder`] per torrent. With a budget of zero (the default) it never bids and never pays.
//! Otherwise:
//! - it bids `min(max_price, remaining budget ÷ remaining bytes)` per byte, so that at the bid
//!   price the budget covers the rest of the download (budget pacing);
//! - it prefers the cheapest sellers whose price is within its bid ([`Bidder::rank_sellers`]);
//! - it sizes channel deposits to the expected spend and tops them up when they run low, never
//!   locking more than the unspent budget ([`Bidder::channel_deposit`], [`Bidder::top_up`]);
//! - it pays only for verified pieces, through [`Bidder::pay_for_piece`], which checks the
//!   budget and the optional daily cap before the [`BuyerLedger`] issues a voucher.
//!
//! Days are UTC days of the caller's clock: `now_ms / 86_400_000`.

use crate::auction::PeerKey;
use crate::credit::{BuyerLedger, CreditError, VoucherDue};
use crate::msg::Amount;

/// Milliseconds in a day; the daily cap resets when `now_ms / DAY_MS` changes.
pub const DAY_MS: u64 = 86_400_000;

/// The buyer's spending limits for one torrent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BidderConfig {
    /// Most to spend on this torrent, in base units; zero turns bidding off.
    pub budget: Amount,
    /// Most to spend per UTC day, if set.
    pub daily_cap: Option<Amount>,
    /// Highest price per byte ever bid.
    pub max_price: u64,
    /// Top a channel up when less than this many pieces' worth of its deposit is unspent.
    pub top_up_low_water_pieces: u64,
}

/// Why a payment was refused; nothing was recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BidderError {
    /// Paying would pass the torrent's budget.
    #[error("paying {amount} would pass the torrent budget ({remaining} left); raise --budget or stop bidding")]
    OverBudget {
        /// The payment.
        amount: u128,
        /// Budget left.
        remaining: u128,
    },
    /// Paying would pass today's cap.
    #[error("paying {amount} would pass today's spending cap ({remaining} left); wait for tomorrow or raise the cap")]
    OverDailyCap {
        /// The payment.
        amount: u128,
        /// Cap left today.
        remaining: u128,
    },
    /// The seller's price is above the most this bidder pays.
    #[error("price {price} per byte is above the maximum {max_price}; refuse the slot or raise --max-price")]
    PriceAboveMax {
        /// The price asked.
        price: u64,
        /// The configured maximum.
        max_price: u64,
    },
    /// The ledger refused the payment.
    #[error(transparent)]
    Credit(#[from] CreditError),
}

/// A seller's price as the bidder sees it (its ASK reserve, or the last clearing price).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SellerOffer {
    /// The seller.
    pub seller: PeerKey,
    /// Price per byte it asks.
    pub price: u64,
}

/// The auto-bidder for one torrent.
#[derive(Debug, Clone)]
pub struct Bidder {
    config: BidderConfig,
    spent: Amount,
    /// The day `spent_today` belongs to.
    day: u64,
    spent_today: Amount,
}

impl Bidder {
    /// A bidder with `config`; nothing spent yet.
    pub fn new(config: BidderConfig) -> Self {
        Self {
            config,
            spent: Amount::ZERO,
            day: 0,
            spent_today: Amount::ZERO,
        }
    }

    /// The limits.
    pub fn config(&self) -> &BidderConfig {
        &self.config
    }

    /// Whether bidding is on (a non-zero budget and maximum price).
    pub fn is_enabled(&self) -> bool {
        self.config.budget > Amount::ZERO && self.config.max_price > 0
    }

    /// Total paid so far.
    pub fn spent(&self) -> Amount {
        self.spent
    }

    fn spent_on(&self, now_ms: u64) -> Amount {
        if now_ms / DAY_MS == self.day {
            self.spent_today
        } else {
            Amount::ZERO
        }
    }

    /// Budget left to spend now: the torrent budget left, and today's cap left if one is set.
    pub fn remaining_budget(&self, now_ms: u64) -> Amount {
        let total = self.config.budget.saturating_sub(self.spent);
        match self.config.daily_cap {
            Some(cap) => total.min(cap.saturating_sub(self.spent_on(now_ms))),
            None => total,
        }
    }

    /// The price per byte to bid with `remaining_bytes` still to download, or `None` to not
    /// bid (bidding off, nothing left to buy, or no budget left).
    pub fn bid_price(&self, remaining_bytes: u64, now_ms: u64) -> Option<u64> {
        if !self.is_enabled() || remaining_bytes == 0 {
            return None;
        }
        let pace = self.remaining_budget(now_ms).0 / u128::from(remaining_bytes);
        let price = u64::try_from(pace)
            .unwrap_or(u64::MAX)
            .min(self.config.max_price);
        (price > 0).then_some(price)
    }

    /// Sellers worth buying from at `bid`: those asking at most `bid`, cheapest first (ties by
    /// peer key).
    pub fn rank_sellers(&self, offers: &[SellerOffer], bid: u64) -> Vec<PeerKey> {
        let mut within: Vec<&SellerOffer> = offers.iter().filter(|o| o.price <= bid).collect();
        within.sort_by(|a, b| a.price.cmp(&b.price).then(a.seller.cmp(&b.seller)));
        within.into_iter().map(|o| o.seller).collect()
    }

    /// The deposit for a new channel expected to carry `expected_bytes` at `price`: the
    /// expected spend, but no more than the budget left beyond `locked_unspent` (deposit already
    /// locked in other channels and not yet spent). Zero means do not open one.
    pub fn channel_deposit(
        &self,
        expected_bytes: u64,
        price: u64,
        locked_unspent: Amount,
    ) -> Amount {
        if !self.is_enabled() {
            return Amount::ZERO;
        }
        let headroom = self
            .config
            .budget
            .saturating_sub(self.spent)
            .saturating_sub(locked_unspent);
        // Deposits lock funds without spending them, so the daily cap does not apply here.
        Amount::cost(expected_bytes, price).min(headroom)
    }

    /// How much to add to a channel with `unspent` deposit left, expected to carry
    /// `expected_bytes` more at `price`, or `None` if it does not need topping up yet (more
    /// than `top_up_low_water_pieces` pieces of `piece_len` left) or the budget allows nothing.
    /// `locked_unspent` counts every channel's unspent deposit, this one included.
    pub fn top_up(
        &self,
        unspent: Amount,
        expected_bytes: u64,
        price: u64,
        piece_len: u64,
        locked_unspent: Amount,
    ) -> Option<Amount> {
        let low_water = Amount::cost(
            piece_len.saturating_mul(self.config.top_up_low_water_pieces.max(1)),
            price,
        );
        if !self.is_enabled() || unspent >= low_water {
            return None;
        }
        let need = Amount::cost(expected_bytes, price).saturating_sub(unspent);
        let add = need.min(self.channel_deposit(u64::MAX, u64::MAX, locked_unspent));
        (add > Amount::ZERO).then_some(add)
    }

    /// Checks that paying `amount` now fits the budget and today's cap, without recording it.
    pub fn authorize(&self, amount: Amount, now_ms: u64) -> Result<(), BidderError> {
        let total_left = self.config.budget.saturating_sub(self.spent);
        if amount > total_left {
            return Err(BidderError::OverBudget {
                amount: amount.0,
                remaining: total_left.0,
            });
        }
        if let Some(cap) = self.config.daily_cap {
            let today_left = cap.saturating_sub(self.spent_on(now_ms));
            if amount > today_left {
                return Err(BidderError::OverDailyCap {
                    amount: amount.0,
                    remaining: today_left.0,
                });
            }
        }
        Ok(())
    }

    /// Pays for a verified piece: `bytes` of piece `piece` came from `seller` at `price` and
    /// passed the hash check. Checks the budget and cap, then asks `ledger` for the voucher and
    /// records the spend. On any error nothing is recorded in either.
    pub fn pay_for_piece(
        &mut self,
        ledger: &mut BuyerLedger,
        seller: PeerKey,
        piece: u32,
        bytes: u64,
        price: u64,
        now_ms: u64,
    ) -> Result<Option<VoucherDue>, BidderError> {
        if !ledger.is_paying(seller) {
            // A seller that sent bad data, or one we never opened a channel to.
            return Ok(ledger.on_piece_verified(seller, piece, bytes, price)?);
        }
        if price > self.config.max_price {
            return Err(BidderError::PriceAboveMax {
                price,
                max_price: self.config.max_price,
            });
        }
        self.authorize(Amount::cost(bytes, price), now_ms)?;
        let due = ledger.on_piece_verified(seller, piece, bytes, price)?;
        if let Some(v) = &due {
            self.record(v.delta, now_ms);
        }
        Ok(due)
    }

    fn record(&mut self, amount: Amount, now_ms: u64) {
        let day = now_ms / DAY_MS;
        if day != self.day {
            self.day = day;
            self.spent_today = Amount::ZERO;
        }
        // authorize() bounded both by the budget, so these cannot overflow.
        self.spent = Amount(self.spent.0.saturating_add(amount.0));
        self.spent_today = Amount(self.spent_today.0.saturating_add(amount.0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auction::tests::Rng;
    use crate::msg::ChannelId;

    const PIECE: u64 = 16_384;

    fn on(budget: u128, cap: Option<u128>, max_price: u64) -> Bidder {
        Bidder::new(BidderConfig {
            budget: Amount(budget),
            daily_cap: cap.map(Amount),
            max_price,
            top_up_low_water_pieces: 2,
        })
    }

    #[test]
    fn off_by_default() {
        let b = Bidder::new(BidderConfig::default());
        assert!(!b.is_enabled());
        assert_eq!(b.bid_price(1 << 30, 0), None);
        assert_eq!(b.channel_deposit(1 << 30, 10, Amount::ZERO), Amount::ZERO);
        assert!(b.authorize(Amount(1), 0).is_err());
    }

    #[test]
    fn bid_is_paced_by_budget_and_capped() {
        let b = on(1_000_000, None, 50);
        // 1e6 over 1e5 bytes = 10 per byte, under the max.
        assert_eq!(b.bid_price(100_000, 0), Some(10));
        // Few bytes left: the max price binds.
        assert_eq!(b.bid_price(100, 0), Some(50));
        // Budget too thin for even 1 per byte.
        assert_eq!(b.bid_price(2_000_000, 0), None);
        assert_eq!(b.bid_price(0, 0), None);
        // A daily cap paces too.
        let b = on(1_000_000, Some(100_000), 50);
        assert_eq!(b.bid_price(100_000, 0), Some(1));
    }

    #[test]
    fn prefers_cheaper_sellers_within_bid() {
        let b = on(1, None, 1);
        let offers = [
            SellerOffer {
                seller: PeerKey(1),
                price: 30,
            },
            SellerOffer {
                seller: PeerKey(2),
                price: 10,
            },
            SellerOffer {
                seller: PeerKey(3),
                price: 60,
            },
            SellerOffer {
                seller: PeerKey(4),
                price: 10,
            },
        ];
        assert_eq!(
            b.rank_sellers(&offers, 30),
            [PeerKey(2), PeerKey(4), PeerKey(1)]
        );
    }

    #[test]
    fn deposits_sized_to_spend_within_budget() {
        let b = on(1_000_000, None, 50);
        assert_eq!(b.channel_deposit(10_000, 10, Amount::ZERO), Amount(100_000));
        assert_eq!(
            b.channel_deposit(1_000_000, 10, Amount(400_000)),
            Amount(600_000)
        );
        // Plenty left: no top-up. Low: top up to expected spend.
        assert_eq!(
            b.top_up(Amount(400_000), 40_000, 10, PIECE, Amount(400_000)),
            None
        );
        assert_eq!(
            b.top_up(Amount(100_000), 40_000, 10, PIECE, Amount(100_000)),
            Some(Amount(300_000))
        );
        // Bounded by the unlocked budget.
        assert_eq!(
            b.top_up(Amount(100_000), 1 << 30, 10, PIECE, Amount(900_000)),
            Some(Amount(100_000))
        );
    }

    #[test]
    fn pays_verified_pieces_within_budget_and_daily_cap() {
        let mut b = on(400_000, Some(200_000), 50);
        let mut ledger = BuyerLedger::new(PIECE);
        let s = PeerKey(1);
        ledger
            .add_seller(s, ChannelId([1; 32]), Amount(1 << 40), Amount::ZERO)
            .unwrap();
        // 163_840 per piece at 10/byte.
        assert!(b
            .pay_for_piece(&mut ledger, s, 0, PIECE, 10, 0)
            .unwrap()
            .is_some());
        assert_eq!(
            b.pay_for_piece(&mut ledger, s, 1, PIECE, 10, 1_000),
            Err(BidderError::OverDailyCap {
                amount: 163_840,
                remaining: 36_160
            })
        );
        // The ledger did not pay piece 1.
        assert_eq!(ledger.cumulative(s), Some(Amount(163_840)));
        // Next day the cap resets.
        assert!(b
            .pay_for_piece(&mut ledger, s, 1, PIECE, 10, DAY_MS)
            .unwrap()
            .is_some());
        assert_eq!(b.spent(), Amount(327_680));
        assert!(matches!(
            b.pay_for_piece(&mut ledger, s, 2, PIECE, 10, 2 * DAY_MS),
            Err(BidderError::OverBudget { .. })
        ));
        assert_eq!(
            b.pay_for_piece(&mut ledger, s, 2, PIECE, 51, 2 * DAY_MS),
            Err(BidderError::PriceAboveMax {
                price: 51,
                max_price: 50
            })
        );
        // Bad data stops payment without touching the budget.
        ledger.on_piece_failed(s);
        assert_eq!(
            b.pay_for_piece(&mut ledger, s, 3, 100, 10, 2 * DAY_MS),
            Ok(None)
        );
        assert_eq!(b.spent(), Amount(327_680));
    }

    /// Random verified pieces from random sellers at random prices and times: spend never
    /// passes the budget or a day's cap, bids never pass the max price or the pace, and the
    /// ledger's total matches the bidder's spend.
    #[test]
    fn property_budget_and_cap_hold() {
        let mut rng = Rng(99);
        for _ in 0..200 {
            let budget = u128::from(rng.below(10_000_000));
            let cap = rng.chance(50).then(|| u128::from(rng.below(3_000_000)));
            let max_price = rng.below(100);
            let mut b = on(budget, cap, max_price);
            let mut ledger = BuyerLedger::new(PIECE);
            for s in 0..3 {
                let deposit = Amount(u128::from(rng.below(5_000_000)));
                ledger
                    .add_seller(PeerKey(s), ChannelId([s as u8; 32]), deposit, Amount::ZERO)
                    .unwrap();
            }
            let mut now = 0u64;
            let mut per_day = std::collections::BTreeMap::<u64, u128>::new();
            for piece in 0..100u32 {
                now += rng.below(DAY_MS / 4);
                let remaining = 1 + rng.below(1 << 24);
                if let Some(p) = b.bid_price(remaining, now) {
                    assert!(p <= max_price);
                    assert!(Amount::cost(remaining, p) <= b.remaining_budget(now));
                }
                let seller = PeerKey(rng.below(3));
                if rng.chance(3) {
                    ledger.on_piece_failed(seller);
                }
                let bytes = 1 + rng.below(PIECE);
                let price = rng.below(100);
                if let Ok(Some(v)) = b.pay_for_piece(&mut ledger, seller, piece, bytes, price, now)
                {
                    *per_day.entry(now / DAY_MS).or_default() += v.delta.0;
                }
                assert!(b.spent().0 <= budget);
                assert_eq!(ledger.total_paid(), b.spent());
                if let Some(cap) = cap {
                    assert!(per_day.values().all(|&d| d <= cap));
                }
            }
            if budget == 0 || max_price == 0 {
                assert_eq!(b.spent(), Amount::ZERO);
            }
        }
    }
}
