//! The node's own JSON-RPC methods over staking and governance (served through
//! [`chain_rpc::Backend::extension`]), read from the finalized state:
//!
//! - `btt_getValidators([epoch|null])`: the active set of an epoch (default: the epoch of the
//!   next block) with each member's stake; `btt_getValidator([address])`;
//! - `btt_getDelegations([address])`, `btt_getUnbonding([address])`, `btt_getRewards([address])`;
//! - `btt_getProposalCount([])`, `btt_getProposal([id])`;
//! - `btt_getParams([])`: the governed parameters in force and the epoch length;
//! - `btt_getEvidence([])`: equivocation evidence this node's consensus saw, ready for
//!   `submitEvidence`.
//!
//! Amounts are decimal strings of wei, so no JSON reader rounds them.

use alloy_primitives::hex;
use alloy_sol_types::{sol_data, SolCall, SolType};
use chain_rpc::ExtensionError;
use chain_state::{
    governance_address, read_param, CallRequest, DelegationRecord, IGovernance, Param,
    ProposalKind, ProposalStatus, ValidatorRecord, ValidatorStatus,
};
use chain_types::{Address, U256};
use serde_json::{json, Value};

use crate::backend::NodeBackend;

type Answer = Result<Value, ExtensionError>;

/// Runs `method` if it is one of ours.
pub(crate) fn extension(node: &NodeBackend, method: &str, params: &[Value]) -> Option<Answer> {
    Some(match method {
        "btt_getValidators" => validators(node, params),
        "btt_getValidator" => address_arg(params).and_then(|a| validator(node, a)),
        "btt_getDelegations" => address_arg(params).and_then(|a| delegations(node, a)),
        "btt_getUnbonding" => address_arg(params).and_then(|a| unbonding(node, a)),
        "btt_getRewards" => address_arg(params).and_then(|a| rewards(node, a)),
        "btt_getProposalCount" => proposal_count(node).map(Value::from),
        "btt_getProposal" => proposal_arg(params).and_then(|id| proposal(node, id)),
        "btt_getParams" => governed(node),
        "btt_getEvidence" => Ok(Value::from(
            node.shared
                .evidence()
                .iter()
                .map(hex::encode_prefixed)
                .collect::<Vec<_>>(),
        )),
        _ => return None,
    })
}

fn internal(e: impl std::fmt::Display) -> ExtensionError {
    ExtensionError::internal(e.to_string())
}

fn address_arg(params: &[Value]) -> Result<Address, ExtensionError> {
    match params {
        [Value::String(text)] => text.parse().map_err(|_| {
            ExtensionError::invalid_params(format!(
                "{text} is not an address: give 0x and 40 hex digits"
            ))
        }),
        _ => Err(ExtensionError::invalid_params(
            "expected one parameter, an address",
        )),
    }
}

/// A JSON number or a decimal or `0x` string.
fn number_arg(value: &Value, what: &str) -> Result<u64, ExtensionError> {
    let parsed = match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => match s.strip_prefix("0x") {
            Some(h) => u64::from_str_radix(h, 16).ok(),
            None => s.parse().ok(),
        },
        _ => None,
    };
    parsed.ok_or_else(|| ExtensionError::invalid_params(format!("{what} must be a number")))
}

fn proposal_arg(params: &[Value]) -> Result<u64, ExtensionError> {
    match params {
        [v] => number_arg(v, "the proposal id"),
        _ => Err(ExtensionError::invalid_params(
            "expected one parameter, a proposal id",
        )),
    }
}

fn status_name(s: ValidatorStatus) -> &'static str {
    match s {
        ValidatorStatus::Bonded => "bonded",
        ValidatorStatus::Jailed => "jailed",
        ValidatorStatus::Tombstoned => "tombstoned",
    }
}

fn validator_json(v: &ValidatorRecord) -> Value {
    json!({
        "operator": v.address,
        "identity": hex::encode_prefixed(v.key.identity),
        "bls": hex::encode_prefixed(&v.key.bls),
        "tokens": v.tokens.to_string(),
        "shares": v.shares.to_string(),
        "commissionBps": v.commission_bps,
        "status": status_name(v.status),
        "jailedUntil": v.jailed_until,
        "selfBond": v.self_bond.to_string(),
        "commissionUnpaid": v.commission_unpaid.to_string(),
        "unbonding": v.unbonding.to_string(),
    })
}

fn validators(node: &NodeBackend, params: &[Value]) -> Answer {
    let epoch = match params {
        [] | [Value::Null] => node.next_epoch(),
        [v] => number_arg(v, "the epoch")?,
        _ => {
            return Err(ExtensionError::invalid_params(
                "expected at most one parameter, an epoch",
            ))
        }
    };
    let store = &*node.store;
    let Some(members) = chain_state::committee_of(store, epoch).map_err(internal)? else {
        return Err(ExtensionError::invalid_params(format!(
            "the set of epoch {epoch} is not elected yet (the node is at epoch {}); \
             ask again after its previous epoch ends",
            node.next_epoch()
        )));
    };
    let mut out = Vec::with_capacity(members.len());
    for (operator, _) in members {
        if let Some(v) = chain_state::validator_info(store, operator).map_err(internal)? {
            out.push(validator_json(&v));
        }
    }
    Ok(json!({ "epoch": epoch, "validators": out }))
}

