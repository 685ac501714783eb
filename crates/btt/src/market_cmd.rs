//! The Speed market in the CLI: the flags that turn buying (`btt download --budget`) and
//! selling (`btt seed --reserve`) on, the setup they share, and `btt market` to look at the
//! books, claim earnings and reclaim expired deposits.
//!
//! The market is off unless `--budget` is above zero or `--reserve` is given: a plain download
//! needs no chain and no key. When it is on, one line on stderr says what it may spend or
//! sell, and every amount shown is exact: integer wei in JSON (as decimal strings), BTT with
//! every significant decimal in text, never through a float.
//!
//! # Layout
//! - [`MarketArgs`], [`BuyArgs`], [`SellArgs`]: the flags, flattened into `download`/`seed`.
//! - [`start`] opens the wallet key, the chain, the channel signer and the books into a
//!   [`MarketNode`].
//! - [`run`]: `btt market channels|earnings|claim|reclaim`.
//! - Errors from the chain are shown by [`settle_error`]/[`chain_error`], which name the
//!   market's `--chain-rpc` where the wallet client's own hint names `btt wallet`'s `--rpc`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use market::{
    reclaim_expired, Books, ChainError, ChainPort, ChannelBook, ClaimPolicy, Market, MarketConfig,
    RpcChain, SellerTerms, SettleError, SignerKey, VoucherBook,
};
use speed::{Amount, AuctionConfig, BidderConfig, ChannelId};
use wallet::{EncryptedKey, Keystore, Password, PrivateKey, RpcClient, Wei};
use zeroize::Zeroizing;

/// The default chain node.
const DEFAULT_CHAIN_RPC: &str = "http://127.0.0.1:8545";

/// Where the chain is and which key pays or earns; shared by `download`, `seed` and `market`.
#[derive(Args, Clone, Debug)]
pub(crate) struct MarketArgs {
    /// JSON-RPC URL of a BTT chain node (only used when the market is on).
    #[arg(long, env = "BTT_CHAIN_RPC", default_value = DEFAULT_CHAIN_RPC, global = true)]
    pub(crate) chain_rpc: String,
    /// File holding the wallet's hex private key on its first line (mode 0600).
    #[arg(long, env = "BTT_WALLET_KEY_FILE", global = true)]
    pub(crate) wallet_key_file: Option<PathBuf>,
    /// Keystore directory holding the wallet key (with --from and --password-file).
    #[arg(long, env = "BTT_KEYSTORE", global = true)]
    pub(crate) keystore: Option<PathBuf>,
    /// The wallet's address in the keystore.
    #[arg(long, env = "BTT_FROM", global = true)]
    pub(crate) from: Option<String>,
    /// File holding the keystore password on its first line.
    #[arg(long, env = "BTT_PASSWORD_FILE", global = true)]
    pub(crate) password_file: Option<PathBuf>,
    /// Directory of the market's books and channel signer key (default: <data dir>/market).
    #[arg(long, env = "BTT_MARKET_DIR", global = true)]
    pub(crate) market_dir: Option<PathBuf>,
}

/// What a download may spend.
#[derive(Args, Clone, Debug)]
pub(crate) struct BuyArgs {
    /// Most BTT to spend buying bandwidth for this torrent, exact decimal (e.g. 0.5); 0 or
    /// absent never spends.
    #[arg(long, env = "BTT_BUDGET")]
    pub(crate) budget: Option<String>,
    /// Highest price ever bid, wei per byte (default: no limit but the budget).
    #[arg(long, env = "BTT_MAX_PRICE")]
    pub(crate) max_price: Option<u64>,
    /// Most BTT to spend per UTC day, exact decimal.
    #[arg(long, env = "BTT_DAILY_CAP")]
    pub(crate) daily_cap: Option<String>,
}

