//! The payment-channel module (`0x…b77003`): unidirectional channels that let a buyer pay a
//! seller per verified piece with off-chain vouchers, settled on chain.
//!
//! A payer opens a channel with a deposit toward a payee and names a *signer*, a hot key kept
//! apart from the wallet key. Off chain the signer hands out EIP-712 vouchers
//! `Voucher(bytes32 channelId,uint256 cumulative)`, each carrying the total owed so far. Anyone
//! may submit the newest voucher before the expiry ([`abi::IChannels::claimCall`]); the module
//! pays the payee the difference to what was already paid and the channel stays open. The payee
//! may claim and close at once, refunding the rest to the payer; after the expiry the payer
//! takes back whatever is left.
//!
//! # Invariants
//! - `paid ≤ deposit` for every channel, and `paid` only grows: a voucher pays at most once.
//! - The module's balance is exactly `Σ (deposit − paid)` over open channels: deposits arrive as
//!   the call's value (revm credits the module before it runs) and leave only by
//!   [`ModuleContext::transfer`].
//! - A channel id is never reused, not even after the channel closes, so old vouchers can never
//!   be replayed against a new deposit.
//! - Payouts are plain balance moves in revm's journal: no code of the payee or payer runs, so
//!   there is no re-entrancy and no recipient can make a payout fail.
//! - Every check runs before the first write; a failed call reverts through revm's journal
//!   anyway, so a half-applied call cannot be observed.
//!
//! # Storage
//! Like a Solidity `mapping(bytes32 => Channel)` at slot 0: the record of `id` starts at
//! `base = keccak256(id ‖ uint256(0))` and holds six words, `base + 0` payer, `+1` payee,
//! `+2` signer, `+3` deposit, `+4` paid, `+5` the expiry (seconds, low 64 bits) with the status
//! (1 open, 2 closed) in bits 64..72. A record exists iff its last word is non-zero.
//!
//! # Time
//! A channel is live while the block timestamp (seconds) is strictly before its expiry:
//! `topUp`, `extend`, `claim` and `claimAndClose` need a live channel, `reclaim` an expired one.

use alloy_primitives::{address, keccak256, Address, Bytes, B256, U256};
use alloy_sol_types::{SolCall, SolEvent, SolInterface, SolValue};

use crate::modules::{ModuleCall, ModuleContext, ModuleError, NativeModule};

/// Where the channel module lives: module number 3, [`crate::module_address`]`(3)`.
pub const CHANNELS_ADDRESS: Address = address!("0000000000000000000000000000000000b77003");

/// The EIP-712 domain name vouchers are signed under.
pub const VOUCHER_DOMAIN_NAME: &str = "BTT Speed";
/// The EIP-712 domain version vouchers are signed under.
pub const VOUCHER_DOMAIN_VERSION: &str = "1";
/// `encodeType` of the voucher struct.
pub const VOUCHER_TYPE: &str = "Voucher(bytes32 channelId,uint256 cumulative)";
/// `encodeType` of the domain: name, version, chain id and the module as verifying contract.
pub const VOUCHER_DOMAIN_TYPE: &str =
    "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)";

/// Gas a voucher signature check costs, as the `ecrecover` precompile charges.
pub const VOUCHER_RECOVER_GAS: u64 = 3_000;

/// Half the order of secp256k1: signatures with a larger `s` are refused (EIP-2), so every
/// voucher has exactly one valid encoding.
const SECP256K1_HALF_ORDER: U256 = U256::from_be_bytes([
    0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0x5d, 0x57, 0x6e, 0x73, 0x57, 0xa4, 0x50, 0x1d, 0xdf, 0xe9, 0x2f, 0x46, 0x68, 0x1b, 0x20, 0xa0,
]);

