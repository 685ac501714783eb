//! Accounts, the read interface the node implements, and the deterministic change set a block
//! produces.

use std::collections::BTreeMap;

use alloy_primitives::{keccak256, Address, Bytes, B256, U256};

/// keccak256 of the empty byte string: the code hash of an account without code.
pub const KECCAK_EMPTY: B256 = revm::primitives::KECCAK_EMPTY;

/// Why the node's store could not answer a read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("state store read failed: {0}: check the node's data directory and disk")]
pub struct StoreError(pub String);

impl revm::database_interface::DBErrorMarker for StoreError {}

/// The part of an account the state commits to. Code lives separately, by hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    /// Transactions sent (externally owned) or contracts created (contracts, from 1).
    pub nonce: u64,
    /// Balance in wei.
    pub balance: U256,
    /// keccak256 of the code, [`KECCAK_EMPTY`] for none.
    pub code_hash: B256,
}

impl Default for Account {
    /// A fresh account: nonce 0, no balance, no code.
    fn default() -> Self {
        Self {
            nonce: 0,
            balance: U256::ZERO,
            code_hash: KECCAK_EMPTY,
        }
    }
}

impl Account {
    /// Whether the account is empty in the EIP-161 sense (and so does not exist).
    pub fn is_empty(&self) -> bool {
        self.nonce == 0 && self.balance.is_zero() && self.has_no_code()
    }

    /// Whether it has no code (a zero code hash is read as "no code" too).
    pub fn has_no_code(&self) -> bool {
        self.code_hash == KECCAK_EMPTY || self.code_hash == B256::ZERO
    }
}

/// Read access to a state: the node implements it over its store; [`crate::Overlay`] stacks
/// unfinalized blocks on top.
pub trait StateReader {
    /// The account at `address`, `None` if it does not exist.
    fn account(&self, address: &Address) -> Result<Option<Account>, StoreError>;
    /// A storage slot (zero when never written or cleared).
    fn storage(&self, address: &Address, slot: &U256) -> Result<U256, StoreError>;
    /// Code by its keccak256 hash.
    fn code(&self, hash: &B256) -> Result<Option<Bytes>, StoreError>;
    /// The hash of block `number`, for the `BLOCKHASH` opcode (which only asks for the 256 most
    /// recent blocks). `None` answers zero, as for an unknown block. The default knows no hashes.
    fn block_hash(&self, number: u64) -> Result<Option<B256>, StoreError> {
        let _ = number;
        Ok(None)
    }
}

impl<R: StateReader + ?Sized> StateReader for &R {
    fn account(&self, address: &Address) -> Result<Option<Account>, StoreError> {
        (**self).account(address)
    }
    fn storage(&self, address: &Address, slot: &U256) -> Result<U256, StoreError> {
        (**self).storage(address, slot)
    }
    fn code(&self, hash: &B256) -> Result<Option<Bytes>, StoreError> {
        (**self).code(hash)
    }
    fn block_hash(&self, number: u64) -> Result<Option<B256>, StoreError> {
        (**self).block_hash(number)
    }
}

/// The writes of one or more blocks, in a deterministic order (sorted maps), so every validator
/// derives identical bytes and roots from them.
///
/// - accounts: `Some(account)` = created or updated, `None` = deleted (EIP-161 empty accounts
///   that were touched, and contracts that self-destructed in the transaction that created them);
/// - storage: the new value of each written slot; zero means cleared. Deleting an account does
///   not imply anything about its storage: the executor writes an explicit zero for every slot
///   that must disappear. On this chain an account with storage always has code or is a native
///   module, and only accounts created in the same transaction can self-destruct (EIP-6780), so
///   those zeros are complete;
/// - code: new contract code by its keccak256 hash (code is never deleted).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StateChanges {
    accounts: BTreeMap<Address, Option<Account>>,
    storage: BTreeMap<(Address, U256), U256>,
    codes: BTreeMap<B256, Bytes>,
}

impl StateChanges {
    /// No changes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty() && self.storage.is_empty() && self.codes.is_empty()
    }

    /// Creates or replaces an account.
    pub fn set_account(&mut self, address: Address, account: Account) {
        self.accounts.insert(address, Some(account));
    }

    /// Deletes an account (see the type docs about its storage).
    pub fn delete_account(&mut self, address: Address) {
        self.accounts.insert(address, None);
    }

    /// Writes a storage slot; zero clears it.
    pub fn set_storage(&mut self, address: Address, slot: U256, value: U256) {
        self.storage.insert((address, slot), value);
    }

    /// Adds code, keyed by its keccak256 hash, which is returned.
    pub fn insert_code(&mut self, code: Bytes) -> B256 {
        let hash = keccak256(&code);
        self.codes.insert(hash, code);
        hash
    }

    /// This change set's word on `address`: `None` = not touched, `Some(None)` = deleted.
    pub fn account(&self, address: &Address) -> Option<Option<&Account>> {
        self.accounts.get(address).map(Option::as_ref)
    }

    /// The value written to a slot, if any.
    pub fn storage_slot(&self, address: &Address, slot: &U256) -> Option<U256> {
        self.storage.get(&(*address, *slot)).copied()
    }

    /// Code added under `hash`.
    pub fn code(&self, hash: &B256) -> Option<&Bytes> {
        self.codes.get(hash)
    }

    /// Every account write in address order (`None` = deleted).
    pub fn accounts(&self) -> impl Iterator<Item = (&Address, Option<&Account>)> + '_ {
        self.accounts.iter().map(|(a, acc)| (a, acc.as_ref()))
    }

    /// Every storage write in (address, slot) order; zero = cleared.
    pub fn storage(&self) -> impl Iterator<Item = (&Address, &U256, &U256)> + '_ {
        self.storage.iter().map(|((a, s), v)| (a, s, v))
    }

    /// Every new code in hash order.
    pub fn codes(&self) -> impl Iterator<Item = (&B256, &Bytes)> + '_ {
        self.codes.iter()
    }

    /// Applies `later` on top of `self`: where both write the same key, `later` wins. The result
    /// is what applying `self` then `later` to a store would leave.
    pub fn extend(&mut self, later: StateChanges) {
        self.accounts.extend(later.accounts);
        self.storage.extend(later.storage);
        self.codes.extend(later.codes);
    }
}

