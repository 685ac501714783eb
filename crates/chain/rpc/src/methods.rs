//! The methods: decode parameters, ask the [`Backend`], shape the answer.

use std::sync::Arc;

use alloy_eips::{BlockId, BlockNumberOrTag};
use alloy_primitives::{Address, Bytes, B256, U128, U256, U64};
use alloy_rpc_types_eth::{FeeHistory, Filter, FilterBlockOption, SyncInfo, SyncStatus};
use chain_types::Transaction as _;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;

use crate::backend::{Backend, BlockData, CallError};
use crate::convert;
use crate::jsonrpc::{
    ErrorObject, Params, EXECUTION_REVERTED, INTERNAL_ERROR, LIMIT_EXCEEDED, METHOD_NOT_FOUND,
};
use crate::Config;
use chain_types::CallRequest;

/// The message for a state query below the head.
pub const HISTORICAL_STATE: &str =
    "historical state is not available; this node keeps the latest state only";

type MethodResult = Result<Box<RawValue>, ErrorObject>;

/// Serializes a method's answer.
fn ok<T: Serialize>(value: T) -> MethodResult {
    serde_json::value::to_raw_value(&value)
        .map_err(|e| ErrorObject::new(INTERNAL_ERROR, format!("cannot encode the result: {e}")))
}

/// The method table over one backend.
pub(crate) struct Methods {
    pub(crate) backend: Arc<dyn Backend>,
    pub(crate) config: Config,
}