/// The ABI of the channel module, generated with `sol!`.
#[allow(missing_docs)]
pub(crate) mod abi {
    alloy_sol_types::sol! {
        /// The payment-channel module at `0x…b77003`. Amounts are in wei, times in seconds.
        interface IChannels {
            /// A channel was opened with `deposit` (the call's value).
            event ChannelOpened(
                bytes32 indexed channelId,
                address indexed payer,
                address indexed payee,
                address signer,
                uint256 deposit,
                uint64 expiry
            );
            /// The payer added `amount`; `deposit` is the new total.
            event ChannelToppedUp(bytes32 indexed channelId, uint256 amount, uint256 deposit);
            /// The payer moved the expiry to `expiry`.
            event ChannelExtended(bytes32 indexed channelId, uint64 expiry);
            /// A voucher for `cumulative` paid the payee `amount` (the part not paid before).
            event ChannelClaimed(
                bytes32 indexed channelId,
                address indexed payee,
                uint256 amount,
                uint256 cumulative
            );
            /// The channel closed: the payee got `paid` in all, the payer `refund` back.
            event ChannelClosed(bytes32 indexed channelId, uint256 paid, uint256 refund);

            /// Opens a channel from the caller to `payee` holding the call's value. The id is
            /// `keccak256(abi.encode(chainId, module, payer, payee, signer, salt))`.
            function open(address payee, address signer, bytes32 salt, uint64 expiry)
                external payable returns (bytes32 channelId);
            /// Adds the call's value to the deposit (payer only, before the expiry).
            function topUp(bytes32 channelId) external payable;
            /// Moves the expiry later (payer only, before the expiry).
            function extend(bytes32 channelId, uint64 newExpiry) external;
            /// Pays the payee `cumulative − paid` against a voucher signed by the channel's
            /// signer (anyone, before the expiry); the channel stays open.
            function claim(bytes32 channelId, uint256 cumulative, bytes sig) external;
            /// Claims like `claim` (a voucher for what was already paid is accepted without a
            /// signature check), then refunds the rest to the payer and closes (payee only,
            /// before the expiry).
            function claimAndClose(bytes32 channelId, uint256 cumulative, bytes sig) external;
            /// Refunds the rest to the payer and closes (payer only, at or after the expiry).
            function reclaim(bytes32 channelId) external;
            /// A channel's record; all zero for an unknown id.
            function channel(bytes32 channelId) external view returns (
                address payer,
                address payee,
                address signer,
                uint256 deposit,
                uint256 paid,
                uint64 expiry,
                bool open
            );
            /// The id `open` would give when called by `payer`.
            function channelIdOf(address payer, address payee, address signer, bytes32 salt)
                external view returns (bytes32);
            /// The EIP-712 domain separator vouchers are signed under.
            function domainSeparator() external view returns (bytes32);
        }
    }
}

use abi::IChannels;

