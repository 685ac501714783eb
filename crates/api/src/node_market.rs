//! The node's side of the Speed market (`docs/speed.md`): the [`market::Market`] every torrent
//! of the library plugs into, the books behind it, the settlement task that claims earnings, and
//! the JSON the market panel shows.
//!
//! The market is opt-in: without a [`NodeMarket`] the library adds no extension, nothing is
//! bought or sold, and the panel says `enabled: false` with zeros. Amounts leave this module as
//! decimal strings of wei, never as floats or JSON numbers, so no client rounds them.

use std::sync::Arc;
use std::time::Duration;

use market::{Books, ChainPort, Market, SellerTerms, WalletView};
use serde_json::{json, Value};
use speed::{Amount, ChannelId};

/// How often the settlement task claims the vouchers that are due (docs/speed.md §9).
pub const CLAIM_EVERY: Duration = Duration::from_secs(30);
/// How long a balance read may take before the panel shows the balance as unknown.
const BALANCE_TIMEOUT: Duration = Duration::from_secs(2);

/// The market a node runs: keys, chain and books, shared by every torrent of its library.
pub struct NodeMarket {
    market: Arc<Market>,
    books: Arc<Books>,
    seller: Option<SellerTerms>,
    /// Where the wallet's balance is read; `None` leaves it to the node's chain view.
    chain: Option<Arc<dyn ChainPort>>,
}

impl std::fmt::Debug for NodeMarket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeMarket")
            .field("market", &self.market)
            .finish_non_exhaustive()
    }
}

/// The outcome of claiming one channel's voucher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The channel.
    pub channel: ChannelId,
    /// What the claim newly paid us, or why it failed.
    pub result: Result<Amount, String>,
}

impl NodeMarket {
    /// The node's market: `market` built over `books`, selling on `seller`'s terms (the same
    /// terms given to `market`'s config; `None`: buying only).
    pub fn new(market: Arc<Market>, books: Arc<Books>, seller: Option<SellerTerms>) -> Self {
        Self {
            market,
            books,
            seller,
            chain: None,
        }
    }

    /// Reads the wallet's balance from `chain` (otherwise the node's chain view is asked).
    pub fn with_balance_from(mut self, chain: Arc<dyn ChainPort>) -> Self {
        self.chain = Some(chain);
        self
    }

    /// The driver every torrent plugs into.
    pub fn market(&self) -> &Arc<Market> {
        &self.market
    }

    /// The persisted books.
    pub fn books(&self) -> &Arc<Books> {
        &self.books
    }

    /// The selling terms, `None` when the node does not sell.
    pub fn seller(&self) -> Option<&SellerTerms> {
        self.seller.as_ref()
    }

    /// The wallet that earns and pays.
    pub fn wallet(&self) -> wallet::Address {
        wallet::Address(self.market.wallet().0)
    }

    /// Claims every voucher that is due at `now_s` (above the threshold, or near its channel's
    /// expiry), logging each claim.
    pub async fn claim_due(&self, now_s: u64) -> Vec<Claim> {
        claims(self.books.settler().claim_due(now_s).await)
    }

    /// Claims every voucher with anything unclaimed, logging each claim.
    pub async fn claim_all(&self) -> Vec<Claim> {
        claims(self.books.settler().claim_all().await)
    }

    /// Starts the settlement task: [`claim_due`](Self::claim_due) every `every`. Stop it with
    /// [`Settlement::stop`], which claims everything on the way out.
    pub fn start_settlement(self: &Arc<Self>, every: Duration) -> Settlement {
        let me = self.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // The first tick is immediate: nothing is due before the node has sold anything.
            tick.tick().await;
            loop {
                tick.tick().await;
                me.claim_due(crate::library::unix_now()).await;
            }
        });
        Settlement {
            market: self.clone(),
            task,
        }
    }

    /// The wallet's balance, if this market reads it itself (see
    /// [`with_balance_from`](Self::with_balance_from)).
    pub(crate) async fn own_balance(&self) -> Option<Result<Amount, String>> {
        let chain = self.chain.as_ref()?;
        let who = self.market.wallet();
        Some(
            match tokio::time::timeout(BALANCE_TIMEOUT, chain.balance(who)).await {
                Ok(Ok(b)) => Ok(b),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("the chain did not answer in time".into()),
            },
        )
    }

    /// The market panel as of `now_s`, with the wallet's `balance` when it is known.
    pub(crate) fn view(&self, balance: Result<Amount, String>, now_s: u64) -> Value {
        let earnings = self.books.settler().earnings(now_s);
        let (wallet_view, bought) = {
            let channels = self.books.channels();
            let view = self.books.settler().with_book(|vouchers| {
                WalletView::new(
                    balance.as_ref().copied().unwrap_or(Amount::ZERO),
                    &channels,
                    vouchers,
                    now_s,
                )
            });
            (view, channels.entries())
        };
        let earned = Amount(earnings.claimable.0 + earnings.claimed.0 + earnings.forfeited.0);
        let terms = self.seller.as_ref().map(|t| &t.auction);
        json!({
            "enabled": true,
            "wallet": self.wallet().to_checksum(),
            "selling": terms.is_some(),
            "reserve_price": terms.map(|a| a.reserve_price),
            "paid_slots": terms.map(|a| a.paid_slots),
            "free_share_bps": terms.map(|a| a.free_share_bps),
            "wallet_view": {
                "free": balance.as_ref().ok().map(|b| wei(*b)),
                "locked": wei(wallet_view.locked),
                "claimable": wei(wallet_view.claimable),
                "claimed": wei(wallet_view.claimed),
            },
            "balance_error": balance.err(),
            "earnings": {
                "total": wei(earned),
                "claimable": wei(earnings.claimable),
                "claimed": wei(earnings.claimed),
                "forfeited": wei(earnings.forfeited),
                "channels": earnings.channels.iter().map(|c| json!({
                    "channel": channel_hex(&c.id),
                    "payer": wallet::Address(c.payer.0).to_checksum(),
                    "cumulative": wei(c.cumulative),
                    "claimed": wei(c.claimed),
                    "expiry": c.expiry,
                    "live": c.live,
                })).collect::<Vec<_>>(),
            },
            "channels": bought.iter().map(|c| json!({
                "channel": channel_hex(&c.id),
                "payee": wallet::Address(c.payee.0).to_checksum(),
                "deposit": wei(c.deposit),
                "promised": wei(c.cumulative),
                "locked": wei(c.locked()),
                "expiry": c.expiry,
                "closed": c.closed,
            })).collect::<Vec<_>>(),
            // The flat figures the web UI's wallet panel reads.
            "locked_wei": wei(wallet_view.locked),
            "claimable_wei": wei(wallet_view.claimable),
            "claimed_wei": wei(wallet_view.claimed),
            "earnings_wei": wei(earned),
        })
    }

    /// Everything earned as a seller over the books' life (claimed, claimable and forfeited).
    pub(crate) fn earned_total(&self) -> Amount {
        self.books
            .settler()
            .entries()
            .iter()
            .fold(Amount::ZERO, |sum, e| {
                Amount(sum.0.saturating_add(e.cumulative.0))
            })
    }
}