impl Methods {
    /// Runs `method`.
    pub(crate) fn call(&self, method: &str, p: Params<'_>) -> MethodResult {
        let b = &*self.backend;
        match method {
            "eth_chainId" => {
                p.at_most(0)?;
                ok(U64::from(b.chain_id()))
            }
            "net_version" => {
                p.at_most(0)?;
                ok(b.chain_id().to_string())
            }
            "web3_clientVersion" => {
                p.at_most(0)?;
                ok(b.client_version())
            }
            "net_listening" => {
                p.at_most(0)?;
                ok(true)
            }
            "net_peerCount" => {
                p.at_most(0)?;
                ok(U64::from(b.status().peers))
            }
            "eth_accounts" => {
                p.at_most(0)?;
                ok(Vec::<Address>::new())
            }
            "eth_blockNumber" => {
                p.at_most(0)?;
                ok(U64::from(b.head()))
            }
            "eth_syncing" => {
                p.at_most(0)?;
                ok(match b.syncing() {
                    None => SyncStatus::None,
                    Some(s) => SyncStatus::Info(Box::new(SyncInfo {
                        starting_block: U256::from(s.starting_block),
                        current_block: U256::from(s.current_block),
                        highest_block: U256::from(s.highest_block),
                        ..Default::default()
                    })),
                })
            }
            "btt_status" | "btt_nodeInfo" => {
                p.at_most(0)?;
                ok(b.status())
            }
            "eth_gasPrice" => {
                p.at_most(0)?;
                let price =
                    u128::from(b.next_base_fee()).saturating_add(b.suggested_priority_fee());
                ok(U128::from(price))
            }
            "eth_maxPriorityFeePerGas" => {
                p.at_most(0)?;
                ok(U128::from(b.suggested_priority_fee()))
            }
            "eth_getBalance" => {
                p.at_most(2)?;
                let address: Address = p.required(0, "address")?;
                self.check_state_block(p.optional(1, "block")?)?;
                ok(b.account(address)?.balance)
            }
            "eth_getTransactionCount" => {
                p.at_most(2)?;
                let address: Address = p.required(0, "address")?;
                let block: Option<BlockId> = p.optional(1, "block")?;
                if block == Some(BlockId::Number(BlockNumberOrTag::Pending)) {
                    return ok(U64::from(b.pending_nonce(address)?));
                }
                self.check_state_block(block)?;
                ok(U64::from(b.account(address)?.nonce))
            }
            "eth_getCode" => {
                p.at_most(2)?;
                let address: Address = p.required(0, "address")?;
                self.check_state_block(p.optional(1, "block")?)?;
                ok(b.code(address)?)
            }
            "eth_getStorageAt" => {
                p.at_most(3)?;
                let address: Address = p.required(0, "address")?;
                let slot: StorageSlot = p.required(1, "slot")?;
                self.check_state_block(p.optional(2, "block")?)?;
                ok(b.storage(address, slot.0)?)
            }
            "eth_call" | "eth_estimateGas" => {
                p.at_most(4)?;
                let CallParam(request) = p.required(0, "transaction")?;
                self.check_state_block(p.optional(1, "block")?)?;
                if p.optional::<serde_json::Value>(2, "state overrides")?
                    .is_some()
                {
                    return Err(ErrorObject::invalid_params(
                        "invalid argument 2 (state overrides): state overrides are not supported by this node",
                    ));
                }
                if p.optional::<serde_json::Value>(3, "block overrides")?
                    .is_some()
                {
                    return Err(ErrorObject::invalid_params(
                        "invalid argument 3 (block overrides): block overrides are not supported by this node",
                    ));
                }
                if method == "eth_call" {
                    ok(b.call(request).map_err(call_error)?)
                } else {
                    ok(U64::from(b.estimate_gas(request).map_err(call_error)?))
                }
            }
            "eth_sendRawTransaction" => {
                p.at_most(1)?;
                let raw: Bytes = p.required(0, "transaction")?;
                let hash = b
                    .send_raw_transaction(raw)
                    .map_err(|e| ErrorObject::new(e.code, e.message))?;
                ok(hash)
            }
            "eth_getBlockByNumber" => {
                p.at_most(2)?;
                let tag: BlockNumberOrTag = p.required(0, "block")?;
                let full: bool = p.optional(1, "full")?.unwrap_or(false);
                let block = self.block_by_tag(tag)?;
                ok(block.map(|d| convert::rpc_block(&d, full)))
            }
            "eth_getBlockByHash" => {
                p.at_most(2)?;
                let hash: B256 = p.required(0, "block hash")?;
                let full: bool = p.optional(1, "full")?.unwrap_or(false);
                ok(b.block_by_hash(hash)?.map(|d| convert::rpc_block(&d, full)))
            }
            "eth_getBlockTransactionCountByNumber" => {
                p.at_most(1)?;
                let tag: BlockNumberOrTag = p.required(0, "block")?;
                let block = self.block_by_tag(tag)?;
                ok(block.map(|d| U64::from(d.block.transactions.len())))
            }
            "eth_getBlockTransactionCountByHash" => {
                p.at_most(1)?;
                let hash: B256 = p.required(0, "block hash")?;
                ok(b.block_by_hash(hash)?
                    .map(|d| U64::from(d.block.transactions.len())))
            }
            "eth_getTransactionByBlockNumberAndIndex" => {
                p.at_most(2)?;
                let tag: BlockNumberOrTag = p.required(0, "block")?;
                let index: U64 = p.required(1, "index")?;
                let block = self.block_by_tag(tag)?;
                ok(block.and_then(|d| tx_at(&d, index)))
            }
            "eth_getTransactionByBlockHashAndIndex" => {
                p.at_most(2)?;
                let hash: B256 = p.required(0, "block hash")?;
                let index: U64 = p.required(1, "index")?;
                ok(b.block_by_hash(hash)?.and_then(|d| tx_at(&d, index)))
            }
            "eth_getTransactionByHash" => {
                p.at_most(1)?;
                let hash: B256 = p.required(0, "transaction hash")?;
                if let Some((block, index)) = self.mined(hash)? {
                    return ok(convert::mined_tx(&block, block.block.hash(), index));
                }
                ok(b.pending_tx(hash).map(|tx| convert::pending_tx(&tx)))
            }
            "eth_getTransactionReceipt" => {
                p.at_most(1)?;
                let hash: B256 = p.required(0, "transaction hash")?;
                let receipt = self.mined(hash)?.and_then(|(block, index)| {
                    convert::rpc_receipt(&block, block.block.hash(), index)
                });
                ok(receipt)
            }
            "eth_getBlockReceipts" => {
                p.at_most(1)?;
                let id: BlockId = p.required(0, "block")?;
                let block = match id {
                    BlockId::Hash(h) => b.block_by_hash(h.block_hash)?,
                    BlockId::Number(tag) => self.block_by_tag(tag)?,
                };
                ok(block.map(|d| {
                    let hash = d.block.hash();
                    (0..d.block.transactions.len())
                        .filter_map(|i| convert::rpc_receipt(&d, hash, i))
                        .collect::<Vec<_>>()
                }))
            }
            "eth_feeHistory" => {
                p.at_most(3)?;
                let count: Quantity = p.required(0, "block count")?;
                let newest: BlockNumberOrTag = p.required(1, "newest block")?;
                let percentiles: Option<Vec<f64>> = p.optional(2, "reward percentiles")?;
                ok(self.fee_history(count.0, newest, percentiles)?)
            }
            "eth_getLogs" => {
                p.at_most(1)?;
                // alloy's filter always has four topic positions; like geth, a log must have at
                // least as many topics as the filter lists, even when the last ones are null.
                let raw: serde_json::Value = p.required(0, "filter")?;
                let min_topics = raw
                    .get("topics")
                    .and_then(serde_json::Value::as_array)
                    .map_or(0, Vec::len);
                let filter: Filter = serde_json::from_value(raw).map_err(|e| {
                    ErrorObject::invalid_params(format!("invalid argument 0 (filter): {e}"))
                })?;
                ok(self.logs(&filter, min_topics)?)
            }
            _ => {
                let values = p.values()?;
                match b.extension(method, &values) {
                    Some(Ok(value)) => ok(value),
                    Some(Err(e)) => Err(ErrorObject::new(e.code, e.message)),
                    None => Err(ErrorObject::new(
                        METHOD_NOT_FOUND,
                        format!("the method {method} does not exist/is not available"),
                    )),
                }
            }
        }
    }