/// Why a channel call was refused. The call reverts with this text as its `Error(string)`
/// reason and changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    /// The calldata matches no function of [`abi::IChannels`].
    #[error(
        "channels: unknown function selector {0} or bad arguments: see IChannels for the interface"
    )]
    BadCall(String),
    /// Value was sent to a function that does not take any.
    #[error("channels: this function does not accept value: send 0")]
    NotPayable,
    /// `open` or `topUp` without value.
    #[error("channels: no deposit: send the amount to lock as the call's value")]
    NoDeposit,
    /// `open` with the zero address as payee or signer.
    #[error("channels: the {0} is the zero address: name a real account")]
    ZeroAddress(&'static str),
    /// `open` toward the module itself, whose payments would be stuck.
    #[error("channels: the payee cannot be the channel module: name the seller's account")]
    PayeeIsModule,
    /// The expiry of `open` or `extend` is not after the current block time.
    #[error("channels: expiry {expiry} is not after the block time {now}: choose a later expiry")]
    ExpiryNotFuture {
        /// The requested expiry, seconds.
        expiry: u64,
        /// The block time, seconds.
        now: u64,
    },
    /// `extend` to a time not later than the current expiry.
    #[error(
        "channels: new expiry {new} is not later than the current {current}: choose a later one"
    )]
    ExpiryNotLater {
        /// The requested expiry.
        new: u64,
        /// The channel's expiry.
        current: u64,
    },
    /// `open` with an id that exists or existed (same payer, payee, signer and salt).
    #[error("channels: channel {0} already exists: use another salt")]
    AlreadyExists(B256),
    /// No channel has this id.
    #[error("channels: unknown channel {0}: check the id")]
    Unknown(B256),
    /// The channel was closed.
    #[error("channels: channel {0} is closed: open a new one")]
    Closed(B256),
    /// The operation needs a live channel but the expiry has passed.
    #[error(
        "channels: channel {id} expired at {expiry} (block time {now}): the payer may reclaim"
    )]
    Expired {
        /// The channel.
        id: B256,
        /// Its expiry.
        expiry: u64,
        /// The block time.
        now: u64,
    },
    /// `reclaim` before the expiry.
    #[error(
        "channels: channel {id} is live until {expiry} (block time {now}): reclaim after that"
    )]
    NotExpired {
        /// The channel.
        id: B256,
        /// Its expiry.
        expiry: u64,
        /// The block time.
        now: u64,
    },
    /// Only the payer may do this.
    #[error("channels: only the payer {0} may do this")]
    NotPayer(Address),
    /// Only the payee may do this.
    #[error("channels: only the payee {0} may do this")]
    NotPayee(Address),
    /// A voucher for more than the deposit.
    #[error(
        "channels: voucher for {cumulative} exceeds the deposit {deposit}: ask the payer to top up"
    )]
    OverDeposit {
        /// The voucher's cumulative amount.
        cumulative: U256,
        /// The channel's deposit.
        deposit: U256,
    },
    /// A voucher that adds nothing to what was already paid.
    #[error("channels: voucher for {cumulative} pays nothing, {paid} is already paid: submit a newer voucher")]
    Stale {
        /// The voucher's cumulative amount.
        cumulative: U256,
        /// Already paid.
        paid: U256,
    },
    /// The signature is not 65 bytes `r ‖ s ‖ v` with `v` 27 or 28 and a low `s`, or does not
    /// recover to a key.
    #[error("channels: malformed voucher signature: expected 65 bytes r‖s‖v, v 27 or 28, low s")]
    BadSignature,
    /// The voucher was signed by another key (or for another channel, amount, chain or module).
    #[error("channels: voucher signed by {recovered}, not the channel's signer {signer}")]
    WrongSigner {
        /// Who the signature recovers to.
        recovered: Address,
        /// The channel's signer.
        signer: Address,
    },
    /// Arithmetic would overflow (a deposit beyond 2²⁵⁶ wei).
    #[error("channels: amount overflow")]
    Overflow,
}

impl From<ChannelError> for ModuleError {
    fn from(e: ChannelError) -> Self {
        ModuleError::reason(e.to_string())
    }
}

/// `keccak256(abi.encode(chainId, module, payer, payee, signer, salt))`, the id `open` gives.
pub fn channel_id(
    chain_id: u64,
    module: Address,
    payer: Address,
    payee: Address,
    signer: Address,
    salt: B256,
) -> B256 {
    keccak256((U256::from(chain_id), module, payer, payee, signer, salt).abi_encode())
}

/// The EIP-712 domain separator `hashStruct(EIP712Domain{"BTT Speed", "1", chainId, module})`.
pub fn domain_separator(chain_id: u64, module: Address) -> [u8; 32] {
    let mut data = Vec::with_capacity(5 * 32);
    data.extend_from_slice(keccak256(VOUCHER_DOMAIN_TYPE).as_slice());
    data.extend_from_slice(keccak256(VOUCHER_DOMAIN_NAME).as_slice());
    data.extend_from_slice(keccak256(VOUCHER_DOMAIN_VERSION).as_slice());
    data.extend_from_slice(&U256::from(chain_id).to_be_bytes::<32>());
    data.extend_from_slice(B256::left_padding_from(module.as_slice()).as_slice());
    keccak256(data).0
}

