//! Persistence: finalized blocks, receipts, indexes and the flat state in one redb file.
//!
//! Every finalized block is written in a single redb write transaction together with the state
//! it produced and the state commitment's leaves and bucket hashes, so the file always holds a
//! consistent prefix of the chain: after `kill -9` the node reopens at the last committed block
//! and consensus redelivers the rest.
//!
//! # Tables
//! | table | key | value |
//! |---|---|---|
//! | `meta` | name | `head` → height (u64 BE), `genesis` → block hash |
//! | `blocks` | height | canonical block encoding |
//! | `block_hashes` | block hash | height |
//! | `receipts` | height | receipts, each as u32 BE length + EIP-2718 bytes |
//! | `senders` | height | 20 bytes per transaction |
//! | `tx_index` | tx hash | height (u64 BE) ‖ index (u32 BE) |
//! | `accounts` | address | nonce (u64 BE) ‖ balance (32 B) ‖ code hash (32 B) |
//! | `storage` | address ‖ slot | value (32 B), absent = zero |
//! | `code` | code hash | bytecode |
//! | `leaves` | commitment leaf key | leaf hash (the key's first two bytes are its bucket) |
//! | `buckets` | bucket (u16) | bucket hash, absent = empty |

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chain_state::{Account, StateChanges, StateReader, StoreError};
use chain_types::{Address, Block, Receipt, B256, U256};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::Error;

const META: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("meta");
const BLOCKS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("blocks");
const BLOCK_HASHES: TableDefinition<'_, [u8; 32], u64> = TableDefinition::new("block_hashes");
const RECEIPTS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("receipts");
const SENDERS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("senders");
const TX_INDEX: TableDefinition<'_, [u8; 32], [u8; 12]> = TableDefinition::new("tx_index");
const ACCOUNTS: TableDefinition<'_, [u8; 20], [u8; 72]> = TableDefinition::new("accounts");
const STORAGE: TableDefinition<'_, [u8; 52], [u8; 32]> = TableDefinition::new("storage");
const CODE: TableDefinition<'_, [u8; 32], &[u8]> = TableDefinition::new("code");
const LEAVES: TableDefinition<'_, [u8; 32], [u8; 32]> = TableDefinition::new("leaves");
const BUCKETS: TableDefinition<'_, u16, [u8; 32]> = TableDefinition::new("buckets");

/// A finalized block with everything derived from executing it.
#[derive(Debug, Clone)]
pub struct FinalizedBlock {
    /// The block.
    pub block: Arc<Block>,
    /// Sender of each transaction.
    pub senders: Vec<Address>,
    /// Receipt of each transaction.
    pub receipts: Vec<Receipt>,
}

/// What a block changes in the store besides the block itself.
pub struct StateWrite<'a> {
    /// Account, storage and code changes.
    pub changes: &'a StateChanges,
    /// Commitment leaves to write (`Some`) or delete (`None`).
    pub leaves: &'a [(B256, Option<B256>)],
    /// New hashes of the buckets the block changed (zero = empty).
    pub buckets: &'a [(u16, B256)],
}

/// The node's database.
#[derive(Debug)]
pub struct Store {
    db: Database,
    path: PathBuf,
}