    /// The block a tag names; `None` when there is no such block.
    fn block_by_tag(&self, tag: BlockNumberOrTag) -> Result<Option<Arc<BlockData>>, ErrorObject> {
        Ok(self.backend.block_by_number(self.number_of(tag))?)
    }

    /// The height a tag names: every "latest" flavour is the finalized head.
    fn number_of(&self, tag: BlockNumberOrTag) -> u64 {
        match tag {
            BlockNumberOrTag::Number(n) => n,
            BlockNumberOrTag::Earliest => 0,
            BlockNumberOrTag::Latest
            | BlockNumberOrTag::Safe
            | BlockNumberOrTag::Finalized
            | BlockNumberOrTag::Pending => self.backend.head(),
        }
    }

    /// Accepts a state query only at the head: the node keeps no older state.
    fn check_state_block(&self, block: Option<BlockId>) -> Result<(), ErrorObject> {
        let head = self.backend.head();
        let number = match block {
            None => return Ok(()),
            Some(BlockId::Number(tag)) => self.number_of(tag),
            Some(BlockId::Hash(h)) => match self.backend.block_by_hash(h.block_hash)? {
                Some(d) => d.block.header.number,
                None => {
                    return Err(ErrorObject::server(format!(
                        "header for hash {} not found",
                        h.block_hash
                    )))
                }
            },
        };
        match number.cmp(&head) {
            std::cmp::Ordering::Equal => Ok(()),
            std::cmp::Ordering::Greater => Err(ErrorObject::server(format!(
                "header not found: block {number} is above the head {head}"
            ))),
            std::cmp::Ordering::Less => Err(ErrorObject::server(HISTORICAL_STATE)),
        }
    }

    /// The block holding a mined transaction and its index there.
    fn mined(&self, hash: B256) -> Result<Option<(Arc<BlockData>, usize)>, ErrorObject> {
        let Some((height, index)) = self.backend.tx_location(hash)? else {
            return Ok(None);
        };
        Ok(self.backend.block_by_number(height)?.map(|d| (d, index)))
    }

