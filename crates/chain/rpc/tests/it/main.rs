//! The JSON-RPC server over real HTTP on 127.0.0.1, against an in-memory backend holding blocks
//! of real signed transactions.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use alloy_consensus::crypto::secp256k1::sign_message;
use alloy_consensus::{SignableTransaction, TxEip1559, TxLegacy};
use alloy_eips::eip2930::AccessList;
use alloy_primitives::{address, b256, hex, Address, Bytes, Log, LogData, TxKind, B256, U256};
use chain_rpc::{
    AccountView, Backend, BackendError, BlockData, CallError, CallRequest, Config, NodeStatus,
    Server, SubmitError, SyncProgress,
};
use chain_types::{
    decode_and_recover, logs_bloom, receipts_root, recover_sender, transactions_root, Block,
    Encodable2718, Header, Receipt, RecoveredTx, TxEnvelope, TxRules,
};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CHAIN: u64 = 7215;
const KEY: B256 = b256!("4646464646464646464646464646464646464646464646464646464646464646");
const TO: Address = address!("3535353535353535353535353535353535353535");
const TOKEN: Address = address!("00000000000000000000000000000000000b7700");
const PROPOSER: Address = address!("1111111111111111111111111111111111111111");
const TRANSFER_TOPIC: B256 =
    b256!("ddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef");
const GWEI: u128 = 1_000_000_000;

fn sign_legacy(tx: TxLegacy) -> TxEnvelope {
    let sig = sign_message(KEY, tx.signature_hash()).unwrap();
    tx.into_signed(sig).into()
}

fn sign_1559(tx: TxEip1559) -> TxEnvelope {
    let sig = sign_message(KEY, tx.signature_hash()).unwrap();
    tx.into_signed(sig).into()
}

fn tx1559(nonce: u64, to: TxKind, input: &[u8], tip_gwei: u128) -> TxEnvelope {
    sign_1559(TxEip1559 {
        chain_id: CHAIN,
        nonce,
        gas_limit: 200_000,
        max_fee_per_gas: 100 * GWEI,
        max_priority_fee_per_gas: tip_gwei * GWEI,
        to,
        value: U256::ZERO,
        access_list: AccessList::default(),
        input: Bytes::copy_from_slice(input),
    })
}

/// Builds a block with consistent roots, bloom and gas from transactions and their
/// (gas used, logs).
fn make_block(
    parent: &Block,
    txs: Vec<TxEnvelope>,
    outcomes: Vec<(u64, Vec<Log>)>,
    base_fee: u64,
) -> BlockData {
    let mut cumulative = 0;
    let receipts: Vec<Receipt> = txs
        .iter()
        .zip(outcomes)
        .map(|(tx, (gas, logs))| {
            cumulative += gas;
            Receipt::new(tx.tx_type(), true, cumulative, logs)
        })
        .collect();
    let senders = txs.iter().map(|tx| recover_sender(tx).unwrap()).collect();
    let header = Header {
        parent_hash: parent.hash(),
        number: parent.header.number + 1,
        timestamp_ms: parent.header.timestamp_ms + 1_500,
        proposer: PROPOSER,
        epoch: 0,
        state_root: B256::repeat_byte(0x5a),
        transactions_root: transactions_root(&txs),
        receipts_root: receipts_root(&receipts),
        logs_bloom: logs_bloom(&receipts),
        gas_limit: 30_000_000,
        gas_used: cumulative,
        base_fee_per_gas: base_fee,
        extra_data: Bytes::from_static(b"btt"),
    };
    BlockData {
        block: Block {
            header,
            transactions: txs,
        },
        senders,
        receipts,
    }
}

fn transfer_log(amount: u8) -> Log {
    Log {
        address: TOKEN,
        data: LogData::new_unchecked(
            vec![
                TRANSFER_TOPIC,
                B256::left_padding_from(sender().as_slice()),
                B256::left_padding_from(TO.as_slice()),
            ],
            Bytes::from(vec![amount]),
        ),
    }
}

fn sender() -> Address {
    recover_sender(&tx1559(0, TxKind::Create, &[], 1)).unwrap()
}

/// Block 0: genesis. Block 1: a legacy transfer and a contract creation. Block 2: two token
/// transfers emitting logs.
fn chain() -> Vec<Arc<BlockData>> {
    let genesis = Block {
        header: Header {
            timestamp_ms: 1_700_000_000_000,
            gas_limit: 30_000_000,
            base_fee_per_gas: 1_000_000_000,
            transactions_root: transactions_root(&[]),
            receipts_root: receipts_root(&[]),
            ..Default::default()
        },
        transactions: vec![],
    };
    let g = BlockData {
        block: genesis.clone(),
        senders: vec![],
        receipts: vec![],
    };
    let legacy = sign_legacy(TxLegacy {
        chain_id: Some(CHAIN),
        nonce: 0,
        gas_price: 3 * GWEI,
        gas_limit: 21_000,
        to: TxKind::Call(TO),
        value: U256::from(10u64).pow(U256::from(18)),
        input: Bytes::new(),
    });
    let create = tx1559(1, TxKind::Create, &hex!("6080604052"), 2);
    let b1 = make_block(
        &genesis,
        vec![legacy, create],
        vec![(21_000, vec![]), (60_000, vec![])],
        1_000_000_000,
    );
    let call_input = hex!("a9059cbb");
    let t1 = tx1559(2, TxKind::Call(TOKEN), &call_input, 5);
    let t2 = tx1559(3, TxKind::Call(TOKEN), &call_input, 1);
    let b2 = make_block(
        &b1.block,
        vec![t1, t2],
        vec![
            (40_000, vec![transfer_log(1), transfer_log(2)]),
            (30_000, vec![transfer_log(3)]),
        ],
        900_000_000,
    );
    vec![Arc::new(g), Arc::new(b1), Arc::new(b2)]
}

