//! Settlement: the seller's vouchers and claims, the buyer's channels, and the wallet view.
//!
//! # Layout
//! - [`VoucherBook`] (seller, `<dir>/vouchers.json`): the highest accepted voucher per channel
//!   and how much of it was claimed. [`VoucherBook::record`] writes the file before it returns,
//!   so a voucher answered with RECEIPT survives a crash (kill -9 included).
//! - [`Settler`] claims vouchers on chain by [`ClaimPolicy`]: when a channel's unclaimed value
//!   reaches the threshold, or its expiry is near. Claims are idempotent: a voucher already
//!   paid (by us before a crash, or by anyone) is reconciled from the chain, not paid twice.
//! - [`ChannelBook`] (buyer, `<dir>/channels.json`): the channels we opened, with the salt and
//!   signer, and the cumulative promised so far. [`ChannelBook::pay`] persists the new
//!   cumulative *before* the voucher goes out, so after a crash we never sign a lower one.
//! - [`reclaim_expired`] (buyer): takes back what is left in our expired channels.
//! - [`WalletView`]: free, locked, claimable and claimed, from a balance and the books.
//!
//! # Files
//! JSON, amounts as decimal strings (they exceed JSON's safe integers), ids, addresses and
//! signatures as `0x` hex, a `version` field (1). Written atomically: temporary file, fsync,
//! rename, directory fsync.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use speed::{Address, Amount, ChannelId, Signature};

use crate::chain::{ChainError, ChainPort, ChannelState};
use crate::keys::write_atomic;

/// The file format version both books write.
const VERSION: u32 = 1;

/// One BTT in wei.
const BTT: u128 = 1_000_000_000_000_000_000;

/// Why a book or a claim failed.
#[derive(Debug, thiserror::Error)]
pub enum SettleError {
    /// A book file could not be read or written.
    #[error("{path}: {source}; check the data directory's permissions and free space")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A book file does not parse.
    #[error("{path} is corrupt ({reason}); restore it from a backup, or move it aside to start an empty book (what it records would be forgotten)")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A voucher (or payment) below what is already recorded for the channel.
    #[error("channel {} already has {} wei; {} wei is lower: vouchers only grow", hex(&.id.0), .highest.0, .cumulative.0)]
    Lower {
        /// The channel.
        id: ChannelId,
        /// The refused amount.
        cumulative: Amount,
        /// The recorded one.
        highest: Amount,
    },
    /// More than the channel's deposit.
    #[error("{} wei exceeds the deposit {} wei of channel {}: top up first", .cumulative.0, .deposit.0, hex(&.id.0))]
    OverDeposit {
        /// The channel.
        id: ChannelId,
        /// The refused amount.
        cumulative: Amount,
        /// The deposit.
        deposit: Amount,
    },
    /// The book has no such channel.
    #[error("channel {} is not in the book", hex(&.0.0))]
    UnknownChannel(ChannelId),
    /// The channel is closed or reclaimed.
    #[error("channel {} is closed: open a new one", hex(&.0.0))]
    Closed(ChannelId),
    /// Another claim of the channel is under way.
    #[error("a claim of channel {} is already under way: wait for it", hex(&.0.0))]
    ClaimInProgress(ChannelId),
    /// The chain refused or could not be reached.
    #[error(transparent)]
    Chain(#[from] ChainError),
}

// ---- hex and decimal fields ----------------------------------------------------------------------

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(2 + 2 * bytes.len());
    s.push_str("0x");
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let s = s.strip_prefix("0x")?;
    if s.len() != 2 * N || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

fn dec(s: &str) -> Option<Amount> {
    if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse().ok().map(Amount)
}

/// Reads a book file; `None` if it does not exist.
fn read_file<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>, SettleError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(SettleError::Io {
                path: path.to_owned(),
                source,
            })
        }
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| SettleError::Corrupt {
            path: path.to_owned(),
            reason: e.to_string(),
        })
}

