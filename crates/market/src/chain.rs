//! The chain port: what the market needs from the payment-channel module at `0x…b77003`.
//!
//! # Layout
//! - [`ChainPort`]: read a channel's final state, open, top up, claim, reclaim, balances and
//!   the chain's clock. Object safe (`Arc<dyn ChainPort>`); every call returns a boxed future
//!   ([`ChainFuture`]) so one trait serves the JSON-RPC client and the in-memory ledger.
//! - [`RpcChain`]: the port over JSON-RPC to a node, signing with the wallet key. Its own
//!   transactions are sent one at a time (each waits for its receipt), so nonces never
//!   collide; fees come from the node's suggestion, gas from `eth_estimateGas` plus a margin.
//!   A call the module would refuse is caught by the estimate, with the module's reason.
//! - [`MemChain`]: an in-memory ledger with the module's exact rules, shared by any number of
//!   [`MemChain::port`] views (buyer and seller see the same chain). No gas.
//! - Voucher helpers ([`voucher_digest`], [`sign_voucher`], [`recover_voucher_signer`],
//!   [`channel_id`]): the one place the peer code signs and checks vouchers, on `speed` types.
//!
//! # Finality
//! On our chain `latest` is final, so [`ChainPort::channel`] reads at `latest` and a receipt
//! means the transaction is final.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use alloy_primitives::{hex, B256, U256};
use alloy_sol_types::{SolCall, SolEvent};
use chain_state::{ChannelError, IChannels, CHANNELS_ADDRESS};
use serde_json::{json, Value};
use speed::{Address, Amount, ChannelId, Signature};
use wallet::client::{CallRequest, TxEip1559};
use wallet::{sign_eip1559, RpcClient, TxReceipt};

/// A boxed, sendable future of a chain call.
pub type ChainFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, ChainError>> + Send + 'a>>;

/// A channel as the chain holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelState {
    /// The channel id.
    pub id: ChannelId,
    /// Who locked the deposit (the buyer's wallet).
    pub payer: Address,
    /// Who is paid (the seller's wallet).
    pub payee: Address,
    /// The hot key that signs vouchers.
    pub signer: Address,
    /// Everything locked so far, wei.
    pub deposit: Amount,
    /// Already paid to the payee, wei; never above `deposit`, never decreasing.
    pub paid: Amount,
    /// Unix seconds; the channel is live while the block time is strictly before it.
    pub expiry: u64,
    /// False once closed (claimed and closed, or reclaimed).
    pub open: bool,
}

impl ChannelState {
    /// What the payee may still be paid: `deposit − paid`.
    pub fn unspent(&self) -> Amount {
        self.deposit.saturating_sub(self.paid)
    }

    /// Open and before its expiry at `now_s`.
    pub fn is_live(&self, now_s: u64) -> bool {
        self.open && now_s < self.expiry
    }
}

/// What the market needs from the chain. Amounts in wei, times in unix seconds.
pub trait ChainPort: Send + Sync + 'static {
    /// The chain id vouchers are signed for.
    fn chain_id(&self) -> u64;
    /// The channel module's address (the vouchers' verifying contract).
    fn module(&self) -> Address;
    /// Our account: the payer of `open`/`top_up`, the sender of claims and reclaims.
    fn wallet(&self) -> Address;
    /// A channel's final state; `None` for an unknown id.
    fn channel(&self, id: ChannelId) -> ChainFuture<'_, Option<ChannelState>>;
    /// Opens a channel from [`wallet`](Self::wallet) to `payee`, locking `deposit`; waits until
    /// it is final and returns it. Errors if the module refuses.
    fn open(
        &self,
        payee: Address,
        signer: Address,
        salt: [u8; 32],
        expiry: u64,
        deposit: Amount,
    ) -> ChainFuture<'_, ChannelState>;
    /// Adds `amount` to the deposit (payer only, before the expiry); returns the new state.
    fn top_up(&self, id: ChannelId, amount: Amount) -> ChainFuture<'_, ChannelState>;
    /// Submits the voucher for `cumulative`; with `close`, also closes and refunds the rest to
    /// the payer (payee only). Returns the amount newly paid to the payee.
    fn claim(
        &self,
        id: ChannelId,
        cumulative: Amount,
        sig: Signature,
        close: bool,
    ) -> ChainFuture<'_, Amount>;
    /// Closes an expired channel and returns the refund to the payer (payer only).
    fn reclaim(&self, id: ChannelId) -> ChainFuture<'_, Amount>;
    /// An account's balance, wei.
    fn balance(&self, who: Address) -> ChainFuture<'_, Amount>;
    /// The latest block's timestamp, unix seconds.
    fn now(&self) -> ChainFuture<'_, u64>;
}

