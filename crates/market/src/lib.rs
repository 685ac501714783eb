//! Speed's driver: runs the `by_speed` market on live connections and settles on chain.
//!
//! # Layout
//! - `chain`: [`ChainPort`], what the market needs from the chain (read final channel state,
//!   open, top up, claim, reclaim), over JSON-RPC ([`RpcChain`]) or in memory ([`MemChain`]).
//! - `driver`: [`Market`] and its per-torrent [`SpeedTorrent`], the engine extension that runs
//!   `docs/speed.md` on live connections.
//! - `settle`: the seller's persisted voucher book and claim policy, the buyer's channel book
//!   and its reclaims ([`reclaim_expired`]).
//! - `keys`: the channels' hot signer key file ([`SignerKey`]).
//! - `books`: [`Books`], the driver's [`PaymentStore`] over both books.

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod books;
mod chain;
mod driver;
mod keys;
mod settle;

pub use books::Books;
pub use chain::{
    channel_id, recover_voucher_signer, sign_voucher, ChainError, ChainFuture, ChainPort,
    ChannelState, MemChain, RpcChain, DEFAULT_RECEIPT_TIMEOUT,
};
pub use driver::{
    auth_digest, Market, MarketConfig, PaymentStore, SellerTerms, SpeedTorrent, TorrentMarket,
    DEFAULT_AFTER,
};
pub use keys::{KeyError, SignerKey};
pub use settle::{
    reclaim_expired, BuyerChannel, ChannelBook, ChannelEarnings, ClaimPolicy, Earnings,
    SettleError, Settler, VoucherBook, VoucherEntry, WalletView,
};