fn validator(node: &NodeBackend, address: Address) -> Answer {
    Ok(chain_state::validator_info(&*node.store, address)
        .map_err(internal)?
        .map_or(Value::Null, |v| validator_json(&v)))
}

fn delegation_json(d: &DelegationRecord) -> Value {
    json!({
        "validator": d.validator,
        "shares": d.shares.to_string(),
        "tokens": d.tokens.to_string(),
        "pendingRewards": d.pending_rewards.to_string(),
    })
}

fn delegations(node: &NodeBackend, address: Address) -> Answer {
    let list = chain_state::delegations_of(&*node.store, address).map_err(internal)?;
    Ok(Value::from(
        list.iter().map(delegation_json).collect::<Vec<_>>(),
    ))
}

fn unbonding(node: &NodeBackend, address: Address) -> Answer {
    let list = chain_state::unbondings_of(&*node.store, address).map_err(internal)?;
    Ok(Value::from(
        list.iter()
            .map(|u| {
                json!({
                    "id": u.id,
                    "validator": u.validator,
                    "amount": u.amount.to_string(),
                    "maturity": u.maturity,
                })
            })
            .collect::<Vec<_>>(),
    ))
}

fn rewards(node: &NodeBackend, address: Address) -> Answer {
    let store = &*node.store;
    let list = chain_state::delegations_of(store, address).map_err(internal)?;
    let commission = chain_state::validator_info(store, address)
        .map_err(internal)?
        .map_or(U256::ZERO, |v| v.commission_unpaid);
    let mut total = commission;
    for d in &list {
        total = total.saturating_add(d.pending_rewards);
    }
    Ok(json!({
        "total": total.to_string(),
        "commission": commission.to_string(),
        "delegations": list.iter().map(|d| json!({
            "validator": d.validator,
            "pending": d.pending_rewards.to_string(),
        })).collect::<Vec<_>>(),
    }))
}

/// Calls a governance view on the finalized state.
fn governance_call<C: SolCall>(node: &NodeBackend, call: C) -> Result<C::Return, ExtensionError> {
    let request = CallRequest {
        to: Some(governance_address()),
        input: Some(call.abi_encode().into()),
        ..Default::default()
    };
    let out = chain_rpc::Backend::call(node, request).map_err(|e| internal(format!("{e:?}")))?;
    C::abi_decode_returns(&out).map_err(internal)
}

fn proposal_count(node: &NodeBackend) -> Result<u64, ExtensionError> {
    governance_call(node, IGovernance::proposalCountCall {})
}

fn kind_name(k: Option<ProposalKind>) -> &'static str {
    match k {
        Some(ProposalKind::ParamChange) => "param_change",
        Some(ProposalKind::Text) => "text",
        Some(ProposalKind::TreasurySpend) => "treasury_spend",
        None => "unknown",
    }
}

fn proposal_status_name(s: Option<ProposalStatus>) -> &'static str {
    match s {
        Some(ProposalStatus::Voting) => "voting",
        Some(ProposalStatus::Passed) => "passed",
        Some(ProposalStatus::Rejected) => "rejected",
        Some(ProposalStatus::RejectedVeto) => "rejected_veto",
        Some(ProposalStatus::RejectedNoQuorum) => "rejected_no_quorum",
        Some(ProposalStatus::Executed) => "executed",
        Some(ProposalStatus::Failed) => "failed",
        None => "unknown",
    }
}

fn proposal(node: &NodeBackend, id: u64) -> Answer {
    if id == 0 || id > proposal_count(node)? {
        return Ok(Value::Null);
    }
    let p = governance_call(node, IGovernance::proposalCall { id })?;
    let kind = ProposalKind::from_code(p.kind);
    let change = match kind {
        Some(ProposalKind::ParamChange) => {
            <(sol_data::Uint<8>, sol_data::Uint<256>, sol_data::Uint<64>) as SolType>::abi_decode(
                &p.payload,
            )
            .ok()
            .map_or(Value::Null, |(param, value, _)| {
                json!({
                    "param": Param::from_id(param).map_or("unknown", Param::name),
                    "value": value.to_string(),
                })
            })
        }
        Some(ProposalKind::TreasurySpend) => {
            <(sol_data::Address, sol_data::Uint<256>) as SolType>::abi_decode(&p.payload)
                .ok()
                .map_or(
                    Value::Null,
                    |(to, amount)| json!({ "to": to, "amount": amount.to_string() }),
                )
        }
        _ => Value::Null,
    };
    Ok(json!({
        "id": id,
        "kind": kind_name(kind),
        "proposer": p.proposer,
        "deposit": p.deposit.to_string(),
        "submitHeight": p.submitHeight,
        "votingEnd": p.votingEnd,
        "effectiveHeight": p.effectiveHeight,
        "status": proposal_status_name(ProposalStatus::from_code(p.status)),
        "tally": {
            "yes": p.yes.to_string(),
            "no": p.no.to_string(),
            "abstain": p.abstain.to_string(),
            "veto": p.noWithVeto.to_string(),
        },
        "description": p.description,
        "change": change,
    }))
}

fn governed(node: &NodeBackend) -> Answer {
    let mut params = serde_json::Map::new();
    for p in Param::ALL {
        let value = read_param(&*node.store, p).map_err(internal)?;
        params.insert(p.name().to_owned(), Value::from(value.to_string()));
    }
    Ok(json!({ "epochLength": node.epoch_length, "params": params }))
}