impl Store {
    /// Opens (or creates) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, Error> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let db = Database::create(path).map_err(|e| Error::store(path, e))?;
        let store = Self {
            db,
            path: path.to_owned(),
        };
        // Create every table so read transactions never meet a missing one.
        let tx = store.db.begin_write().map_err(|e| store.err(e))?;
        {
            tx.open_table(META).map_err(|e| store.err(e))?;
            tx.open_table(BLOCKS).map_err(|e| store.err(e))?;
            tx.open_table(BLOCK_HASHES).map_err(|e| store.err(e))?;
            tx.open_table(RECEIPTS).map_err(|e| store.err(e))?;
            tx.open_table(SENDERS).map_err(|e| store.err(e))?;
            tx.open_table(TX_INDEX).map_err(|e| store.err(e))?;
            tx.open_table(ACCOUNTS).map_err(|e| store.err(e))?;
            tx.open_table(STORAGE).map_err(|e| store.err(e))?;
            tx.open_table(CODE).map_err(|e| store.err(e))?;
            tx.open_table(LEAVES).map_err(|e| store.err(e))?;
            tx.open_table(BUCKETS).map_err(|e| store.err(e))?;
        }
        tx.commit().map_err(|e| store.err(e))?;
        Ok(store)
    }

    fn err(&self, e: impl std::fmt::Display) -> Error {
        Error::store(&self.path, e)
    }

    /// Height of the newest finalized block, `None` before genesis is written.
    pub fn head(&self) -> Result<Option<u64>, Error> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let meta = tx.open_table(META).map_err(|e| self.err(e))?;
        let head = meta.get("head").map_err(|e| self.err(e))?;
        Ok(head.and_then(|v| v.value().try_into().ok().map(u64::from_be_bytes)))
    }

    /// Hash of the genesis block this database was started from.
    pub fn genesis_hash(&self) -> Result<Option<B256>, Error> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let meta = tx.open_table(META).map_err(|e| self.err(e))?;
        let value = meta.get("genesis").map_err(|e| self.err(e))?;
        Ok(value.and_then(|v| B256::try_from(v.value()).ok()))
    }

    /// The finalized block at `height` with its senders and receipts.
    pub fn block(&self, height: u64) -> Result<Option<FinalizedBlock>, Error> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let blocks = tx.open_table(BLOCKS).map_err(|e| self.err(e))?;
        let Some(bytes) = blocks.get(height).map_err(|e| self.err(e))? else {
            return Ok(None);
        };
        let block = Block::decode(bytes.value()).map_err(|e| self.corrupt(height, e))?;
        let senders = tx.open_table(SENDERS).map_err(|e| self.err(e))?;
        let senders = match senders.get(height).map_err(|e| self.err(e))? {
            Some(v) => v
                .value()
                .chunks_exact(20)
                .map(Address::from_slice)
                .collect(),
            None => Vec::new(),
        };
        let receipts = tx.open_table(RECEIPTS).map_err(|e| self.err(e))?;
        let receipts = match receipts.get(height).map_err(|e| self.err(e))? {
            Some(v) => decode_receipts(v.value()).map_err(|e| self.corrupt(height, e))?,
            None => Vec::new(),
        };
        if senders.len() != block.transactions.len() || receipts.len() != block.transactions.len() {
            return Err(self.corrupt(height, "senders or receipts do not match the block"));
        }
        Ok(Some(FinalizedBlock {
            block: Arc::new(block),
            senders,
            receipts,
        }))
    }

    fn corrupt(&self, height: u64, e: impl std::fmt::Display) -> Error {
        self.err(format!("block {height} is corrupt: {e}"))
    }

    /// Height of the finalized block with this hash.
    pub fn height_of(&self, hash: &B256) -> Result<Option<u64>, Error> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = tx.open_table(BLOCK_HASHES).map_err(|e| self.err(e))?;
        Ok(t.get(hash.0).map_err(|e| self.err(e))?.map(|v| v.value()))
    }

    /// Where a finalized transaction is: (height, index in block).
    pub fn tx_location(&self, hash: &B256) -> Result<Option<(u64, usize)>, Error> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = tx.open_table(TX_INDEX).map_err(|e| self.err(e))?;
        Ok(t.get(hash.0).map_err(|e| self.err(e))?.map(|v| {
            let v = v.value();
            let mut height = [0; 8];
            height.copy_from_slice(&v[..8]);
            let mut index = [0; 4];
            index.copy_from_slice(&v[8..]);
            (
                u64::from_be_bytes(height),
                u32::from_be_bytes(index) as usize,
            )
        }))
    }

    /// The leaves of one commitment bucket, in key order.
    pub fn bucket_leaves(&self, bucket: u16) -> Result<Vec<(B256, B256)>, Error> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = tx.open_table(LEAVES).map_err(|e| self.err(e))?;
        let mut start = [0u8; 32];
        start[..2].copy_from_slice(&bucket.to_be_bytes());
        let mut end = [0xffu8; 32];
        end[..2].copy_from_slice(&bucket.to_be_bytes());
        let mut out = Vec::new();
        for entry in t.range(start..=end).map_err(|e| self.err(e))? {
            let (k, v) = entry.map_err(|e| self.err(e))?;
            out.push((B256::from(k.value()), B256::from(v.value())));
        }
        Ok(out)
    }

    /// Every non-empty bucket hash (to rebuild the in-memory commitment tree at start).
    pub fn bucket_hashes(&self) -> Result<Vec<(u16, B256)>, Error> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = tx.open_table(BUCKETS).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for entry in t.iter().map_err(|e| self.err(e))? {
            let (k, v) = entry.map_err(|e| self.err(e))?;
            out.push((k.value(), B256::from(v.value())));
        }
        Ok(out)
    }

    /// Writes a finalized block and its state in one transaction. The block must be the child of
    /// the current head (or genesis on an empty store).
    pub fn commit(&self, finalized: &FinalizedBlock, state: StateWrite<'_>) -> Result<(), Error> {
        let block = &finalized.block;
        let height = block.header.number;
        let expected = self.head()?.map_or(0, |h| h + 1);
        if height != expected {
            return Err(self.err(format!(
                "refusing to write block {height}: the next height is {expected}"
            )));
        }
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let e = |e: redb::Error| self.err(e);
            let hash = block.hash();
            tx.open_table(BLOCKS)
                .map_err(|x| e(x.into()))?
                .insert(height, block.encoded().as_slice())
                .map_err(|x| e(x.into()))?;
            tx.open_table(BLOCK_HASHES)
                .map_err(|x| e(x.into()))?
                .insert(hash.0, height)
                .map_err(|x| e(x.into()))?;
            let senders: Vec<u8> = finalized.senders.iter().flat_map(|a| a.0 .0).collect();
            tx.open_table(SENDERS)
                .map_err(|x| e(x.into()))?
                .insert(height, senders.as_slice())
                .map_err(|x| e(x.into()))?;
            tx.open_table(RECEIPTS)
                .map_err(|x| e(x.into()))?
                .insert(height, encode_receipts(&finalized.receipts).as_slice())
                .map_err(|x| e(x.into()))?;
            let mut index = tx.open_table(TX_INDEX).map_err(|x| e(x.into()))?;
            for (i, t) in block.transactions.iter().enumerate() {
                let mut loc = [0u8; 12];
                loc[..8].copy_from_slice(&height.to_be_bytes());
                loc[8..].copy_from_slice(&u32::try_from(i).unwrap_or(u32::MAX).to_be_bytes());
                index.insert(t.tx_hash().0, loc).map_err(|x| e(x.into()))?;
            }
            write_state(&tx, state).map_err(e)?;
            let mut meta = tx.open_table(META).map_err(|x| e(x.into()))?;
            if height == 0 {
                meta.insert("genesis", hash.as_slice())
                    .map_err(|x| e(x.into()))?;
            }
            meta.insert("head", height.to_be_bytes().as_slice())
                .map_err(|x| e(x.into()))?;
        }
        tx.commit().map_err(|e| self.err(e))?;
        Ok(())
    }
}