/// The digest a signer signs for a voucher:
/// `keccak256(0x19 0x01 ‖ domainSeparator ‖ keccak256(typeHash ‖ channelId ‖ cumulative))`.
///
/// ```
/// use alloy_consensus::crypto::secp256k1::sign_message;
/// use alloy_primitives::{B256, U256};
/// use chain_state::{recover_signer, voucher_digest, CHANNELS_ADDRESS, DEVNET_CHAIN_ID};
///
/// let channel = B256::repeat_byte(0x11);
/// let digest = voucher_digest(DEVNET_CHAIN_ID, CHANNELS_ADDRESS, channel, U256::from(5_000u64));
/// // The channel's hot signer key signs it off chain; the module recovers the signer on claim.
/// let sig = sign_message(B256::repeat_byte(0x42), B256::from(digest)).unwrap();
/// let signer = recover_signer(&digest, &sig.as_bytes()).unwrap();
/// assert_eq!(signer.to_string(), "0x17c5185167401eD00cF5F5b2fc97D9BBfDb7D025");
/// ```
pub fn voucher_digest(
    chain_id: u64,
    module: Address,
    channel_id: B256,
    cumulative: U256,
) -> [u8; 32] {
    let mut data = [0u8; 96];
    data[..32].copy_from_slice(keccak256(VOUCHER_TYPE).as_slice());
    data[32..64].copy_from_slice(channel_id.as_slice());
    data[64..].copy_from_slice(&cumulative.to_be_bytes::<32>());
    let struct_hash = keccak256(data);
    let mut outer = [0u8; 66];
    outer[0] = 0x19;
    outer[1] = 0x01;
    outer[2..34].copy_from_slice(&domain_separator(chain_id, module));
    outer[34..].copy_from_slice(struct_hash.as_slice());
    keccak256(outer).0
}

/// Who signed `digest`: `sig` is 65 bytes `r ‖ s ‖ v` with `v` 27 or 28 and `s` at most half
/// the curve order. Total: anything else is [`ChannelError::BadSignature`].
pub fn recover_signer(digest: &[u8; 32], sig: &[u8]) -> Result<Address, ChannelError> {
    let sig: &[u8; 65] = sig.try_into().map_err(|_| ChannelError::BadSignature)?;
    let recid = match sig[64] {
        27 => 0,
        28 => 1,
        _ => return Err(ChannelError::BadSignature),
    };
    let r = U256::from_be_slice(&sig[..32]);
    let s = U256::from_be_slice(&sig[32..64]);
    if r.is_zero() || s.is_zero() || s > SECP256K1_HALF_ORDER {
        return Err(ChannelError::BadSignature);
    }
    let rs = revm::primitives::alloy_primitives::B512::from_slice(&sig[..64]);
    let msg = revm::primitives::B256::from(*digest);
    let word = revm::precompile::secp256k1::ecrecover(&rs, recid, &msg)
        .map_err(|_| ChannelError::BadSignature)?;
    Ok(Address::from_slice(&word[12..]))
}

/// Channel status in the record's last word.
const STATUS_OPEN: u64 = 1;
const STATUS_CLOSED: u64 = 2;

/// One channel as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Channel {
    payer: Address,
    payee: Address,
    signer: Address,
    deposit: U256,
    paid: U256,
    expiry: u64,
    open: bool,
}

impl Channel {
    fn meta(&self) -> U256 {
        let status = if self.open {
            STATUS_OPEN
        } else {
            STATUS_CLOSED
        };
        U256::from(self.expiry) | (U256::from(status) << 64)
    }
}

/// Offsets of the record's words from its base slot.
const PAYER: u64 = 0;
const PAYEE: u64 = 1;
const SIGNER: u64 = 2;
const DEPOSIT: u64 = 3;
const PAID: u64 = 4;
const META: u64 = 5;

fn record_slot(id: B256, field: u64) -> U256 {
    let base = U256::from_be_bytes(keccak256((id, U256::ZERO).abi_encode()).0);
    base.wrapping_add(U256::from(field))
}

fn word_to_address(word: U256) -> Address {
    Address::from_word(B256::from(word))
}

fn address_to_word(address: Address) -> U256 {
    U256::from_be_bytes(address.into_word().0)
}

/// The payment-channel native module. See the module docs for the rules.
#[derive(Debug, Clone)]
pub struct Channels {
    chain_id: u64,
}

