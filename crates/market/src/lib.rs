//! Speed's driver: runs the `by_speed` market on live connections and settles on chain.
//!
//! # Layout
//! - `chain`: `ChainPort`, what the market needs from the chain (read final channel state,
//!   open, top up, claim, reclaim), over JSON-RPC (`RpcChain`) or in memory (`MemChain`).
//! - `settle`: the seller's persisted voucher book and claim policy, the buyer's channel book.

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod chain;
mod settle;