/// Why a chain call failed.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The node could not be reached, timed out or refused the request; the message says why.
    ///
    /// The client's error is part of the message, not a `source()`, so a report that walks the
    /// source chain (anyhow's `{:#}`) prints it once.
    #[error("chain node: {0}")]
    Rpc(wallet::ClientError),
    /// The node's reply does not decode as the module's ABI says.
    #[error("malformed reply from the chain node to {method}: {reason}; is the RPC URL a BTT chain node?")]
    BadReply {
        /// The JSON-RPC method or module function.
        method: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The channel module refused the call (its reason says what to change).
    #[error("{op} refused by the channel module: {reason}")]
    Reverted {
        /// The operation (`open`, `claim`, …).
        op: &'static str,
        /// The module's reason.
        reason: String,
    },
    /// The wallet cannot pay the value plus the fee.
    #[error("insufficient funds for {op}: {need} wei needed, {have} wei available; fund {wallet}")]
    InsufficientFunds {
        /// The operation.
        op: &'static str,
        /// The account.
        wallet: wallet::Address,
        /// Value plus the most the fee may be.
        need: u128,
        /// The balance.
        have: u128,
    },
    /// A chain amount does not fit the market's 128-bit amounts.
    #[error("{0} does not fit in 128 bits")]
    Overflow(&'static str),
    /// The node reports another hash for what we sent.
    #[error("the node reports hash {got} for transaction {sent}: it is not the transaction we signed; check the RPC URL")]
    HashMismatch {
        /// Our hash.
        sent: B256,
        /// The node's.
        got: B256,
    },
    /// The node runs a channel module with another voucher domain.
    #[error("the node's channel module signs vouchers under domain {got}, not {expected}: the node runs other rules; use a node of the BTT chain")]
    DomainMismatch {
        /// What we compute for its chain id.
        expected: B256,
        /// What the node says.
        got: B256,
    },
    /// The chain cannot be reached (the in-memory chain, switched off by a test).
    #[error("the chain is unreachable: check the node and retry")]
    Unavailable,
}

impl From<wallet::ClientError> for ChainError {
    fn from(e: wallet::ClientError) -> Self {
        Self::Rpc(e)
    }
}

impl ChainError {
    /// Whether the module refused (as opposed to the node being unreachable or broken).
    pub fn is_refusal(&self) -> bool {
        matches!(self, Self::Reverted { .. } | Self::InsufficientFunds { .. })
    }
}

// ---- conversions between speed's types and the chain's ----------------------------------------

fn to_alloy(a: Address) -> alloy_primitives::Address {
    alloy_primitives::Address::from(a.0)
}

fn from_alloy(a: alloy_primitives::Address) -> Address {
    Address(a.0 .0)
}

fn to_wallet(a: Address) -> wallet::Address {
    wallet::Address(a.0)
}

fn u256(a: Amount) -> U256 {
    U256::from(a.0)
}

fn amount(v: U256, what: &'static str) -> Result<Amount, ChainError> {
    u128::try_from(v)
        .map(Amount)
        .map_err(|_| ChainError::Overflow(what))
}

// ---- vouchers ----------------------------------------------------------------------------------

/// The EIP-712 digest a channel's signer signs for a voucher `(id, cumulative)` on chain
/// `chain_id` with the module at `module`: `chain_state::voucher_digest`, the module's own.
pub(crate) fn voucher_digest(
    chain_id: u64,
    module: Address,
    id: ChannelId,
    cumulative: Amount,
) -> [u8; 32] {
    chain_state::voucher_digest(
        chain_id,
        to_alloy(module),
        B256::from(id.0),
        u256(cumulative),
    )
}

/// Signs the voucher `(id, cumulative)` with the channel's signer key.
pub fn sign_voucher(
    key: &wallet::Signer,
    chain_id: u64,
    module: Address,
    id: ChannelId,
    cumulative: Amount,
) -> Signature {
    let digest = voucher_digest(chain_id, module, id, cumulative);
    Signature(key.sign_hash(&digest).to_bytes())
}

/// Who signed the voucher `(id, cumulative)`, by the module's own rules (65 bytes, `v` 27 or
/// 28, low `s`); `None` for a malformed signature.
pub fn recover_voucher_signer(
    chain_id: u64,
    module: Address,
    id: ChannelId,
    cumulative: Amount,
    sig: &Signature,
) -> Option<Address> {
    let digest = voucher_digest(chain_id, module, id, cumulative);
    chain_state::recover_signer(&digest, &sig.0)
        .ok()
        .map(from_alloy)
}

/// The id `open` gives a channel from `payer` to `payee` with `signer` and `salt`.
pub fn channel_id(
    chain_id: u64,
    module: Address,
    payer: Address,
    payee: Address,
    signer: Address,
    salt: [u8; 32],
) -> ChannelId {
    ChannelId(
        chain_state::channel_id(
            chain_id,
            to_alloy(module),
            to_alloy(payer),
            to_alloy(payee),
            to_alloy(signer),
            B256::from(salt),
        )
        .0,
    )
}

// ---- RpcChain ----------------------------------------------------------------------------------

/// How long a transaction may take to become final unless set otherwise.
pub const DEFAULT_RECEIPT_TIMEOUT: Duration = Duration::from_secs(60);

/// The [`ChainPort`] over JSON-RPC, sending transactions signed by the wallet key.
pub struct RpcChain {
    client: RpcClient,
    /// Shared with whoever else signs as the wallet (the market's AUTH messages), so the key
    /// is decrypted once.
    key: Arc<wallet::Signer>,
    wallet: Address,
    chain_id: u64,
    /// Held from the nonce read to the receipt: our transactions go out one at a time.
    send: tokio::sync::Mutex<()>,
    receipt_timeout: Duration,
    /// The receipt of our last transaction and the fees paid so far.
    history: Mutex<(Option<TxReceipt>, u128)>,
}

impl std::fmt::Debug for RpcChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcChain")
            .field("url", &self.client.url())
            .field("wallet", &to_wallet(self.wallet))
            .field("chain_id", &self.chain_id)
            .finish_non_exhaustive()
    }
}

/// A mined transaction: its receipt and its logs from the channel module.
struct Mined {
    receipt: TxReceipt,
    logs: Vec<(Vec<B256>, Vec<u8>)>,
}

/// Gas margin over the node's estimate, in percent.
const GAS_MARGIN_PERCENT: u64 = 25;

impl RpcChain {
    /// Connects to the node at `rpc_url` (reads its chain id once and checks its voucher domain)
    /// and sends as the account of `key`.
    pub async fn new(rpc_url: &str, key: wallet::PrivateKey) -> Result<Self, ChainError> {
        Self::with_signer(rpc_url, Arc::new(wallet::Signer::new(key))).await
    }

    /// Like [`new`](Self::new), sending as the account of a signer the caller shares (e.g. with
    /// [`crate::Market::new`]), so one decrypted key serves both.
    pub async fn with_signer(rpc_url: &str, key: Arc<wallet::Signer>) -> Result<Self, ChainError> {
        let client = RpcClient::new(rpc_url)?;
        let chain_id = client.chain_id().await?;
        let chain = Self {
            client,
            wallet: Address(key.address().0),
            key,
            chain_id,
            send: tokio::sync::Mutex::new(()),
            receipt_timeout: DEFAULT_RECEIPT_TIMEOUT,
            history: Mutex::new((None, 0)),
        };
        let out = chain
            .call(IChannels::domainSeparatorCall {}.abi_encode())
            .await?;
        let got = IChannels::domainSeparatorCall::abi_decode_returns(&out).map_err(|e| {
            ChainError::BadReply {
                method: "domainSeparator",
                reason: e.to_string(),
            }
        })?;
        let expected = B256::from(chain_state::domain_separator(chain_id, CHANNELS_ADDRESS));
        if got != expected {
            return Err(ChainError::DomainMismatch { expected, got });
        }
        Ok(chain)
    }

    /// The same chain with another wait for receipts.
    pub fn with_receipt_timeout(mut self, timeout: Duration) -> Self {
        self.receipt_timeout = timeout;
        self
    }

    /// The JSON-RPC client (for reads the port does not offer).
    pub fn client(&self) -> &RpcClient {
        &self.client
    }

    /// The receipt of the last transaction this port sent.
    pub fn last_receipt(&self) -> Option<TxReceipt> {
        lock(&self.history).0.clone()
    }

    /// Gas fees paid by this port's transactions so far, wei.
    pub fn fees_paid(&self) -> Amount {
        Amount(lock(&self.history).1)
    }

    /// `eth_call` to the module at `finalized`, so a channel counts only once it is final (on
    /// our chain every served block is, so this is also `latest`).
    async fn call(&self, data: Vec<u8>) -> Result<Vec<u8>, ChainError> {
        let method = "eth_call";
        let req = json!([{
            "to": format!("{CHANNELS_ADDRESS:#x}"),
            "input": format!("0x{}", hex::encode(&data)),
        }, "finalized"]);
        let value = self.client.request(method, req).await?;
        parse_hex_bytes(&value).ok_or_else(|| ChainError::BadReply {
            method,
            reason: format!("expected hex bytes, got {value}"),
        })
    }

    async fn balance_u128(&self, who: Address) -> Result<u128, ChainError> {
        let wei = self.client.balance(to_wallet(who)).await?;
        u128::try_from(wei.0).map_err(|_| ChainError::Overflow("the balance"))
    }