/// What a seeder sells.
#[derive(Args, Clone, Debug)]
pub(crate) struct SellArgs {
    /// Sell upload slots at no less than this price, wei per byte (turns selling on).
    #[arg(long, env = "BTT_RESERVE")]
    pub(crate) reserve: Option<u64>,
    /// Paid upload slots per round.
    #[arg(long, env = "BTT_PAID_SLOTS", default_value_t = 4)]
    pub(crate) paid_slots: u32,
    /// Share of upload kept free for peers who do not pay, percent.
    #[arg(long, env = "BTT_FREE_SHARE", default_value_t = 20)]
    pub(crate) free_share: u32,
}

/// A download's spending limits, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Budget {
    /// Most to spend on the torrent, wei.
    pub(crate) budget: Amount,
    /// Most per UTC day, wei.
    pub(crate) daily_cap: Option<Amount>,
    /// Highest bid, wei per byte.
    pub(crate) max_price: u64,
}

impl BuyArgs {
    /// The limits, or `None` when buying is off (no budget or a zero one).
    pub(crate) fn budget(&self) -> Result<Option<Budget>> {
        let budget = match &self.budget {
            Some(t) => parse_btt(t, "--budget")?,
            None => Amount::ZERO,
        };
        if budget == Amount::ZERO {
            if self.daily_cap.is_some() || self.max_price.is_some() {
                bail!("--daily-cap and --max-price limit buying, which is off: give --budget too");
            }
            return Ok(None);
        }
        let daily_cap = self
            .daily_cap
            .as_deref()
            .map(|t| parse_btt(t, "--daily-cap"))
            .transpose()?;
        Ok(Some(Budget {
            budget,
            daily_cap,
            max_price: self.max_price.unwrap_or(u64::MAX),
        }))
    }
}

impl Budget {
    /// The bidder's configuration.
    pub(crate) fn bidder(&self) -> BidderConfig {
        BidderConfig {
            budget: self.budget,
            daily_cap: self.daily_cap,
            max_price: self.max_price,
            top_up_low_water_pieces: 2,
        }
    }

    /// The line telling the user what may be spent.
    pub(crate) fn describe(&self, wallet: wallet::Address, rpc: &str) -> String {
        let price = if self.max_price == u64::MAX {
            "any price".to_string()
        } else {
            format!("at most {} wei per byte", self.max_price)
        };
        let cap = self
            .daily_cap
            .map(|c| format!(", at most {} BTT per UTC day", btt(c)))
            .unwrap_or_default();
        format!(
            "market on: may spend up to {} BTT from {wallet} on this torrent ({price}{cap}), \
             paid per verified piece from payment channels on {rpc}; deposits not spent stay \
             yours and are reclaimable after the channel's expiry",
            btt(self.budget)
        )
    }
}

impl SellArgs {
    /// The selling terms, or `None` when selling is off.
    pub(crate) fn terms(&self) -> Result<Option<SellerTerms>> {
        let Some(reserve) = self.reserve else {
            return Ok(None);
        };
        if self.free_share > 100 {
            bail!(
                "--free-share {} is above 100 percent: give 0 to 100",
                self.free_share
            );
        }
        if self.paid_slots == 0 {
            bail!("--paid-slots 0 sells nothing: give at least 1, or drop --reserve");
        }
        Ok(Some(SellerTerms {
            auction: AuctionConfig {
                reserve_price: reserve,
                paid_slots: self.paid_slots,
                free_share_bps: self.free_share * 100,
                ..AuctionConfig::default()
            },
            credit_bytes: 0,
        }))
    }
}

/// The line telling the user what is sold.
pub(crate) fn describe_terms(t: &SellerTerms, wallet: wallet::Address, rpc: &str) -> String {
    format!(
        "market on: selling {} paid upload slots at no less than {} wei per byte, {} % of upload \
         kept free; vouchers are claimed on {rpc} to {wallet} (claim fees are paid from it)",
        t.auction.paid_slots,
        t.auction.reserve_price,
        t.auction.free_share_bps / 100
    )
}

/// The market of a running download or seed.
pub(crate) struct MarketNode {
    /// The driver shared by the torrents.
    pub(crate) market: Arc<Market>,
    /// The persisted books.
    pub(crate) books: Arc<Books>,
    /// Our wallet address.
    pub(crate) wallet: wallet::Address,
    /// The books' directory.
    pub(crate) dir: PathBuf,
}

