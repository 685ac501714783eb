//! Deterministic swarm simulator for the Speed bandwidth market.
//!
//! A flow-level, piece-level model of one torrent's swarm that runs the real market code of the
//! `speed` crate: every seeder allocates its upload with [`speed::Auction`] each rechoke round,
//! every paying leecher bids with [`speed::Bidder`] and pays per verified piece through
//! [`speed::BuyerLedger`], and every seeder enforces the credit rule with
//! [`speed::SellerLedger`]. Only the two baselines the crate does not offer (plain BitTorrent
//! and priority pay-as-bid) are written here. The simulator draws every random choice from a
//! `SmallRng` seeded by the run's seed, has no clock and iterates only ordered collections, so a
//! `(Scenario, seed)` pair always gives the same [`RunReport`].
//!
//! # Layout
//! - `swarm`: the model: peers with upload and download capacities, rechoke rounds (leechers
//!   tit-for-tat, seeders by [`MechanismKind`]), weighted max-min water-filling of upload,
//!   rarest-first piece picking, verification, payments and the invariants checked at every
//!   event.
//! - `report`: the grid of scenarios, summary statistics (median, p10, p90) and the markdown
//!   table with its targets check.
//!
//! ```
//! use sim::{Capacities, MechanismKind, Scenario, Seeding};
//!
//! let mut scenario = Scenario::new(8, Seeding::Ratio { seeds: 1, leechers: 4 }, Capacities::Homogeneous, 50, MechanismKind::Ours);
//! scenario.pieces = 16;
//! let report = sim::run(&scenario, 7);
//! assert_eq!(report.completed, 8);
//! assert_eq!(report.violations, 0);
//! assert_eq!(report, sim::run(&scenario, 7));
//! ```

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod report;
mod swarm;

pub use report::{grid, table, Cell, GridSpec};
pub use swarm::run;

/// Bytes in one KiB.
pub const KIB: u64 = 1024;
/// Bytes in one MiB.
pub const MIB: u64 = 1024 * 1024;

/// How seeders allocate their upload (the table's rows).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum MechanismKind {
    /// Plain BitTorrent: no payments; a seeder unchokes round robin, equal shares.
    Plain,
    /// Priority pay-as-bid (baseline written here): payers always first, ranked by bid, each
    /// pays its own bid; others only get upload the payers cannot take.
    PayAsBid,
    /// The original Speed: [`speed::Auction`] with uniform (k+1)-th price, no reserve and no
    /// free share.
    UniformNoReserve,
    /// Ours: [`speed::Auction`] defaults with a reserve (uniform (k+1)-th price, incumbency
    /// margin, 20 % free share).
    Ours,
    /// [`speed::Mechanism::ProportionalShare`] with the same reserve and free share as ours.
    ProportionalShare,
}

impl MechanismKind {
    /// Every mechanism, in table order.
    pub const ALL: [MechanismKind; 5] = [
        MechanismKind::Plain,
        MechanismKind::PayAsBid,
        MechanismKind::UniformNoReserve,
        MechanismKind::Ours,
        MechanismKind::ProportionalShare,
    ];

    /// Short name for tables.
    pub fn name(self) -> &'static str {
        match self {
            MechanismKind::Plain => "plain BT",
            MechanismKind::PayAsBid => "pay-as-bid",
            MechanismKind::UniformNoReserve => "(k+1) no reserve",
            MechanismKind::Ours => "ours",
            MechanismKind::ProportionalShare => "prop. share",
        }
    }

    /// Whether payments happen at all.
    pub fn has_market(self) -> bool {
        self != MechanismKind::Plain
    }
}

/// How many seeders a swarm of `peers` leechers has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Seeding {
    /// `seeds : leechers`, scaled to the swarm: `max(1, round(peers × seeds ÷ leechers))`.
    Ratio {
        /// Seeders per `leechers`.
        seeds: u32,
        /// Leechers per `seeds`.
        leechers: u32,
    },
    /// A fixed number of seeders whatever the swarm size.
    Fixed(u32),
}

impl Seeding {
    /// Seeders for `leechers` leechers.
    pub fn seeds_for(self, leechers: u32) -> u32 {
        match self {
            Seeding::Ratio { seeds, leechers: l } => {
                let l = l.max(1);
                ((leechers * seeds + l / 2) / l).max(1)
            }
            Seeding::Fixed(n) => n.max(1),
        }
    }

    /// Short label for tables.
    pub fn label(self) -> String {
        match self {
            Seeding::Ratio { seeds, leechers } => format!("{seeds}:{leechers}"),
            Seeding::Fixed(n) => format!("{n} fixed"),
        }
    }
}

/// Upload and download capacities of the peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Capacities {
    /// Every peer: 1 MiB/s up, 4 MiB/s down.
    Homogeneous,
    /// Upload drawn per peer from {256 KiB/s, 1 MiB/s, 4 MiB/s}, download 4 × upload.
    Heterogeneous,
}

impl Capacities {
    /// Short label for tables.
    pub fn label(self) -> &'static str {
        match self {
            Capacities::Homogeneous => "hom",
            Capacities::Heterogeneous => "het",
        }
    }
}