struct Fake {
    blocks: Vec<Arc<BlockData>>,
    mempool: Mutex<HashMap<B256, RecoveredTx>>,
}

impl Fake {
    fn new() -> Self {
        Self {
            blocks: chain(),
            mempool: Mutex::default(),
        }
    }
}

impl Backend for Fake {
    fn chain_id(&self) -> u64 {
        CHAIN
    }
    fn client_version(&self) -> String {
        "btt/test".into()
    }
    fn head(&self) -> u64 {
        self.blocks.len() as u64 - 1
    }
    fn block_by_number(&self, number: u64) -> Result<Option<Arc<BlockData>>, BackendError> {
        Ok(usize::try_from(number)
            .ok()
            .and_then(|n| self.blocks.get(n))
            .cloned())
    }
    fn block_by_hash(&self, hash: B256) -> Result<Option<Arc<BlockData>>, BackendError> {
        Ok(self.blocks.iter().find(|b| b.block.hash() == hash).cloned())
    }
    fn tx_location(&self, hash: B256) -> Result<Option<(u64, usize)>, BackendError> {
        for b in &self.blocks {
            if let Some(i) = b
                .block
                .transactions
                .iter()
                .position(|t| *t.tx_hash() == hash)
            {
                return Ok(Some((b.block.header.number, i)));
            }
        }
        Ok(None)
    }
    fn pending_tx(&self, hash: B256) -> Option<RecoveredTx> {
        self.mempool.lock().unwrap().get(&hash).cloned()
    }
    fn account(&self, address: Address) -> Result<AccountView, BackendError> {
        if address == TOKEN {
            return Err(BackendError::new("database read failed: disk on fire"));
        }
        Ok(AccountView {
            nonce: if address == sender() { 4 } else { 0 },
            balance: U256::from(123_456_789u64),
            code_hash: B256::ZERO,
        })
    }
    fn pending_nonce(&self, address: Address) -> Result<u64, BackendError> {
        let pending = self
            .mempool
            .lock()
            .unwrap()
            .values()
            .filter(|t| t.sender() == address)
            .count() as u64;
        Ok(self.account(address)?.nonce + pending)
    }
    fn code(&self, _: Address) -> Result<Bytes, BackendError> {
        Ok(Bytes::from_static(&[0x60, 0x00]))
    }
    fn storage(&self, _: Address, slot: U256) -> Result<B256, BackendError> {
        Ok(B256::from(slot + U256::from(1)))
    }
    fn call(&self, request: CallRequest) -> Result<Bytes, CallError> {
        match request.input.as_ref().map(|b| &b[..]) {
            Some([0xde, 0xad]) => Err(CallError::Reverted {
                output: Bytes::from_static(&hex!(
                    "08c379a0"
                    "0000000000000000000000000000000000000000000000000000000000000020"
                    "0000000000000000000000000000000000000000000000000000000000000004"
                    "6e6f706500000000000000000000000000000000000000000000000000000000"
                )),
            }),
            Some([0xbe, 0xef]) => Err(CallError::Other {
                code: -32000,
                message: "insufficient funds for gas * price + value".into(),
            }),
            other => Ok(Bytes::copy_from_slice(other.unwrap_or(&[]))),
        }
    }
    fn estimate_gas(&self, request: CallRequest) -> Result<u64, CallError> {
        self.call(request.clone())?;
        Ok(21_000 + 16 * request.input.map_or(0, |i| i.len() as u64))
    }
    fn send_raw_transaction(&self, raw: Bytes) -> Result<B256, SubmitError> {
        let tx = decode_and_recover(&raw, &TxRules::new(CHAIN, 30_000_000))?;
        let hash = tx.hash();
        self.mempool.lock().unwrap().insert(hash, tx);
        Ok(hash)
    }
    fn next_base_fee(&self) -> u64 {
        850_000_000
    }
    fn suggested_priority_fee(&self) -> u128 {
        GWEI
    }
    fn syncing(&self) -> Option<SyncProgress> {
        None
    }
    fn status(&self) -> NodeStatus {
        let head = self.blocks.last().unwrap();
        NodeStatus {
            chain_id: CHAIN,
            client_version: self.client_version(),
            height: head.block.header.number,
            finalized_hash: head.block.hash(),
            finalized_timestamp_ms: head.block.header.timestamp_ms,
            epoch: 0,
            validators: vec!["0xabcd".into()],
            validator_identity: None,
            last_finality_latency_ms: Some(420),
            peers: 3,
            mempool_txs: self.mempool.lock().unwrap().len() as u64,
            syncing: false,
        }
    }
    fn extension(
        &self,
        method: &str,
        params: &[Value],
    ) -> Option<Result<Value, chain_rpc::ExtensionError>> {
        match method {
            "btt_echo" => Some(Ok(json!({ "params": params }))),
            "btt_refuse" => Some(Err(chain_rpc::ExtensionError::invalid_params(
                "epoch must be a number",
            ))),
            _ => None,
        }
    }
}