    /// Sends a call to the module with `value`, waits for its receipt, and returns it with the
    /// module's logs. Refusals surface at the gas estimate with the module's reason.
    async fn transact(
        &self,
        op: &'static str,
        data: Vec<u8>,
        value: Amount,
    ) -> Result<Mined, ChainError> {
        let _turn = self.send.lock().await;
        let have = self.balance_u128(self.wallet).await?;
        let insufficient = |need: u128| ChainError::InsufficientFunds {
            op,
            wallet: to_wallet(self.wallet),
            need,
            have,
        };
        if have < value.0 {
            return Err(insufficient(value.0));
        }
        let request = CallRequest {
            from: Some(to_wallet(self.wallet)),
            to: Some(to_wallet(from_alloy(CHANNELS_ADDRESS))),
            value: wallet::Wei(u256(value)),
            data: data.clone(),
        };
        let estimate = self
            .client
            .estimate_gas(&request)
            .await
            .map_err(|e| refusal(op, e))?;
        let gas_limit = estimate.saturating_add(estimate * GAS_MARGIN_PERCENT / 100);
        let fees = self.client.suggest_fees().await?;
        let need = u128::from(gas_limit)
            .checked_mul(fees.max_fee_per_gas)
            .and_then(|f| f.checked_add(value.0))
            .ok_or(ChainError::Overflow("value plus the fee"))?;
        if have < need {
            return Err(insufficient(need));
        }
        let nonce = self.client.nonce(to_wallet(self.wallet)).await?;
        let tx = TxEip1559 {
            chain_id: self.chain_id,
            nonce,
            gas_limit,
            max_fee_per_gas: fees.max_fee_per_gas,
            max_priority_fee_per_gas: fees.max_priority_fee_per_gas.min(fees.max_fee_per_gas),
            to: alloy_primitives::TxKind::Call(CHANNELS_ADDRESS),
            value: u256(value),
            access_list: Default::default(),
            input: data.into(),
        };
        let signed = sign_eip1559(tx, &self.key);
        let hash = self
            .client
            .send_raw_transaction(&signed.raw)
            .await
            .map_err(|e| refusal(op, e))?;
        if hash != signed.hash {
            return Err(ChainError::HashMismatch {
                sent: signed.hash,
                got: hash,
            });
        }
        let receipt = self
            .client
            .wait_for_receipt(hash, self.receipt_timeout)
            .await?;
        {
            let mut h = lock(&self.history);
            let fee = u128::try_from(receipt.fee().0).unwrap_or(u128::MAX);
            h.0 = Some(receipt.clone());
            h.1 = h.1.saturating_add(fee);
        }
        if !receipt.success {
            return Err(ChainError::Reverted {
                op,
                reason: format!(
                    "transaction {hash} failed in block {} (the fee was still paid); \
                     the channel changed between the estimate and the block: read it again",
                    receipt.block_number
                ),
            });
        }
        let logs = self.module_logs(hash).await?;
        Ok(Mined { receipt, logs })
    }

    /// The channel module's logs of a mined transaction (topics, data).
    async fn module_logs(&self, hash: B256) -> Result<Vec<(Vec<B256>, Vec<u8>)>, ChainError> {
        let method = "eth_getTransactionReceipt";
        let value = self
            .client
            .request(method, json!([hash.to_string()]))
            .await?;
        let bad = |reason: &str| ChainError::BadReply {
            method,
            reason: reason.to_owned(),
        };
        let logs = value
            .get("logs")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("the receipt has no logs array"))?;
        let mut out = Vec::new();
        for log in logs {
            let address = log
                .get("address")
                .and_then(parse_hex_bytes)
                .ok_or_else(|| bad("a log without an address"))?;
            if address.as_slice() != CHANNELS_ADDRESS.as_slice() {
                continue;
            }
            let topics = log
                .get("topics")
                .and_then(Value::as_array)
                .ok_or_else(|| bad("a log without topics"))?
                .iter()
                .map(|t| {
                    parse_hex_bytes(t)
                        .filter(|b| b.len() == 32)
                        .map(|b| B256::from_slice(&b))
                })
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| bad("a log topic is not 32 bytes of hex"))?;
            let data = log
                .get("data")
                .and_then(parse_hex_bytes)
                .ok_or_else(|| bad("a log without data"))?;
            out.push((topics, data));
        }
        Ok(out)
    }

    async fn read_channel(&self, id: ChannelId) -> Result<Option<ChannelState>, ChainError> {
        let out = self
            .call(
                IChannels::channelCall {
                    channelId: B256::from(id.0),
                }
                .abi_encode(),
            )
            .await?;
        let r =
            IChannels::channelCall::abi_decode_returns(&out).map_err(|e| ChainError::BadReply {
                method: "channel",
                reason: e.to_string(),
            })?;
        // A record always has an expiry in the future of its opening block, so zero means none.
        if r.expiry == 0 && r.payer.is_zero() {
            return Ok(None);
        }
        Ok(Some(ChannelState {
            id,
            payer: from_alloy(r.payer),
            payee: from_alloy(r.payee),
            signer: from_alloy(r.signer),
            deposit: amount(r.deposit, "the deposit")?,
            paid: amount(r.paid, "the paid amount")?,
            expiry: r.expiry,
            open: r.open,
        }))
    }

    async fn read_final(
        &self,
        op: &'static str,
        id: ChannelId,
    ) -> Result<ChannelState, ChainError> {
        self.read_channel(id)
            .await?
            .ok_or_else(|| ChainError::BadReply {
                method: op,
                reason: format!(
                    "channel 0x{} is not in the state after its transaction",
                    hex::encode(id.0)
                ),
            })
    }

    async fn open_impl(
        &self,
        payee: Address,
        signer: Address,
        salt: [u8; 32],
        expiry: u64,
        deposit: Amount,
    ) -> Result<ChannelState, ChainError> {
        let data = IChannels::openCall {
            payee: to_alloy(payee),
            signer: to_alloy(signer),
            salt: B256::from(salt),
            expiry,
        }
        .abi_encode();
        let mined = self.transact("open", data, deposit).await?;
        let expected = channel_id(
            self.chain_id,
            from_alloy(CHANNELS_ADDRESS),
            self.wallet,
            payee,
            signer,
            salt,
        );
        let opened = mined.logs.iter().find_map(|(topics, data)| {
            IChannels::ChannelOpened::decode_raw_log(topics.iter().copied(), data).ok()
        });
        match opened {
            Some(ev) if ev.channelId.0 == expected.0 => {}
            _ => {
                return Err(ChainError::BadReply {
                    method: "open",
                    reason: format!(
                        "transaction {} has no ChannelOpened log for 0x{}",
                        mined.receipt.transaction_hash,
                        hex::encode(expected.0)
                    ),
                })
            }
        }
        self.read_final("open", expected).await
    }

    async fn claim_impl(
        &self,
        id: ChannelId,
        cumulative: Amount,
        sig: Signature,
        close: bool,
    ) -> Result<Amount, ChainError> {
        let (op, data) = if close {
            let call = IChannels::claimAndCloseCall {
                channelId: B256::from(id.0),
                cumulative: u256(cumulative),
                sig: sig.0.to_vec().into(),
            };
            ("claimAndClose", call.abi_encode())
        } else {
            let call = IChannels::claimCall {
                channelId: B256::from(id.0),
                cumulative: u256(cumulative),
                sig: sig.0.to_vec().into(),
            };
            ("claim", call.abi_encode())
        };
        let mined = self.transact(op, data, Amount::ZERO).await?;
        let mut paid = Amount::ZERO;
        for (topics, data) in &mined.logs {
            if let Ok(ev) = IChannels::ChannelClaimed::decode_raw_log(topics.iter().copied(), data)
            {
                if ev.channelId.0 == id.0 {
                    paid = paid
                        .checked_add(amount(ev.amount, "the claimed amount")?)
                        .ok_or(ChainError::Overflow("the claimed amount"))?;
                }
            }
        }
        Ok(paid)
    }

    async fn reclaim_impl(&self, id: ChannelId) -> Result<Amount, ChainError> {
        let data = IChannels::reclaimCall {
            channelId: B256::from(id.0),
        }
        .abi_encode();
        let mined = self.transact("reclaim", data, Amount::ZERO).await?;
        for (topics, data) in &mined.logs {
            if let Ok(ev) = IChannels::ChannelClosed::decode_raw_log(topics.iter().copied(), data) {
                if ev.channelId.0 == id.0 {
                    return amount(ev.refund, "the refund");
                }
            }
        }
        Err(ChainError::BadReply {
            method: "reclaim",
            reason: format!(
                "transaction {} has no ChannelClosed log",
                mined.receipt.transaction_hash
            ),
        })
    }

    async fn now_impl(&self) -> Result<u64, ChainError> {
        let method = "eth_getBlockByNumber";
        let block = self
            .client
            .request(method, json!(["finalized", false]))
            .await?;
        block
            .get("timestamp")
            .and_then(Value::as_str)
            .and_then(|s| s.strip_prefix("0x"))
            .and_then(|s| u64::from_str_radix(s, 16).ok())
            .ok_or_else(|| ChainError::BadReply {
                method,
                reason: "the latest block has no hex timestamp".into(),
            })
    }
}

