//! The `by_speed` BEP 10 extension: the extended-handshake entry and the ten message types.
//!
//! Every message is one bencoded dictionary with an integer type field `t` (see [`MessageType`]).
//! Integers only, never floats:
//! - *amounts* (base units, wei) are `uint256` on the wire: a 32-byte big-endian byte string.
//!   In memory they are [`Amount`] (`u128`, which holds far more than the token's total supply);
//!   a wire amount of 2¹²⁸ or more is rejected.
//! - *prices* (base units per byte), byte counts, slot counts and codes are bencode integers in
//!   `0..=i64::MAX` (our bencode integers are `i64`).
//!
//! Decoding is total: unknown types, missing keys, wrong types, wrong fixed lengths and
//! out-of-range integers are an [`Error`], never a panic. Unknown keys are ignored so later
//! versions can add optional fields. Fixed-size fields are copied into arrays; nothing is sized
//! from a length field. The whole payload is capped at [`MAX_MESSAGE_LEN`].

use bencode::{Dict, Encoder, Value};

/// The extension's name in the BEP 10 `m` dictionary and the key of its handshake entry.
pub const EXTENSION_NAME: &str = "by_speed";

/// The protocol version this crate speaks (the handshake entry's `v`).
pub const VERSION: u32 = 1;

/// EIP-712 domain `name` for vouchers and AUTH (with `version` [`EIP712_VERSION`], the
/// handshake's chain id and module address as `chainId` and `verifyingContract`).
pub const EIP712_NAME: &str = "BTT Speed";

/// EIP-712 domain `version`.
pub const EIP712_VERSION: &str = "1";

/// EIP-712 `encodeType` of a voucher, signed by the channel's signer key.
pub const VOUCHER_TYPE: &str = "Voucher(bytes32 channelId,uint256 cumulative)";

/// EIP-712 `encodeType` of AUTH, signed by the wallet key.
pub const AUTH_TYPE: &str = "SpeedAuth(address wallet,bytes32 nonce,bytes32 peerNonce)";

/// The largest `by_speed` message payload accepted; every valid message is far smaller.
pub const MAX_MESSAGE_LEN: usize = 1024;

/// The longest ERROR message text, in bytes.
pub const MAX_ERROR_TEXT: usize = 256;