impl Channels {
    /// The module for the chain `chain_id` (bound into channel ids and the voucher domain).
    pub fn new(chain_id: u64) -> Self {
        Self { chain_id }
    }

    fn load(&self, ctx: &mut dyn ModuleContext, id: B256) -> Result<Option<Channel>, ModuleError> {
        let meta = ctx.sload(record_slot(id, META))?;
        if meta.is_zero() {
            return Ok(None);
        }
        let expiry =
            u64::try_from(meta & U256::from(u64::MAX)).map_err(|_| ChannelError::Overflow)?;
        let status = u64::try_from(meta >> 64).map_err(|_| ChannelError::Overflow)?;
        Ok(Some(Channel {
            payer: word_to_address(ctx.sload(record_slot(id, PAYER))?),
            payee: word_to_address(ctx.sload(record_slot(id, PAYEE))?),
            signer: word_to_address(ctx.sload(record_slot(id, SIGNER))?),
            deposit: ctx.sload(record_slot(id, DEPOSIT))?,
            paid: ctx.sload(record_slot(id, PAID))?,
            expiry,
            open: status == STATUS_OPEN,
        }))
    }

    /// Loads an open channel or says why there is none.
    fn load_open(&self, ctx: &mut dyn ModuleContext, id: B256) -> Result<Channel, ModuleError> {
        match self.load(ctx, id)? {
            None => Err(ChannelError::Unknown(id).into()),
            Some(ch) if !ch.open => Err(ChannelError::Closed(id).into()),
            Some(ch) => Ok(ch),
        }
    }

    fn require_live(id: B256, ch: &Channel, now: u64) -> Result<(), ChannelError> {
        if now >= ch.expiry {
            return Err(ChannelError::Expired {
                id,
                expiry: ch.expiry,
                now,
            });
        }
        Ok(())
    }

    fn emit<E: SolEvent>(ctx: &mut dyn ModuleContext, event: &E) -> Result<(), ModuleError> {
        let log = event.encode_log_data();
        ctx.emit(log.topics().to_vec(), log.data)
    }

    fn open(
        &self,
        call: &ModuleCall<'_>,
        ctx: &mut dyn ModuleContext,
        args: IChannels::openCall,
    ) -> Result<B256, ModuleError> {
        let now = ctx.block_timestamp();
        if call.value.is_zero() {
            return Err(ChannelError::NoDeposit.into());
        }
        if args.payee.is_zero() {
            return Err(ChannelError::ZeroAddress("payee").into());
        }
        if args.signer.is_zero() {
            return Err(ChannelError::ZeroAddress("signer").into());
        }
        if args.payee == ctx.address() {
            return Err(ChannelError::PayeeIsModule.into());
        }
        if args.expiry <= now {
            return Err(ChannelError::ExpiryNotFuture {
                expiry: args.expiry,
                now,
            }
            .into());
        }
        let id = channel_id(
            self.chain_id,
            ctx.address(),
            call.caller,
            args.payee,
            args.signer,
            args.salt,
        );
        if self.load(ctx, id)?.is_some() {
            return Err(ChannelError::AlreadyExists(id).into());
        }
        let ch = Channel {
            payer: call.caller,
            payee: args.payee,
            signer: args.signer,
            deposit: call.value,
            paid: U256::ZERO,
            expiry: args.expiry,
            open: true,
        };
        ctx.sstore(record_slot(id, PAYER), address_to_word(ch.payer))?;
        ctx.sstore(record_slot(id, PAYEE), address_to_word(ch.payee))?;
        ctx.sstore(record_slot(id, SIGNER), address_to_word(ch.signer))?;
        ctx.sstore(record_slot(id, DEPOSIT), ch.deposit)?;
        ctx.sstore(record_slot(id, META), ch.meta())?;
        Self::emit(
            ctx,
            &IChannels::ChannelOpened {
                channelId: id,
                payer: ch.payer,
                payee: ch.payee,
                signer: ch.signer,
                deposit: ch.deposit,
                expiry: ch.expiry,
            },
        )?;
        Ok(id)
    }