fn write_file<T: Serialize>(path: &Path, value: &T) -> Result<(), SettleError> {
    let mut text = serde_json::to_vec_pretty(value).map_err(|e| SettleError::Corrupt {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    text.push(b'\n');
    write_atomic(path, &text, 0o600, true).map_err(|source| SettleError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Opens book file `name` in `dir` (creating the directory): `parts` takes the parsed file
/// apart into its version and records, `convert` checks one record (`what` names it in
/// errors). Another version, a malformed record or a channel listed twice is refused as
/// corrupt. An absent file is an empty book.
fn load<F, R, T>(
    dir: &Path,
    name: &str,
    what: &str,
    parts: impl FnOnce(F) -> (u32, Vec<R>),
    convert: impl Fn(&R) -> Option<T>,
    id: impl Fn(&T) -> ChannelId,
) -> Result<(PathBuf, BTreeMap<ChannelId, T>), SettleError>
where
    F: for<'de> Deserialize<'de>,
{
    open_dir(dir)?;
    let path = dir.join(name);
    let mut entries = BTreeMap::new();
    if let Some(file) = read_file::<F>(&path)? {
        let corrupt = |reason: String| SettleError::Corrupt {
            path: path.clone(),
            reason,
        };
        let (version, records) = parts(file);
        if version != VERSION {
            return Err(corrupt(format!(
                "version {version} is not {VERSION}: written by another btt version"
            )));
        }
        for (i, r) in records.iter().enumerate() {
            let e =
                convert(r).ok_or_else(|| corrupt(format!("{what} {i} has a malformed field")))?;
            let key = id(&e);
            if entries.insert(key, e).is_some() {
                return Err(corrupt(format!("channel {} appears twice", hex(&key.0))));
            }
        }
    }
    Ok((path, entries))
}

fn open_dir(dir: &Path) -> Result<(), SettleError> {
    std::fs::create_dir_all(dir).map_err(|source| SettleError::Io {
        path: dir.to_owned(),
        source,
    })
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

// ---- the seller's voucher book -----------------------------------------------------------------

/// The highest voucher accepted on one channel, and what was claimed of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoucherEntry {
    /// The channel as last read from the chain when a voucher was recorded.
    pub channel: ChannelState,
    /// The highest accepted cumulative amount, wei.
    pub cumulative: Amount,
    /// Its signature.
    pub sig: Signature,
    /// How much of it is paid to us on chain, wei (`≤ cumulative`).
    pub claimed: Amount,
}

impl VoucherEntry {
    /// `cumulative − claimed`.
    pub fn unclaimed(&self) -> Amount {
        self.cumulative.saturating_sub(self.claimed)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct VoucherFile {
    version: u32,
    vouchers: Vec<VoucherRecord>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct VoucherRecord {
    channel: String,
    payer: String,
    payee: String,
    signer: String,
    deposit: String,
    paid: String,
    expiry: u64,
    open: bool,
    cumulative: String,
    sig: String,
    claimed: String,
}

impl VoucherRecord {
    fn from_entry(e: &VoucherEntry) -> Self {
        let c = &e.channel;
        Self {
            channel: hex(&c.id.0),
            payer: hex(&c.payer.0),
            payee: hex(&c.payee.0),
            signer: hex(&c.signer.0),
            deposit: c.deposit.0.to_string(),
            paid: c.paid.0.to_string(),
            expiry: c.expiry,
            open: c.open,
            cumulative: e.cumulative.0.to_string(),
            sig: hex(&e.sig.0),
            claimed: e.claimed.0.to_string(),
        }
    }

    fn to_entry(&self) -> Option<VoucherEntry> {
        let e = VoucherEntry {
            channel: ChannelState {
                id: ChannelId(unhex(&self.channel)?),
                payer: Address(unhex(&self.payer)?),
                payee: Address(unhex(&self.payee)?),
                signer: Address(unhex(&self.signer)?),
                deposit: dec(&self.deposit)?,
                paid: dec(&self.paid)?,
                expiry: self.expiry,
                open: self.open,
            },
            cumulative: dec(&self.cumulative)?,
            sig: Signature(unhex(&self.sig)?),
            claimed: dec(&self.claimed)?,
        };
        (e.claimed <= e.cumulative).then_some(e)
    }
}

/// The seller's vouchers, one entry per channel, persisted in `<dir>/vouchers.json`.
///
/// The book keeps what it is given: the caller has checked each voucher's signature against
/// the channel's signer ([`crate::recover_voucher_signer`]) and the channel's payee.
#[derive(Debug)]
pub struct VoucherBook {
    path: PathBuf,
    entries: BTreeMap<ChannelId, VoucherEntry>,
}

impl VoucherBook {
    /// The file name in the book's directory.
    pub const FILE: &'static str = "vouchers.json";

    /// Opens (or starts) the book in `dir`.
    pub fn open(dir: &Path) -> Result<Self, SettleError> {
        let (path, entries) = load(
            dir,
            Self::FILE,
            "voucher",
            |f: VoucherFile| (f.version, f.vouchers),
            VoucherRecord::to_entry,
            |e| e.channel.id,
        )?;
        Ok(Self { path, entries })
    }

    /// Where the book is kept.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn save(&self) -> Result<(), SettleError> {
        let file = VoucherFile {
            version: VERSION,
            vouchers: self
                .entries
                .values()
                .map(VoucherRecord::from_entry)
                .collect(),
        };
        write_file(&self.path, &file)
    }

    /// Replaces `id`'s entry and writes the file; on a write error the book is unchanged.
    fn commit(&mut self, entry: VoucherEntry) -> Result<(), SettleError> {
        let id = entry.channel.id;
        let old = self.entries.insert(id, entry);
        if let Err(e) = self.save() {
            match old {
                Some(old) => self.entries.insert(id, old),
                None => self.entries.remove(&id),
            };
            return Err(e);
        }
        Ok(())
    }

    /// Records a voucher for `cumulative` on `channel` (its latest final state). Returns
    /// whether it is a new high; an equal amount is a harmless repeat (`false`, nothing
    /// written), a lower one or one above the deposit is refused. The file is written before
    /// this returns `true`.
    pub fn record(
        &mut self,
        channel: &ChannelState,
        cumulative: Amount,
        sig: Signature,
    ) -> Result<bool, SettleError> {
        let id = channel.id;
        if cumulative > channel.deposit {
            return Err(SettleError::OverDeposit {
                id,
                cumulative,
                deposit: channel.deposit,
            });
        }
        let claimed = match self.entries.get(&id) {
            Some(e) if cumulative < e.cumulative => {
                return Err(SettleError::Lower {
                    id,
                    cumulative,
                    highest: e.cumulative,
                })
            }
            Some(e) if cumulative == e.cumulative => return Ok(false),
            Some(e) => e.claimed,
            None => Amount::ZERO,
        };
        self.commit(VoucherEntry {
            channel: channel.clone(),
            cumulative,
            sig,
            claimed,
        })?;
        Ok(true)
    }

    /// Notes that `claimed` of `id`'s voucher is paid on chain (it only grows, up to the
    /// voucher); with `channel`, also the channel's new state.
    pub fn mark_claimed(
        &mut self,
        id: ChannelId,
        claimed: Amount,
        channel: Option<&ChannelState>,
    ) -> Result<(), SettleError> {
        let mut e = self
            .entries
            .get(&id)
            .cloned()
            .ok_or(SettleError::UnknownChannel(id))?;
        let claimed = claimed.min(e.cumulative).max(e.claimed);
        let unchanged = claimed == e.claimed && channel.is_none_or(|c| *c == e.channel);
        if unchanged {
            return Ok(());
        }
        e.claimed = claimed;
        if let Some(c) = channel {
            e.channel = c.clone();
        }
        self.commit(e)
    }

    /// The entry of `id`.
    pub fn get(&self, id: ChannelId) -> Option<&VoucherEntry> {
        self.entries.get(&id)
    }

    /// Every entry, by channel id.
    pub fn entries(&self) -> Vec<VoucherEntry> {
        self.entries.values().cloned().collect()
    }

    /// Σ claimed, wei.
    pub fn claimed(&self) -> Amount {
        Amount(self.entries.values().map(|e| e.claimed.0).sum())
    }

    /// Σ unclaimed over channels still claimable at `now_s` (open, before expiry), wei.
    pub fn claimable(&self, now_s: u64) -> Amount {
        Amount(
            self.entries
                .values()
                .filter(|e| e.channel.is_live(now_s))
                .map(|e| e.unclaimed().0)
                .sum(),
        )
    }

    /// What the book says we earned as of `now_s`, without asking the chain: the unclaimed
    /// part of a voucher is claimable while its channel is live and forfeited after.
    pub fn earnings(&self, now_s: u64) -> Earnings {
        let mut out = Earnings::default();
        for e in self.entries.values() {
            let live = e.channel.is_live(now_s);
            out.claimed = Amount(out.claimed.0.saturating_add(e.claimed.0));
            let unclaimed = e.unclaimed().0;
            let bucket = if live {
                &mut out.claimable
            } else {
                &mut out.forfeited
            };
            *bucket = Amount(bucket.0.saturating_add(unclaimed));
            out.channels.push(ChannelEarnings {
                id: e.channel.id,
                payer: e.channel.payer,
                cumulative: e.cumulative,
                claimed: e.claimed,
                expiry: e.channel.expiry,
                live,
            });
        }
        out
    }
}

// ---- claims --------------------------------------------------------------------------------

/// When the seller claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimPolicy {
    /// Claim a channel once its unclaimed value reaches this, wei. Claims cost gas, so this
    /// should be many times a claim's fee.
    pub threshold: Amount,
    /// Claim whatever is unclaimed once the channel expires within this many seconds (a
    /// voucher is worthless after the expiry).
    pub expiry_margin_s: u64,
}

impl Default for ClaimPolicy {
    /// 1 BTT, a thousand times a claim's fee at a few gwei; one hour before the expiry.
    fn default() -> Self {
        Self {
            threshold: Amount(BTT),
            expiry_margin_s: 3_600,
        }
    }
}

/// One channel in [`Earnings`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelEarnings {
    /// The channel.
    pub id: ChannelId,
    /// Who pays.
    pub payer: Address,
    /// Highest accepted voucher, wei.
    pub cumulative: Amount,
    /// Paid to us on chain, wei.
    pub claimed: Amount,
    /// The channel's expiry, unix seconds.
    pub expiry: u64,
    /// Whether the rest can still be claimed (open and before its expiry).
    pub live: bool,
}

/// What the seller has earned.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Earnings {
    /// Accepted but not yet claimed, on channels that can still be claimed, wei.
    pub claimable: Amount,
    /// Paid to us on chain, wei.
    pub claimed: Amount,
    /// Accepted but never claimed on channels that expired or closed, wei (lost).
    pub forfeited: Amount,
    /// Per channel.
    pub channels: Vec<ChannelEarnings>,
}

/// Claims the seller's vouchers on chain.
pub struct Settler {
    chain: Arc<dyn ChainPort>,
    book: Mutex<VoucherBook>,
    policy: ClaimPolicy,
    in_flight: Mutex<HashSet<ChannelId>>,
}

impl std::fmt::Debug for Settler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settler")
            .field("policy", &self.policy)
            .field("channels", &lock(&self.book).entries.len())
            .finish_non_exhaustive()
    }
}

/// Removes a channel from the in-flight set when a claim ends, however it ends.
struct InFlight<'a> {
    set: &'a Mutex<HashSet<ChannelId>>,
    id: ChannelId,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        lock(self.set).remove(&self.id);
    }
}

