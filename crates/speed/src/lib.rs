//! Speed: the paid-bandwidth market's sans-IO core.
//!
//! Downloaders bid BTT for priority upload slots and pay seeders per verified piece with vouchers
//! drawn on an on-chain payment channel. This crate holds the protocol and the policy, with no
//! I/O and no clock of its own (time is a `now_ms` parameter): the engine and the simulator
//! drive it. Money is integer base units ([`Amount`], `u128`; `uint256` on the wire), never
//! floats. The wire protocol is specified in `docs/speed.md`.
//!
//! # Layout
//! - `msg`: the `by_speed` BEP 10 extension: the extended-handshake entry ([`Handshake`]) and
//!   the ten messages ([`Message`]), a total decoder and a canonical encoder.
//! - `auction`: the seller's per-round allocation ([`Auction`]): uniform (k+1)-th price paid
//!   slots with a reserve and an incumbency margin, round-robin free slots, work-conserving
//!   weighted upload shares; proportional share as the alternative ([`Mechanism`]).
//! - `credit`: per-buyer credit and voucher acceptance for a seller ([`SellerLedger`]) and
//!   per-verified-piece payments for a buyer ([`BuyerLedger`]).
//! - `bidder`: the buyer's budget-paced auto-bidder ([`Bidder`]), off by default.
//!
//! ```
//! use speed::{Amount, Auction, AuctionConfig, Bid, Candidate, Message, PeerKey, SellerLedger, ChannelId};
//!
//! // A buyer's BID on the wire.
//! let bid = Message::Bid(Bid { price_per_byte: 1_500, max_bytes: 0 });
//! let payload = bid.encode_to_vec().unwrap();
//! assert_eq!(payload, b"d3:maxi0e5:pricei1500e1:ti2ee");
//! assert_eq!(Message::decode(&payload).unwrap(), bid);
//!
//! // The seller's round: one paid slot, reserve 1000; the runner-up sets the price.
//! let mut auction = Auction::new(AuctionConfig { reserve_price: 1_000, paid_slots: 1, ..Default::default() }).unwrap();
//! let bidder = |id, price| Candidate { peer: PeerKey(id), bid_price: Some(price), eligible: true, incumbent: false, interested: true };
//! let round = auction.allocate(&[bidder(1, 1_500), bidder(2, 1_200)]).unwrap();
//! assert_eq!(round.paid[0].peer, PeerKey(1));
//! assert_eq!(round.clearing_price, Some(1_200));
//!
//! // Serving the winner on one piece of credit.
//! let channel = ChannelId([7; 32]);
//! let mut ledger = SellerLedger::new(channel, 16_384, 16_384, 1_200, Amount(1 << 40), Amount::ZERO).unwrap();
//! ledger.on_served(16_384).unwrap();
//! assert!(!ledger.may_serve(1));
//! assert_eq!(ledger.on_voucher(&channel, Amount(16_384 * 1_200)).unwrap(), Amount(19_660_800));
//! assert!(ledger.may_serve(16_384));
//! ```

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod auction;
mod bidder;
mod credit;
mod msg;

pub use auction::{
    Allocation, Auction, AuctionConfig, AuctionError, Candidate, Class, Mechanism, PeerKey, Share,
    Winner, BPS, PPM,
};
pub use bidder::{Bidder, BidderConfig, BidderError, SellerOffer, DAY_MS};
pub use credit::{BuyerLedger, CreditError, SellerLedger, VoucherDue};
pub use msg::{
    Address, Amount, Ask, Auth, Bid, BidResponse, Channel, ChannelId, Close, Error as MsgError,
    ErrorCode, ErrorMsg, Handshake, Message, MessageType, Nonce, PayRequired, Receipt, Role,
    Signature, Voucher, AUTH_TYPE, EIP712_NAME, EIP712_VERSION, EXTENSION_NAME, MAX_ERROR_TEXT,
    MAX_MESSAGE_LEN, VERSION, VOUCHER_TYPE,
};