/// Opens the wallet key, the chain at `args.chain_rpc`, the channel signer and the books in
/// the market directory (default `<data_dir>/market`).
pub(crate) async fn start(
    args: &MarketArgs,
    data_dir: &Path,
    seller: Option<SellerTerms>,
) -> Result<MarketNode> {
    let (chain, wallet_key) = connect(args).await?;
    let wallet = wallet_key.address();
    let dir = market_dir(args, data_dir);
    let chain: Arc<dyn ChainPort> = Arc::new(chain);
    let books = Arc::new(
        Books::open(&dir, chain.clone(), ClaimPolicy::default())
            .with_context(|| format!("cannot open the market books in {}", dir.display()))?,
    );
    let signer = SignerKey::load_or_create(&dir.join("signer.key"))?;
    let market = Arc::new(Market::new(
        MarketConfig {
            seller,
            ..MarketConfig::default()
        },
        wallet_key,
        Arc::new(signer),
        chain,
        books.clone(),
    ));
    Ok(MarketNode {
        market,
        books,
        wallet,
        dir,
    })
}

fn market_dir(args: &MarketArgs, data_dir: &Path) -> PathBuf {
    args.market_dir
        .clone()
        .unwrap_or_else(|| data_dir.join("market"))
}

/// The chain port sending as the wallet, and the wallet's signer (one decrypted key, shared
/// by the port's transactions and the market's AUTH messages).
async fn connect(args: &MarketArgs) -> Result<(RpcChain, Arc<wallet::Signer>)> {
    let signer = Arc::new(wallet::Signer::new(wallet_key(args)?));
    let chain = RpcChain::with_signer(&args.chain_rpc, signer.clone())
        .await
        .map_err(|e| {
            // A refused connection already says which flag sets the node.
            let hint = if is_connect(&e) {
                ""
            } else {
                "; start a BTT chain node there or pass --chain-rpc URL (BTT_CHAIN_RPC)"
            };
            anyhow::anyhow!(
                "the chain at {} cannot be used: {}{hint}",
                args.chain_rpc,
                chain_error(&e)
            )
        })?;
    Ok((chain, signer))
}

fn is_connect(e: &ChainError) -> bool {
    matches!(e, ChainError::Rpc(wallet::ClientError::Connect { .. }))
}

/// A node error as the market's flags name it: the wallet client's connect hint names
/// `btt wallet`'s `--rpc`, the market's node is set by `--chain-rpc`.
fn client_error(e: &wallet::ClientError) -> String {
    match e {
        wallet::ClientError::Connect { url, cause } => format!(
            "cannot connect to the chain node at {url}: {cause}; is it running? \
             (set --chain-rpc or BTT_CHAIN_RPC)"
        ),
        other => other.to_string(),
    }
}

/// A chain error with the market's hints (see [`client_error`]).
fn chain_error(e: &ChainError) -> String {
    match e {
        ChainError::Rpc(c) => client_error(c),
        other => other.to_string(),
    }
}

/// A settlement error with the market's hints (see [`client_error`]).
fn settle_error(e: &SettleError) -> String {
    match e {
        SettleError::Chain(c) => chain_error(c),
        other => other.to_string(),
    }
}