impl Settler {
    /// A settler claiming `book`'s vouchers through `chain` (whose wallet is the payee).
    pub fn new(chain: Arc<dyn ChainPort>, book: VoucherBook, policy: ClaimPolicy) -> Self {
        Self {
            chain,
            book: Mutex::new(book),
            policy,
            in_flight: Mutex::new(HashSet::new()),
        }
    }

    /// The policy.
    pub fn policy(&self) -> ClaimPolicy {
        self.policy
    }

    /// Records an accepted voucher; see [`VoucherBook::record`].
    pub fn record(
        &self,
        channel: &ChannelState,
        cumulative: Amount,
        sig: Signature,
    ) -> Result<bool, SettleError> {
        lock(&self.book).record(channel, cumulative, sig)
    }

    /// The entry of `id`.
    pub fn entry(&self, id: ChannelId) -> Option<VoucherEntry> {
        lock(&self.book).get(id).cloned()
    }

    /// Every entry.
    pub fn entries(&self) -> Vec<VoucherEntry> {
        lock(&self.book).entries()
    }

    /// Channels to claim now: live at `now_s` with something unclaimed, and either at least
    /// the threshold unclaimed or an expiry within the margin.
    pub fn due(&self, now_s: u64) -> Vec<ChannelId> {
        let book = lock(&self.book);
        book.entries
            .values()
            .filter(|e| {
                let unclaimed = e.unclaimed();
                e.channel.is_live(now_s)
                    && unclaimed > Amount::ZERO
                    && (unclaimed >= self.policy.threshold
                        || e.channel.expiry <= now_s.saturating_add(self.policy.expiry_margin_s))
            })
            .map(|e| e.channel.id)
            .collect()
    }

    /// Claims `id`'s highest voucher and returns what it newly paid us. Idempotent: nothing is
    /// sent when the voucher is claimed already, and a claim the chain refuses because the
    /// voucher was paid meanwhile is reconciled from the channel's state (returns zero).
    pub async fn claim(&self, id: ChannelId) -> Result<Amount, SettleError> {
        let entry = self.entry(id).ok_or(SettleError::UnknownChannel(id))?;
        if entry.unclaimed() == Amount::ZERO {
            return Ok(Amount::ZERO);
        }
        if !lock(&self.in_flight).insert(id) {
            return Err(SettleError::ClaimInProgress(id));
        }
        let _guard = InFlight {
            set: &self.in_flight,
            id,
        };
        let result = self
            .chain
            .claim(id, entry.cumulative, entry.sig, false)
            .await;
        match result {
            Ok(paid) => {
                let after = self.chain.channel(id).await.ok().flatten();
                lock(&self.book).mark_claimed(id, entry.cumulative, after.as_ref())?;
                tracing::info!(
                    channel = %hex(&id.0),
                    cumulative = entry.cumulative.0,
                    paid = paid.0,
                    "voucher claimed"
                );
                Ok(paid)
            }
            Err(e) => {
                // The voucher may have been paid already (our own claim before a crash).
                if let Ok(Some(c)) = self.chain.channel(id).await {
                    if c.paid >= entry.cumulative {
                        lock(&self.book).mark_claimed(id, entry.cumulative, Some(&c))?;
                        return Ok(Amount::ZERO);
                    }
                    // Part of it may have been paid by someone else's submission.
                    lock(&self.book).mark_claimed(id, c.paid, Some(&c))?;
                }
                tracing::warn!(channel = %hex(&id.0), error = %e, "claim failed");
                Err(e.into())
            }
        }
    }

    /// Claims every channel [`due`](Self::due) at `now_s`; one result per channel.
    pub async fn claim_due(&self, now_s: u64) -> Vec<(ChannelId, Result<Amount, SettleError>)> {
        let mut out = Vec::new();
        for id in self.due(now_s) {
            out.push((id, self.claim(id).await));
        }
        out
    }

    /// Claims every channel with anything unclaimed (on shutdown, or on request); the chain
    /// decides what is still claimable. One result per channel.
    pub async fn claim_all(&self) -> Vec<(ChannelId, Result<Amount, SettleError>)> {
        let ids: Vec<ChannelId> = lock(&self.book)
            .entries
            .values()
            .filter(|e| e.channel.open && e.unclaimed() > Amount::ZERO)
            .map(|e| e.channel.id)
            .collect();
        let mut out = Vec::new();
        for id in ids {
            out.push((id, self.claim(id).await));
        }
        out
    }