fn write_state(tx: &redb::WriteTransaction, state: StateWrite<'_>) -> Result<(), redb::Error> {
    let mut accounts = tx.open_table(ACCOUNTS)?;
    for (address, account) in state.changes.accounts() {
        match account {
            Some(a) => {
                accounts.insert(address.0 .0, encode_account(a))?;
            }
            None => {
                accounts.remove(address.0 .0)?;
            }
        }
    }
    let mut storage = tx.open_table(STORAGE)?;
    for (address, slot, value) in state.changes.storage() {
        let key = storage_key(address, slot);
        if value.is_zero() {
            storage.remove(key)?;
        } else {
            storage.insert(key, value.to_be_bytes::<32>())?;
        }
    }
    let mut code = tx.open_table(CODE)?;
    for (hash, bytes) in state.changes.codes() {
        code.insert(hash.0, bytes.as_ref())?;
    }
    let mut leaves = tx.open_table(LEAVES)?;
    for (key, leaf) in state.leaves {
        match leaf {
            Some(h) => {
                leaves.insert(key.0, h.0)?;
            }
            None => {
                leaves.remove(key.0)?;
            }
        }
    }
    let mut buckets = tx.open_table(BUCKETS)?;
    for (bucket, hash) in state.buckets {
        if hash.is_zero() {
            buckets.remove(*bucket)?;
        } else {
            buckets.insert(*bucket, hash.0)?;
        }
    }
    Ok(())
}