/// Why a `by_speed` payload or handshake entry was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The payload is longer than [`MAX_MESSAGE_LEN`].
    #[error("by_speed message of {0} bytes exceeds the 1024-byte limit; close the connection")]
    TooLong(usize),
    /// The payload is not bencode.
    #[error("by_speed message is not bencode ({0}); close the connection")]
    Bencode(#[from] bencode::Error),
    /// The payload is bencode but not a dictionary.
    #[error("by_speed message is not a dictionary; close the connection")]
    NotDict,
    /// The type field `t` names no known message.
    #[error("by_speed message type {0} is unknown; reply ERROR unknown-type")]
    UnknownType(i64),
    /// A required key is absent.
    #[error("by_speed message lacks `{0}`; reply ERROR malformed")]
    Missing(&'static str),
    /// A key holds the wrong bencode type (an integer where bytes belong, or the reverse).
    #[error("by_speed field `{0}` has the wrong type; reply ERROR malformed")]
    WrongType(&'static str),
    /// A fixed-size byte field has the wrong length, or a text field is too long.
    #[error("by_speed field `{field}` is {len} bytes, expected {expected}; reply ERROR malformed")]
    BadLength {
        /// The key.
        field: &'static str,
        /// Bytes received.
        len: usize,
        /// Bytes required (the maximum, for text).
        expected: usize,
    },
    /// An integer field is negative or too large for its type, or an enumeration value is unknown.
    #[error("by_speed field `{0}` is out of range; reply ERROR malformed")]
    OutOfRange(&'static str),
    /// A value given to the encoder does not fit the wire format (an integer above `i64::MAX`
    /// or an ERROR text longer than [`MAX_ERROR_TEXT`]).
    #[error("by_speed field `{0}` cannot be encoded: the value is too large for the wire format")]
    Unencodable(&'static str),
}

/// An amount in base units (wei), `uint256` on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Amount(pub u128);

impl Amount {
    /// Zero.
    pub const ZERO: Amount = Amount(0);

    /// The 32-byte big-endian `uint256` encoding.
    pub fn to_be_bytes32(self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out[16..].copy_from_slice(&self.0.to_be_bytes());
        out
    }

    /// Parses a 32-byte big-endian `uint256`; `None` if it is 2¹²⁸ or more.
    pub fn from_be_bytes32(b: &[u8; 32]) -> Option<Self> {
        let (high, low) = b.split_at(16);
        if high.iter().any(|&x| x != 0) {
            return None;
        }
        let mut w = [0u8; 16];
        w.copy_from_slice(low);
        Some(Amount(u128::from_be_bytes(w)))
    }

    /// `self + rhs`, `None` on overflow.
    pub fn checked_add(self, rhs: Amount) -> Option<Amount> {
        self.0.checked_add(rhs.0).map(Amount)
    }

    /// `self - rhs`, `None` if `rhs > self`.
    pub fn checked_sub(self, rhs: Amount) -> Option<Amount> {
        self.0.checked_sub(rhs.0).map(Amount)
    }

    /// `self - rhs`, or zero if `rhs > self`.
    pub fn saturating_sub(self, rhs: Amount) -> Amount {
        Amount(self.0.saturating_sub(rhs.0))
    }

    /// The cost of `bytes` at `price_per_byte`; cannot overflow (`u64 × u64 < 2¹²⁸`).
    pub fn cost(bytes: u64, price_per_byte: u64) -> Amount {
        Amount(u128::from(bytes) * u128::from(price_per_byte))
    }
}

/// A 20-byte account or module address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Address(pub [u8; 20]);

/// A payment channel's 32-byte id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ChannelId(pub [u8; 32]);

/// A 32-byte random challenge nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Nonce(pub [u8; 32]);

/// A 65-byte recoverable secp256k1 signature `r ‖ s ‖ v`. Carried, not checked, by this codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature(pub [u8; 65]);

impl Default for Signature {
    fn default() -> Self {
        Signature([0; 65])
    }
}

/// What a peer offers to do in the market.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Buys bandwidth (wire value 1).
    Buyer,
    /// Sells bandwidth (wire value 2).
    Seller,
    /// Both (wire value 3).
    Both,
}

impl Role {
    /// The wire value.
    pub fn code(self) -> i64 {
        match self {
            Role::Buyer => 1,
            Role::Seller => 2,
            Role::Both => 3,
        }
    }

    /// The role for a wire value.
    pub fn from_code(code: i64) -> Option<Self> {
        match code {
            1 => Some(Role::Buyer),
            2 => Some(Role::Seller),
            3 => Some(Role::Both),
            _ => None,
        }
    }

    /// Whether this peer may buy.
    pub fn buys(self) -> bool {
        matches!(self, Role::Buyer | Role::Both)
    }

    /// Whether this peer may sell.
    pub fn sells(self) -> bool {
        matches!(self, Role::Seller | Role::Both)
    }
}

/// The `by_speed` entry of the BEP 10 extended handshake (a dictionary under the key
/// [`EXTENSION_NAME`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    /// Protocol version (`v`); this crate writes [`VERSION`].
    pub version: u32,
    /// EIP-155 chain id of the chain holding the channels (`chain`).
    pub chain_id: u64,
    /// Address of the payment-channel module (`module`), the EIP-712 verifying contract.
    pub module: Address,
    /// The sender's wallet address (`wallet`); AUTH proves the sender holds its key.
    pub wallet: Address,
    /// Buyer, seller or both (`role`).
    pub role: Role,
    /// Lowest price per byte the sender sells at, in base units (`reserve`).
    pub reserve_price: u64,
    /// Bytes the sender serves a buyer before payment (`credit`); at most one piece.
    pub credit_limit_bytes: u64,
    /// Most the sender pays ahead of verified data (`prepay`), in base units.
    pub prepay_limit: Amount,
    /// A fresh random challenge (`nonce`) the peer's AUTH must sign.
    pub nonce: Nonce,
}

/// AUTH: binds the sender's wallet to this connection.
///
/// `sig` is the wallet key's EIP-712 signature over `SpeedAuth(address wallet,bytes32 nonce,
/// bytes32 peerNonce)` where `nonce` is the one the sender put in its own handshake and
/// `peer_nonce` the one the receiver put in its handshake (see `docs/speed.md`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Auth {
    /// The sender's handshake nonce (`n`).
    pub nonce: Nonce,
    /// The receiver's handshake nonce (`pn`).
    pub peer_nonce: Nonce,
    /// The signature (`sig`).
    pub sig: Signature,
}

/// BID: a buyer's offer for a paid slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bid {
    /// Highest price per byte the buyer pays, in base units (`price`).
    pub price_per_byte: u64,
    /// Bytes the buyer wants at this price (`max`); 0 means no limit.
    pub max_bytes: u64,
}

/// BID_RESPONSE: the seller's answer to a BID, repeated each rechoke round while it changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BidResponse {
    /// Whether the buyer holds a paid slot (`ok`, 1 or 0).
    pub accepted: bool,
    /// The price per byte the buyer pays while it holds the slot (`price`).
    pub clearing_price: u64,
    /// The slot index granted, 0-based (`slot`); 0 and meaningless when rejected.
    pub slot: u32,
}

/// CHANNEL: the buyer names the channel (payee = the seller) its vouchers draw on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channel {
    /// The channel id (`id`).
    pub channel: ChannelId,
}

