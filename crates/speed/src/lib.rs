//! Speed: the paid-bandwidth market's sans-IO core.
//!
//! Downloaders bid BTT for priority upload slots and pay seeders per verified piece with vouchers
//! drawn on an on-chain payment channel. This crate holds the protocol and the policy, with no
//! I/O and no clock of its own: the engine and the simulator drive it.
//!
//! # Layout
//! - [`bidder`]: the buyer's budget-paced auto-bidder ([`Bidder`]), off by default.
//! - [`credit`]: per-buyer credit and voucher acceptance for a seller ([`SellerLedger`]) and
//!   per-verified-piece payments for a buyer ([`BuyerLedger`]).
//! - [`msg`]: the `by_speed` BEP 10 extension: the extended-handshake entry ([`Handshake`]) and
//!   the ten messages ([`Message`]), a total decoder and a canonical encoder. The wire format is
//!   specified in `docs/speed.md`.
//! - [`auction`]: the seller's per-round allocation ([`Auction`]): uniform (k+1)-th price paid
//!   slots with a reserve and an incumbency margin, round-robin free slots, work-conserving
//!   weighted upload shares; proportional share as the alternative.
//!
//! ```
//! use speed::{Bid, Message};
//! let bid = Message::Bid(Bid { price_per_byte: 1_500, max_bytes: 0 });
//! let payload = bid.encode_to_vec().unwrap();
//! assert_eq!(payload, b"d3:maxi0e5:pricei1500e1:ti2ee");
//! assert_eq!(Message::decode(&payload).unwrap(), bid);
//! ```

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod auction;
pub mod bidder;
pub mod credit;
pub mod msg;

pub use auction::{
    Allocation, Auction, AuctionConfig, AuctionError, Candidate, Class, Mechanism, PeerKey, Share,
    Winner,
};
pub use bidder::{Bidder, BidderConfig, BidderError, SellerOffer};
pub use credit::{BuyerLedger, CreditError, SellerLedger, VoucherDue};
pub use msg::{
    Address, Amount, Ask, Auth, Bid, BidResponse, Channel, ChannelId, Close, ErrorCode, ErrorMsg,
    Handshake, Message, MessageType, Nonce, PayRequired, Receipt, Role, Signature, Voucher,
};