/// A node error on a transaction: the module's revert reason (code 3) or the node's rejection.
fn refusal(op: &'static str, e: wallet::ClientError) -> ChainError {
    match e {
        wallet::ClientError::Rpc { code, message, .. }
            if code == 3 || message.starts_with("execution reverted") =>
        {
            let reason = message
                .strip_prefix("execution reverted: ")
                .unwrap_or(&message)
                .to_owned();
            ChainError::Reverted { op, reason }
        }
        other => ChainError::Rpc(other),
    }
}

fn parse_hex_bytes(v: &Value) -> Option<Vec<u8>> {
    let s = v.as_str()?.strip_prefix("0x")?;
    hex::decode(s).ok()
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl ChainPort for RpcChain {
    fn chain_id(&self) -> u64 {
        self.chain_id
    }

    fn module(&self) -> Address {
        from_alloy(CHANNELS_ADDRESS)
    }

    fn wallet(&self) -> Address {
        self.wallet
    }

    fn channel(&self, id: ChannelId) -> ChainFuture<'_, Option<ChannelState>> {
        Box::pin(self.read_channel(id))
    }

    fn open(
        &self,
        payee: Address,
        signer: Address,
        salt: [u8; 32],
        expiry: u64,
        deposit: Amount,
    ) -> ChainFuture<'_, ChannelState> {
        Box::pin(self.open_impl(payee, signer, salt, expiry, deposit))
    }

    fn top_up(&self, id: ChannelId, amount: Amount) -> ChainFuture<'_, ChannelState> {
        Box::pin(async move {
            let data = IChannels::topUpCall {
                channelId: B256::from(id.0),
            }
            .abi_encode();
            self.transact("topUp", data, amount).await?;
            self.read_final("topUp", id).await
        })
    }

    fn claim(
        &self,
        id: ChannelId,
        cumulative: Amount,
        sig: Signature,
        close: bool,
    ) -> ChainFuture<'_, Amount> {
        Box::pin(self.claim_impl(id, cumulative, sig, close))
    }

    fn reclaim(&self, id: ChannelId) -> ChainFuture<'_, Amount> {
        Box::pin(self.reclaim_impl(id))
    }

    fn balance(&self, who: Address) -> ChainFuture<'_, Amount> {
        Box::pin(async move { self.balance_u128(who).await.map(Amount) })
    }

    fn now(&self) -> ChainFuture<'_, u64> {
        Box::pin(self.now_impl())
    }
}

// ---- MemChain ----------------------------------------------------------------------------------

/// The shared ledger behind [`MemChain`] and its ports.
#[derive(Debug, Default)]
struct Ledger {
    chain_id: u64,
    now_s: u64,
    unavailable: bool,
    balances: HashMap<Address, u128>,
    /// Every channel ever opened (closed ones stay, so ids are never reused).
    channels: BTreeMap<ChannelId, ChannelState>,
}

/// An in-memory chain with the channel module's rules (see `chain_state::Channels`): the same
/// checks in the same order, the same refusal texts, no gas. Cheap to clone; clones share the
/// ledger.
#[derive(Debug, Clone)]
pub struct MemChain {
    ledger: Arc<Mutex<Ledger>>,
}

impl MemChain {
    /// An empty chain with id `chain_id` at time 0.
    pub fn new(chain_id: u64) -> Self {
        Self {
            ledger: Arc::new(Mutex::new(Ledger {
                chain_id,
                ..Ledger::default()
            })),
        }
    }

    /// Credits `amount` to `who` (a genesis allocation or a faucet).
    pub fn fund(&self, who: Address, amount: Amount) {
        let mut l = lock(&self.ledger);
        let b = l.balances.entry(who).or_default();
        *b = b.saturating_add(amount.0);
    }

    /// Sets the block time, unix seconds.
    pub fn set_now(&self, now_s: u64) {
        lock(&self.ledger).now_s = now_s;
    }

    /// Makes every call fail with [`ChainError::Unavailable`] (or work again), to test how
    /// callers handle an unreachable node.
    pub fn set_unavailable(&self, unavailable: bool) {
        lock(&self.ledger).unavailable = unavailable;
    }

    /// A port acting as `wallet`, sharing this ledger.
    pub fn port(&self, wallet: Address) -> Arc<dyn ChainPort> {
        Arc::new(MemPort {
            ledger: self.ledger.clone(),
            wallet,
        })
    }

    /// Everything locked in open channels: `Σ (deposit − paid)`, the module's balance.
    pub fn locked(&self) -> Amount {
        let l = lock(&self.ledger);
        Amount(
            l.channels
                .values()
                .filter(|c| c.open)
                .map(|c| c.deposit.0 - c.paid.0)
                .sum(),
        )
    }

    /// All balances plus [`locked`](Self::locked): constant except through [`fund`](Self::fund).
    pub fn total_supply(&self) -> Amount {
        let held: u128 = lock(&self.ledger).balances.values().sum();
        Amount(held + self.locked().0)
    }

    /// Every channel ever opened.
    pub fn channels(&self) -> Vec<ChannelState> {
        lock(&self.ledger).channels.values().cloned().collect()
    }
}

/// One account's view of a [`MemChain`].
struct MemPort {
    ledger: Arc<Mutex<Ledger>>,
    wallet: Address,
}