/// VOUCHER: a signed promise that the channel has paid the seller `cumulative` in total.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Voucher {
    /// The channel id (`id`).
    pub channel: ChannelId,
    /// Total paid on this channel so far (`amt`), monotone.
    pub cumulative: Amount,
    /// The channel signer's EIP-712 signature over `Voucher(bytes32 channelId,uint256 cumulative)`
    /// (`sig`).
    pub sig: Signature,
}

/// RECEIPT: the seller acknowledges vouchers and reports what it has served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The highest cumulative voucher amount accepted (`amt`).
    pub cumulative: Amount,
    /// Total payload bytes served to this buyer on this connection (`bytes`).
    pub bytes_served: u64,
}

/// PAY_REQUIRED: the seller's credit for this buyer is exhausted; it serves no more until paid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayRequired {
    /// Value of the unpaid bytes (`amt`).
    pub amount_owed: Amount,
    /// Bytes served and not yet paid for (`bytes`).
    pub unpaid_bytes: u64,
}

/// ASK: the seller's current terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ask {
    /// Reserve price per byte (`price`).
    pub reserve_price: u64,
    /// Paid slots offered (`slots`).
    pub slots: u32,
}

/// CLOSE: the sender stops using the market on this connection (plain BitTorrent continues).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Close {
    /// Why (`reason`), one of the [`ErrorCode`] values or 0 for a normal close.
    pub reason: u32,
}

/// ERROR: a protocol error the receiver should log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorMsg {
    /// What went wrong (`code`), see [`ErrorCode`].
    pub code: u32,
    /// Human-readable detail (`msg`), at most [`MAX_ERROR_TEXT`] bytes, UTF-8 by convention.
    pub text: Vec<u8>,
}

/// Error and close codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum ErrorCode {
    /// A normal close (CLOSE only).
    Normal = 0,
    /// The message could not be decoded.
    Malformed = 1,
    /// The message type is unknown.
    UnknownType = 2,
    /// A message arrived that the state does not allow (for example VOUCHER before CHANNEL).
    UnexpectedMessage = 3,
    /// AUTH failed: wrong nonce or a signature that does not recover to the wallet.
    AuthFailed = 4,
    /// Handshake chain id or module address differs from ours.
    WrongChain = 5,
    /// The channel does not exist, is not final, is not payable to us, or expires too soon.
    BadChannel = 6,
    /// The voucher signature is wrong.
    BadSignature = 7,
    /// The voucher decreases, or adds more than one piece's price.
    VoucherRejected = 8,
    /// The channel deposit cannot cover the voucher.
    InsufficientFunds = 9,
    /// The bid is below the reserve price.
    BidTooLow = 10,
    /// The buyer stopped paying (credit exhausted and no voucher followed).
    NotPaying = 11,
    /// The seller sent data that failed verification; the buyer stops paying it.
    BadData = 12,
}

impl ErrorCode {
    /// The wire value.
    pub fn code(self) -> u32 {
        self as u32
    }
}

/// The type field `t` of each message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum MessageType {
    /// [`Auth`]
    Auth = 1,
    /// [`Bid`]
    Bid = 2,
    /// [`BidResponse`]
    BidResponse = 3,
    /// [`Channel`]
    Channel = 4,
    /// [`Voucher`]
    Voucher = 5,
    /// [`Receipt`]
    Receipt = 6,
    /// [`PayRequired`]
    PayRequired = 7,
    /// [`Ask`]
    Ask = 8,
    /// [`Close`]
    Close = 9,
    /// [`ErrorMsg`]
    Error = 10,
}

/// One `by_speed` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// AUTH (t = 1).
    Auth(Auth),
    /// BID (t = 2).
    Bid(Bid),
    /// BID_RESPONSE (t = 3).
    BidResponse(BidResponse),
    /// CHANNEL (t = 4).
    Channel(Channel),
    /// VOUCHER (t = 5).
    Voucher(Voucher),
    /// RECEIPT (t = 6).
    Receipt(Receipt),
    /// PAY_REQUIRED (t = 7).
    PayRequired(PayRequired),
    /// ASK (t = 8).
    Ask(Ask),
    /// CLOSE (t = 9).
    Close(Close),
    /// ERROR (t = 10).
    Error(ErrorMsg),
}

// ---- decoding helpers ----

fn field<'d, 'a>(d: &'d Dict<'a>, key: &'static str) -> Result<&'d Value<'a>, Error> {
    d.get(key.as_bytes()).ok_or(Error::Missing(key))
}

fn int_field(d: &Dict<'_>, key: &'static str) -> Result<i64, Error> {
    field(d, key)?.as_int().ok_or(Error::WrongType(key))
}

fn u64_field(d: &Dict<'_>, key: &'static str) -> Result<u64, Error> {
    u64::try_from(int_field(d, key)?).map_err(|_| Error::OutOfRange(key))
}