    /// `eth_feeHistory` over stored blocks.
    fn fee_history(
        &self,
        count: u64,
        newest: BlockNumberOrTag,
        percentiles: Option<Vec<f64>>,
    ) -> Result<FeeHistory, ErrorObject> {
        if let Some(ps) = &percentiles {
            if ps.len() > 100 {
                return Err(ErrorObject::invalid_params(
                    "invalid argument 2 (reward percentiles): at most 100 percentiles",
                ));
            }
            for (i, p) in ps.iter().enumerate() {
                if !(0.0..=100.0).contains(p) || (i > 0 && *p < ps[i - 1]) {
                    return Err(ErrorObject::invalid_params(format!(
                        "invalid argument 2 (reward percentiles): {p} is out of order or outside 0..=100"
                    )));
                }
            }
        }
        let head = self.backend.head();
        let newest = self.number_of(newest);
        if newest > head {
            return Err(ErrorObject::server(format!(
                "request beyond head block: requested {newest}, head {head}"
            )));
        }
        let count = count.min(self.config.max_fee_history_blocks);
        if count == 0 {
            return Ok(FeeHistory::default());
        }
        let oldest = newest.saturating_sub(count - 1);
        let mut history = FeeHistory {
            oldest_block: oldest,
            reward: percentiles.as_ref().map(|_| Vec::new()),
            ..Default::default()
        };
        for number in oldest..=newest {
            let Some(data) = self.backend.block_by_number(number)? else {
                // Pruned or not yet stored: the history starts after the gap.
                history = FeeHistory {
                    oldest_block: number + 1,
                    reward: percentiles.as_ref().map(|_| Vec::new()),
                    ..Default::default()
                };
                continue;
            };
            let h = &data.block.header;
            history
                .base_fee_per_gas
                .push(u128::from(h.base_fee_per_gas));
            history.gas_used_ratio.push(if h.gas_limit == 0 {
                0.0
            } else {
                h.gas_used as f64 / h.gas_limit as f64
            });
            if let (Some(ps), Some(rewards)) = (&percentiles, &mut history.reward) {
                rewards.push(block_rewards(&data, ps));
            }
        }
        if history.base_fee_per_gas.is_empty() {
            return Ok(FeeHistory::default());
        }
        let next = if newest == head {
            u128::from(self.backend.next_base_fee())
        } else {
            match self.backend.block_by_number(newest + 1)? {
                Some(d) => u128::from(d.block.header.base_fee_per_gas),
                None => u128::from(self.backend.next_base_fee()),
            }
        };
        history.base_fee_per_gas.push(next);
        Ok(history)
    }

    /// `eth_getLogs`: a block range or one block hash, filtered by the bloom first.
    fn logs(
        &self,
        filter: &Filter,
        min_topics: usize,
    ) -> Result<Vec<alloy_rpc_types_eth::Log>, ErrorObject> {
        let mut out = Vec::new();
        let (from, to) = match filter.block_option {
            FilterBlockOption::AtBlockHash(hash) => {
                let Some(data) = self.backend.block_by_hash(hash)? else {
                    return Err(ErrorObject::server(format!("unknown block {hash}")));
                };
                self.push_block_logs(filter, min_topics, &data, &mut out)?;
                return Ok(out);
            }
            FilterBlockOption::Range {
                from_block,
                to_block,
            } => {
                let head = self.backend.head();
                let from = from_block.map_or(head, |t| self.number_of(t));
                let to = to_block.map_or(head, |t| self.number_of(t)).min(head);
                (from, to)
            }
        };
        if from > to {
            if from > self.backend.head() {
                return Ok(out);
            }
            return Err(ErrorObject::invalid_params(format!(
                "invalid block range params: fromBlock {from} is after toBlock {to}"
            )));
        }
        let max = self.config.max_log_blocks;
        if to - from >= max {
            return Err(ErrorObject::new(
                LIMIT_EXCEEDED,
                format!(
                    "query exceeds max block range {max}: asked for {} blocks ({from}..={to}); split the range",
                    to - from + 1
                ),
            ));
        }
        for number in from..=to {
            let Some(data) = self.backend.block_by_number(number)? else {
                continue;
            };
            if !filter.matches_bloom(data.block.header.logs_bloom) {
                continue;
            }
            self.push_block_logs(filter, min_topics, &data, &mut out)?;
        }
        Ok(out)
    }