/// One simulated swarm: who is in it, how fast they are, and how seeders sell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scenario {
    /// Leechers at the start (all arrive at time 0 and leave when complete).
    pub leechers: u32,
    /// Seeders, as a function of `leechers`.
    pub seeding: Seeding,
    /// Capacity model.
    pub capacities: Capacities,
    /// Share of leechers that pay (bid with a budget), in percent.
    pub payer_percent: u32,
    /// Seeders' allocation rule.
    pub mechanism: MechanismKind,
    /// Pieces in the torrent.
    pub pieces: u32,
    /// Bytes per piece.
    pub piece_len: u64,
    /// Simulation step.
    pub step_ms: u64,
    /// Rechoke interval.
    pub rechoke_ms: u64,
    /// A leecher's optimistic unchoke moves every this many milliseconds.
    pub optimistic_ms: u64,
    /// Neighbours each peer asks for (the graph is symmetric, so some get more).
    pub neighbors: u32,
    /// Reserve price per byte of the mechanisms that have one (base units).
    pub reserve_price: u64,
    /// Paid slots per seeder (k).
    pub paid_slots: u32,
    /// Free slots per seeder.
    pub free_slots: u32,
    /// Regular tit-for-tat slots of a leecher (one optimistic slot comes on top).
    pub leecher_slots: u32,
    /// Stop the run here even if someone has not finished.
    pub max_time_ms: u64,
}

impl Scenario {
    /// A scenario with the default torrent (64 MiB in 256 KiB pieces), 100 ms steps, 10 s
    /// rechoke, reserve 100 base units per byte, 4 paid and 2 free seeder slots.
    pub fn new(
        leechers: u32,
        seeding: Seeding,
        capacities: Capacities,
        payer_percent: u32,
        mechanism: MechanismKind,
    ) -> Self {
        Self {
            leechers,
            seeding,
            capacities,
            payer_percent,
            mechanism,
            pieces: 256,
            piece_len: 256 * KIB,
            step_ms: 100,
            rechoke_ms: 10_000,
            optimistic_ms: 30_000,
            neighbors: 40,
            reserve_price: 100,
            paid_slots: 4,
            free_slots: 2,
            leecher_slots: 3,
            max_time_ms: 4 * 3_600_000,
        }
    }

    /// Seeders in this scenario.
    pub fn seeds(&self) -> u32 {
        self.seeding.seeds_for(self.leechers)
    }

    /// Paying leechers: `round(leechers × payer_percent ÷ 100)`.
    pub fn payers(&self) -> u32 {
        (self.leechers * self.payer_percent.min(100) + 50) / 100
    }

    /// Torrent size in bytes.
    pub fn total_bytes(&self) -> u64 {
        u64::from(self.pieces) * self.piece_len
    }
}

/// What one run measured. Rates are bytes per second of simulated time; prices are base units
/// per byte.
#[derive(Debug, Clone, PartialEq)]
pub struct RunReport {
    /// The seed of the run.
    pub seed: u64,
    /// Seeders.
    pub seeds: u32,
    /// Leechers.
    pub leechers: u32,
    /// Paying leechers.
    pub payers: u32,
    /// Leechers that finished.
    pub completed: u32,
    /// Time the last leecher finished (or the time limit), seconds.
    pub makespan_s: f64,
    /// Mean over leechers of download time, seconds.
    pub mean_completion_s: f64,
    /// Mean over payers of (bytes received from seeders ÷ own download time); `None` without
    /// payers.
    pub payer_seed_rate: Option<f64>,
    /// The same for non-payers; `None` without non-payers.
    pub nonpayer_seed_rate: Option<f64>,
    /// Non-payers' fraction of seeder upload while the seeder was contended (at least one
    /// interested payer and one interested non-payer among its neighbours).
    pub nonpayer_share_contended: Option<f64>,
    /// The seeders' free class's fraction of their upload over the same contended time (plain
    /// BitTorrent: everything; pay-as-bid: what payers left).
    pub free_class_share_contended: Option<f64>,
    /// Bytes seeders uploaded.
    pub seed_bytes: u64,
    /// Bytes seeders served at a price above zero.
    pub paid_bytes: u64,
    /// Value sellers accepted in vouchers, base units.
    pub seller_earned: u128,
    /// Mean price per byte charged in rounds where a seller had fewer eligible bids than paid
    /// slots plus one (uncontended) and at least one winner; `None` if there was no such round.
    pub uncontended_price: Option<f64>,
    /// Payload delivered to leechers ÷ makespan, bytes per second.
    pub goodput: f64,
    /// Payload bytes delivered to leechers (from anyone).
    pub payload_bytes: u64,
    /// Bytes of `by_speed` messages exchanged (encoded length + 6 bytes of framing each).
    pub payment_msg_bytes: u64,
    /// Invariant violations seen (expected 0).
    pub violations: u64,
    /// Vouchers a seller refused (expected 0).
    pub voucher_rejections: u64,
    /// Verified paid pieces the buyer could not pay (budget or deposit exhausted).
    pub refused_payments: u64,
    /// Times a seller stopped serving a buyer because its credit was exhausted (PAY_REQUIRED).
    pub credit_stalls: u64,
}

impl RunReport {
    /// Payers' over non-payers' mean seeder-sourced download rate.
    pub fn rate_ratio(&self) -> Option<f64> {
        match (self.payer_seed_rate, self.nonpayer_seed_rate) {
            (Some(p), Some(n)) if n > 0.0 => Some(p / n),
            _ => None,
        }
    }

    /// Sellers' earnings per byte sold at a price, base units.
    pub fn earnings_per_paid_byte(&self) -> Option<f64> {
        (self.paid_bytes > 0).then(|| self.seller_earned as f64 / self.paid_bytes as f64)
    }

    /// Payment message bytes over payload bytes.
    pub fn payment_overhead(&self) -> f64 {
        if self.payload_bytes == 0 {
            0.0
        } else {
            self.payment_msg_bytes as f64 / self.payload_bytes as f64
        }
    }
}