fn u32_field(d: &Dict<'_>, key: &'static str) -> Result<u32, Error> {
    u32::try_from(int_field(d, key)?).map_err(|_| Error::OutOfRange(key))
}

fn bytes_field<'d>(d: &'d Dict<'_>, key: &'static str) -> Result<&'d [u8], Error> {
    field(d, key)?.as_bytes().ok_or(Error::WrongType(key))
}

fn fixed<const N: usize>(d: &Dict<'_>, key: &'static str) -> Result<[u8; N], Error> {
    let b = bytes_field(d, key)?;
    <[u8; N]>::try_from(b).map_err(|_| Error::BadLength {
        field: key,
        len: b.len(),
        expected: N,
    })
}

fn amount_field(d: &Dict<'_>, key: &'static str) -> Result<Amount, Error> {
    Amount::from_be_bytes32(&fixed::<32>(d, key)?).ok_or(Error::OutOfRange(key))
}

fn bool_field(d: &Dict<'_>, key: &'static str) -> Result<bool, Error> {
    match int_field(d, key)? {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(Error::OutOfRange(key)),
    }
}

// ---- encoding helpers ----

/// Checks an unsigned integer fits a bencode (`i64`) integer.
fn wire_int(key: &'static str, v: u64) -> Result<i64, Error> {
    i64::try_from(v).map_err(|_| Error::Unencodable(key))
}

impl Handshake {
    /// Writes the entry (a bencoded dictionary, keys sorted) to `out`, for the caller to place
    /// under the key [`EXTENSION_NAME`] of its extended handshake. Nothing is written on error.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        let chain = wire_int("chain", self.chain_id)?;
        let credit = wire_int("credit", self.credit_limit_bytes)?;
        let reserve = wire_int("reserve", self.reserve_price)?;
        let mut e = Encoder::new(out);
        // Keys in ascending byte order.
        e.dict_start();
        e.bytes(b"chain").int(chain);
        e.bytes(b"credit").int(credit);
        e.bytes(b"module").bytes(&self.module.0);
        e.bytes(b"nonce").bytes(&self.nonce.0);
        e.bytes(b"prepay").bytes(&self.prepay_limit.to_be_bytes32());
        e.bytes(b"reserve").int(reserve);
        e.bytes(b"role").int(self.role.code());
        e.bytes(b"v").int(i64::from(self.version));
        e.bytes(b"wallet").bytes(&self.wallet.0);
        e.end();
        Ok(())
    }

    /// The entry's encoding as a new buffer.
    pub fn encode_to_vec(&self) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        self.encode(&mut out)?;
        Ok(out)
    }

    /// Parses the entry from its decoded value (the value under [`EXTENSION_NAME`]).
    pub fn from_value(v: &Value<'_>) -> Result<Self, Error> {
        let d = v.as_dict().ok_or(Error::NotDict)?;
        Ok(Handshake {
            version: u32_field(d, "v")?,
            chain_id: u64_field(d, "chain")?,
            module: Address(fixed(d, "module")?),
            wallet: Address(fixed(d, "wallet")?),
            role: Role::from_code(int_field(d, "role")?).ok_or(Error::OutOfRange("role"))?,
            reserve_price: u64_field(d, "reserve")?,
            credit_limit_bytes: u64_field(d, "credit")?,
            prepay_limit: amount_field(d, "prepay")?,
            nonce: Nonce(fixed(d, "nonce")?),
        })
    }

    /// Parses the entry out of a whole extended-handshake payload (extended message id 0).
    ///
    /// `Ok(None)` if the peer sent no `by_speed` entry: it is a plain BitTorrent peer. Bytes
    /// after the handshake dictionary are ignored, as in BEP 10.
    pub fn from_extended_handshake(payload: &[u8]) -> Result<Option<Self>, Error> {
        let (v, _) = bencode::decode_prefix(payload)?;
        let d = v.as_dict().ok_or(Error::NotDict)?;
        d.get(EXTENSION_NAME.as_bytes())
            .map(Self::from_value)
            .transpose()
    }
}

impl Message {
    /// The message's type.
    pub fn message_type(&self) -> MessageType {
        match self {
            Message::Auth(_) => MessageType::Auth,
            Message::Bid(_) => MessageType::Bid,
            Message::BidResponse(_) => MessageType::BidResponse,
            Message::Channel(_) => MessageType::Channel,
            Message::Voucher(_) => MessageType::Voucher,
            Message::Receipt(_) => MessageType::Receipt,
            Message::PayRequired(_) => MessageType::PayRequired,
            Message::Ask(_) => MessageType::Ask,
            Message::Close(_) => MessageType::Close,
            Message::Error(_) => MessageType::Error,
        }
    }