impl StateReader for Store {
    fn account(&self, address: &Address) -> Result<Option<Account>, StoreError> {
        let tx = self.db.begin_read().map_err(store_error)?;
        let t = tx.open_table(ACCOUNTS).map_err(store_error)?;
        Ok(t.get(address.0 .0)
            .map_err(store_error)?
            .map(|v| decode_account(&v.value())))
    }

    fn storage(&self, address: &Address, slot: &U256) -> Result<U256, StoreError> {
        let tx = self.db.begin_read().map_err(store_error)?;
        let t = tx.open_table(STORAGE).map_err(store_error)?;
        Ok(t.get(storage_key(address, slot))
            .map_err(store_error)?
            .map_or(U256::ZERO, |v| U256::from_be_bytes(v.value())))
    }

    fn code(&self, hash: &B256) -> Result<Option<chain_types::Bytes>, StoreError> {
        let tx = self.db.begin_read().map_err(store_error)?;
        let t = tx.open_table(CODE).map_err(store_error)?;
        Ok(t.get(hash.0)
            .map_err(store_error)?
            .map(|v| chain_types::Bytes::copy_from_slice(v.value())))
    }

    fn block_hash(&self, number: u64) -> Result<Option<B256>, StoreError> {
        let tx = self.db.begin_read().map_err(store_error)?;
        let t = tx.open_table(BLOCKS).map_err(store_error)?;
        let Some(bytes) = t.get(number).map_err(store_error)? else {
            return Ok(None);
        };
        let block = Block::decode(bytes.value()).map_err(store_error)?;
        Ok(Some(block.hash()))
    }
}

fn store_error(e: impl std::fmt::Display) -> StoreError {
    StoreError(e.to_string())
}

fn storage_key(address: &Address, slot: &U256) -> [u8; 52] {
    let mut key = [0u8; 52];
    key[..20].copy_from_slice(address.as_slice());
    key[20..].copy_from_slice(&slot.to_be_bytes::<32>());
    key
}

fn encode_account(a: &Account) -> [u8; 72] {
    let mut out = [0u8; 72];
    out[..8].copy_from_slice(&a.nonce.to_be_bytes());
    out[8..40].copy_from_slice(&a.balance.to_be_bytes::<32>());
    out[40..].copy_from_slice(a.code_hash.as_slice());
    out
}

fn decode_account(v: &[u8; 72]) -> Account {
    let mut nonce = [0u8; 8];
    nonce.copy_from_slice(&v[..8]);
    let mut balance = [0u8; 32];
    balance.copy_from_slice(&v[8..40]);
    Account {
        nonce: u64::from_be_bytes(nonce),
        balance: U256::from_be_bytes(balance),
        code_hash: B256::from_slice(&v[40..]),
    }
}

fn encode_receipts(receipts: &[Receipt]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in receipts {
        let bytes = r.encoded_2718();
        out.extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_be_bytes());
        out.extend_from_slice(&bytes);
    }
    out
}

fn decode_receipts(mut bytes: &[u8]) -> Result<Vec<Receipt>, String> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let (len, rest) = bytes
            .split_first_chunk::<4>()
            .ok_or("truncated receipt length")?;
        let len = u32::from_be_bytes(*len) as usize;
        let (body, rest) = rest.split_at_checked(len).ok_or("truncated receipt")?;
        out.push(Receipt::decode_2718(body).map_err(|e| e.to_string())?);
        bytes = rest;
    }
    Ok(out)
}

/// Writes `bytes` to `path` through a temporary file and a rename, so a crash leaves either the
/// old file or the new one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    f.write_all(bytes).map_err(|e| Error::io(&tmp, e))?;
    f.sync_all().map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}