/// The market panel of a node without a market.
pub(crate) fn disabled_view() -> Value {
    json!({
        "enabled": false,
        "wallet": null,
        "selling": false,
        "reserve_price": null,
        "paid_slots": null,
        "free_share_bps": null,
        "wallet_view": {"free": null, "locked": "0", "claimable": "0", "claimed": "0"},
        "balance_error": null,
        "earnings": {"total": "0", "claimable": "0", "claimed": "0", "forfeited": "0", "channels": []},
        "channels": [],
        "locked_wei": "0",
        "claimable_wei": "0",
        "claimed_wei": "0",
        "earnings_wei": "0",
    })
}

/// Claims as JSON: one row per channel and the total paid.
pub(crate) fn claims_json(claims: &[Claim]) -> Value {
    let mut total = Amount::ZERO;
    let rows: Vec<Value> = claims
        .iter()
        .map(|c| match &c.result {
            Ok(a) => {
                total = Amount(total.0.saturating_add(a.0));
                json!({"channel": channel_hex(&c.channel), "amount": wei(*a)})
            }
            Err(e) => json!({"channel": channel_hex(&c.channel), "error": e}),
        })
        .collect();
    json!({"claims": rows, "total": wei(total)})
}

/// The running settlement task.
#[derive(Debug)]
pub struct Settlement {
    market: Arc<NodeMarket>,
    task: tokio::task::JoinHandle<()>,
}

impl Settlement {
    /// Stops the periodic claims and claims every voucher still unclaimed (call it after the
    /// library has shut down, so the last vouchers are in the book).
    pub async fn stop(self) -> Vec<Claim> {
        self.task.abort();
        let _ = self.task.await;
        self.market.claim_all().await
    }
}

fn claims(raw: Vec<(ChannelId, Result<Amount, market::SettleError>)>) -> Vec<Claim> {
    raw.into_iter()
        .map(|(channel, r)| {
            match &r {
                Ok(a) if *a > Amount::ZERO => tracing::info!(
                    channel = %channel_hex(&channel),
                    amount_wei = %a.0,
                    "market: claimed a voucher"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(
                    channel = %channel_hex(&channel),
                    "market: claim failed ({e}); it is retried on the next round"
                ),
            }
            Claim {
                channel,
                result: r.map_err(|e| e.to_string()),
            }
        })
        .collect()
}

/// Wei as the decimal string JSON carries.
pub(crate) fn wei(a: Amount) -> String {
    a.0.to_string()
}

/// Parses a wei amount given as a decimal string: digits only, at most 128 bits.
pub(crate) fn parse_wei(text: &str, field: &str) -> Result<Amount, String> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "{field} {text:?} is not a decimal number of wei (digits only, e.g. \"1000000000000000000\" for 1 BTT)"
        ));
    }
    text.parse::<u128>()
        .map(Amount)
        .map_err(|_| format!("{field} {text:?} is too large"))
}

fn channel_hex(id: &ChannelId) -> String {
    let mut s = String::with_capacity(66);
    s.push_str("0x");
    for b in id.0 {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wei_strings_are_exact_and_strict() {
        assert_eq!(parse_wei("0", "budget"), Ok(Amount::ZERO));
        assert_eq!(
            parse_wei(&u128::MAX.to_string(), "budget"),
            Ok(Amount(u128::MAX))
        );
        for bad in [
            "",
            "-1",
            "1.5",
            "1e18",
            " 1",
            "0x10",
            "340282366920938463463374607431768211456",
        ] {
            assert!(parse_wei(bad, "budget").is_err(), "{bad:?}");
        }
        assert_eq!(
            wei(Amount(1_000_000_000_000_000_001)),
            "1000000000000000001"
        );
    }

    #[test]
    fn claims_total_only_what_was_paid() {
        let v = claims_json(&[
            Claim {
                channel: ChannelId([1; 32]),
                result: Ok(Amount(7)),
            },
            Claim {
                channel: ChannelId([2; 32]),
                result: Err("chain down".into()),
            },
        ]);
        assert_eq!(v["total"], "7");
        assert_eq!(v["claims"][0]["amount"], "7");
        assert_eq!(v["claims"][1]["error"], "chain down");
        assert_eq!(v["claims"][0]["channel"].as_str().map(str::len), Some(66));
    }
}