    /// What we earned, as of `now_s`; see [`VoucherBook::earnings`].
    pub fn earnings(&self, now_s: u64) -> Earnings {
        lock(&self.book).earnings(now_s)
    }

    /// Runs `f` on the book (for views that need both books, like [`WalletView::new`]).
    pub fn with_book<T>(&self, f: impl FnOnce(&VoucherBook) -> T) -> T {
        f(&lock(&self.book))
    }
}

// ---- the buyer's channel book ------------------------------------------------------------------

/// A channel we opened as a buyer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuyerChannel {
    /// The channel id.
    pub id: ChannelId,
    /// The seller's wallet.
    pub payee: Address,
    /// Our signer key's address.
    pub signer: Address,
    /// The salt it was opened with.
    pub salt: [u8; 32],
    /// The deposit, wei.
    pub deposit: Amount,
    /// The highest cumulative promised (signed or about to be), wei.
    pub cumulative: Amount,
    /// Unix seconds.
    pub expiry: u64,
    /// Reclaimed by us or closed by the payee.
    pub closed: bool,
}

impl BuyerChannel {
    /// What is still ours in the channel: `deposit − cumulative` while open, else zero.
    pub fn locked(&self) -> Amount {
        if self.closed {
            Amount::ZERO
        } else {
            self.deposit.saturating_sub(self.cumulative)
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChannelFile {
    version: u32,
    channels: Vec<ChannelRecord>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChannelRecord {
    id: String,
    payee: String,
    signer: String,
    salt: String,
    deposit: String,
    cumulative: String,
    expiry: u64,
    closed: bool,
}

impl ChannelRecord {
    fn from_channel(c: &BuyerChannel) -> Self {
        Self {
            id: hex(&c.id.0),
            payee: hex(&c.payee.0),
            signer: hex(&c.signer.0),
            salt: hex(&c.salt),
            deposit: c.deposit.0.to_string(),
            cumulative: c.cumulative.0.to_string(),
            expiry: c.expiry,
            closed: c.closed,
        }
    }

    fn to_channel(&self) -> Option<BuyerChannel> {
        Some(BuyerChannel {
            id: ChannelId(unhex(&self.id)?),
            payee: Address(unhex(&self.payee)?),
            signer: Address(unhex(&self.signer)?),
            salt: unhex(&self.salt)?,
            deposit: dec(&self.deposit)?,
            cumulative: dec(&self.cumulative)?,
            expiry: self.expiry,
            closed: self.closed,
        })
    }
}

/// The buyer's channels, persisted in `<dir>/channels.json`.
#[derive(Debug)]
pub struct ChannelBook {
    path: PathBuf,
    channels: BTreeMap<ChannelId, BuyerChannel>,
}

impl ChannelBook {
    /// The file name in the book's directory.
    pub const FILE: &'static str = "channels.json";

    /// Opens (or starts) the book in `dir`.
    pub fn open(dir: &Path) -> Result<Self, SettleError> {
        let (path, channels) = load(
            dir,
            Self::FILE,
            "channel",
            |f: ChannelFile| (f.version, f.channels),
            ChannelRecord::to_channel,
            |c| c.id,
        )?;
        Ok(Self { path, channels })
    }

    /// Where the book is kept.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn commit(&mut self, c: BuyerChannel) -> Result<(), SettleError> {
        let id = c.id;
        let old = self.channels.insert(id, c);
        let file = ChannelFile {
            version: VERSION,
            channels: self
                .channels
                .values()
                .map(ChannelRecord::from_channel)
                .collect(),
        };
        if let Err(e) = write_file(&self.path, &file) {
            match old {
                Some(old) => self.channels.insert(id, old),
                None => self.channels.remove(&id),
            };
            return Err(e);
        }
        Ok(())
    }

    /// Records a channel we opened with `salt`. Recording the same channel again updates its
    /// deposit, expiry and status and keeps what was paid.
    pub fn insert(&mut self, state: &ChannelState, salt: [u8; 32]) -> Result<(), SettleError> {
        let cumulative = self
            .channels
            .get(&state.id)
            .map_or(state.paid, |c| c.cumulative.max(state.paid));
        self.commit(BuyerChannel {
            id: state.id,
            payee: state.payee,
            signer: state.signer,
            salt,
            deposit: state.deposit,
            cumulative,
            expiry: state.expiry,
            closed: !state.open,
        })
    }

    /// Takes the chain's view of a recorded channel: deposit (after a top up), expiry, and
    /// whether it closed. What we promised never goes down.
    pub fn update(&mut self, state: &ChannelState) -> Result<(), SettleError> {
        let mut c = self
            .channels
            .get(&state.id)
            .cloned()
            .ok_or(SettleError::UnknownChannel(state.id))?;
        c.deposit = state.deposit;
        c.expiry = state.expiry;
        c.closed = c.closed || !state.open;
        c.cumulative = c.cumulative.max(state.paid);
        if self.channels.get(&state.id) == Some(&c) {
            return Ok(());
        }
        self.commit(c)
    }

    /// Records that we promise `cumulative` on `id`, before the voucher is signed and sent.
    /// An equal amount is a no-op; a lower one, one above the deposit, or a closed channel is
    /// refused.
    pub fn pay(&mut self, id: ChannelId, cumulative: Amount) -> Result<(), SettleError> {
        let mut c = self
            .channels
            .get(&id)
            .cloned()
            .ok_or(SettleError::UnknownChannel(id))?;
        if c.closed {
            return Err(SettleError::Closed(id));
        }
        if cumulative < c.cumulative {
            return Err(SettleError::Lower {
                id,
                cumulative,
                highest: c.cumulative,
            });
        }
        if cumulative > c.deposit {
            return Err(SettleError::OverDeposit {
                id,
                cumulative,
                deposit: c.deposit,
            });
        }
        if cumulative == c.cumulative {
            return Ok(());
        }
        c.cumulative = cumulative;
        self.commit(c)
    }

    /// Marks `id` reclaimed (or closed by the payee).
    pub fn mark_reclaimed(&mut self, id: ChannelId) -> Result<(), SettleError> {
        let mut c = self
            .channels
            .get(&id)
            .cloned()
            .ok_or(SettleError::UnknownChannel(id))?;
        if c.closed {
            return Ok(());
        }
        c.closed = true;
        self.commit(c)
    }

    /// The channel `id`.
    pub fn get(&self, id: ChannelId) -> Option<&BuyerChannel> {
        self.channels.get(&id)
    }

    /// Our open channel to `payee` (the one expiring last, if several).
    pub fn by_payee(&self, payee: Address) -> Option<&BuyerChannel> {
        self.channels
            .values()
            .filter(|c| c.payee == payee && !c.closed)
            .max_by_key(|c| c.expiry)
    }

    /// Open channels whose expiry has passed at `now_s`: reclaim them.
    pub fn reclaimable(&self, now_s: u64) -> Vec<ChannelId> {
        self.channels
            .values()
            .filter(|c| !c.closed && c.expiry <= now_s)
            .map(|c| c.id)
            .collect()
    }

    /// Σ (deposit − cumulative) over open channels: ours, but locked, wei.
    pub fn locked(&self) -> Amount {
        Amount(self.channels.values().map(|c| c.locked().0).sum())
    }

    /// Every channel, by id.
    pub fn entries(&self) -> Vec<BuyerChannel> {
        self.channels.values().cloned().collect()
    }
}

// ---- the buyer's reclaims -------------------------------------------------------------------------

/// Reclaims every channel of `book` still open at its expiry by `now_s`
/// ([`ChannelBook::reclaimable`]) through `chain`, whose wallet must be the channels' payer,
/// and marks each one reclaimed. One result per channel: the refund (`deposit − paid` on
/// chain), or why it failed (the book is then unchanged for that channel).
///
/// The chain's state is read first, so a channel the payee closed already (its rest was
/// refunded then), or one our own reclaim closed before a crash, is only marked closed and
/// reported with a zero refund, without sending anything. Run again, it does nothing.
///
/// `now_s` should be the chain's clock ([`ChainPort::now`]): the module refuses a reclaim
/// before the expiry by its block time, and says so in the channel's error.
pub async fn reclaim_expired(
    chain: &dyn ChainPort,
    book: &mut ChannelBook,
    now_s: u64,
) -> Vec<(ChannelId, Result<Amount, SettleError>)> {
    let mut out = Vec::new();
    for id in book.reclaimable(now_s) {
        let r = reclaim_one(chain, book, id).await;
        match &r {
            Ok(refund) => {
                tracing::info!(channel = %hex(&id.0), refund = refund.0, "channel reclaimed")
            }
            Err(e) => tracing::warn!(channel = %hex(&id.0), error = %e, "reclaim failed"),
        }
        out.push((id, r));
    }
    out
}

async fn reclaim_one(
    chain: &dyn ChainPort,
    book: &mut ChannelBook,
    id: ChannelId,
) -> Result<Amount, SettleError> {
    if let Some(state) = chain.channel(id).await? {
        if !state.open {
            book.update(&state)?;
            return Ok(Amount::ZERO);
        }
    }
    let refund = chain.reclaim(id).await?;
    book.mark_reclaimed(id)?;
    Ok(refund)
}

// ---- the wallet view ---------------------------------------------------------------------------

/// Where the wallet's BTT is, wei.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WalletView {
    /// The account's balance: spendable now.
    pub free: Amount,
    /// Ours but locked in channels we opened (deposit − promised).
    pub locked: Amount,
    /// Earned as a seller, not yet claimed, still claimable.
    pub claimable: Amount,
    /// Earned as a seller and claimed (already part of `free`).
    pub claimed: Amount,
}

impl WalletView {
    /// The view from the wallet's `balance` and both books, as of `now_s`.
    pub fn new(
        balance: Amount,
        channels: &ChannelBook,
        vouchers: &VoucherBook,
        now_s: u64,
    ) -> Self {
        Self {
            free: balance,
            locked: channels.locked(),
            claimable: vouchers.claimable(now_s),
            claimed: vouchers.claimed(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::{channel_id, recover_voucher_signer, sign_voucher, MemChain};

    const CHAIN: u64 = 7215;
    const MODULE: Address = Address([
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xb7, 0x70, 0x03,
    ]);

    fn key(n: u8) -> wallet::Signer {
        let mut bytes = [0x22u8; 32];
        bytes[31] = n;
        wallet::Signer::new(wallet::PrivateKey::from_bytes(&bytes).unwrap())
    }

    fn addr(k: &wallet::Signer) -> Address {
        Address(k.address().0)
    }

    fn channel(id: u8, deposit: u128, expiry: u64) -> ChannelState {
        ChannelState {
            id: ChannelId([id; 32]),
            payer: Address([1; 20]),
            payee: Address([2; 20]),
            signer: Address([3; 20]),
            deposit: Amount(deposit),
            paid: Amount(0),
            expiry,
            open: true,
        }
    }

    fn temp_files(dir: &Path) -> usize {
        std::fs::read_dir(dir)
            .unwrap()
            .filter(|e| {
                let name = e.as_ref().unwrap().file_name();
                name.to_string_lossy().starts_with('.')
            })
            .count()
    }

    #[test]
    fn the_book_keeps_the_highest_voucher_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let ch = channel(1, 100, 1_000);
        let mut book = VoucherBook::open(dir.path()).unwrap();
        assert!(book.entries().is_empty());
        assert!(book.record(&ch, Amount(10), Signature([1; 65])).unwrap());
        assert!(book.record(&ch, Amount(30), Signature([3; 65])).unwrap());
        // A repeat is harmless; lower and over-deposit vouchers are refused.
        assert!(!book.record(&ch, Amount(30), Signature([3; 65])).unwrap());
        let err = book
            .record(&ch, Amount(20), Signature([2; 65]))
            .unwrap_err();
        assert!(
            matches!(
                err,
                SettleError::Lower {
                    highest: Amount(30),
                    ..
                }
            ),
            "{err}"
        );
        let err = book
            .record(&ch, Amount(101), Signature([4; 65]))
            .unwrap_err();
        assert!(matches!(err, SettleError::OverDeposit { .. }), "{err}");
        book.mark_claimed(ch.id, Amount(30), None).unwrap();
        let other = channel(2, 50, 2_000);
        book.record(&other, Amount(5), Signature([5; 65])).unwrap();

        let again = VoucherBook::open(dir.path()).unwrap();
        assert_eq!(again.entries(), book.entries());
        let e = again.get(ch.id).unwrap();
        assert_eq!(
            (e.cumulative, e.claimed, e.sig),
            (Amount(30), Amount(30), Signature([3; 65]))
        );
        assert_eq!(again.claimed(), Amount(30));
        assert_eq!(again.claimable(0), Amount(5));
        assert_eq!(again.claimable(2_000), Amount(0));
        assert_eq!(temp_files(dir.path()), 0);
        // Claimed never goes down nor above the voucher.
        let mut again = again;
        again.mark_claimed(ch.id, Amount(5), None).unwrap();
        again.mark_claimed(other.id, Amount(500), None).unwrap();
        assert_eq!(again.get(ch.id).unwrap().claimed, Amount(30));
        assert_eq!(again.get(other.id).unwrap().claimed, Amount(5));
    }

    /// The file format is frozen: this text must keep loading and be written back as is.
    #[test]
    fn the_voucher_file_format_is_stable() {
        let text = format!(
            r#"{{
  "version": 1,
  "vouchers": [
    {{
      "channel": "0x{ch}",
      "payer": "0x{payer}",
      "payee": "0x{payee}",
      "signer": "0x{signer}",
      "deposit": "340282366920938463463374607431768211455",
      "paid": "0",
      "expiry": 1700000000,
      "open": true,
      "cumulative": "1000000000000000000",
      "sig": "0x{sig}",
      "claimed": "0"
    }}
  ]
}}
"#,
            ch = "ab".repeat(32),
            payer = "01".repeat(20),
            payee = "02".repeat(20),
            signer = "03".repeat(20),
            sig = "1c".repeat(65),
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(VoucherBook::FILE);
        std::fs::write(&path, &text).unwrap();
        let mut book = VoucherBook::open(dir.path()).unwrap();
        let e = book.get(ChannelId([0xab; 32])).unwrap().clone();
        assert_eq!(e.channel.deposit, Amount(u128::MAX));
        assert_eq!(e.cumulative, Amount(1_000_000_000_000_000_000));
        assert_eq!(e.sig, Signature([0x1c; 65]));
        book.mark_claimed(e.channel.id, Amount(1), None).unwrap();
        book.mark_claimed(e.channel.id, Amount(0), None).unwrap();
        let written = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            written,
            text.replace(r#""claimed": "0""#, r#""claimed": "1""#)
        );
    }

    #[test]
    fn a_corrupt_book_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(VoucherBook::FILE);
        for body in [
            "{",
            r#"{"version": 2, "vouchers": []}"#,
            r#"{"version": 1, "vouchers": [{"channel": "0x12"}]}"#,
        ] {
            std::fs::write(&path, body).unwrap();
            let err = VoucherBook::open(dir.path()).unwrap_err();
            assert!(matches!(err, SettleError::Corrupt { .. }), "{err}");
            assert!(err.to_string().contains("vouchers.json"), "{err}");
        }
        std::fs::write(dir.path().join(ChannelBook::FILE), "[]").unwrap();
        let err = ChannelBook::open(dir.path()).unwrap_err();
        assert!(err.to_string().contains("move it aside"), "{err}");
    }

    #[test]
    fn a_failed_write_leaves_the_book_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let ch = channel(1, 100, 1_000);
        let mut book = VoucherBook::open(dir.path()).unwrap();
        book.record(&ch, Amount(10), Signature([1; 65])).unwrap();
        // Nothing can be renamed onto a non-empty directory.
        let path = dir.path().join(VoucherBook::FILE);
        std::fs::remove_file(&path).unwrap();
        std::fs::create_dir_all(path.join("blocker")).unwrap();
        let err = book
            .record(&ch, Amount(20), Signature([2; 65]))
            .unwrap_err();
        assert!(matches!(err, SettleError::Io { .. }), "{err}");
        assert_eq!(book.get(ch.id).unwrap().cumulative, Amount(10));
        assert!(book
            .record(&channel(2, 9, 9), Amount(1), Signature([1; 65]))
            .is_err());
        assert!(book.get(ChannelId([2; 32])).is_none());
        assert_eq!(temp_files(dir.path()), 0);
    }

    #[test]
    fn the_channel_book_persists_payments_before_vouchers() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = channel(1, 100, 1_000);
        let mut book = ChannelBook::open(dir.path()).unwrap();
        book.insert(&state, [9; 32]).unwrap();
        assert_eq!(book.locked(), Amount(100));
        book.pay(state.id, Amount(40)).unwrap();
        // What is promised is on disk before the voucher is signed.
        let reopened = ChannelBook::open(dir.path()).unwrap();
        assert_eq!(reopened.get(state.id).unwrap().cumulative, Amount(40));
        assert_eq!(reopened.get(state.id).unwrap().salt, [9; 32]);
        assert!(matches!(
            book.pay(state.id, Amount(39)).unwrap_err(),
            SettleError::Lower { .. }
        ));
        assert!(matches!(
            book.pay(state.id, Amount(101)).unwrap_err(),
            SettleError::OverDeposit { .. }
        ));
        book.pay(state.id, Amount(40)).unwrap();
        // A top up raises the deposit; the promise stays.
        state.deposit = Amount(150);
        book.update(&state).unwrap();
        book.pay(state.id, Amount(120)).unwrap();
        assert_eq!(book.locked(), Amount(30));
        // Recording the same channel again keeps what was paid.
        book.insert(&state, [9; 32]).unwrap();
        assert_eq!(book.get(state.id).unwrap().cumulative, Amount(120));

        let second = ChannelState {
            id: ChannelId([2; 32]),
            expiry: 2_000,
            ..state.clone()
        };
        book.insert(&second, [8; 32]).unwrap();
        assert_eq!(book.by_payee(state.payee).unwrap().id, second.id);
        assert_eq!(book.by_payee(Address([7; 20])), None);
        assert_eq!(book.reclaimable(1_500), vec![state.id]);
        book.mark_reclaimed(state.id).unwrap();
        assert!(matches!(
            book.pay(state.id, Amount(130)).unwrap_err(),
            SettleError::Closed(_)
        ));
        assert_eq!(book.locked(), Amount(150));
        assert_eq!(book.reclaimable(3_000), vec![second.id]);
        let reopened = ChannelBook::open(dir.path()).unwrap();
        assert_eq!(reopened.entries(), book.entries());
        assert!(reopened.get(state.id).unwrap().closed);
        assert_eq!(temp_files(dir.path()), 0);
    }