    fn top_up(
        &self,
        call: &ModuleCall<'_>,
        ctx: &mut dyn ModuleContext,
        id: B256,
    ) -> Result<(), ModuleError> {
        let now = ctx.block_timestamp();
        if call.value.is_zero() {
            return Err(ChannelError::NoDeposit.into());
        }
        let ch = self.load_open(ctx, id)?;
        if call.caller != ch.payer {
            return Err(ChannelError::NotPayer(ch.payer).into());
        }
        Self::require_live(id, &ch, now)?;
        let deposit = ch
            .deposit
            .checked_add(call.value)
            .ok_or(ChannelError::Overflow)?;
        ctx.sstore(record_slot(id, DEPOSIT), deposit)?;
        Self::emit(
            ctx,
            &IChannels::ChannelToppedUp {
                channelId: id,
                amount: call.value,
                deposit,
            },
        )
    }

    fn extend(
        &self,
        call: &ModuleCall<'_>,
        ctx: &mut dyn ModuleContext,
        id: B256,
        new_expiry: u64,
    ) -> Result<(), ModuleError> {
        let now = ctx.block_timestamp();
        let mut ch = self.load_open(ctx, id)?;
        if call.caller != ch.payer {
            return Err(ChannelError::NotPayer(ch.payer).into());
        }
        Self::require_live(id, &ch, now)?;
        if new_expiry <= ch.expiry {
            return Err(ChannelError::ExpiryNotLater {
                new: new_expiry,
                current: ch.expiry,
            }
            .into());
        }
        ch.expiry = new_expiry;
        ctx.sstore(record_slot(id, META), ch.meta())?;
        Self::emit(
            ctx,
            &IChannels::ChannelExtended {
                channelId: id,
                expiry: new_expiry,
            },
        )
    }

    /// `claim` (`close == false`) and `claimAndClose`.
    fn claim(
        &self,
        call: &ModuleCall<'_>,
        ctx: &mut dyn ModuleContext,
        id: B256,
        cumulative: U256,
        sig: &[u8],
        close: bool,
    ) -> Result<(), ModuleError> {
        let now = ctx.block_timestamp();
        let mut ch = self.load_open(ctx, id)?;
        if close && call.caller != ch.payee {
            return Err(ChannelError::NotPayee(ch.payee).into());
        }
        Self::require_live(id, &ch, now)?;
        if cumulative > ch.deposit {
            return Err(ChannelError::OverDeposit {
                cumulative,
                deposit: ch.deposit,
            }
            .into());
        }
        // Closing on what was already paid needs no new voucher: it only returns the payer's
        // own money, and only the payee can do it.
        if cumulative < ch.paid || (cumulative == ch.paid && !close) {
            return Err(ChannelError::Stale {
                cumulative,
                paid: ch.paid,
            }
            .into());
        }
        let amount = cumulative
            .checked_sub(ch.paid)
            .ok_or(ChannelError::Overflow)?;
        if !amount.is_zero() {
            ctx.charge(VOUCHER_RECOVER_GAS)?;
            let digest = voucher_digest(self.chain_id, ctx.address(), id, cumulative);
            let recovered = recover_signer(&digest, sig)?;
            if recovered != ch.signer {
                return Err(ChannelError::WrongSigner {
                    recovered,
                    signer: ch.signer,
                }
                .into());
            }
        }
        let refund = ch
            .deposit
            .checked_sub(cumulative)
            .ok_or(ChannelError::Overflow)?;

        if !amount.is_zero() {
            ch.paid = cumulative;
            ctx.sstore(record_slot(id, PAID), ch.paid)?;
            ctx.transfer(ch.payee, amount)?;
            Self::emit(
                ctx,
                &IChannels::ChannelClaimed {
                    channelId: id,
                    payee: ch.payee,
                    amount,
                    cumulative,
                },
            )?;
        }
        if close {
            self.close(ctx, id, ch, refund)?;
        }
        Ok(())
    }