fn refused(op: &'static str, e: ChannelError) -> ChainError {
    ChainError::Reverted {
        op,
        reason: e.to_string(),
    }
}

impl Ledger {
    fn check_up(&self) -> Result<(), ChainError> {
        if self.unavailable {
            return Err(ChainError::Unavailable);
        }
        Ok(())
    }

    fn debit(&mut self, op: &'static str, who: Address, value: u128) -> Result<(), ChainError> {
        let have = self.balances.get(&who).copied().unwrap_or(0);
        if have < value {
            return Err(ChainError::InsufficientFunds {
                op,
                wallet: to_wallet(who),
                need: value,
                have,
            });
        }
        self.balances.insert(who, have - value);
        Ok(())
    }

    fn credit(&mut self, who: Address, value: u128) {
        let b = self.balances.entry(who).or_default();
        *b = b.saturating_add(value);
    }

    fn load_open(&self, op: &'static str, id: ChannelId) -> Result<ChannelState, ChainError> {
        match self.channels.get(&id) {
            None => Err(refused(op, ChannelError::Unknown(B256::from(id.0)))),
            Some(c) if !c.open => Err(refused(op, ChannelError::Closed(B256::from(id.0)))),
            Some(c) => Ok(c.clone()),
        }
    }

    fn require_live(&self, op: &'static str, c: &ChannelState) -> Result<(), ChainError> {
        if self.now_s >= c.expiry {
            return Err(refused(
                op,
                ChannelError::Expired {
                    id: B256::from(c.id.0),
                    expiry: c.expiry,
                    now: self.now_s,
                },
            ));
        }
        Ok(())
    }

    fn open(
        &mut self,
        payer: Address,
        payee: Address,
        signer: Address,
        salt: [u8; 32],
        expiry: u64,
        deposit: Amount,
    ) -> Result<ChannelState, ChainError> {
        let op = "open";
        self.check_up()?;
        if deposit.0 == 0 {
            return Err(refused(op, ChannelError::NoDeposit));
        }
        if payee == Address::default() {
            return Err(refused(op, ChannelError::ZeroAddress("payee")));
        }
        if signer == Address::default() {
            return Err(refused(op, ChannelError::ZeroAddress("signer")));
        }
        if to_alloy(payee) == CHANNELS_ADDRESS {
            return Err(refused(op, ChannelError::PayeeIsModule));
        }
        if expiry <= self.now_s {
            return Err(refused(
                op,
                ChannelError::ExpiryNotFuture {
                    expiry,
                    now: self.now_s,
                },
            ));
        }
        let module = from_alloy(CHANNELS_ADDRESS);
        let id = channel_id(self.chain_id, module, payer, payee, signer, salt);
        if self.channels.contains_key(&id) {
            return Err(refused(op, ChannelError::AlreadyExists(B256::from(id.0))));
        }
        self.debit(op, payer, deposit.0)?;
        let c = ChannelState {
            id,
            payer,
            payee,
            signer,
            deposit,
            paid: Amount::ZERO,
            expiry,
            open: true,
        };
        self.channels.insert(id, c.clone());
        Ok(c)
    }

    fn top_up(
        &mut self,
        caller: Address,
        id: ChannelId,
        value: Amount,
    ) -> Result<ChannelState, ChainError> {
        let op = "topUp";
        self.check_up()?;
        if value.0 == 0 {
            return Err(refused(op, ChannelError::NoDeposit));
        }
        let mut c = self.load_open(op, id)?;
        if caller != c.payer {
            return Err(refused(op, ChannelError::NotPayer(to_alloy(c.payer))));
        }
        self.require_live(op, &c)?;
        c.deposit = c
            .deposit
            .checked_add(value)
            .ok_or_else(|| refused(op, ChannelError::Overflow))?;
        self.debit(op, caller, value.0)?;
        self.channels.insert(id, c.clone());
        Ok(c)
    }

    fn claim(
        &mut self,
        caller: Address,
        id: ChannelId,
        cumulative: Amount,
        sig: &Signature,
        close: bool,
    ) -> Result<Amount, ChainError> {
        let op = if close { "claimAndClose" } else { "claim" };
        self.check_up()?;
        let mut c = self.load_open(op, id)?;
        if close && caller != c.payee {
            return Err(refused(op, ChannelError::NotPayee(to_alloy(c.payee))));
        }
        self.require_live(op, &c)?;
        if cumulative > c.deposit {
            return Err(refused(
                op,
                ChannelError::OverDeposit {
                    cumulative: u256(cumulative),
                    deposit: u256(c.deposit),
                },
            ));
        }
        if cumulative < c.paid || (cumulative == c.paid && !close) {
            return Err(refused(
                op,
                ChannelError::Stale {
                    cumulative: u256(cumulative),
                    paid: u256(c.paid),
                },
            ));
        }
        let pay = cumulative.0 - c.paid.0;
        if pay != 0 {
            let module = from_alloy(CHANNELS_ADDRESS);
            let digest = voucher_digest(self.chain_id, module, id, cumulative);
            let recovered =
                chain_state::recover_signer(&digest, &sig.0).map_err(|e| refused(op, e))?;
            if recovered != to_alloy(c.signer) {
                return Err(refused(
                    op,
                    ChannelError::WrongSigner {
                        recovered,
                        signer: to_alloy(c.signer),
                    },
                ));
            }
            c.paid = cumulative;
            self.credit(c.payee, pay);
        }
        if close {
            let refund = c.deposit.0 - c.paid.0;
            c.open = false;
            self.credit(c.payer, refund);
        }
        self.channels.insert(id, c);
        Ok(Amount(pay))
    }

    fn reclaim(&mut self, caller: Address, id: ChannelId) -> Result<Amount, ChainError> {
        let op = "reclaim";
        self.check_up()?;
        let mut c = self.load_open(op, id)?;
        if caller != c.payer {
            return Err(refused(op, ChannelError::NotPayer(to_alloy(c.payer))));
        }
        if self.now_s < c.expiry {
            return Err(refused(
                op,
                ChannelError::NotExpired {
                    id: B256::from(id.0),
                    expiry: c.expiry,
                    now: self.now_s,
                },
            ));
        }
        let refund = c.deposit.0 - c.paid.0;
        c.open = false;
        self.credit(c.payer, refund);
        self.channels.insert(id, c);
        Ok(Amount(refund))
    }
}

impl MemPort {
    fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Ledger) -> Result<T, ChainError>,
    ) -> ChainFuture<'_, T> {
        let out = f(&mut lock(&self.ledger));
        Box::pin(std::future::ready(out))
    }
}

impl ChainPort for MemPort {
    fn chain_id(&self) -> u64 {
        lock(&self.ledger).chain_id
    }

    fn module(&self) -> Address {
        from_alloy(CHANNELS_ADDRESS)
    }

    fn wallet(&self) -> Address {
        self.wallet
    }