    /// A buyer and a seller on one in-memory chain: open, pay per piece, claim by policy,
    /// crash and reconcile, expire and reclaim; the wallet views add up at every step.
    #[tokio::test]
    async fn buyer_and_seller_settle_on_one_chain() {
        let chain = MemChain::new(CHAIN);
        let (buyer_key, seller_key, signer) = (key(1), key(2), key(3));
        let (buyer, seller) = (addr(&buyer_key), addr(&seller_key));
        chain.fund(buyer, Amount(10_000));
        chain.set_now(1_000);
        let buyer_chain = chain.port(buyer);
        let seller_chain = chain.port(seller);
        let buyer_dir = tempfile::tempdir().unwrap();
        let seller_dir = tempfile::tempdir().unwrap();
        let mut channels = ChannelBook::open(buyer_dir.path()).unwrap();
        let policy = ClaimPolicy {
            threshold: Amount(500),
            expiry_margin_s: 100,
        };
        let settler = Settler::new(
            seller_chain.clone(),
            VoucherBook::open(seller_dir.path()).unwrap(),
            policy,
        );

        // The buyer opens a channel of 1000 until t = 5000.
        let salt = [4; 32];
        let state = buyer_chain
            .open(seller, addr(&signer), salt, 5_000, Amount(1_000))
            .await
            .unwrap();
        assert_eq!(
            state.id,
            channel_id(CHAIN, MODULE, buyer, seller, addr(&signer), salt)
        );
        channels.insert(&state, salt).unwrap();
        let view = WalletView::new(
            Amount(9_000),
            &channels,
            &VoucherBook::open(buyer_dir.path()).unwrap(),
            1_000,
        );
        assert_eq!((view.free, view.locked), (Amount(9_000), Amount(1_000)));

        // Three pieces of 200: persist, sign, send; the seller checks and records.
        let seen = seller_chain.channel(state.id).await.unwrap().unwrap();
        for n in 1..=3u128 {
            let cumulative = Amount(200 * n);
            channels.pay(state.id, cumulative).unwrap();
            let sig = sign_voucher(&signer, CHAIN, MODULE, state.id, cumulative);
            assert_eq!(
                recover_voucher_signer(CHAIN, MODULE, state.id, cumulative, &sig),
                Some(seen.signer)
            );
            assert!(settler.record(&seen, cumulative, sig).unwrap());
            let due = settler.due(1_000);
            assert_eq!(due.is_empty(), cumulative < policy.threshold, "{n}");
        }
        assert_eq!(channels.locked(), Amount(400));
        assert_eq!(settler.earnings(1_000).claimable, Amount(600));

        // Claim by policy; a second pass claims nothing more.
        let results = settler.claim_due(1_000).await;
        assert_eq!(results.len(), 1);
        assert_eq!(results[0].1.as_ref().unwrap(), &Amount(600));
        assert_eq!(seller_chain.balance(seller).await.unwrap(), Amount(600));
        assert!(settler.due(1_000).is_empty());
        assert_eq!(settler.claim(state.id).await.unwrap(), Amount(0));
        let e = settler.earnings(1_000);
        assert_eq!(
            (e.claimable, e.claimed, e.forfeited),
            (Amount(0), Amount(600), Amount(0))
        );
        assert_eq!(e.channels[0].cumulative, Amount(600));

        // A voucher claimed on chain but not noted (a crash between the two) is reconciled.
        channels.pay(state.id, Amount(700)).unwrap();
        let sig = sign_voucher(&signer, CHAIN, MODULE, state.id, Amount(700));
        settler.record(&seen, Amount(700), sig).unwrap();
        seller_chain
            .claim(state.id, Amount(700), sig, false)
            .await
            .unwrap();
        assert_eq!(settler.claim(state.id).await.unwrap(), Amount(0));
        assert_eq!(settler.entry(state.id).unwrap().claimed, Amount(700));
        assert_eq!(seller_chain.balance(seller).await.unwrap(), Amount(700));

        // An unreachable chain: the claim fails, is reported, and works later.
        channels.pay(state.id, Amount(750)).unwrap();
        let sig = sign_voucher(&signer, CHAIN, MODULE, state.id, Amount(750));
        settler.record(&seen, Amount(750), sig).unwrap();
        assert!(settler.due(1_000).is_empty(), "50 is below the threshold");
        assert_eq!(settler.due(4_900), vec![state.id], "but the expiry is near");
        chain.set_unavailable(true);
        let results = settler.claim_due(4_900).await;
        assert!(matches!(
            results[0].1,
            Err(SettleError::Chain(ChainError::Unavailable))
        ));
        assert_eq!(settler.entry(state.id).unwrap().claimed, Amount(700));
        chain.set_unavailable(false);
        let results = settler.claim_all().await;
        assert_eq!(results[0].1.as_ref().unwrap(), &Amount(50));

        // A last voucher the seller never claims is forfeited at the expiry.
        channels.pay(state.id, Amount(800)).unwrap();
        let sig = sign_voucher(&signer, CHAIN, MODULE, state.id, Amount(800));
        settler.record(&seen, Amount(800), sig).unwrap();
        chain.set_now(5_000);
        assert!(settler.due(5_000).is_empty());
        let e = settler.earnings(5_000);
        assert_eq!(
            (e.claimable, e.claimed, e.forfeited),
            (Amount(0), Amount(750), Amount(50))
        );
        assert!(settler.claim(state.id).await.is_err());

        // The book's own view is the settler's, without a chain.
        assert_eq!(settler.with_book(|b| b.earnings(5_000)), e);

        // The buyer reclaims what was not claimed: 1000 − 750.
        assert_eq!(channels.reclaimable(5_000), vec![state.id]);
        let results = reclaim_expired(&*buyer_chain, &mut channels, 5_000).await;
        assert_eq!(results.len(), 1);
        assert_eq!(results[0].0, state.id);
        assert_eq!(results[0].1.as_ref().unwrap(), &Amount(250));
        assert!(channels.get(state.id).unwrap().closed);
        let balance = buyer_chain.balance(buyer).await.unwrap();
        assert_eq!(balance, Amount(9_250));
        let view = settler.with_book(|v| WalletView::new(balance, &channels, v, 5_000));
        assert_eq!(
            view,
            WalletView {
                free: Amount(9_250),
                locked: Amount(0),
                claimable: Amount(0),
                claimed: Amount(750)
            }
        );
        assert_eq!(chain.total_supply(), Amount(10_000));
    }

