//! The chain's native modules as this node runs them: the executor with staking and
//! governance, and the consensus cryptography the staking module calls (proofs of possession and
//! equivocation evidence, checked with the consensus engine's own code).

use std::sync::Arc;

use alloy_primitives::hex;
use chain_consensus::ValidatorInfo;
use chain_state::{
    staking_address, ConsensusCrypto, ConsensusKey, Executor, GenesisStake, Governance, Offence,
    Staking,
};
use chain_types::Address;

use crate::genesis::Genesis;
use crate::Error;

/// The executor of `genesis`'s chain: the bank and payment channels, staking (collecting every
/// block's priority fees for validators and delegators) and governance.
pub fn executor(genesis: &Genesis) -> Result<Executor, Error> {
    let chain_id = genesis.params.chain_id;
    let mut stakes = Vec::with_capacity(genesis.validators.len());
    for v in &genesis.validators {
        let key = consensus_key(&v.keys).map_err(|reason| {
            Error::Corrupt(format!("genesis validator {}: {reason}", v.keys.identity))
        })?;
        stakes.push(GenesisStake {
            operator: v.fee_recipient,
            key,
            self_bond: v.stake,
            commission_bps: v.commission_bps,
        });
    }
    let crypto: Arc<dyn ConsensusCrypto> = Arc::new(ConsensusKeys { chain_id });
    Ok(Executor::new(genesis.params.clone())
        .with_module(Arc::new(Staking::new(genesis.epoch_length, stakes, crypto)))
        .with_module(Arc::new(Governance::with_staking(genesis.governed())))
        .with_fee_collector(staking_address()))
}

/// The consensus engine's checks of validator keys and evidence, for the staking module.
#[derive(Debug)]
struct ConsensusKeys {
    chain_id: u64,
}

impl ConsensusCrypto for ConsensusKeys {
    fn check_keys(&self, key: &ConsensusKey) -> Result<(), String> {
        chain_consensus::verify_validator_keys(self.chain_id, &validator_info(key))
            .map_err(|e| e.to_string())
    }

    fn evidence_epoch(&self, evidence: &[u8]) -> Result<u64, String> {
        chain_consensus::evidence_epoch(evidence).map_err(|e| e.to_string())
    }

    fn check_evidence(
        &self,
        committee: &[ConsensusKey],
        evidence: &[u8],
    ) -> Result<Offence, String> {
        let infos: Vec<ValidatorInfo> = committee.iter().map(validator_info).collect();
        let proof = chain_consensus::verify_evidence(self.chain_id, &infos, evidence)
            .map_err(|e| e.to_string())?;
        Ok(Offence {
            epoch: proof.epoch,
            view: proof.view,
            identity: identity_bytes(&proof.offender)?,
        })
    }
}

/// Keys as the consensus engine writes them (`0x` hex).
pub fn validator_info(key: &ConsensusKey) -> ValidatorInfo {
    ValidatorInfo {
        identity: hex::encode_prefixed(key.identity),
        bls: hex::encode_prefixed(&key.bls),
        pop: hex::encode_prefixed(&key.pop),
    }
}

/// Keys as the staking module stores them (raw bytes).
pub fn consensus_key(info: &ValidatorInfo) -> Result<ConsensusKey, String> {
    let bytes =
        |text: &str, what: &str| hex::decode(text).map_err(|e| format!("{what} is not hex: {e}"));
    Ok(ConsensusKey {
        identity: identity_bytes(&info.identity)?,
        bls: bytes(&info.bls, "the BLS key")?,
        pop: bytes(&info.pop, "the proof of possession")?,
    })
}

fn identity_bytes(text: &str) -> Result<[u8; 32], String> {
    let raw = hex::decode(text).map_err(|e| format!("the identity key is not hex: {e}"))?;
    <[u8; 32]>::try_from(raw.as_slice())
        .map_err(|_| format!("the identity key has {} bytes, not 32", raw.len()))
}

/// The committee of `epoch` from a state, as consensus takes it, with each member's operator.
pub fn committee(
    state: &impl chain_state::StateReader,
    epoch: u64,
) -> Result<Option<Vec<(Address, ValidatorInfo)>>, chain_state::StoreError> {
    Ok(chain_state::committee_of(state, epoch)?.map(|members| {
        members
            .into_iter()
            .map(|(operator, key)| (operator, validator_info(&key)))
            .collect()
    }))
}