/// `Fake`, but catching up.
struct Syncing(Fake);

impl Backend for Syncing {
    fn chain_id(&self) -> u64 {
        self.0.chain_id()
    }
    fn client_version(&self) -> String {
        self.0.client_version()
    }
    fn head(&self) -> u64 {
        self.0.head()
    }
    fn block_by_number(&self, n: u64) -> Result<Option<Arc<BlockData>>, BackendError> {
        self.0.block_by_number(n)
    }
    fn block_by_hash(&self, h: B256) -> Result<Option<Arc<BlockData>>, BackendError> {
        self.0.block_by_hash(h)
    }
    fn tx_location(&self, h: B256) -> Result<Option<(u64, usize)>, BackendError> {
        self.0.tx_location(h)
    }
    fn pending_tx(&self, h: B256) -> Option<RecoveredTx> {
        self.0.pending_tx(h)
    }
    fn account(&self, a: Address) -> Result<AccountView, BackendError> {
        self.0.account(a)
    }
    fn pending_nonce(&self, a: Address) -> Result<u64, BackendError> {
        self.0.pending_nonce(a)
    }
    fn code(&self, a: Address) -> Result<Bytes, BackendError> {
        self.0.code(a)
    }
    fn storage(&self, a: Address, s: U256) -> Result<B256, BackendError> {
        self.0.storage(a, s)
    }
    fn call(&self, r: CallRequest) -> Result<Bytes, CallError> {
        self.0.call(r)
    }
    fn estimate_gas(&self, r: CallRequest) -> Result<u64, CallError> {
        self.0.estimate_gas(r)
    }
    fn send_raw_transaction(&self, raw: Bytes) -> Result<B256, SubmitError> {
        self.0.send_raw_transaction(raw)
    }
    fn next_base_fee(&self) -> u64 {
        self.0.next_base_fee()
    }
    fn suggested_priority_fee(&self) -> u128 {
        self.0.suggested_priority_fee()
    }
    fn syncing(&self) -> Option<SyncProgress> {
        Some(SyncProgress {
            starting_block: 0,
            current_block: 2,
            highest_block: 0x100,
        })
    }
    fn status(&self) -> NodeStatus {
        self.0.status()
    }
}

struct Http {
    addr: SocketAddr,
}

struct Reply {
    status: u16,
    head: String,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

impl Http {
    async fn raw(&self, method: &str, body: &[u8], extra: &str) -> Reply {
        let mut s = TcpStream::connect(self.addr).await.unwrap();
        let head = format!(
            "{method} / HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).await.unwrap();
        // The server may answer (413) before reading a huge body; ignore a reset while writing.
        let _ = s.write_all(body).await;
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out).await;
        let text = String::from_utf8(out).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let status = head[9..12].parse().unwrap();
        Reply {
            status,
            head: head.to_ascii_lowercase(),
            body: body.to_owned(),
        }
    }

    async fn post(&self, body: &str) -> Reply {
        self.raw("POST", body.as_bytes(), "").await
    }

    /// Calls `method` and returns the whole response object.
    async fn call(&self, method: &str, params: Value) -> Value {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let reply = self.post(&body.to_string()).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply.json()
    }

    async fn result(&self, method: &str, params: Value) -> Value {
        let r = self.call(method, params).await;
        assert!(r.get("error").is_none(), "{method}: {r}");
        r["result"].clone()
    }