    fn push_block_logs(
        &self,
        filter: &Filter,
        min_topics: usize,
        data: &BlockData,
        out: &mut Vec<alloy_rpc_types_eth::Log>,
    ) -> Result<(), ErrorObject> {
        let hash = data.block.hash();
        for log in convert::block_logs(data, hash) {
            let topics = log.topics();
            if topics.len() >= min_topics
                && filter.matches_address(log.address())
                && filter.matches_topics(topics)
            {
                if out.len() >= self.config.max_logs {
                    return Err(ErrorObject::new(
                        LIMIT_EXCEEDED,
                        format!(
                            "query returned more than {} results: narrow the block range or the filter",
                            self.config.max_logs
                        ),
                    ));
                }
                out.push(log);
            }
        }
        Ok(())
    }
}

/// Transaction `index` of a block as an RPC object.
fn tx_at(data: &BlockData, index: U64) -> Option<alloy_rpc_types_eth::Transaction> {
    let index = usize::try_from(index).ok()?;
    convert::mined_tx(data, data.block.hash(), index)
}

/// The tips at each percentile, weighted by gas used (geth's algorithm): sort the transactions by
/// tip, and for percentile p take the tip of the transaction where the running gas reaches p % of
/// the block's gas. Zeros for an empty block.
fn block_rewards(data: &BlockData, percentiles: &[f64]) -> Vec<u128> {
    let base_fee = data.block.header.base_fee_per_gas;
    let mut tips: Vec<(u128, u64)> = data
        .block
        .transactions
        .iter()
        .zip(convert::gas_used_per_tx(data))
        .map(|(tx, gas)| (tx.effective_tip_per_gas(base_fee).unwrap_or(0), gas))
        .collect();
    if tips.is_empty() {
        return vec![0; percentiles.len()];
    }
    tips.sort_unstable_by_key(|(tip, _)| *tip);
    let total: u64 = tips.iter().map(|(_, gas)| gas).sum();
    let mut rewards = Vec::with_capacity(percentiles.len());
    let mut i = 0;
    let mut sum = tips[0].1;
    for p in percentiles {
        let threshold = (total as f64 * p / 100.0) as u64;
        while sum < threshold && i + 1 < tips.len() {
            i += 1;
            sum += tips[i].1;
        }
        rewards.push(tips[i].0);
    }
    rewards
}

/// The JSON-RPC error for a failed call: code 3 with the revert data for a revert.
fn call_error(e: CallError) -> ErrorObject {
    match e {
        CallError::Reverted { output } => {
            let message = match revert_reason(&output) {
                Some(reason) => format!("execution reverted: {reason}"),
                None => "execution reverted".to_owned(),
            };
            ErrorObject {
                code: EXECUTION_REVERTED,
                message,
                data: Some(serde_json::Value::String(output.to_string())),
            }
        }
        CallError::Other { code, message } => ErrorObject::new(code, message),
    }
}

/// Solidity's `Error(string)` selector.
const ERROR_SELECTOR: [u8; 4] = [0x08, 0xc3, 0x79, 0xa0];
/// Solidity's `Panic(uint256)` selector.
const PANIC_SELECTOR: [u8; 4] = [0x4e, 0x48, 0x7b, 0x71];

/// The reason in revert data: the `Error(string)` message, or a `Panic(uint256)` code.
pub(crate) fn revert_reason(output: &[u8]) -> Option<String> {
    let (selector, body) = output.split_at_checked(4)?;
    let word = |i: usize| body.get(i * 32..(i + 1) * 32);
    let small = |w: &[u8]| -> Option<usize> {
        // A length or offset that does not fit in 8 bytes cannot point inside the data.
        if w[..24].iter().any(|b| *b != 0) {
            return None;
        }
        usize::try_from(u64::from_be_bytes(w[24..].try_into().ok()?)).ok()
    };
    if selector == ERROR_SELECTOR {
        let offset = small(word(0)?)?;
        let len_word = body.get(offset..offset.checked_add(32)?)?;
        let len = small(len_word)?;
        let start = offset.checked_add(32)?;
        let text = body.get(start..start.checked_add(len)?)?;
        return String::from_utf8(text.to_vec()).ok();
    }
    if selector == PANIC_SELECTOR && body.len() == 32 {
        let code = small(word(0)?)?;
        let what = match code {
            0x01 => "assert(false)",
            0x11 => "arithmetic underflow or overflow",
            0x12 => "division or modulo by zero",
            0x21 => "enum overflow",
            0x22 => "invalid encoded storage byte array accessed",
            0x31 => "out-of-bounds array access; popping on an empty array",
            0x32 => "out-of-bounds access of an array or bytesN",
            0x41 => "out of memory",
            0x51 => "uninitialized function",
            _ => "unknown panic code",
        };
        return Some(format!("{what} (0x{code:02x})"));
    }
    None
}