    /// Appends the payload (after the extended message id byte) to `out`. Keys are written in
    /// ascending byte order, so the encoding is canonical. Nothing is written on error.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        let t = self.message_type() as i64;
        // Range checks first, so a failed encode leaves `out` untouched.
        match self {
            Message::Bid(m) => {
                wire_int("price", m.price_per_byte)?;
                wire_int("max", m.max_bytes)?;
            }
            Message::BidResponse(m) => {
                wire_int("price", m.clearing_price)?;
            }
            Message::Receipt(m) => {
                wire_int("bytes", m.bytes_served)?;
            }
            Message::PayRequired(m) => {
                wire_int("bytes", m.unpaid_bytes)?;
            }
            Message::Ask(m) => {
                wire_int("price", m.reserve_price)?;
            }
            Message::Error(m) if m.text.len() > MAX_ERROR_TEXT => {
                return Err(Error::Unencodable("msg"));
            }
            _ => {}
        }
        // The checks above make these conversions total.
        let int = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let mut e = Encoder::new(out);
        e.dict_start();
        match self {
            Message::Auth(m) => {
                e.bytes(b"n").bytes(&m.nonce.0);
                e.bytes(b"pn").bytes(&m.peer_nonce.0);
                e.bytes(b"sig").bytes(&m.sig.0);
            }
            Message::Bid(m) => {
                e.bytes(b"max").int(int(m.max_bytes));
                e.bytes(b"price").int(int(m.price_per_byte));
            }
            Message::BidResponse(m) => {
                e.bytes(b"ok").int(i64::from(m.accepted));
                e.bytes(b"price").int(int(m.clearing_price));
                e.bytes(b"slot").int(i64::from(m.slot));
            }
            Message::Channel(m) => {
                e.bytes(b"id").bytes(&m.channel.0);
            }
            Message::Voucher(m) => {
                e.bytes(b"amt").bytes(&m.cumulative.to_be_bytes32());
                e.bytes(b"id").bytes(&m.channel.0);
                e.bytes(b"sig").bytes(&m.sig.0);
            }
            Message::Receipt(m) => {
                e.bytes(b"amt").bytes(&m.cumulative.to_be_bytes32());
                e.bytes(b"bytes").int(int(m.bytes_served));
            }
            Message::PayRequired(m) => {
                e.bytes(b"amt").bytes(&m.amount_owed.to_be_bytes32());
                e.bytes(b"bytes").int(int(m.unpaid_bytes));
            }
            Message::Ask(m) => {
                e.bytes(b"price").int(int(m.reserve_price));
                e.bytes(b"slots").int(i64::from(m.slots));
            }
            Message::Close(m) => {
                e.bytes(b"reason").int(i64::from(m.reason));
            }
            Message::Error(m) => {
                e.bytes(b"code").int(i64::from(m.code));
                e.bytes(b"msg").bytes(&m.text);
            }
        }
        e.bytes(b"t").int(t);
        e.end();
        Ok(())
    }

    /// The payload as a new buffer.
    pub fn encode_to_vec(&self) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        self.encode(&mut out)?;
        Ok(out)
    }

    /// Parses a payload (after the extended message id byte). The whole payload must be one
    /// dictionary; trailing bytes are an error.
    pub fn decode(payload: &[u8]) -> Result<Self, Error> {
        if payload.len() > MAX_MESSAGE_LEN {
            return Err(Error::TooLong(payload.len()));
        }
        let v = bencode::decode(payload)?;
        let d = v.as_dict().ok_or(Error::NotDict)?;
        let t = int_field(d, "t")?;
        Ok(match t {
            1 => Message::Auth(Auth {
                nonce: Nonce(fixed(d, "n")?),
                peer_nonce: Nonce(fixed(d, "pn")?),
                sig: Signature(fixed(d, "sig")?),
            }),
            2 => Message::Bid(Bid {
                price_per_byte: u64_field(d, "price")?,
                max_bytes: u64_field(d, "max")?,
            }),
            3 => Message::BidResponse(BidResponse {
                accepted: bool_field(d, "ok")?,
                clearing_price: u64_field(d, "price")?,
                slot: u32_field(d, "slot")?,
            }),
            4 => Message::Channel(Channel {
                channel: ChannelId(fixed(d, "id")?),
            }),
            5 => Message::Voucher(Voucher {
                channel: ChannelId(fixed(d, "id")?),
                cumulative: amount_field(d, "amt")?,
                sig: Signature(fixed(d, "sig")?),
            }),
            6 => Message::Receipt(Receipt {
                cumulative: amount_field(d, "amt")?,
                bytes_served: u64_field(d, "bytes")?,
            }),
            7 => Message::PayRequired(PayRequired {
                amount_owed: amount_field(d, "amt")?,
                unpaid_bytes: u64_field(d, "bytes")?,
            }),
            8 => Message::Ask(Ask {
                reserve_price: u64_field(d, "price")?,
                slots: u32_field(d, "slots")?,
            }),
            9 => Message::Close(Close {
                reason: u32_field(d, "reason")?,
            }),
            10 => {
                let text = bytes_field(d, "msg")?;
                if text.len() > MAX_ERROR_TEXT {
                    return Err(Error::BadLength {
                        field: "msg",
                        len: text.len(),
                        expected: MAX_ERROR_TEXT,
                    });
                }
                Message::Error(ErrorMsg {
                    code: u32_field(d, "code")?,
                    text: text.to_vec(),
                })
            }
            other => return Err(Error::UnknownType(other)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hs() -> Handshake {
        Handshake {
            version: VERSION,
            chain_id: 199,
            module: Address([0xAA; 20]),
            wallet: Address([0xBB; 20]),
            role: Role::Both,
            reserve_price: 1_000,
            credit_limit_bytes: 262_144,
            prepay_limit: Amount(5_000_000),
            nonce: Nonce([0x11; 32]),
        }
    }

    /// One of each message, with distinct field values.
    fn all_messages() -> Vec<Message> {
        vec![
            Message::Auth(Auth {
                nonce: Nonce([1; 32]),
                peer_nonce: Nonce([2; 32]),
                sig: Signature([3; 65]),
            }),
            Message::Bid(Bid {
                price_per_byte: 1_500,
                max_bytes: 1 << 30,
            }),
            Message::BidResponse(BidResponse {
                accepted: true,
                clearing_price: 1_200,
                slot: 2,
            }),
            Message::Channel(Channel {
                channel: ChannelId([4; 32]),
            }),
            Message::Voucher(Voucher {
                channel: ChannelId([4; 32]),
                cumulative: Amount(0x0102_0304),
                sig: Signature([5; 65]),
            }),
            Message::Receipt(Receipt {
                cumulative: Amount(0x0102_0304),
                bytes_served: 524_288,
            }),
            Message::PayRequired(PayRequired {
                amount_owed: Amount(262_144_000),
                unpaid_bytes: 262_144,
            }),
            Message::Ask(Ask {
                reserve_price: 1_000,
                slots: 4,
            }),
            Message::Close(Close {
                reason: ErrorCode::NotPaying.code(),
            }),
            Message::Error(ErrorMsg {
                code: ErrorCode::BadSignature.code(),
                text: b"bad sig".to_vec(),
            }),
        ]
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn amount_uint256_layout() {
        let a = Amount(0x0102);
        let b = a.to_be_bytes32();
        assert_eq!(&b[..30], &[0u8; 30]);
        assert_eq!(&b[30..], &[1, 2]);
        assert_eq!(Amount::from_be_bytes32(&b), Some(a));
        let max = Amount(u128::MAX).to_be_bytes32();
        assert_eq!(Amount::from_be_bytes32(&max), Some(Amount(u128::MAX)));
        let mut big = [0u8; 32];
        big[15] = 1; // 2^128
        assert_eq!(Amount::from_be_bytes32(&big), None);
        assert_eq!(
            Amount::cost(u64::MAX, u64::MAX).0,
            u128::from(u64::MAX).pow(2)
        );
    }

    #[test]
    fn handshake_exact_bytes_and_round_trip() {
        let h = hs();
        let bytes = h.encode_to_vec().unwrap();
        let mut expected = Vec::new();
        expected.extend_from_slice(b"d5:chaini199e6:crediti262144e6:module20:");
        expected.extend_from_slice(&[0xAA; 20]);
        expected.extend_from_slice(b"5:nonce32:");
        expected.extend_from_slice(&[0x11; 32]);
        expected.extend_from_slice(b"6:prepay32:");
        expected.extend_from_slice(&Amount(5_000_000).to_be_bytes32());
        expected.extend_from_slice(b"7:reservei1000e4:rolei3e1:vi1e6:wallet20:");
        expected.extend_from_slice(&[0xBB; 20]);
        expected.push(b'e');
        assert_eq!(bytes, expected);
        let v = bencode::decode(&bytes).unwrap();
        assert_eq!(Handshake::from_value(&v).unwrap(), h);
    }

    #[test]
    fn handshake_inside_extended_handshake() {
        let entry = hs().encode_to_vec().unwrap();
        let mut payload = b"d8:by_speed".to_vec();
        payload.extend_from_slice(&entry);
        payload.extend_from_slice(b"1:md8:by_speedi7eee");
        assert_eq!(
            Handshake::from_extended_handshake(&payload).unwrap(),
            Some(hs())
        );
        let plain = b"d1:md11:ut_metadatai2eee";
        assert_eq!(Handshake::from_extended_handshake(plain).unwrap(), None);
        assert_eq!(
            Handshake::from_extended_handshake(b"li1ee"),
            Err(Error::NotDict)
        );
    }

    #[test]
    fn handshake_rejects_bad_fields() {
        let good = hs().encode_to_vec().unwrap();
        let v = bencode::decode(&good).unwrap();
        let d = v.as_dict().unwrap();
        let with = |key: &'static [u8], val: Value<'static>| {
            let mut d = d.clone();
            d.insert(key, val);
            Handshake::from_value(&Value::Dict(d))
        };
        assert_eq!(with(b"role", Value::Int(4)), Err(Error::OutOfRange("role")));
        assert_eq!(
            with(b"chain", Value::Int(-1)),
            Err(Error::OutOfRange("chain"))
        );
        assert_eq!(with(b"v", Value::Int(1 << 40)), Err(Error::OutOfRange("v")));
        assert_eq!(
            with(b"wallet", Value::owned_bytes(vec![0; 21])),
            Err(Error::BadLength {
                field: "wallet",
                len: 21,
                expected: 20
            })
        );
        assert_eq!(
            with(b"reserve", Value::owned_bytes(vec![1])),
            Err(Error::WrongType("reserve"))
        );
        let mut big = [0u8; 32];
        big[0] = 1;
        assert_eq!(
            with(b"prepay", Value::owned_bytes(big.to_vec())),
            Err(Error::OutOfRange("prepay"))
        );
        let mut missing = d.clone();
        missing.entries.retain(|(k, _)| k.as_ref() != b"nonce");
        assert_eq!(
            Handshake::from_value(&Value::Dict(missing)),
            Err(Error::Missing("nonce"))
        );
        // Unknown keys are ignored.
        assert_eq!(with(b"zz", Value::Int(1)), Ok(hs()));
    }

    #[test]
    fn handshake_encode_refuses_out_of_range() {
        let mut h = hs();
        h.reserve_price = u64::MAX;
        let mut out = b"keep".to_vec();
        assert_eq!(h.encode(&mut out), Err(Error::Unencodable("reserve")));
        assert_eq!(out, b"keep");
    }

    #[test]
    fn every_message_round_trips() {
        for m in all_messages() {
            let bytes = m.encode_to_vec().unwrap();
            assert!(bytes.len() <= MAX_MESSAGE_LEN);
            assert_eq!(Message::decode(&bytes).unwrap(), m, "{m:?}");
            // Canonical: re-encoding the decoded tree gives the same bytes.
            assert_eq!(bencode::decode(&bytes).unwrap().encode_to_vec(), bytes);
        }
    }

    #[test]
    fn bid_exact_bytes() {
        let m = Message::Bid(Bid {
            price_per_byte: 1_500,
            max_bytes: 0,
        });
        assert_eq!(m.encode_to_vec().unwrap(), b"d3:maxi0e5:pricei1500e1:ti2ee");
        let m = Message::Close(Close { reason: 0 });
        assert_eq!(m.encode_to_vec().unwrap(), b"d6:reasoni0e1:ti9ee");
    }

    #[test]
    fn voucher_exact_bytes() {
        let m = Message::Voucher(Voucher {
            channel: ChannelId([0x22; 32]),
            cumulative: Amount(256),
            sig: Signature([0x33; 65]),
        });
        let mut expected = b"d3:amt32:".to_vec();
        expected.extend_from_slice(&[0; 30]);
        expected.extend_from_slice(&[1, 0]);
        expected.extend_from_slice(b"2:id32:");
        expected.extend_from_slice(&[0x22; 32]);
        expected.extend_from_slice(b"3:sig65:");
        expected.extend_from_slice(&[0x33; 65]);
        expected.extend_from_slice(b"1:ti5ee");
        assert_eq!(m.encode_to_vec().unwrap(), expected);
    }

    /// Frozen wire bytes of every message type (hex of the payload). A change here is a protocol
    /// change: bump [`VERSION`] and update `docs/speed.md`.
    #[test]
    fn wire_fixtures() {
        let fixtures: [&str; 10] = [
            // AUTH
            "64313a6e33323a0101010101010101010101010101010101010101010101010101010101010101323a706e33323a0202020202020202020202020202020202020202020202020202020202020202333a73696736353a0303030303030303030303030303030303030303030303030303030303030303030303030303030303030303030303030303030303030303030303030303030303313a7469316565",
            // BID
            "64333a6d6178693130373337343138323465353a7072696365693135303065313a7469326565",
            // BID_RESPONSE
            "64323a6f6b693165353a7072696365693132303065343a736c6f74693265313a7469336565",
            // CHANNEL
            "64323a696433323a0404040404040404040404040404040404040404040404040404040404040404313a7469346565",
            // VOUCHER
            "64333a616d7433323a0000000000000000000000000000000000000000000000000000000001020304323a696433323a0404040404040404040404040404040404040404040404040404040404040404333a73696736353a0505050505050505050505050505050505050505050505050505050505050505050505050505050505050505050505050505050505050505050505050505050505313a7469356565",
            // RECEIPT
            "64333a616d7433323a0000000000000000000000000000000000000000000000000000000001020304353a62797465736935323432383865313a7469366565",
            // PAY_REQUIRED
            "64333a616d7433323a000000000000000000000000000000000000000000000000000000000fa00000353a62797465736932363231343465313a7469376565",
            // ASK
            "64353a7072696365693130303065353a736c6f7473693465313a7469386565",
            // CLOSE
            "64363a726561736f6e69313165313a7469396565",
            // ERROR
            "64343a636f6465693765333a6d7367373a62616420736967313a746931306565",
        ];
        for (m, want) in all_messages().iter().zip(fixtures) {
            let got = hex(&m.encode_to_vec().unwrap());
            assert_eq!(got, want, "{:?}", m.message_type());
        }
    }

    #[test]
    fn decode_rejects_bad_input() {
        assert_eq!(Message::decode(b"d1:ti11ee"), Err(Error::UnknownType(11)));
        assert_eq!(Message::decode(b"d1:ti0ee"), Err(Error::UnknownType(0)));
        assert_eq!(Message::decode(b"de"), Err(Error::Missing("t")));
        assert_eq!(Message::decode(b"d1:t1:1e"), Err(Error::WrongType("t")));
        assert_eq!(Message::decode(b"i1e"), Err(Error::NotDict));
        assert!(matches!(
            Message::decode(b"d1:ti2ee1"),
            Err(Error::Bencode(_))
        ));
        assert_eq!(
            Message::decode(b"d5:pricei1e1:ti2ee"),
            Err(Error::Missing("max"))
        );
        assert_eq!(
            Message::decode(b"d3:maxi0e5:pricei-1e1:ti2ee"),
            Err(Error::OutOfRange("price"))
        );
        assert_eq!(
            Message::decode(b"d2:oki2e5:pricei1e4:sloti0e1:ti3ee"),
            Err(Error::OutOfRange("ok"))
        );
        assert_eq!(
            Message::decode(b"d2:oki1e5:pricei1e4:sloti4294967296e1:ti3ee"),
            Err(Error::OutOfRange("slot"))
        );
        assert_eq!(
            Message::decode(b"d2:id3:abc1:ti4ee"),
            Err(Error::BadLength {
                field: "id",
                len: 3,
                expected: 32
            })
        );
        // A huge declared length is rejected by the bencode layer without allocating.
        assert!(matches!(
            Message::decode(b"d2:id99999999999:x1:ti4ee"),
            Err(Error::Bencode(_))
        ));
        let long = vec![b'x'; MAX_MESSAGE_LEN + 1];
        assert_eq!(
            Message::decode(&long),
            Err(Error::TooLong(MAX_MESSAGE_LEN + 1))
        );
        let mut text = b"d4:codei1e3:msg257:".to_vec();
        text.extend_from_slice(&[b'a'; 257]);
        text.extend_from_slice(b"1:ti10ee");
        assert_eq!(
            Message::decode(&text),
            Err(Error::BadLength {
                field: "msg",
                len: 257,
                expected: MAX_ERROR_TEXT
            })
        );
        // Unknown keys are ignored.
        assert!(Message::decode(b"d1:zi0e6:reasoni0e1:ti9ee").is_ok());
    }

    #[test]
    fn encode_refuses_unencodable_and_writes_nothing() {
        let mut out = Vec::new();
        let m = Message::Bid(Bid {
            price_per_byte: u64::MAX,
            max_bytes: 0,
        });
        assert_eq!(m.encode(&mut out), Err(Error::Unencodable("price")));
        let m = Message::Error(ErrorMsg {
            code: 1,
            text: vec![0; MAX_ERROR_TEXT + 1],
        });
        assert_eq!(m.encode(&mut out), Err(Error::Unencodable("msg")));
        assert!(out.is_empty());
    }

    /// Decoding arbitrary bytes and mutations of valid messages never panics.
    #[test]
    fn decode_is_total_on_mutations() {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        let msgs: Vec<Vec<u8>> = all_messages()
            .iter()
            .map(|m| m.encode_to_vec().unwrap())
            .collect();
        for i in 0..20_000 {
            let mut b = msgs[i % msgs.len()].clone();
            let flips = 1 + next() % 4;
            for _ in 0..flips {
                let pos = (next() as usize) % b.len();
                match next() % 3 {
                    0 => b[pos] = next() as u8,
                    1 => {
                        b.remove(pos);
                    }
                    _ => b.insert(pos, next() as u8),
                }
                if b.is_empty() {
                    break;
                }
            }
            if let Ok(m) = Message::decode(&b) {
                // Anything accepted re-encodes and decodes to the same message.
                let again = m.encode_to_vec().unwrap();
                assert_eq!(Message::decode(&again).unwrap(), m);
            }
            let _ = Handshake::from_extended_handshake(&b);
        }
    }
}