    async fn error(&self, method: &str, params: Value) -> (i64, String, Value) {
        let r = self.call(method, params).await;
        let e = &r["error"];
        assert!(e.is_object(), "{method}: expected an error, got {r}");
        (
            e["code"].as_i64().unwrap(),
            e["message"].as_str().unwrap().to_owned(),
            e.get("data").cloned().unwrap_or(Value::Null),
        )
    }
}

async fn start(config: Config) -> (Server, Http, Arc<Fake>) {
    let fake = Arc::new(Fake::new());
    let server = Server::start("127.0.0.1:0".parse().unwrap(), fake.clone(), config)
        .await
        .unwrap();
    let http = Http {
        addr: server.local_addr(),
    };
    (server, http, fake)
}

fn hx(n: u64) -> String {
    format!("{n:#x}")
}

#[tokio::test]
async fn simple_methods_exact_json() {
    let (server, http, fake) = start(Config::default()).await;
    let r = http
        .post(r#"{"jsonrpc":"2.0","id":7,"method":"eth_chainId","params":[]}"#)
        .await;
    assert_eq!(r.body, r#"{"jsonrpc":"2.0","id":7,"result":"0x1c2f"}"#);
    assert!(r.head.contains("content-type: application/json"));
    assert!(r.head.contains("access-control-allow-origin: *"));
    let r = http
        .post(r#"{"jsonrpc":"2.0","id":"abc","method":"net_version"}"#)
        .await;
    assert_eq!(r.body, r#"{"jsonrpc":"2.0","id":"abc","result":"7215"}"#);
    assert_eq!(
        http.result("web3_clientVersion", json!([])).await,
        "btt/test"
    );
    assert_eq!(http.result("eth_blockNumber", json!([])).await, "0x2");
    assert_eq!(http.result("eth_syncing", json!([])).await, false);
    assert_eq!(http.result("eth_accounts", json!([])).await, json!([]));
    assert_eq!(http.result("net_listening", json!([])).await, true);
    assert_eq!(http.result("net_peerCount", json!([])).await, "0x3");
    // base fee 0.85 gwei + tip 1 gwei
    assert_eq!(
        http.result("eth_gasPrice", json!([])).await,
        hx(1_850_000_000)
    );
    assert_eq!(
        http.result("eth_maxPriorityFeePerGas", json!([])).await,
        "0x3b9aca00"
    );
    let me = sender();
    assert_eq!(
        http.result("eth_getBalance", json!([me, "latest"])).await,
        "0x75bcd15"
    );
    assert_eq!(
        http.result("eth_getBalance", json!([me, "0x2"])).await,
        "0x75bcd15"
    );
    let head_hash = fake.blocks[2].block.hash();
    assert_eq!(
        http.result("eth_getBalance", json!([me, {"blockHash": head_hash}]))
            .await,
        "0x75bcd15"
    );
    assert_eq!(
        http.result("eth_getTransactionCount", json!([me, "finalized"]))
            .await,
        "0x4"
    );
    assert_eq!(http.result("eth_getCode", json!([TO])).await, "0x6000");
    assert_eq!(
        http.result(
            "eth_getStorageAt",
            json!([
                TO,
                "0x0000000000000000000000000000000000000000000000000000000000000002",
                "latest"
            ])
        )
        .await,
        "0x0000000000000000000000000000000000000000000000000000000000000003"
    );
    let status = http.result("btt_status", json!([])).await;
    assert_eq!(
        status,
        json!({
            "chainId": CHAIN, "clientVersion": "btt/test", "height": 2,
            "finalizedHash": head_hash, "finalizedTimestampMs": 1_700_000_003_000u64, "epoch": 0,
            "validators": ["0xabcd"], "validatorIdentity": null, "lastFinalityLatencyMs": 420,
            "peers": 3, "mempoolTxs": 0, "syncing": false
        })
    );
    assert_eq!(http.result("btt_nodeInfo", json!([])).await, status);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn historical_and_future_state_is_refused() {
    let (server, http, fake) = start(Config::default()).await;
    let me = sender();
    for block in [
        json!("0x1"),
        json!("earliest"),
        json!({"blockHash": fake.blocks[1].block.hash()}),
    ] {
        let (code, message, _) = http.error("eth_getBalance", json!([me, block])).await;
        assert_eq!(code, -32000);
        assert_eq!(
            message,
            "historical state is not available; this node keeps the latest state only"
        );
    }
    let (code, message, _) = http.error("eth_getCode", json!([me, "0x9"])).await;
    assert_eq!(
        (code, message.as_str()),
        (-32000, "header not found: block 9 is above the head 2")
    );
    let (code, message, _) = http
        .error(
            "eth_call",
            json!([{"to": TO}, {"blockHash": B256::repeat_byte(9)}]),
        )
        .await;
    assert_eq!(code, -32000);
    assert!(message.starts_with("header for hash 0x0909"), "{message}");
    // A storage failure is an internal error with the node's message.
    let (code, message, _) = http.error("eth_getBalance", json!([TOKEN])).await;
    assert_eq!(
        (code, message.as_str()),
        (-32603, "database read failed: disk on fire")
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn blocks_match_alloy_and_our_hash() {
    let (server, http, fake) = start(Config::default()).await;
    let b1 = &fake.blocks[1];
    let hash1 = b1.block.hash();
    let block = http
        .result("eth_getBlockByNumber", json!(["0x1", false]))
        .await;
    let tx_hashes: Vec<B256> = b1.block.transactions.iter().map(|t| *t.tx_hash()).collect();
    let h = &b1.block.header;
    assert_eq!(
        block,
        json!({
            "hash": hash1,
            "parentHash": fake.blocks[0].block.hash(),
            "sha3Uncles": "0x1dcc4de8dec75d7aab85b567b6ccd41ad312451b948a7413f0a142fd40d49347",
            "miner": "0x1111111111111111111111111111111111111111",
            "stateRoot": h.state_root,
            "transactionsRoot": h.transactions_root,
            "receiptsRoot": h.receipts_root,
            "logsBloom": h.logs_bloom,
            "difficulty": "0x0",
            "number": "0x1",
            "gasLimit": "0x1c9c380",
            "gasUsed": hx(81_000),
            "timestamp": hx(1_700_000_001),
            "extraData": "0x627474",
            "mixHash": B256::ZERO,
            "nonce": "0x0000000000000000",
            "baseFeePerGas": "0x3b9aca00",
            "size": hx(b1.block.encoded().len() as u64),
            "uncles": [],
            "transactions": tx_hashes,
        })
    );
    // Every tag for the head gives block 2; earliest gives genesis; beyond the head is null.
    let hash2 = fake.blocks[2].block.hash();
    for tag in ["latest", "safe", "finalized", "pending", "0x2"] {
        let b = http
            .result("eth_getBlockByNumber", json!([tag, false]))
            .await;
        assert_eq!(b["hash"], json!(hash2), "{tag}");
    }
    let b = http
        .result("eth_getBlockByNumber", json!(["earliest", false]))
        .await;
    assert_eq!(b["number"], "0x0");
    assert_eq!(b["transactions"], json!([]));
    assert_eq!(
        http.result("eth_getBlockByNumber", json!(["0x3", false]))
            .await,
        Value::Null
    );
    assert_eq!(
        http.result("eth_getBlockByHash", json!([B256::ZERO, false]))
            .await,
        Value::Null
    );

    // Full block: alloy parses it, and the fields line up with the chain.
    let full = http
        .result("eth_getBlockByHash", json!([hash1, true]))
        .await;
    let parsed: alloy_rpc_types_eth::Block = serde_json::from_value(full.clone()).unwrap();
    assert_eq!(parsed.header.hash, hash1);
    assert_eq!(parsed.header.inner.beneficiary, PROPOSER);
    assert_eq!(parsed.header.inner.base_fee_per_gas, Some(1_000_000_000));
    let txs = parsed.transactions.as_transactions().unwrap();
    assert_eq!(txs.len(), 2);
    assert_eq!(txs[0].inner.signer(), sender());
    assert_eq!(txs[0].inner.inner(), &b1.block.transactions[0]);
    assert_eq!(txs[1].inner.inner(), &b1.block.transactions[1]);
    assert_eq!(txs[1].block_hash, Some(hash1));
    assert_eq!(txs[1].block_number, Some(1));
    assert_eq!(txs[1].transaction_index, Some(1));
    // Legacy: gasPrice is the price paid; 1559: base fee + tip.
    assert_eq!(full["transactions"][0]["gasPrice"], "0xb2d05e00");
    assert_eq!(full["transactions"][1]["gasPrice"], hx(3_000_000_000));
    assert_eq!(full["transactions"][1]["type"], "0x2");
    assert_eq!(full["transactions"][0]["chainId"], "0x1c2f");
    assert_eq!(full["transactions"][0]["blockTimestamp"], hx(1_700_000_001));

    assert_eq!(
        http.result("eth_getBlockTransactionCountByNumber", json!(["0x1"]))
            .await,
        "0x2"
    );
    assert_eq!(
        http.result("eth_getBlockTransactionCountByHash", json!([hash1]))
            .await,
        "0x2"
    );
    let t = http
        .result(
            "eth_getTransactionByBlockNumberAndIndex",
            json!(["0x1", "0x1"]),
        )
        .await;
    assert_eq!(t["hash"], json!(tx_hashes[1]));
    let t = http
        .result(
            "eth_getTransactionByBlockHashAndIndex",
            json!([hash1, "0x5"]),
        )
        .await;
    assert_eq!(t, Value::Null);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn transactions_and_receipts() {
    let (server, http, fake) = start(Config::default()).await;
    let b1 = &fake.blocks[1];
    let b2 = &fake.blocks[2];
    let create_hash = *b1.block.transactions[1].tx_hash();
    let tx = http
        .result("eth_getTransactionByHash", json!([create_hash]))
        .await;
    assert_eq!(tx["from"], json!(sender()));
    assert_eq!(tx["to"], Value::Null);
    assert_eq!(tx["nonce"], "0x1");
    assert_eq!(tx["blockNumber"], "0x1");

    let receipt = http
        .result("eth_getTransactionReceipt", json!([create_hash]))
        .await;
    assert_eq!(
        receipt,
        json!({
            "type": "0x2",
            "status": "0x1",
            "cumulativeGasUsed": hx(81_000),
            "logs": [],
            "logsBloom": alloy_primitives::Bloom::ZERO,
            "transactionHash": create_hash,
            "transactionIndex": "0x1",
            "blockHash": b1.block.hash(),
            "blockNumber": "0x1",
            "gasUsed": hx(60_000),
            "effectiveGasPrice": hx(3_000_000_000),
            "from": sender(),
            "to": null,
            "contractAddress": sender().create(1),
        })
    );
    let parsed: alloy_rpc_types_eth::TransactionReceipt = serde_json::from_value(receipt).unwrap();
    assert_eq!(parsed.contract_address, Some(sender().create(1)));
    assert_eq!(parsed.gas_used, 60_000);

    // Logs carry their block, transaction and block-wide log index.
    let second = *b2.block.transactions[1].tx_hash();
    let receipt = http
        .result("eth_getTransactionReceipt", json!([second]))
        .await;
    assert_eq!(receipt["gasUsed"], hx(30_000));
    // base fee 0.9 gwei + tip min(1 gwei, 100 - 0.9) = 1.9 gwei
    assert_eq!(receipt["effectiveGasPrice"], hx(1_900_000_000));
    assert_eq!(receipt["contractAddress"], Value::Null);
    assert_eq!(
        receipt["logs"][0],
        json!({
            "address": TOKEN,
            "topics": [TRANSFER_TOPIC, B256::left_padding_from(sender().as_slice()), B256::left_padding_from(TO.as_slice())],
            "data": "0x03",
            "blockHash": b2.block.hash(),
            "blockNumber": "0x2",
            "blockTimestamp": hx(1_700_000_003),
            "transactionHash": second,
            "transactionIndex": "0x1",
            "logIndex": "0x2",
            "removed": false,
        })
    );
    let parsed: alloy_rpc_types_eth::TransactionReceipt = serde_json::from_value(receipt).unwrap();
    assert_eq!(parsed.inner.logs()[0].log_index, Some(2));

    let all = http.result("eth_getBlockReceipts", json!(["latest"])).await;
    assert_eq!(all.as_array().unwrap().len(), 2);
    assert_eq!(all[1]["transactionHash"], json!(second));

    // Unknown hashes are null.
    assert_eq!(
        http.result("eth_getTransactionByHash", json!([B256::ZERO]))
            .await,
        Value::Null
    );
    assert_eq!(
        http.result("eth_getTransactionReceipt", json!([B256::ZERO]))
            .await,
        Value::Null
    );

    // Send a new transaction: it is pending, counted in the pending nonce, without a receipt.
    let new = tx1559(4, TxKind::Call(TO), &[], 1);
    let raw = Bytes::from(new.encoded_2718());
    let hash = http.result("eth_sendRawTransaction", json!([raw])).await;
    assert_eq!(hash, json!(new.tx_hash()));
    let pending = http.result("eth_getTransactionByHash", json!([hash])).await;
    assert_eq!(pending["blockHash"], Value::Null);
    assert_eq!(pending["blockNumber"], Value::Null);
    assert_eq!(pending["transactionIndex"], Value::Null);
    assert_eq!(pending["gasPrice"], hx(100 * GWEI as u64));
    let parsed: alloy_rpc_types_eth::Transaction = serde_json::from_value(pending).unwrap();
    assert_eq!(parsed.inner.inner(), &new);
    assert_eq!(
        http.result("eth_getTransactionReceipt", json!([hash]))
            .await,
        Value::Null
    );
    assert_eq!(
        http.result("eth_getTransactionCount", json!([sender(), "pending"]))
            .await,
        "0x5"
    );
    assert_eq!(
        http.result("eth_getTransactionCount", json!([sender(), "latest"]))
            .await,
        "0x4"
    );

    // Rejections carry the node's code and geth's message.
    let foreign = sign_1559(TxEip1559 {
        chain_id: 1,
        ..match tx1559(5, TxKind::Call(TO), &[], 1) {
            TxEnvelope::Eip1559(s) => s.strip_signature(),
            _ => unreachable!(),
        }
    });
    let (code, message, _) = http
        .error(
            "eth_sendRawTransaction",
            json!([Bytes::from(foreign.encoded_2718())]),
        )
        .await;
    assert_eq!(code, -32000);
    assert_eq!(message, "invalid chain id for signer: have 1 want 7215");
    let (code, _, _) = http.error("eth_sendRawTransaction", json!(["0x01"])).await;
    assert_eq!(code, -32000);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn node_extension_methods() {
    let (_server, http, _) = start(Config::default()).await;
    assert_eq!(
        http.result("btt_echo", json!([7, "0xab", null])).await,
        json!({"params": [7, "0xab", null]})
    );
    assert_eq!(
        http.error("btt_refuse", json!([])).await,
        (-32602, "epoch must be a number".into(), Value::Null)
    );
    let (code, message, _) = http.error("btt_nothing", json!([])).await;
    assert_eq!(code, -32601);
    assert_eq!(
        message,
        "the method btt_nothing does not exist/is not available"
    );
}

#[tokio::test]
async fn calls_estimates_and_reverts() {
    let (server, http, _) = start(Config::default()).await;
    assert_eq!(
        http.result("eth_call", json!([{"to": TO, "input": "0x1234"}, "latest"]))
            .await,
        "0x1234"
    );
    assert_eq!(
        http.result("eth_call", json!([{"to": TO, "data": "0x1234"}]))
            .await,
        "0x1234"
    );
    assert_eq!(
        http.result("eth_estimateGas", json!([{"from": sender(), "to": TO, "data": "0x12", "value": "0x1", "gas": "0x5208", "maxFeePerGas": "0x1", "chainId": "0x1c2f", "type": "0x2"}]))
            .await,
        hx(21_016)
    );
    let (code, message, data) = http
        .error("eth_call", json!([{"to": TO, "input": "0xdead"}]))
        .await;
    assert_eq!(code, 3);
    assert_eq!(message, "execution reverted: nope");
    assert_eq!(
        data,
        "0x08c379a0000000000000000000000000000000000000000000000000000000000000002000000000000000000000000000000000000000000000000000000000000000046e6f706500000000000000000000000000000000000000000000000000000000"
    );
    let (code, message, _) = http
        .error("eth_estimateGas", json!([{"to": TO, "input": "0xdead"}]))
        .await;
    assert_eq!((code, message.as_str()), (3, "execution reverted: nope"));
    let (code, message, data) = http
        .error("eth_call", json!([{"to": TO, "input": "0xbeef"}]))
        .await;
    assert_eq!(
        (code, message.as_str(), data),
        (
            -32000,
            "insufficient funds for gas * price + value",
            Value::Null
        )
    );
    let (code, message, _) = http
        .error(
            "eth_call",
            json!([{"to": TO, "input": "0x01", "data": "0x02"}]),
        )
        .await;
    assert_eq!(code, -32602);
    assert!(
        message.starts_with("invalid argument 0 (transaction): both \"data\" and \"input\""),
        "{message}"
    );
    let (code, message, _) = http
        .error(
            "eth_call",
            json!([{"to": TO}, "latest", {TO.to_string(): {"balance": "0x1"}}]),
        )
        .await;
    assert_eq!(code, -32602);
    assert!(
        message.contains("state overrides are not supported"),
        "{message}"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn fee_history() {
    let (server, http, _) = start(Config::default()).await;
    let h = http
        .result(
            "eth_feeHistory",
            json!(["0x3", "latest", [0.0, 50.0, 100.0]]),
        )
        .await;
    // Block 1: both tips are 2 gwei (legacy 3 gwei price over a 1 gwei base fee).
    // Block 2: tips 5 gwei (40k gas) and 1 gwei (30k gas), sorted: 1 gwei covers 30/70 of the
    // gas, so the median is 5 gwei.
    assert_eq!(
        h,
        json!({
            "oldestBlock": "0x0",
            "baseFeePerGas": ["0x3b9aca00", "0x3b9aca00", "0x35a4e900", "0x32a9f880"],
            "gasUsedRatio": [0.0, 81_000.0 / 30_000_000.0, 70_000.0 / 30_000_000.0],
            "reward": [
                ["0x0", "0x0", "0x0"],
                ["0x77359400", "0x77359400", "0x77359400"],
                ["0x3b9aca00", "0x12a05f200", "0x12a05f200"],
            ],
        })
    );
    let parsed: alloy_rpc_types_eth::FeeHistory = serde_json::from_value(h).unwrap();
    assert_eq!(parsed.next_block_base_fee(), Some(850_000_000));
    // A plain number count, an older newest block, no percentiles.
    let h = http.result("eth_feeHistory", json!([1, "0x1"])).await;
    assert_eq!(
        h,
        json!({"oldestBlock": "0x1", "baseFeePerGas": ["0x3b9aca00", "0x35a4e900"], "gasUsedRatio": [81_000.0 / 30_000_000.0]})
    );
    let (code, _, _) = http
        .error("eth_feeHistory", json!(["0x1", "latest", [50.0, 10.0]]))
        .await;
    assert_eq!(code, -32602);
    let (code, _, _) = http.error("eth_feeHistory", json!(["0x1", "0x7"])).await;
    assert_eq!(code, -32000);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn get_logs_filters() {
    let (server, http, fake) = start(Config {
        max_log_blocks: 2,
        ..Config::default()
    })
    .await;
    let count = |v: &Value| v.as_array().unwrap().len();
    let all = http
        .result(
            "eth_getLogs",
            json!([{"fromBlock": "0x1", "toBlock": "latest"}]),
        )
        .await;
    assert_eq!(count(&all), 3);
    let logs: Vec<alloy_rpc_types_eth::Log> = serde_json::from_value(all.clone()).unwrap();
    assert_eq!(
        logs.iter()
            .map(|l| l.log_index.unwrap())
            .collect::<Vec<_>>(),
        [0, 1, 2]
    );
    assert_eq!(logs[2].transaction_index, Some(1));
    // Default range is the head block only.
    assert_eq!(count(&http.result("eth_getLogs", json!([{}])).await), 3);
    assert_eq!(
        count(
            &http
                .result(
                    "eth_getLogs",
                    json!([{"fromBlock": "0x1", "toBlock": "0x1"}])
                )
                .await
        ),
        0
    );
    // Address OR-list, topic nulls and OR-lists.
    let me = B256::left_padding_from(sender().as_slice());
    let cases = [
        (json!({"address": TOKEN}), 3),
        (json!({"address": [TO, TOKEN]}), 3),
        (json!({"address": TO}), 0),
        (json!({"topics": [TRANSFER_TOPIC]}), 3),
        (json!({"topics": [null, me]}), 3),
        (
            json!({"topics": [null, null, [B256::ZERO, B256::left_padding_from(TO.as_slice())]]}),
            3,
        ),
        (json!({"topics": [null, B256::ZERO]}), 0),
        (json!({"topics": [TRANSFER_TOPIC, null, null, null]}), 0),
        (
            json!({"blockHash": fake.blocks[2].block.hash(), "topics": [[TRANSFER_TOPIC, B256::ZERO]]}),
            3,
        ),
        (json!({"blockHash": fake.blocks[1].block.hash()}), 0),
    ];
    for (filter, n) in cases {
        let logs = http.result("eth_getLogs", json!([filter])).await;
        assert_eq!(count(&logs), n, "{filter}");
    }
    let (code, message, _) = http
        .error("eth_getLogs", json!([{"fromBlock": "earliest"}]))
        .await;
    assert_eq!(code, -32005);
    assert_eq!(
        message,
        "query exceeds max block range 2: asked for 3 blocks (0..=2); split the range"
    );
    let (code, _, _) = http
        .error(
            "eth_getLogs",
            json!([{"fromBlock": "0x2", "toBlock": "0x1"}]),
        )
        .await;
    assert_eq!(code, -32602);
    let (code, message, _) = http
        .error("eth_getLogs", json!([{"blockHash": B256::ZERO}]))
        .await;
    assert_eq!(code, -32000);
    assert!(message.starts_with("unknown block"), "{message}");
    let (code, _, _) = http
        .error(
            "eth_getLogs",
            json!([{"blockHash": B256::ZERO, "fromBlock": "0x1"}]),
        )
        .await;
    assert_eq!(code, -32602);
    server.stop().await.unwrap();

    let (server, http, _) = start(Config {
        max_logs: 2,
        ..Config::default()
    })
    .await;
    let (code, message, _) = http.error("eth_getLogs", json!([{}])).await;
    assert_eq!(code, -32005);
    assert_eq!(
        message,
        "query returned more than 2 results: narrow the block range or the filter"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn protocol_errors() {
    let (server, http, _) = start(Config {
        max_body_bytes: 64 * 1024,
        max_batch: 4,
        ..Config::default()
    })
    .await;
    let r = http.post("{\"jsonrpc\":").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["error"]["code"], -32700);
    assert_eq!(r.json()["id"], Value::Null);
    let r = http.post(r#"{"jsonrpc":"2.0","id":1}"#).await;
    assert_eq!(
        r.body,
        r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32600,"message":"invalid request: \"method\" must be a string"}}"#
    );
    let r = http
        .post(r#"{"jsonrpc":"2.0","id":1,"method":"eth_foo","params":[]}"#)
        .await;
    assert_eq!(
        r.body,
        r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"the method eth_foo does not exist/is not available"}}"#
    );
    let (code, message, _) = http.error("eth_getBalance", json!(["0x1234"])).await;
    assert_eq!(code, -32602);
    assert!(
        message.starts_with("invalid argument 0 (address): "),
        "{message}"
    );
    let (code, message, _) = http.error("eth_getBalance", json!([])).await;
    assert_eq!(
        (code, message.as_str()),
        (-32602, "missing value for required argument 0 (address)")
    );
    let (code, message, _) = http.error("eth_chainId", json!([1])).await;
    assert_eq!(
        (code, message.as_str()),
        (-32602, "too many arguments, want at most 0")
    );
    let (code, message, _) = http
        .error("eth_getBlockByNumber", json!(["newest", false]))
        .await;
    assert_eq!(code, -32602);
    assert!(
        message.starts_with("invalid argument 0 (block): "),
        "{message}"
    );

    // Batch: mixed results, an error, a notification; ids of every kind echoed exactly.
    let r = http
        .post(r#"[{"jsonrpc":"2.0","id":1.0,"method":"eth_chainId"},{"jsonrpc":"2.0","method":"eth_chainId"},{"jsonrpc":"2.0","id":null,"method":"eth_nope"},{"jsonrpc":"2.0","id":"x","method":"eth_blockNumber"}]"#)
        .await;
    assert_eq!(
        r.body,
        r#"[{"jsonrpc":"2.0","id":1.0,"result":"0x1c2f"},{"jsonrpc":"2.0","id":null,"error":{"code":-32601,"message":"the method eth_nope does not exist/is not available"}},{"jsonrpc":"2.0","id":"x","result":"0x2"}]"#
    );
    let five = format!(
        "[{}]",
        [r#"{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}"#; 5].join(",")
    );
    let r = http.post(&five).await;
    assert_eq!(r.json()["error"]["code"], -32600);
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("batch too large"));
    let r = http.post("[]").await;
    assert_eq!(r.json()["error"]["code"], -32600);
    // Only notifications: an empty 200.
    let r = http
        .post(r#"{"jsonrpc":"2.0","method":"eth_chainId"}"#)
        .await;
    assert_eq!((r.status, r.body.as_str()), (200, ""));

    // Too large a body: 413 with a JSON-RPC error, declared or not.
    let huge = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"eth_call","params":[{{"input":"0x{}"}}]}}"#,
        "00".repeat(64 * 1024)
    );
    let r = http.post(&huge).await;
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["error"]["code"], -32600);
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("65536 byte limit"));
    // Without a declared length the limit applies while reading.
    let mut chunked = Vec::new();
    for _ in 0..3 {
        chunked.extend_from_slice(format!("{:x}\r\n", 30_000).as_bytes());
        chunked.extend_from_slice(&[b' '; 30_000]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let r = raw_chunked(http.addr, &chunked).await;
    assert_eq!(r.status, 413, "{}", r.body);

    // CORS preflight.
    let r = http
        .raw("OPTIONS", &[], "Origin: https://app.example\r\nAccess-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: content-type\r\n")
        .await;
    assert_eq!(r.status, 204);
    assert!(r.head.contains("access-control-allow-origin: *"));
    assert!(r
        .head
        .contains("access-control-allow-methods: post, options"));
    assert!(r
        .head
        .contains("access-control-allow-headers: content-type"));
    server.stop().await.unwrap();
}

async fn raw_chunked(addr: SocketAddr, body: &[u8]) -> Reply {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let head = "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    s.write_all(head.as_bytes()).await.unwrap();
    let _ = s.write_all(body).await;
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    let text = String::from_utf8(out).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    Reply {
        status: head[9..12].parse().unwrap(),
        head: head.to_ascii_lowercase(),
        body: body.to_owned(),
    }
}

#[tokio::test]
async fn syncing_progress_object() {
    let backend = Arc::new(Syncing(Fake::new()));
    let server = Server::start("127.0.0.1:0".parse().unwrap(), backend, Config::default())
        .await
        .unwrap();
    let http = Http {
        addr: server.local_addr(),
    };
    let s = http.result("eth_syncing", json!([])).await;
    assert_eq!(
        s,
        json!({"startingBlock": "0x0", "currentBlock": "0x2", "highestBlock": "0x100", "warpChunksAmount": null, "warpChunksProcessed": null})
    );
    let parsed: alloy_rpc_types_eth::SyncStatus = serde_json::from_value(s).unwrap();
    assert!(matches!(parsed, alloy_rpc_types_eth::SyncStatus::Info(_)));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn bind_error_names_the_address() {
    let (server, _http, fake) = start(Config::default()).await;
    let err = Server::start(server.local_addr(), fake, Config::default())
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "cannot listen for JSON-RPC on {}",
            server.local_addr()
        )),
        "{text}"
    );
    server.stop().await.unwrap();
}