/// A state seen through a stack of change sets over a base reader: `layers` are applied oldest
/// first, so a read is answered by the newest layer that wrote the key, else by `base`. Used to
/// execute a block on top of parents that are not finalized yet.
#[derive(Clone, Debug)]
pub struct Overlay<'a, R> {
    base: &'a R,
    layers: Vec<&'a StateChanges>,
}

impl<'a, R: StateReader> Overlay<'a, R> {
    /// `base` with `layers` (oldest first) on top.
    pub fn new(base: &'a R, layers: Vec<&'a StateChanges>) -> Self {
        Self { base, layers }
    }

    /// Adds a newer layer on top.
    pub fn push(&mut self, layer: &'a StateChanges) {
        self.layers.push(layer);
    }
}

impl<R: StateReader> StateReader for Overlay<'_, R> {
    fn account(&self, address: &Address) -> Result<Option<Account>, StoreError> {
        for layer in self.layers.iter().rev() {
            if let Some(account) = layer.account(address) {
                return Ok(account.cloned());
            }
        }
        self.base.account(address)
    }

    fn storage(&self, address: &Address, slot: &U256) -> Result<U256, StoreError> {
        for layer in self.layers.iter().rev() {
            if let Some(value) = layer.storage_slot(address, slot) {
                return Ok(value);
            }
        }
        self.base.storage(address, slot)
    }

    fn code(&self, hash: &B256) -> Result<Option<Bytes>, StoreError> {
        for layer in self.layers.iter().rev() {
            if let Some(code) = layer.code(hash) {
                return Ok(Some(code.clone()));
            }
        }
        self.base.code(hash)
    }

    fn block_hash(&self, number: u64) -> Result<Option<B256>, StoreError> {
        self.base.block_hash(number)
    }
}

/// A whole state in memory: for tests, tools and small devnets. Applying change sets to it and
/// asking for [`MemoryState::state_root`] gives the same root a store maintaining a
/// [`crate::BucketTree`] incrementally must reach.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemoryState {
    accounts: BTreeMap<Address, Account>,
    storage: BTreeMap<(Address, U256), U256>,
    codes: BTreeMap<B256, Bytes>,
    block_hashes: BTreeMap<u64, B256>,
}

impl MemoryState {
    /// An empty state.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies a change set (zero storage values and deleted accounts are removed).
    pub fn apply(&mut self, changes: &StateChanges) {
        for (address, account) in changes.accounts() {
            match account {
                Some(account) => self.accounts.insert(*address, account.clone()),
                None => self.accounts.remove(address),
            };
        }
        for (address, slot, value) in changes.storage() {
            if value.is_zero() {
                self.storage.remove(&(*address, *slot));
            } else {
                self.storage.insert((*address, *slot), *value);
            }
        }
        for (hash, code) in changes.codes() {
            self.codes.insert(*hash, code.clone());
        }
    }

    /// Records a block hash for `BLOCKHASH`.
    pub fn set_block_hash(&mut self, number: u64, hash: B256) {
        self.block_hashes.insert(number, hash);
    }

    /// Every account in address order.
    pub fn accounts(&self) -> impl Iterator<Item = (&Address, &Account)> + '_ {
        self.accounts.iter()
    }

    /// Every non-zero storage slot in (address, slot) order.
    pub fn storage_slots(&self) -> impl Iterator<Item = (&Address, &U256, &U256)> + '_ {
        self.storage.iter().map(|((a, s), v)| (a, s, v))
    }

    /// The state root over every account and slot, computed from scratch.
    pub fn state_root(&self) -> B256 {
        let mut all = StateChanges::new();
        for (address, account) in &self.accounts {
            all.set_account(*address, account.clone());
        }
        for ((address, slot), value) in &self.storage {
            all.set_storage(*address, *slot, *value);
        }
        crate::commitment::root_of_leaves(
            crate::commitment::leaf_updates(&all)
                .into_iter()
                .filter_map(|(key, hash)| hash.map(|hash| (key, hash))),
        )
    }
}

impl StateReader for MemoryState {
    fn account(&self, address: &Address) -> Result<Option<Account>, StoreError> {
        Ok(self.accounts.get(address).cloned())
    }
    fn storage(&self, address: &Address, slot: &U256) -> Result<U256, StoreError> {
        Ok(self
            .storage
            .get(&(*address, *slot))
            .copied()
            .unwrap_or_default())
    }
    fn code(&self, hash: &B256) -> Result<Option<Bytes>, StoreError> {
        Ok(self.codes.get(hash).cloned())
    }
    fn block_hash(&self, number: u64) -> Result<Option<B256>, StoreError> {
        Ok(self.block_hashes.get(&number).copied())
    }
}