    #[test]
    fn earnings_split_live_and_forfeited_vouchers() {
        let dir = tempfile::tempdir().unwrap();
        let mut book = VoucherBook::open(dir.path()).unwrap();
        assert_eq!(book.earnings(0), Earnings::default());
        let live = channel(1, 100, 2_000);
        let expiring = channel(2, 100, 1_000);
        let mut closed = channel(3, 100, 9_000);
        book.record(&live, Amount(40), Signature([1; 65])).unwrap();
        book.record(&expiring, Amount(30), Signature([2; 65]))
            .unwrap();
        book.record(&closed, Amount(20), Signature([3; 65]))
            .unwrap();
        book.mark_claimed(live.id, Amount(10), None).unwrap();
        closed.open = false;
        closed.paid = Amount(5);
        book.mark_claimed(closed.id, Amount(5), Some(&closed))
            .unwrap();
        // Before the second channel's expiry its voucher is still claimable.
        let e = book.earnings(999);
        assert_eq!(
            (e.claimable, e.claimed, e.forfeited),
            (Amount(30 + 30), Amount(15), Amount(15))
        );
        // At the expiry it is not (the chain is live strictly before it).
        let e = book.earnings(1_000);
        assert_eq!(
            (e.claimable, e.claimed, e.forfeited),
            (Amount(30), Amount(15), Amount(30 + 15))
        );
        let rows: Vec<_> = e
            .channels
            .iter()
            .map(|c| (c.id, c.cumulative, c.claimed, c.expiry, c.live))
            .collect();
        assert_eq!(
            rows,
            vec![
                (live.id, Amount(40), Amount(10), 2_000, true),
                (expiring.id, Amount(30), Amount(0), 1_000, false),
                (closed.id, Amount(20), Amount(5), 9_000, false),
            ]
        );
        assert_eq!(e.channels[0].payer, live.payer);
        // The same view as the wallet's.
        assert_eq!(e.claimable, book.claimable(1_000));
        assert_eq!(e.claimed, book.claimed());
    }