/// The wallet key from `--wallet-key-file` or the keystore.
fn wallet_key(args: &MarketArgs) -> Result<PrivateKey> {
    // Checked here, not by clap: these flags' env twins are shared with `btt wallet` and must
    // not break a download that never turns the market on.
    if args.wallet_key_file.is_some() && args.keystore.is_some() {
        bail!("both --wallet-key-file and --keystore name the wallet key: give one");
    }
    if let Some(path) = &args.wallet_key_file {
        let text = Zeroizing::new(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the wallet key file {}", path.display()))?,
        );
        let first = text.lines().next().unwrap_or("");
        return PrivateKey::from_hex(first).map_err(|e| {
            anyhow::anyhow!(
                "{}: {e}; the first line must be the wallet's private key in hex",
                path.display()
            )
        });
    }
    let (Some(dir), Some(from)) = (&args.keystore, &args.from) else {
        bail!(
            "the market is on but no wallet key was given: pass --wallet-key-file FILE, or \
             --keystore DIR --from ADDRESS --password-file FILE"
        );
    };
    let address: wallet::Address = from
        .trim()
        .parse()
        .map_err(|e| anyhow::anyhow!("--from: {e}"))?;
    let password = match &args.password_file {
        Some(f) => Password::from_file(f)?,
        None => Password::prompt("wallet password: ")?,
    };
    let paths = Keystore::open(dir)?.find(&address)?;
    if paths.is_empty() {
        bail!(
            "no key for {address} in {}: import it with `btt wallet import`",
            dir.display()
        );
    }
    let mut last = None;
    for path in paths {
        let json =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        match EncryptedKey::from_json(&json).and_then(|k| k.decrypt(&password)) {
            Ok(key) => return Ok(key),
            Err(e) => last = Some(e),
        }
    }
    Err(last.map_or_else(
        || anyhow::anyhow!("no usable key for {address}"),
        Into::into,
    ))
}

/// Exact decimal BTT to wei.
pub(crate) fn parse_btt(text: &str, flag: &str) -> Result<Amount> {
    let wei = Wei::parse_btt(text.trim()).map_err(|e| anyhow::anyhow!("{flag} {text:?}: {e}"))?;
    u128::try_from(wei.0)
        .map(Amount)
        .map_err(|_| anyhow::anyhow!("{flag} {text:?} is too large"))
}

/// Wei as exact decimal BTT.
pub(crate) fn btt(a: Amount) -> String {
    Wei::from_wei(a.0).to_btt_string()
}

/// Wei as the decimal string JSON carries.
pub(crate) fn wei(a: Amount) -> String {
    a.0.to_string()
}

fn address(a: speed::Address) -> wallet::Address {
    wallet::Address(a.0)
}

fn channel_hex(id: &ChannelId) -> String {
    let mut s = String::with_capacity(66);
    s.push_str("0x");
    for b in id.0 {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

pub(crate) fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Logs each claim's outcome; returns the total claimed.
pub(crate) fn log_claims(claims: &[(ChannelId, Result<Amount, market::SettleError>)]) -> Amount {
    let mut total = Amount::ZERO;
    for (id, r) in claims {
        match r {
            Ok(a) => {
                total = Amount(total.0.saturating_add(a.0));
                tracing::info!("claimed {} BTT on channel {}", btt(*a), channel_hex(id));
            }
            Err(e) => tracing::warn!(
                "claim on channel {} failed: {}",
                channel_hex(id),
                settle_error(e)
            ),
        }
    }
    total
}

// ---- btt market ---------------------------------------------------------------------------

/// `btt market …`
#[derive(Args)]
pub(crate) struct MarketCmdArgs {
    #[command(subcommand)]
    command: MarketCommand,
    #[command(flatten)]
    market: MarketArgs,
    /// Data directory (default: $XDG_DATA_HOME/btt).
    #[arg(long, env = "BTT_DATA_DIR", global = true)]
    pub(crate) data_dir: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long, env = "BTT_JSON", global = true, value_parser = clap::builder::BoolishValueParser::new())]
    json: bool,
}

#[derive(Subcommand)]
enum MarketCommand {
    /// The channels we pay from (buyer) and the vouchers we hold (seller).
    Channels,
    /// What we earned and where the wallet's BTT is (the free balance only if the chain
    /// answers; the rest comes from the books).
    Earnings,
    /// Claim every held voucher on chain now.
    Claim,
    /// Take back what is left in our channels that have expired (needs the payer's key).
    Reclaim,
}

/// Runs a market subcommand with `data_dir` as the default home of the market directory.
pub(crate) fn run(a: MarketCmdArgs, data_dir: PathBuf) -> Result<()> {
    let dir = market_dir(&a.market, &data_dir);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match a.command {
        MarketCommand::Channels => channels(&dir, a.json),
        MarketCommand::Earnings => rt.block_on(earnings(&a.market, &dir, a.json)),
        MarketCommand::Claim => rt.block_on(claim(&a.market, &dir, a.json)),
        MarketCommand::Reclaim => rt.block_on(reclaim(&a.market, &dir, a.json)),
    }
}

