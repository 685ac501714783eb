//! Speed: the paid-bandwidth market's sans-IO core.
//!
//! Downloaders bid BTT for priority upload slots and pay seeders per verified piece with vouchers
//! drawn on an on-chain payment channel. This crate holds the protocol and the policy, with no
//! I/O and no clock of its own: the engine and the simulator drive it.
