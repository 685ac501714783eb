//! [`Books`]: the driver's [`PaymentStore`] over the persisted [`VoucherBook`] (held by the
//! [`Settler`]) and [`ChannelBook`], both in one market directory.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use speed::{Amount, ChannelId, Signature};

use crate::chain::{ChainPort, ChannelState};
use crate::driver::PaymentStore;
use crate::settle::{BuyerChannel, ChannelBook, ClaimPolicy, SettleError, Settler, VoucherBook};

/// Both books of one market directory.
#[derive(Debug)]
pub struct Books {
    settler: Arc<Settler>,
    channels: Mutex<ChannelBook>,
}

impl Books {
    /// Opens (or creates) the books in `dir`, settling through `chain` under `policy`.
    pub fn open(
        dir: &Path,
        chain: Arc<dyn ChainPort>,
        policy: ClaimPolicy,
    ) -> Result<Self, SettleError> {
        let vouchers = VoucherBook::open(dir)?;
        let channels = ChannelBook::open(dir)?;
        Ok(Self {
            settler: Arc::new(Settler::new(chain, vouchers, policy)),
            channels: Mutex::new(channels),
        })
    }

    /// The seller's settler (its voucher book and claims).
    pub fn settler(&self) -> &Arc<Settler> {
        &self.settler
    }

    /// The buyer's channel book.
    pub fn channels(&self) -> MutexGuard<'_, ChannelBook> {
        self.channels.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl PaymentStore for Books {
    fn accepted(&self, id: &ChannelId) -> Amount {
        self.settler
            .entry(*id)
            .map_or(Amount::ZERO, |e| e.cumulative)
    }

    fn record_voucher(
        &self,
        channel: &ChannelState,
        cumulative: Amount,
        sig: Signature,
    ) -> Result<(), String> {
        self.settler
            .record(channel, cumulative, sig)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn opened(&self, id: &ChannelId) -> Option<BuyerChannel> {
        self.channels().get(*id).cloned()
    }

    fn save_opened(&self, channel: &ChannelState, salt: [u8; 32]) -> Result<(), String> {
        let mut book = self.channels();
        let r = if book.get(channel.id).is_some() {
            book.update(channel)
        } else {
            book.insert(channel, salt)
        };
        r.map_err(|e| e.to_string())
    }

    fn promise(&self, id: &ChannelId, cumulative: Amount) -> Result<(), String> {
        self.channels()
            .pay(*id, cumulative)
            .map_err(|e| e.to_string())
    }

    fn locked_unspent(&self) -> Amount {
        self.channels().locked()
    }
}