/// Both books, read-only: a missing directory is an empty market (nothing is created).
fn books(dir: &Path) -> Result<(ChannelBook, VoucherBook)> {
    if !dir.is_dir() {
        bail!(
            "no market data in {}: the market has not run with this directory (see --market-dir)",
            dir.display()
        );
    }
    Ok((ChannelBook::open(dir)?, VoucherBook::open(dir)?))
}

fn channels(dir: &Path, json: bool) -> Result<()> {
    let (channels, vouchers) = books(dir)?;
    let now = now_s();
    let bought = channels.entries();
    let held = vouchers.entries();
    if json {
        let v = serde_json::json!({
            "channels": bought.iter().map(|c| serde_json::json!({
                "id": channel_hex(&c.id),
                "payee": address(c.payee).to_checksum(),
                "deposit": wei(c.deposit),
                "promised": wei(c.cumulative),
                "locked": wei(c.locked()),
                "expiry": c.expiry,
                "closed": c.closed,
            })).collect::<Vec<_>>(),
            "vouchers": held.iter().map(|e| serde_json::json!({
                "channel": channel_hex(&e.channel.id),
                "payer": address(e.channel.payer).to_checksum(),
                "cumulative": wei(e.cumulative),
                "claimed": wei(e.claimed),
                "expiry": e.channel.expiry,
                "live": e.channel.is_live(now),
            })).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!("channels we pay from ({}):", bought.len());
    for c in &bought {
        println!(
            "  {} to {}: deposit {} BTT, promised {} BTT, locked {} BTT, expires {}{}",
            channel_hex(&c.id),
            address(c.payee),
            btt(c.deposit),
            btt(c.cumulative),
            btt(c.locked()),
            c.expiry,
            if c.closed { " (closed)" } else { "" }
        );
    }
    println!("vouchers we hold ({}):", held.len());
    for e in &held {
        println!(
            "  {} from {}: {} BTT, claimed {} BTT, expires {}{}",
            channel_hex(&e.channel.id),
            address(e.channel.payer),
            btt(e.cumulative),
            btt(e.claimed),
            e.channel.expiry,
            if e.channel.is_live(now) {
                ""
            } else {
                " (closed or expired)"
            }
        );
    }
    Ok(())
}

/// The wallet whose balance `earnings` shows: `--from`, the key file's, or the payee of the
/// held vouchers.
fn wallet_address(args: &MarketArgs, vouchers: &VoucherBook) -> Result<wallet::Address> {
    if let Some(from) = &args.from {
        return from
            .trim()
            .parse()
            .map_err(|e| anyhow::anyhow!("--from: {e}"));
    }
    if args.wallet_key_file.is_some() {
        return Ok(wallet_key(args)?.address());
    }
    let mut payees: Vec<speed::Address> =
        vouchers.entries().iter().map(|e| e.channel.payee).collect();
    payees.sort();
    payees.dedup();
    match payees.as_slice() {
        [only] => Ok(address(*only)),
        _ => bail!("which wallet? pass --wallet-key-file FILE or --from ADDRESS"),
    }
}

async fn earnings(args: &MarketArgs, dir: &Path, json: bool) -> Result<()> {
    let (channels, vouchers) = books(dir)?;
    let now = now_s();
    let earned = vouchers.earnings(now);
    let locked = channels.locked();
    // The books answer everything but the free balance: without a chain (or a known wallet)
    // that one is left out, with a note saying why, and the rest is still shown.
    let who = wallet_address(args, &vouchers);
    let balance = match &who {
        Ok(who) => balance(&args.chain_rpc, *who).await,
        Err(e) => Err(anyhow::anyhow!("{e}")),
    };
    let free = match balance {
        Ok(b) => Some(b),
        Err(e) => {
            eprintln!("the free balance is not shown: {e:#}");
            None
        }
    };
    let who = who.ok();
    if json {
        let v = serde_json::json!({
            "wallet": who.map(|w| w.to_checksum()),
            "free": free.map(wei),
            "locked": wei(locked),
            "claimable": wei(earned.claimable),
            "claimed": wei(earned.claimed),
            "forfeited": wei(earned.forfeited),
            "channels": earned.channels.iter().map(|c| serde_json::json!({
                "channel": channel_hex(&c.id),
                "payer": address(c.payer).to_checksum(),
                "cumulative": wei(c.cumulative),
                "claimed": wei(c.claimed),
                "expiry": c.expiry,
                "live": c.live,
            })).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    if let Some(who) = who {
        println!("wallet:    {who}");
    }
    if let Some(free) = free {
        println!("free:      {} BTT", btt(free));
    }
    println!("locked:    {} BTT (in channels we pay from)", btt(locked));
    println!("claimable: {} BTT (vouchers held)", btt(earned.claimable));
    println!("claimed:   {} BTT (part of free)", btt(earned.claimed));
    if earned.forfeited > Amount::ZERO {
        println!(
            "forfeited: {} BTT (vouchers of expired or closed channels)",
            btt(earned.forfeited)
        );
    }
    Ok(())
}

/// `who`'s balance from the node at `rpc`.
async fn balance(rpc: &str, who: wallet::Address) -> Result<Amount> {
    let client = RpcClient::new(rpc)
        .map_err(|e| anyhow::anyhow!("{}", client_error(&e)))?
        .with_timeout(Duration::from_secs(10));
    let balance = client
        .balance(who)
        .await
        .map_err(|e| anyhow::anyhow!("cannot read the balance of {who}: {}", client_error(&e)))?;
    u128::try_from(balance.0)
        .map(Amount)
        .map_err(|_| anyhow::anyhow!("the balance of {who} is beyond 128 bits"))
}

/// One JSON row per channel (`amount`, or `error`), the total moved and the number of failures;
/// in text mode each row is also printed as `<channel>: <verb> <BTT>`.
fn tally(
    results: &[(ChannelId, Result<Amount, SettleError>)],
    verb: &str,
    json: bool,
) -> (Vec<serde_json::Value>, Amount, usize) {
    let mut total = Amount::ZERO;
    let mut failed = 0usize;
    let mut rows = Vec::new();
    for (id, r) in results {
        match r {
            Ok(a) => {
                total = Amount(total.0.saturating_add(a.0));
                rows.push(serde_json::json!({"channel": channel_hex(id), "amount": wei(*a)}));
                if !json {
                    println!("{}: {verb} {} BTT", channel_hex(id), btt(*a));
                }
            }
            Err(e) => {
                failed += 1;
                let e = settle_error(e);
                rows.push(serde_json::json!({"channel": channel_hex(id), "error": e}));
                if !json {
                    println!("{}: failed: {e}", channel_hex(id));
                }
            }
        }
    }
    (rows, total, failed)
}

async fn claim(args: &MarketArgs, dir: &Path, json: bool) -> Result<()> {
    if !dir.is_dir() {
        bail!(
            "no market data in {}: nothing to claim (see --market-dir)",
            dir.display()
        );
    }
    let (chain, _) = connect(args).await?;
    let books = Books::open(dir, Arc::new(chain), ClaimPolicy::default())?;
    let claims = books.settler().claim_all().await;
    let (rows, total, failed) = tally(&claims, "claimed", json);
    if json {
        println!(
            "{}",
            serde_json::json!({"claims": rows, "total": wei(total)})
        );
    } else {
        println!("total claimed: {} BTT", btt(total));
    }
    if failed > 0 {
        bail!("{failed} claims failed; run `btt market claim` again later");
    }
    Ok(())
}

/// `btt market reclaim`: reclaims every channel we opened that has expired by the chain's
/// clock, and notes it in the channel book.
async fn reclaim(args: &MarketArgs, dir: &Path, json: bool) -> Result<()> {
    if !dir.is_dir() {
        bail!(
            "no market data in {}: nothing to reclaim (see --market-dir)",
            dir.display()
        );
    }
    let mut book = ChannelBook::open(dir)
        .with_context(|| format!("cannot open the channel book in {}", dir.display()))?;
    let (chain, _) = connect(args).await?;
    // The module decides expiry by its block time, not ours.
    let now = chain.now().await.map_err(|e| {
        anyhow::anyhow!(
            "cannot read the chain's clock from {}: {}",
            args.chain_rpc,
            chain_error(&e)
        )
    })?;
    let results = reclaim_expired(&chain, &mut book, now).await;
    let (rows, total, failed) = tally(&results, "reclaimed", json);
    if json {
        println!(
            "{}",
            serde_json::json!({"reclaims": rows, "total": wei(total)})
        );
    } else if results.is_empty() {
        match book.entries().iter().filter(|c| !c.closed).map(|c| c.expiry).min() {
            Some(next) => println!(
                "nothing to reclaim: the next channel expires at {next} (the chain's clock is {now})"
            ),
            None => println!("nothing to reclaim: no open channels"),
        }
    } else {
        println!("total reclaimed: {} BTT", btt(total));
    }
    if failed > 0 {
        bail!("{failed} reclaims failed; run `btt market reclaim` again later");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_is_exact_and_off_by_default() -> Result<()> {
        let args = |budget: Option<&str>, cap: Option<&str>, price: Option<u64>| BuyArgs {
            budget: budget.map(Into::into),
            max_price: price,
            daily_cap: cap.map(Into::into),
        };
        assert_eq!(args(None, None, None).budget()?, None);
        assert_eq!(args(Some("0"), None, None).budget()?, None);
        assert!(args(None, Some("1"), None).budget().is_err());
        let b = args(Some("1.000000000000000001"), Some("0.5"), None).budget()?;
        assert_eq!(
            b,
            Some(Budget {
                budget: Amount(1_000_000_000_000_000_001),
                daily_cap: Some(Amount(500_000_000_000_000_000)),
                max_price: u64::MAX,
            })
        );
        for bad in ["-1", "1e3", "0.0000000000000000001", "x"] {
            assert!(args(Some(bad), None, None).budget().is_err(), "{bad}");
        }
        Ok(())
    }

    #[test]
    fn selling_needs_a_reserve() -> Result<()> {
        let args = |reserve: Option<u64>, share: u32| SellArgs {
            reserve,
            paid_slots: 4,
            free_share: share,
        };
        assert_eq!(args(None, 20).terms()?, None);
        let t = args(Some(1000), 25).terms()?;
        let a = t.map(|t| t.auction);
        assert_eq!(a.as_ref().map(|a| a.reserve_price), Some(1000));
        assert_eq!(a.as_ref().map(|a| a.free_share_bps), Some(2500));
        assert!(args(Some(1), 101).terms().is_err());
        Ok(())
    }

    #[test]
    fn amounts_print_exactly() {
        assert_eq!(btt(Amount(1)), "0.000000000000000001");
        assert_eq!(btt(Amount(1_500_000_000_000_000_000)), "1.5");
        assert_eq!(wei(Amount(u128::MAX)), u128::MAX.to_string());
        assert_eq!(channel_hex(&ChannelId([0xab; 32])).len(), 66);
    }

    #[test]
    fn chain_errors_name_the_market_flag() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let e = SettleError::Chain(ChainError::Rpc(wallet::ClientError::Connect {
            url: "http://127.0.0.1:9".into(),
            cause: refused,
        }));
        let text = settle_error(&e);
        assert!(text.contains("--chain-rpc or BTT_CHAIN_RPC"), "{text}");
        assert!(
            !text.contains("BTT_RPC)") && !text.contains("--rpc "),
            "{text}"
        );
        assert!(text.contains("http://127.0.0.1:9"), "{text}");
        // Other errors keep their own text.
        let e = SettleError::Chain(ChainError::Unavailable);
        assert_eq!(settle_error(&e), e.to_string());
    }
}