    #[tokio::test]
    async fn expired_channels_are_reclaimed_once_for_exactly_what_is_left() {
        let chain = MemChain::new(CHAIN);
        let (buyer_key, seller_key, signer) = (key(1), key(2), key(3));
        let (buyer, seller) = (addr(&buyer_key), addr(&seller_key));
        chain.fund(buyer, Amount(10_000));
        chain.set_now(1_000);
        let buyer_chain = chain.port(buyer);
        let seller_chain = chain.port(seller);
        let dir = tempfile::tempdir().unwrap();
        let mut book = ChannelBook::open(dir.path()).unwrap();
        let open = |salt: u8, deposit: u128, expiry: u64| {
            let port = buyer_chain.clone();
            let signer = addr(&signer);
            async move {
                port.open(seller, signer, [salt; 32], expiry, Amount(deposit))
                    .await
                    .unwrap()
            }
        };
        // a: 1000 until 2000, 400 promised and 300 of it claimed by the seller.
        // b: 500 until 3000, nothing paid.
        // c: 300 until 2000, claimed at 100 and closed by the seller (200 refunded then).
        let a = open(1, 1_000, 2_000).await;
        let b = open(2, 500, 3_000).await;
        let c = open(3, 300, 2_000).await;
        for ch in [&a, &b, &c] {
            book.insert(ch, [0; 32]).unwrap();
        }
        book.pay(a.id, Amount(400)).unwrap();
        let v = sign_voucher(&signer, CHAIN, MODULE, a.id, Amount(300));
        seller_chain
            .claim(a.id, Amount(300), v, false)
            .await
            .unwrap();
        book.pay(c.id, Amount(100)).unwrap();
        let v = sign_voucher(&signer, CHAIN, MODULE, c.id, Amount(100));
        seller_chain
            .claim(c.id, Amount(100), v, true)
            .await
            .unwrap();
        let balance = || async { buyer_chain.balance(buyer).await.unwrap() };
        assert_eq!(balance().await, Amount(10_000 - 1_800 + 200));

        // Nothing has expired: nothing is sent, nothing changes.
        let before = (chain.channels(), book.entries());
        assert!(reclaim_expired(&*buyer_chain, &mut book, 1_999)
            .await
            .is_empty());
        assert_eq!((chain.channels(), book.entries()), before);

        // At 2000: a refunds deposit − paid (the unclaimed promise included); c was closed
        // by the seller, so it is only noted, with nothing sent.
        chain.set_now(2_000);
        let results = reclaim_expired(&*buyer_chain, &mut book, 2_000).await;
        let results: Vec<_> = results
            .into_iter()
            .map(|(id, r)| (id, r.unwrap()))
            .collect();
        let mut expected = vec![(a.id, Amount(1_000 - 300)), (c.id, Amount(0))];
        expected.sort();
        assert_eq!(results, expected);
        assert_eq!(balance().await, Amount(10_000 - 1_800 + 200 + 700));
        assert!(book.get(a.id).unwrap().closed && book.get(c.id).unwrap().closed);
        assert!(!book.get(b.id).unwrap().closed);
        assert_eq!(book.locked(), Amount(500));
        // Twice: nothing to do, and the book on disk says so too.
        assert!(reclaim_expired(&*buyer_chain, &mut book, 2_000)
            .await
            .is_empty());
        assert!(ChannelBook::open(dir.path())
            .unwrap()
            .reclaimable(2_000)
            .is_empty());

        // Our clock ahead of the chain's: the module refuses, the book keeps b open.
        let r = reclaim_expired(&*buyer_chain, &mut book, 3_000).await;
        let err = r[0].1.as_ref().unwrap_err().to_string();
        assert!(err.contains("reclaim after that"), "{err}");
        assert!(!book.get(b.id).unwrap().closed);
        // An unreachable chain: an error, b still open.
        chain.set_now(3_000);
        chain.set_unavailable(true);
        let r = reclaim_expired(&*buyer_chain, &mut book, 3_000).await;
        assert!(matches!(
            r[0].1,
            Err(SettleError::Chain(ChainError::Unavailable))
        ));
        assert!(!book.get(b.id).unwrap().closed);
        chain.set_unavailable(false);
        // Reclaimed on chain but not noted (a crash between the two): noted, not paid twice.
        assert_eq!(buyer_chain.reclaim(b.id).await.unwrap(), Amount(500));
        let r = reclaim_expired(&*buyer_chain, &mut book, 3_000).await;
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].1.as_ref().unwrap(), &Amount(0));
        assert_eq!(book.locked(), Amount(0));
        assert_eq!(balance().await, Amount(10_000 - 1_800 + 200 + 700 + 500));
        assert_eq!(chain.total_supply(), Amount(10_000));
    }

    #[tokio::test]
    async fn claims_of_unknown_channels_and_concurrent_claims_are_errors() {
        let chain = MemChain::new(CHAIN);
        let dir = tempfile::tempdir().unwrap();
        let settler = Settler::new(
            chain.port(Address([2; 20])),
            VoucherBook::open(dir.path()).unwrap(),
            ClaimPolicy::default(),
        );
        assert!(matches!(
            settler.claim(ChannelId([1; 32])).await,
            Err(SettleError::UnknownChannel(_))
        ));
        let ch = channel(1, 100, 1_000);
        settler.record(&ch, Amount(10), Signature([1; 65])).unwrap();
        lock(&settler.in_flight).insert(ch.id);
        assert!(matches!(
            settler.claim(ch.id).await,
            Err(SettleError::ClaimInProgress(_))
        ));
        lock(&settler.in_flight).clear();
        // The chain never saw this channel: refused, reported, nothing marked.
        let err = settler.claim(ch.id).await.unwrap_err();
        assert!(err.to_string().contains("unknown channel"), "{err}");
        assert_eq!(settler.entry(ch.id).unwrap().claimed, Amount(0));
        assert!(lock(&settler.in_flight).is_empty());
    }
}