/// A count given as a hex quantity (`"0x5"`) or a plain JSON number (`5`), as geth accepts for
/// `eth_feeHistory`.
struct Quantity(u64);

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Number(u64),
            Hex(U64),
        }
        match Either::deserialize(d) {
            Ok(Either::Number(n)) => Ok(Self(n)),
            Ok(Either::Hex(n)) => Ok(Self(n.to())),
            Err(_) => Err(serde::de::Error::custom(
                "expected a hex quantity like \"0x5\" or a number",
            )),
        }
    }
}

/// A storage slot: a hex quantity or a 32-byte hex word, leading zeros allowed.
struct StorageSlot(U256);

impl<'de> Deserialize<'de> for StorageSlot {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let digits = s
            .strip_prefix("0x")
            .or_else(|| s.strip_prefix("0X"))
            .ok_or_else(|| serde::de::Error::custom("hex string without 0x prefix"))?;
        if digits.is_empty() || digits.len() > 64 {
            return Err(serde::de::Error::custom(
                "a storage slot is 1 to 64 hex digits after 0x",
            ));
        }
        U256::from_str_radix(digits, 16)
            .map(Self)
            .map_err(|_| serde::de::Error::custom("invalid hex digit in storage slot"))
    }
}

/// The JSON form of [`CallRequest`]; both `input` and `data` are accepted.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CallRequestJson {
    #[serde(default)]
    from: Option<Address>,
    #[serde(default)]
    to: Option<Address>,
    #[serde(default, with = "alloy_serde::quantity::opt")]
    gas: Option<u64>,
    #[serde(default, with = "alloy_serde::quantity::opt")]
    gas_price: Option<u128>,
    #[serde(default, with = "alloy_serde::quantity::opt")]
    max_fee_per_gas: Option<u128>,
    #[serde(default, with = "alloy_serde::quantity::opt")]
    max_priority_fee_per_gas: Option<u128>,
    #[serde(default)]
    value: Option<U256>,
    #[serde(default)]
    input: Option<Bytes>,
    #[serde(default)]
    data: Option<Bytes>,
    #[serde(default, with = "alloy_serde::quantity::opt")]
    nonce: Option<u64>,
    #[serde(default)]
    access_list: Option<alloy_eips::eip2930::AccessList>,
}

impl TryFrom<CallRequestJson> for CallRequest {
    type Error = String;

    fn try_from(j: CallRequestJson) -> Result<Self, String> {
        let input = match (j.input, j.data) {
            (Some(input), Some(data)) if input != data => {
                return Err("both \"data\" and \"input\" are set and not equal. Please use \"input\" to pass transaction call data".into());
            }
            (input, data) => input.or(data),
        };
        if j.gas_price.is_some()
            && (j.max_fee_per_gas.is_some() || j.max_priority_fee_per_gas.is_some())
        {
            return Err(
                "both gasPrice and (maxFeePerGas or maxPriorityFeePerGas) specified".into(),
            );
        }
        Ok(Self {
            from: j.from,
            to: j.to,
            gas: j.gas,
            gas_price: j.gas_price,
            max_fee_per_gas: j.max_fee_per_gas,
            max_priority_fee_per_gas: j.max_priority_fee_per_gas,
            value: j.value,
            input,
            nonce: j.nonce,
            access_list: j.access_list,
        })
    }
}

/// A [`CallRequest`] parameter, read through [`CallRequestJson`].
struct CallParam(CallRequest);

impl<'de> Deserialize<'de> for CallParam {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        CallRequestJson::deserialize(d)?
            .try_into()
            .map(Self)
            .map_err(serde::de::Error::custom)
    }
}