    fn reclaim(
        &self,
        call: &ModuleCall<'_>,
        ctx: &mut dyn ModuleContext,
        id: B256,
    ) -> Result<(), ModuleError> {
        let now = ctx.block_timestamp();
        let ch = self.load_open(ctx, id)?;
        if call.caller != ch.payer {
            return Err(ChannelError::NotPayer(ch.payer).into());
        }
        if now < ch.expiry {
            return Err(ChannelError::NotExpired {
                id,
                expiry: ch.expiry,
                now,
            }
            .into());
        }
        let refund = ch
            .deposit
            .checked_sub(ch.paid)
            .ok_or(ChannelError::Overflow)?;
        self.close(ctx, id, ch, refund)
    }

    /// Marks `ch` closed and returns `refund` to its payer. The caller has checked everything.
    fn close(
        &self,
        ctx: &mut dyn ModuleContext,
        id: B256,
        mut ch: Channel,
        refund: U256,
    ) -> Result<(), ModuleError> {
        ch.open = false;
        ctx.sstore(record_slot(id, META), ch.meta())?;
        if !refund.is_zero() {
            ctx.transfer(ch.payer, refund)?;
        }
        Self::emit(
            ctx,
            &IChannels::ChannelClosed {
                channelId: id,
                paid: ch.paid,
                refund,
            },
        )
    }
}

impl NativeModule for Channels {
    fn address(&self) -> Address {
        CHANNELS_ADDRESS
    }

    fn name(&self) -> &'static str {
        "channels"
    }

    fn handle(
        &self,
        call: &ModuleCall<'_>,
        ctx: &mut dyn ModuleContext,
    ) -> Result<Bytes, ModuleError> {
        use IChannels::IChannelsCalls as C;
        let decoded = C::abi_decode(call.input).map_err(|_| {
            let selector = call.selector_hex();
            ChannelError::BadCall(selector)
        })?;
        let payable = matches!(decoded, C::open(_) | C::topUp(_));
        if !payable && !call.value.is_zero() {
            return Err(ChannelError::NotPayable.into());
        }
        let out = match decoded {
            C::open(args) => {
                let id = self.open(call, ctx, args)?;
                IChannels::openCall::abi_encode_returns(&id)
            }
            C::topUp(args) => {
                self.top_up(call, ctx, args.channelId)?;
                Vec::new()
            }
            C::extend(args) => {
                self.extend(call, ctx, args.channelId, args.newExpiry)?;
                Vec::new()
            }
            C::claim(args) => {
                self.claim(call, ctx, args.channelId, args.cumulative, &args.sig, false)?;
                Vec::new()
            }
            C::claimAndClose(args) => {
                self.claim(call, ctx, args.channelId, args.cumulative, &args.sig, true)?;
                Vec::new()
            }
            C::reclaim(args) => {
                self.reclaim(call, ctx, args.channelId)?;
                Vec::new()
            }
            C::channel(args) => {
                let ch = self.load(ctx, args.channelId)?;
                let ret = match ch {
                    None => IChannels::channelReturn {
                        payer: Address::ZERO,
                        payee: Address::ZERO,
                        signer: Address::ZERO,
                        deposit: U256::ZERO,
                        paid: U256::ZERO,
                        expiry: 0,
                        open: false,
                    },
                    Some(ch) => IChannels::channelReturn {
                        payer: ch.payer,
                        payee: ch.payee,
                        signer: ch.signer,
                        deposit: ch.deposit,
                        paid: ch.paid,
                        expiry: ch.expiry,
                        open: ch.open,
                    },
                };
                IChannels::channelCall::abi_encode_returns(&ret)
            }
            C::channelIdOf(args) => {
                let id = channel_id(
                    self.chain_id,
                    ctx.address(),
                    args.payer,
                    args.payee,
                    args.signer,
                    args.salt,
                );
                IChannels::channelIdOfCall::abi_encode_returns(&id)
            }
            C::domainSeparator(_) => IChannels::domainSeparatorCall::abi_encode_returns(
                &B256::from(domain_separator(self.chain_id, ctx.address())),
            ),
        };
        Ok(Bytes::from(out))
    }
}