    fn channel(&self, id: ChannelId) -> ChainFuture<'_, Option<ChannelState>> {
        self.with(|l| {
            l.check_up()?;
            Ok(l.channels.get(&id).cloned())
        })
    }

    fn open(
        &self,
        payee: Address,
        signer: Address,
        salt: [u8; 32],
        expiry: u64,
        deposit: Amount,
    ) -> ChainFuture<'_, ChannelState> {
        let payer = self.wallet;
        self.with(|l| l.open(payer, payee, signer, salt, expiry, deposit))
    }

    fn top_up(&self, id: ChannelId, amount: Amount) -> ChainFuture<'_, ChannelState> {
        let caller = self.wallet;
        self.with(|l| l.top_up(caller, id, amount))
    }

    fn claim(
        &self,
        id: ChannelId,
        cumulative: Amount,
        sig: Signature,
        close: bool,
    ) -> ChainFuture<'_, Amount> {
        let caller = self.wallet;
        self.with(|l| l.claim(caller, id, cumulative, &sig, close))
    }

    fn reclaim(&self, id: ChannelId) -> ChainFuture<'_, Amount> {
        let caller = self.wallet;
        self.with(|l| l.reclaim(caller, id))
    }

    fn balance(&self, who: Address) -> ChainFuture<'_, Amount> {
        self.with(|l| {
            l.check_up()?;
            Ok(Amount(l.balances.get(&who).copied().unwrap_or(0)))
        })
    }

    fn now(&self) -> ChainFuture<'_, u64> {
        self.with(|l| {
            l.check_up()?;
            Ok(l.now_s)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    const CHAIN: u64 = 7215;

    fn key(n: u8) -> wallet::Signer {
        let mut bytes = [0x11u8; 32];
        bytes[31] = n;
        wallet::Signer::new(wallet::PrivateKey::from_bytes(&bytes).unwrap())
    }

    fn addr(k: &wallet::Signer) -> Address {
        Address(k.address().0)
    }

    fn module() -> Address {
        from_alloy(CHANNELS_ADDRESS)
    }

    fn voucher(k: &wallet::Signer, id: ChannelId, cumulative: u128) -> Signature {
        sign_voucher(k, CHAIN, module(), id, Amount(cumulative))
    }

    fn reason(e: ChainError) -> String {
        match e {
            ChainError::Reverted { reason, .. } => reason,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    /// A chain with a payer (funded), a payee and a signer, and one open channel of 100 wei
    /// until t = 1000.
    struct Fixture {
        chain: MemChain,
        payer: Arc<dyn ChainPort>,
        payee: Arc<dyn ChainPort>,
        signer: wallet::Signer,
        ch: ChannelState,
    }

    async fn fixture() -> Fixture {
        let chain = MemChain::new(CHAIN);
        let (pk, ek, signer) = (key(1), key(2), key(3));
        chain.fund(addr(&pk), Amount(1_000));
        chain.set_now(100);
        let payer = chain.port(addr(&pk));
        let payee = chain.port(addr(&ek));
        let ch = payer
            .open(addr(&ek), addr(&signer), [7; 32], 1_000, Amount(100))
            .await
            .unwrap();
        Fixture {
            chain,
            payer,
            payee,
            signer,
            ch,
        }
    }

    #[test]
    fn vouchers_sign_and_recover_by_the_module_rules() {
        let k = key(9);
        let id = ChannelId([5; 32]);
        let sig = voucher(&k, id, 42);
        assert_eq!(
            recover_voucher_signer(CHAIN, module(), id, Amount(42), &sig),
            Some(addr(&k))
        );
        // Another amount, channel, chain or module recovers to someone else.
        for other in [
            recover_voucher_signer(CHAIN, module(), id, Amount(43), &sig),
            recover_voucher_signer(CHAIN, module(), ChannelId([6; 32]), Amount(42), &sig),
            recover_voucher_signer(CHAIN + 1, module(), id, Amount(42), &sig),
            recover_voucher_signer(CHAIN, Address([1; 20]), id, Amount(42), &sig),
        ] {
            assert_ne!(other, Some(addr(&k)));
        }
        // `v` must be 27 or 28, as the module demands.
        let mut raw = sig;
        raw.0[64] -= 27;
        assert_eq!(
            recover_voucher_signer(CHAIN, module(), id, Amount(42), &raw),
            None
        );
        // The digest is the module's.
        assert_eq!(
            voucher_digest(CHAIN, module(), id, Amount(42)),
            chain_state::voucher_digest(CHAIN, CHANNELS_ADDRESS, B256::from(id.0), U256::from(42))
        );
    }

    #[tokio::test]
    async fn open_checks_everything_before_taking_the_deposit() {
        let f = fixture().await;
        let (payee, signer) = (f.ch.payee, f.ch.signer);
        let before = f.chain.total_supply();
        let bal = f.payer.balance(f.ch.payer).await.unwrap();
        assert_eq!(bal, Amount(900));
        assert_eq!(f.chain.locked(), Amount(100));
        let cases: Vec<(ChainFuture<'_, ChannelState>, &str)> = vec![
            (
                f.payer.open(payee, signer, [1; 32], 1_000, Amount(0)),
                "no deposit",
            ),
            (
                f.payer
                    .open(Address::default(), signer, [1; 32], 1_000, Amount(1)),
                "payee is the zero address",
            ),
            (
                f.payer
                    .open(payee, Address::default(), [1; 32], 1_000, Amount(1)),
                "signer is the zero address",
            ),
            (
                f.payer.open(module(), signer, [1; 32], 1_000, Amount(1)),
                "payee cannot be the channel module",
            ),
            (
                f.payer.open(payee, signer, [1; 32], 100, Amount(1)),
                "is not after the block time",
            ),
            (
                f.payer.open(payee, signer, [7; 32], 2_000, Amount(1)),
                "already exists",
            ),
        ];
        for (fut, want) in cases {
            let got = reason(fut.await.unwrap_err());
            assert!(got.contains(want), "{got:?} should say {want:?}");
        }
        let err = f
            .payer
            .open(payee, signer, [1; 32], 1_000, Amount(901))
            .await
            .unwrap_err();
        assert!(matches!(
            err,
            ChainError::InsufficientFunds {
                need: 901,
                have: 900,
                ..
            }
        ));
        assert_eq!(f.payer.balance(f.ch.payer).await.unwrap(), Amount(900));
        assert_eq!(f.chain.total_supply(), before);
        assert_eq!(f.chain.channels().len(), 1);
        let read = f.payee.channel(f.ch.id).await.unwrap().unwrap();
        assert_eq!(read, f.ch);
        assert_eq!(
            f.ch.id,
            channel_id(CHAIN, module(), f.ch.payer, payee, signer, [7; 32])
        );
        assert_eq!(f.payer.channel(ChannelId([0; 32])).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_voucher_pays_once_and_only_forward() {
        let f = fixture().await;
        let id = f.ch.id;
        let v30 = voucher(&f.signer, id, 30);
        assert_eq!(
            f.payee.claim(id, Amount(30), v30, false).await.unwrap(),
            Amount(30)
        );
        assert_eq!(f.payee.balance(f.ch.payee).await.unwrap(), Amount(30));
        // The same voucher again pays nothing: refused as stale, by anyone.
        for port in [&f.payee, &f.payer] {
            let r = reason(port.claim(id, Amount(30), v30, false).await.unwrap_err());
            assert!(r.contains("pays nothing"), "{r}");
        }
        // A lower voucher is refused too.
        let v20 = voucher(&f.signer, id, 20);
        let r = reason(f.payee.claim(id, Amount(20), v20, false).await.unwrap_err());
        assert!(r.contains("pays nothing"), "{r}");
        // A higher one pays the difference, whoever submits it.
        let v50 = voucher(&f.signer, id, 50);
        assert_eq!(
            f.payer.claim(id, Amount(50), v50, false).await.unwrap(),
            Amount(20)
        );
        assert_eq!(f.payee.balance(f.ch.payee).await.unwrap(), Amount(50));
        // Never more than the deposit.
        let v101 = voucher(&f.signer, id, 101);
        let r = reason(
            f.payee
                .claim(id, Amount(101), v101, false)
                .await
                .unwrap_err(),
        );
        assert!(r.contains("exceeds the deposit"), "{r}");
        let ch = f.payee.channel(id).await.unwrap().unwrap();
        assert_eq!(
            (ch.deposit, ch.paid, ch.open),
            (Amount(100), Amount(50), true)
        );
        assert_eq!(f.chain.locked(), Amount(50));
        assert_eq!(f.chain.total_supply(), Amount(1_000));
    }

    #[tokio::test]
    async fn vouchers_for_anything_else_are_refused() {
        let f = fixture().await;
        let id = f.ch.id;
        let module = module();
        let refusals = [
            // Signed by a key that is not the channel's signer (the payer's wallet key).
            (
                Amount(10),
                sign_voucher(&key(1), CHAIN, module, id, Amount(10)),
            ),
            // For another channel.
            (
                Amount(10),
                sign_voucher(&f.signer, CHAIN, module, ChannelId([9; 32]), Amount(10)),
            ),
            // For another chain.
            (
                Amount(10),
                sign_voucher(&f.signer, CHAIN + 1, module, id, Amount(10)),
            ),
            // For another module.
            (
                Amount(10),
                sign_voucher(&f.signer, CHAIN, Address([3; 20]), id, Amount(10)),
            ),
            // For another amount.
            (Amount(11), voucher(&f.signer, id, 10)),
        ];
        for (cumulative, sig) in refusals {
            let r = reason(f.payee.claim(id, cumulative, sig, false).await.unwrap_err());
            assert!(r.contains("not the channel's signer"), "{r}");
        }
        let mut bad = voucher(&f.signer, id, 10);
        bad.0[64] = 0;
        let r = reason(f.payee.claim(id, Amount(10), bad, false).await.unwrap_err());
        assert!(r.contains("malformed voucher signature"), "{r}");
        assert_eq!(f.payee.balance(f.ch.payee).await.unwrap(), Amount(0));
        assert_eq!(f.payee.channel(id).await.unwrap().unwrap(), f.ch);
    }

    #[tokio::test]
    async fn claim_and_close_pays_refunds_and_ends_the_channel() {
        let f = fixture().await;
        let id = f.ch.id;
        let v40 = voucher(&f.signer, id, 40);
        // Only the payee may close.
        let r = reason(f.payer.claim(id, Amount(40), v40, true).await.unwrap_err());
        assert!(r.contains("only the payee"), "{r}");
        assert_eq!(
            f.payee.claim(id, Amount(40), v40, true).await.unwrap(),
            Amount(40)
        );
        assert_eq!(f.payer.balance(f.ch.payer).await.unwrap(), Amount(960));
        assert_eq!(f.payee.balance(f.ch.payee).await.unwrap(), Amount(40));
        let ch = f.payee.channel(id).await.unwrap().unwrap();
        assert!(!ch.open);
        assert_eq!(f.chain.locked(), Amount(0));
        let v50 = voucher(&f.signer, id, 50);
        let r = reason(f.payee.claim(id, Amount(50), v50, false).await.unwrap_err());
        assert!(r.contains("is closed"), "{r}");
        let r = reason(f.payer.reclaim(id).await.unwrap_err());
        assert!(r.contains("is closed"), "{r}");
        let r = reason(f.payer.top_up(id, Amount(5)).await.unwrap_err());
        assert!(r.contains("is closed"), "{r}");
    }

    #[tokio::test]
    async fn closing_on_what_was_paid_needs_no_new_signature() {
        let f = fixture().await;
        let id = f.ch.id;
        let v40 = voucher(&f.signer, id, 40);
        f.payee.claim(id, Amount(40), v40, false).await.unwrap();
        let paid = f
            .payee
            .claim(id, Amount(40), Signature::default(), true)
            .await
            .unwrap();
        assert_eq!(paid, Amount(0));
        assert_eq!(f.payer.balance(f.ch.payer).await.unwrap(), Amount(960));
    }

    #[tokio::test]
    async fn reclaim_only_by_the_payer_after_the_expiry() {
        let f = fixture().await;
        let id = f.ch.id;
        let v30 = voucher(&f.signer, id, 30);
        f.payee.claim(id, Amount(30), v30, false).await.unwrap();
        assert_eq!(
            f.payer.top_up(id, Amount(50)).await.unwrap().deposit,
            Amount(150)
        );
        let r = reason(f.payee.top_up(id, Amount(1)).await.unwrap_err());
        assert!(r.contains("only the payer"), "{r}");
        let r = reason(f.payer.reclaim(id).await.unwrap_err());
        assert!(r.contains("reclaim after that"), "{r}");
        f.chain.set_now(999);
        let r = reason(f.payer.reclaim(id).await.unwrap_err());
        assert!(r.contains("reclaim after that"), "{r}");
        f.chain.set_now(1_000);
        // Expired: no more claims or top ups.
        let v60 = voucher(&f.signer, id, 60);
        let r = reason(f.payee.claim(id, Amount(60), v60, false).await.unwrap_err());
        assert!(r.contains("expired"), "{r}");
        let r = reason(f.payer.top_up(id, Amount(1)).await.unwrap_err());
        assert!(r.contains("expired"), "{r}");
        let r = reason(f.payee.reclaim(id).await.unwrap_err());
        assert!(r.contains("only the payer"), "{r}");
        assert_eq!(f.payer.reclaim(id).await.unwrap(), Amount(120));
        assert_eq!(f.payer.balance(f.ch.payer).await.unwrap(), Amount(970));
        assert!(f.payer.reclaim(id).await.is_err());
        assert_eq!(f.chain.total_supply(), Amount(1_000));
    }

    #[test]
    fn a_node_error_is_printed_once() {
        let e = ChainError::from(wallet::ClientError::Overflow("the fee"));
        assert_eq!(
            e.to_string(),
            "chain node: the fee overflows: use a smaller amount or fee cap"
        );
        // No source: a report walking the chain (anyhow's `{:#}`) would repeat it.
        assert!(std::error::Error::source(&e).is_none());
        let settle = crate::SettleError::from(e);
        assert!(std::error::Error::source(&settle).is_none());
    }

    #[tokio::test]
    async fn an_unavailable_chain_fails_every_call_and_changes_nothing() {
        let f = fixture().await;
        f.chain.set_unavailable(true);
        let v = voucher(&f.signer, f.ch.id, 10);
        assert!(matches!(
            f.payee.claim(f.ch.id, Amount(10), v, false).await,
            Err(ChainError::Unavailable)
        ));
        assert!(matches!(f.payee.now().await, Err(ChainError::Unavailable)));
        f.chain.set_unavailable(false);
        assert_eq!(f.payee.channel(f.ch.id).await.unwrap().unwrap(), f.ch);
    }

    /// Random open / top up / voucher / claim / close / reclaim / time steps by several
    /// accounts, with the module's invariants checked after every step.
    #[tokio::test]
    async fn random_sequences_keep_the_invariants() {
        for seed in [1u64, 2, 3] {
            run_random(seed, 2_500).await;
        }
    }

    async fn run_random(seed: u64, steps: usize) {
        let mut rng = StdRng::seed_from_u64(seed);
        let chain = MemChain::new(CHAIN);
        let payers: Vec<wallet::Signer> = (1..=3).map(key).collect();
        let payees: Vec<wallet::Signer> = (11..=13).map(key).collect();
        let signers: Vec<wallet::Signer> = (21..=23).map(key).collect();
        for p in &payers {
            chain.fund(addr(p), Amount(1_000_000));
        }
        let supply = chain.total_supply();
        let ports: Vec<Arc<dyn ChainPort>> = payers
            .iter()
            .chain(&payees)
            .map(|k| chain.port(addr(k)))
            .collect();
        let port_of = |a: Address| ports.iter().find(|p| p.wallet() == a).cloned().unwrap();
        // Every voucher signed so far: channel, amount, signature, signed by its signer.
        let mut vouchers: Vec<(ChannelId, u128, Signature, bool)> = Vec::new();
        let mut highest: HashMap<ChannelId, u128> = HashMap::new();
        let mut paid_out: HashMap<ChannelId, u128> = HashMap::new();
        let mut seen: BTreeMap<ChannelId, ChannelState> = BTreeMap::new();
        let mut now = 0u64;
        let (mut ok_claims, mut refused_claims) = (0, 0);
        for _ in 0..steps {
            let channels = chain.channels();
            let open: Vec<&ChannelState> = channels.iter().filter(|c| c.open).collect();
            // Mostly open channels, sometimes any (closed ones must refuse everything).
            let pick = |rng: &mut StdRng| {
                if !open.is_empty() && rng.gen_bool(0.8) {
                    Some(open[rng.gen_range(0..open.len())].clone())
                } else {
                    (!channels.is_empty())
                        .then(|| channels[rng.gen_range(0..channels.len())].clone())
                }
            };
            let before = (chain.channels(), chain.total_supply());
            let outcome: Result<(), ChainError> = match rng.gen_range(0..100) {
                0..=14 => {
                    let p = &ports[rng.gen_range(0..3)];
                    let payee = addr(&payees[rng.gen_range(0..3)]);
                    let signer = addr(&signers[rng.gen_range(0..3)]);
                    let salt = [rng.gen_range(0..4u8); 32];
                    let expiry = now + rng.gen_range(0..400);
                    let deposit = Amount(rng.gen_range(0..2_000));
                    p.open(payee, signer, salt, expiry, deposit)
                        .await
                        .map(|_| ())
                }
                15..=24 => match pick(&mut rng) {
                    Some(c) => {
                        let caller = &ports[rng.gen_range(0..ports.len())];
                        caller
                            .top_up(c.id, Amount(rng.gen_range(0..500)))
                            .await
                            .map(|_| ())
                    }
                    None => Ok(()),
                },
                25..=49 => {
                    if let Some(c) = pick(&mut rng) {
                        let h = highest.entry(c.id).or_default();
                        let cumulative = *h + rng.gen_range(0..400);
                        let honest = rng.gen_range(0..10) != 0;
                        let k = if honest {
                            signers.iter().find(|s| addr(s) == c.signer).unwrap()
                        } else {
                            &payers[0]
                        };
                        if honest {
                            *h = cumulative;
                        }
                        vouchers.push((c.id, cumulative, voucher(k, c.id, cumulative), honest));
                    }
                    Ok(())
                }
                50..=79 => {
                    if vouchers.is_empty() {
                        Ok(())
                    } else {
                        // Mostly the newest voucher, sometimes any older one (a replay).
                        let i = if rng.gen_bool(0.5) {
                            vouchers.len() - 1
                        } else {
                            rng.gen_range(0..vouchers.len())
                        };
                        let (id, cumulative, sig, honest) = vouchers[i];
                        let c = chain.channels().into_iter().find(|c| c.id == id).unwrap();
                        let close = rng.gen_range(0..10) == 0;
                        let caller = if rng.gen_bool(0.8) {
                            port_of(c.payee)
                        } else {
                            ports[rng.gen_range(0..ports.len())].clone()
                        };
                        let r = caller.claim(id, Amount(cumulative), sig, close).await;
                        match &r {
                            Ok(paid) => {
                                ok_claims += 1;
                                // Exactly the part not paid before, and only against a
                                // voucher its signer made (or a close on what was paid).
                                assert_eq!(paid.0, cumulative - c.paid.0);
                                assert!(honest || paid.0 == 0);
                                *paid_out.entry(id).or_default() += paid.0;
                            }
                            Err(_) => refused_claims += 1,
                        }
                        r.map(|_| ())
                    }
                }
                80..=89 => match pick(&mut rng) {
                    Some(c) => {
                        let caller = &ports[rng.gen_range(0..ports.len())];
                        caller.reclaim(c.id).await.map(|_| ())
                    }
                    None => Ok(()),
                },
                _ => {
                    now += rng.gen_range(0..10);
                    chain.set_now(now);
                    Ok(())
                }
            };
            if outcome.is_err() {
                // A refused call changes nothing.
                assert_eq!((chain.channels(), chain.total_supply()), before);
            }
            // Money is conserved: balances plus locked deposits.
            assert_eq!(chain.total_supply(), supply);
            let mut payee_income: HashMap<Address, u128> = HashMap::new();
            for c in chain.channels() {
                assert!(c.paid <= c.deposit, "paid above deposit: {c:?}");
                // No double spend: the payee got exactly `paid` from this channel.
                assert_eq!(paid_out.get(&c.id).copied().unwrap_or(0), c.paid.0);
                *payee_income.entry(c.payee).or_default() += c.paid.0;
                if let Some(old) = seen.get(&c.id) {
                    assert!(c.paid >= old.paid && c.deposit >= old.deposit);
                    assert!(old.open || !c.open, "a closed channel reopened");
                    assert_eq!(
                        (c.payer, c.payee, c.signer, c.expiry),
                        (old.payer, old.payee, old.signer, old.expiry)
                    );
                }
                seen.insert(c.id, c);
            }
            // Payees never spend, so their balances are exactly what channels paid them.
            for p in &payees {
                let a = addr(p);
                let bal = ports[3].balance(a).await.unwrap();
                assert_eq!(bal.0, payee_income.get(&a).copied().unwrap_or(0));
            }
        }
        assert!(
            ok_claims > 50 && refused_claims > 50,
            "{ok_claims} {refused_claims}"
        );
        assert!(chain.channels().len() > 20);
    }
}
