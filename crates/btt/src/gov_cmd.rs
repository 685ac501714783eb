//! `btt gov`: on-chain governance from the command line. Proposals and votes are calls to the
//! governance module at `0x…b77002` (ABI [`chain_state::IGovernance`]); `list` and `show`
//! read the node's `btt_getProposalCount`/`btt_getProposal`.
//!
//! # Layout
//! - [`GovArgs`]: the subcommands, with the flags of [`ChainArgs`] (`--rpc`, `--json`, the
//!   signer) shared with `btt stake`.
//! - `ProposeArgs::proposal` checks a proposal locally (one kind, a known parameter, a value
//!   within its bounds) so a mistake is reported before the node is asked; `submit_call` and
//!   `vote_call` build the calldata.
//! - `proposal_id` reads the new id from the receipt's `ProposalSubmitted` log.

use alloy_primitives::{Bytes, B256, U256};
use alloy_sol_types::sol_data::{Address as SolAddress, Uint};
use alloy_sol_types::{SolCall, SolEvent, SolType};
use anyhow::{bail, Result};
use chain_state::{IGovernance, Param, ProposalKind, VoteOption};
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use crate::stake_cmd::{btt_text, parse_address, parse_amount, runtime, text, ChainArgs, Tx};

/// `btt gov …`
#[derive(Args)]
pub(crate) struct GovArgs {
    #[command(subcommand)]
    command: GovCommand,
    #[command(flatten)]
    chain: ChainArgs,
}

#[derive(Subcommand, Debug)]
enum GovCommand {
    /// Submit a proposal with a deposit: a parameter change, a text, or a treasury spend.
    Propose(ProposeArgs),
    /// Vote on an open proposal (stakers only; a later vote replaces an earlier one).
    Vote {
        /// The proposal id.
        id: u64,
        /// yes, no, abstain or veto.
        option: String,
    },
    /// Every proposal so far.
    List,
    /// One proposal.
    Show {
        /// The proposal id.
        id: u64,
    },
}

/// `btt gov propose`: exactly one of `--param`, `--text`, `--treasury-spend`.
#[derive(Args, Debug)]
struct ProposeArgs {
    /// The deposit in BTT, exact decimal (at least the `min_deposit` parameter).
    #[arg(long)]
    deposit: String,
    /// What the proposal is about (at most 1024 bytes).
    #[arg(long)]
    description: String,
    /// A parameter change: the parameter's name (e.g. gas_limit).
    #[arg(long)]
    param: Option<String>,
    /// The parameter's new value, a whole number in its own unit (wei for amounts).
    #[arg(long)]
    value: Option<String>,
    /// The block from which the new value holds.
    #[arg(long)]
    effective_height: Option<u64>,
    /// A text proposal: signalling only, nothing is executed.
    #[arg(long)]
    text: bool,
    /// A treasury spend: pay --amount BTT to --to.
    #[arg(long)]
    treasury_spend: bool,
    /// The treasury spend's recipient.
    #[arg(long)]
    to: Option<String>,
    /// The treasury spend's amount in BTT, exact decimal.
    #[arg(long)]
    amount: Option<String>,
}

/// What a proposal asks for, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Proposal {
    ParamChange {
        param: Param,
        value: U256,
        effective_height: u64,
    },
    Text,
    TreasurySpend {
        to: alloy_primitives::Address,
        amount: U256,
    },
}

/// A proposal ready to submit.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Submission {
    proposal: Proposal,
    deposit: U256,
    description: String,
}

impl ProposeArgs {
    fn submission(&self) -> Result<Submission> {
        let deposit = parse_amount(&self.deposit, "--deposit")?;
        if self.description.len() > chain_state::MAX_DESCRIPTION_BYTES {
            bail!(
                "--description is {} bytes, more than the {} allowed: shorten it",
                self.description.len(),
                chain_state::MAX_DESCRIPTION_BYTES
            );
        }
        Ok(Submission {
            proposal: self.proposal()?,
            deposit,
            description: self.description.clone(),
        })
    }

    fn proposal(&self) -> Result<Proposal> {
        let kinds = usize::from(self.param.is_some())
            + usize::from(self.text)
            + usize::from(self.treasury_spend);
        match kinds {
            0 => bail!(
                "say what the proposal is: --param NAME --value N --effective-height H, \
                 --text, or --treasury-spend --to ADDRESS --amount BTT"
            ),
            1 => {}
            _ => bail!("give one kind of proposal: --param, --text and --treasury-spend exclude each other"),
        }
        if self.param.is_none() && (self.value.is_some() || self.effective_height.is_some()) {
            bail!("--value and --effective-height go with --param NAME");
        }
        if !self.treasury_spend && (self.to.is_some() || self.amount.is_some()) {
            bail!("--to and --amount go with --treasury-spend");
        }
        if let Some(name) = &self.param {
            let param = Param::from_name(name.trim()).ok_or_else(|| {
                let names: Vec<&str> = Param::ALL.iter().map(|p| p.name()).collect();
                anyhow::anyhow!(
                    "--param {name:?} is not a governed parameter: one of {}",
                    names.join(", ")
                )
            })?;
            let (Some(value), Some(effective_height)) = (&self.value, self.effective_height) else {
                bail!("--param needs --value N and --effective-height H");
            };
            let digits = value.trim();
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                bail!(
                    "--value {value:?}: not a whole number; give the value in the parameter's \
                     own unit (wei for amounts)"
                );
            }
            let value = U256::from_str_radix(digits, 10)
                .map_err(|_| anyhow::anyhow!("--value {value:?} does not fit in 256 bits"))?;
            param
                .check(value)
                .map_err(|e| anyhow::anyhow!("--value: {e}"))?;
            return Ok(Proposal::ParamChange {
                param,
                value,
                effective_height,
            });
        }
        if self.text {
            return Ok(Proposal::Text);
        }
        let (Some(to), Some(amount)) = (&self.to, &self.amount) else {
            bail!("--treasury-spend needs --to ADDRESS and --amount BTT");
        };
        Ok(Proposal::TreasurySpend {
            to: parse_address(to, "--to")?,
            amount: parse_amount(amount, "--amount")?,
        })
    }
}

/// `yes`, `no`, `abstain` or `veto`.
fn parse_vote(option: &str) -> Result<VoteOption> {
    Ok(match option.trim().to_ascii_lowercase().as_str() {
        "yes" => VoteOption::Yes,
        "no" => VoteOption::No,
        "abstain" => VoteOption::Abstain,
        "veto" | "no-with-veto" | "nowithveto" => VoteOption::NoWithVeto,
        _ => bail!("vote option {option:?}: give yes, no, abstain or veto"),
    })
}

/// Payload of a ParamChange: `abi.encode(uint8 paramId, uint256 value, uint64 effectiveHeight)`.
type ParamPayload = (Uint<8>, Uint<256>, Uint<64>);
/// Payload of a TreasurySpend: `abi.encode(address to, uint256 amount)`.
type SpendPayload = (SolAddress, Uint<256>);

fn governance(data: Vec<u8>, value: U256) -> Tx {
    Tx {
        to: chain_state::governance_address(),
        data,
        value,
    }
}

/// `submitProposal(kind, payload, description)` with the deposit as the value.
fn submit_call(s: &Submission) -> Tx {
    let (kind, payload) = match &s.proposal {
        Proposal::ParamChange {
            param,
            value,
            effective_height,
        } => (
            ProposalKind::ParamChange,
            ParamPayload::abi_encode_params(&(param.id(), *value, *effective_height)),
        ),
        Proposal::Text => (ProposalKind::Text, Vec::new()),
        Proposal::TreasurySpend { to, amount } => (
            ProposalKind::TreasurySpend,
            SpendPayload::abi_encode_params(&(*to, *amount)),
        ),
    };
    let call = IGovernance::submitProposalCall {
        kind: kind.code(),
        payload: Bytes::from(payload),
        description: s.description.clone(),
    };
    governance(call.abi_encode(), s.deposit)
}

/// `vote(id, option)`.
fn vote_call(id: u64, option: VoteOption) -> Tx {
    let call = IGovernance::vote_0Call {
        id,
        option: option.code(),
    };
    governance(call.abi_encode(), U256::ZERO)
}

/// The id in the governance module's `ProposalSubmitted` log of a raw
/// `eth_getTransactionReceipt` answer.
fn proposal_id(receipt: &Value) -> Result<u64> {
    let module = chain_state::governance_address();
    let logs = receipt
        .get("logs")
        .and_then(Value::as_array)
        .ok_or_else(|| anyhow::anyhow!("the receipt has no logs array"))?;
    for log in logs {
        let from_module = log
            .get("address")
            .and_then(Value::as_str)
            .and_then(|a| a.parse::<alloy_primitives::Address>().ok())
            == Some(module);
        let topics: Vec<B256> = log
            .get("topics")
            .and_then(Value::as_array)
            .map(|t| {
                t.iter()
                    .filter_map(|t| t.as_str().and_then(|t| t.parse().ok()))
                    .collect()
            })
            .unwrap_or_default();
        if !from_module || topics.first() != Some(&IGovernance::ProposalSubmitted::SIGNATURE_HASH) {
            continue;
        }
        let Some(id) = topics.get(1) else {
            bail!("a ProposalSubmitted log without the id topic");
        };
        return u64::try_from(U256::from_be_bytes(id.0))
            .map_err(|_| anyhow::anyhow!("a ProposalSubmitted log with id {id} beyond 64 bits"));
    }
    bail!("the receipt has no ProposalSubmitted log from the governance module")
}

/// Runs a `btt gov` subcommand.
pub(crate) fn run(a: GovArgs) -> Result<()> {
    let name = match &a.command {
        GovCommand::Propose(_) => "propose",
        GovCommand::Vote { .. } => "vote",
        GovCommand::List => "list",
        GovCommand::Show { .. } => "show",
    };
    let command = format!("btt gov {name}");
    let context = |e: anyhow::Error| anyhow::anyhow!("{command}: {e}");
    // Arguments are checked before the node is asked or a key unlocked.
    let tx = match &a.command {
        GovCommand::Propose(p) => Some(submit_call(&p.submission().map_err(context)?)),
        GovCommand::Vote { id, option } => {
            Some(vote_call(*id, parse_vote(option).map_err(context)?))
        }
        GovCommand::List | GovCommand::Show { .. } => None,
    };
    let propose = matches!(a.command, GovCommand::Propose(_));
    let chain = &a.chain;
    runtime()?.block_on(async {
        let client = chain.client()?;
        if let Some(tx) = tx {
            let signer = chain.signer(Some(&command))?;
            let receipt = chain.send(&client, &signer, &command, tx).await?;
            let mut extra = Vec::new();
            if propose && receipt.success {
                let raw = client
                    .request(
                        "eth_getTransactionReceipt",
                        json!([receipt.transaction_hash.to_string()]),
                    )
                    .await?;
                let id = proposal_id(&raw).map_err(|e| {
                    anyhow::anyhow!("{command}: transaction {}: {e}", receipt.transaction_hash)
                })?;
                extra.push(("id", json!(id)));
            }
            return chain.finish(&command, &receipt, &extra);
        }
        match a.command {
            GovCommand::Show { id } => {
                let p = client.request("btt_getProposal", json!([id])).await?;
                if p.is_null() {
                    bail!("{command}: there is no proposal {id}; see `btt gov list`");
                }
                chain.print(&p, proposal_text);
            }
            _ => {
                let count = client.request("btt_getProposalCount", json!([])).await?;
                let count = count_of(&count).ok_or_else(|| {
                    anyhow::anyhow!("{command}: btt_getProposalCount answered {count}, not a count")
                })?;
                let mut proposals = Vec::new();
                for id in 1..=count {
                    let p = client.request("btt_getProposal", json!([id])).await?;
                    if !p.is_null() {
                        proposals.push(p);
                    }
                }
                chain.print(&json!({ "proposals": proposals }), |v| {
                    v["proposals"]
                        .as_array()
                        .map(|l| l.iter().map(proposal_line).collect())
                        .unwrap_or_default()
                });
            }
        }
        Ok(())
    })
}

/// A count as a JSON number, or as decimal or `0x` text.
fn count_of(v: &Value) -> Option<u64> {
    if let Some(n) = v.as_u64() {
        return Some(n);
    }
    let s = v.as_str()?;
    match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

fn proposal_line(p: &Value) -> String {
    format!(
        "#{} {} {} by {}, deposit {}, voting ends at {}: {}",
        text(&p["id"]),
        text(&p["kind"]),
        text(&p["status"]),
        text(&p["proposer"]),
        btt_text(&p["deposit"]),
        text(&p["votingEnd"]),
        text(&p["description"]),
    )
}

fn proposal_text(p: &Value) -> Vec<String> {
    let mut lines = vec![proposal_line(p)];
    let t = &p["tally"];
    lines.push(format!(
        "tally: yes {}, no {}, abstain {}, veto {}",
        btt_text(&t["yes"]),
        btt_text(&t["no"]),
        btt_text(&t["abstain"]),
        btt_text(&t["veto"]),
    ));
    let c = &p["change"];
    if !c["param"].is_null() {
        lines.push(format!(
            "change: {} = {} from block {}",
            text(&c["param"]),
            text(&c["value"]),
            text(&p["effectiveHeight"])
        ));
    } else if !c["to"].is_null() {
        lines.push(format!(
            "change: pay {} to {}",
            btt_text(&c["amount"]),
            text(&c["to"])
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        command: Top,
    }

    #[derive(Subcommand)]
    enum Top {
        Gov(GovArgs),
    }

    fn propose(args: &[&str]) -> Result<Submission> {
        let argv = ["btt", "gov", "propose"]
            .into_iter()
            .chain(args.iter().copied());
        let Top::Gov(a) = Cli::try_parse_from(argv)?.command;
        match a.command {
            GovCommand::Propose(p) => p.submission(),
            other => panic!("{other:?}"),
        }
    }

    fn err(args: &[&str]) -> String {
        match propose(args) {
            Ok(s) => panic!("{args:?} parsed: {s:?}"),
            Err(e) => e.to_string(),
        }
    }

    const BASE: [&str; 4] = ["--deposit", "100", "--description", "smaller blocks"];

    fn with<'a>(extra: &[&'a str]) -> Vec<&'a str> {
        BASE.iter().chain(extra).copied().collect()
    }

    fn btt(n: u64) -> U256 {
        wallet::Wei::from_btt(n).0
    }

    #[test]
    fn a_param_change_is_checked_locally() -> Result<()> {
        let s = propose(&with(&[
            "--param",
            "gas_limit",
            "--value",
            "20000000",
            "--effective-height",
            "130",
        ]))?;
        assert_eq!(
            s,
            Submission {
                proposal: Proposal::ParamChange {
                    param: Param::GasLimit,
                    value: U256::from(20_000_000u64),
                    effective_height: 130
                },
                deposit: btt(100),
                description: "smaller blocks".into()
            }
        );
        let e = err(&with(&[
            "--param",
            "gas_limt",
            "--value",
            "1",
            "--effective-height",
            "1",
        ]));
        assert!(
            e.starts_with("--param \"gas_limt\" is not a governed parameter: one of gas_limit, min_base_fee, "),
            "{e}"
        );
        assert_eq!(
            err(&with(&[
                "--param",
                "gas_limit",
                "--value",
                "999999",
                "--effective-height",
                "1"
            ])),
            "--value: gas_limit must be between 1000000 and 1000000000, not 999999"
        );
        assert_eq!(
            err(&with(&[
                "--param",
                "gas_limit",
                "--value",
                "2e7",
                "--effective-height",
                "1"
            ])),
            "--value \"2e7\": not a whole number; give the value in the parameter's own unit (wei for amounts)"
        );
        let huge = format!("1{}", "0".repeat(78));
        assert_eq!(
            err(&with(&[
                "--param",
                "gas_limit",
                "--value",
                &huge,
                "--effective-height",
                "1"
            ])),
            format!("--value \"{huge}\" does not fit in 256 bits")
        );
        assert_eq!(
            err(&with(&["--param", "gas_limit", "--value", "20000000"])),
            "--param needs --value N and --effective-height H"
        );
        assert_eq!(
            err(&with(&["--text", "--value", "1"])),
            "--value and --effective-height go with --param NAME"
        );
        Ok(())
    }

    #[test]
    fn exactly_one_kind() -> Result<()> {
        assert_eq!(
            err(&with(&[])),
            "say what the proposal is: --param NAME --value N --effective-height H, --text, or \
             --treasury-spend --to ADDRESS --amount BTT"
        );
        assert_eq!(
            err(&with(&[
                "--text",
                "--treasury-spend",
                "--to",
                "0x00000000000000000000000000000000000000a1",
                "--amount",
                "1"
            ])),
            "give one kind of proposal: --param, --text and --treasury-spend exclude each other"
        );
        assert_eq!(
            err(&with(&["--text", "--param", "gas_limit"])),
            "give one kind of proposal: --param, --text and --treasury-spend exclude each other"
        );
        assert_eq!(propose(&with(&["--text"]))?.proposal, Proposal::Text);
        assert_eq!(
            err(&with(&[
                "--text",
                "--to",
                "0x00000000000000000000000000000000000000a1"
            ])),
            "--to and --amount go with --treasury-spend"
        );
        assert_eq!(
            err(&with(&["--treasury-spend", "--amount", "1"])),
            "--treasury-spend needs --to ADDRESS and --amount BTT"
        );
        assert_eq!(
            err(&with(&[
                "--treasury-spend",
                "--to",
                "0x12",
                "--amount",
                "1"
            ])),
            "--to: invalid address \"0x12\": expected 0x followed by 40 hex digits"
        );
        let s = propose(&with(&[
            "--treasury-spend",
            "--to",
            "0x00000000000000000000000000000000000000a1",
            "--amount",
            "0.5",
        ]))?;
        assert_eq!(
            s.proposal,
            Proposal::TreasurySpend {
                to: "0x00000000000000000000000000000000000000a1".parse()?,
                amount: btt(1) / U256::from(2u8)
            }
        );
        assert_eq!(
            err(&["--deposit", "x", "--description", "d", "--text"]),
            "--deposit \"x\": amount has an invalid character 'x' at position 0: use digits and one '.'"
        );
        let long = "d".repeat(1025);
        assert_eq!(
            err(&["--deposit", "1", "--description", &long, "--text"]),
            "--description is 1025 bytes, more than the 1024 allowed: shorten it"
        );
        Ok(())
    }

    #[test]
    fn vote_options() -> Result<()> {
        assert_eq!(parse_vote("yes")?, VoteOption::Yes);
        assert_eq!(parse_vote("No")?, VoteOption::No);
        assert_eq!(parse_vote("abstain")?, VoteOption::Abstain);
        assert_eq!(parse_vote("veto")?, VoteOption::NoWithVeto);
        assert_eq!(
            parse_vote("maybe")
                .map_err(|e| e.to_string())
                .err()
                .as_deref(),
            Some("vote option \"maybe\": give yes, no, abstain or veto")
        );
        Ok(())
    }

    #[test]
    fn calldata_decodes_back_field_by_field() -> Result<()> {
        let gov = chain_state::governance_address();
        let tx = submit_call(&Submission {
            proposal: Proposal::ParamChange {
                param: Param::GasLimit,
                value: U256::from(20_000_000u64),
                effective_height: 130,
            },
            deposit: btt(100),
            description: "smaller blocks".into(),
        });
        assert_eq!((tx.to, tx.value), (gov, btt(100)));
        let c = IGovernance::submitProposalCall::abi_decode(&tx.data)?;
        assert_eq!(c.kind, 1);
        assert_eq!(c.description, "smaller blocks");
        let (id, value, height) = ParamPayload::abi_decode_params(&c.payload)?;
        assert_eq!(
            (id, value, height),
            (Param::GasLimit.id(), U256::from(20_000_000u64), 130)
        );
        // Three words: the id, the value and the height, each right-aligned.
        let mut words = vec![0u8; 96];
        words[31] = Param::GasLimit.id();
        words[32 + 28..64].copy_from_slice(&20_000_000u32.to_be_bytes());
        words[95] = 130;
        assert_eq!(c.payload.to_vec(), words);

        let tx = submit_call(&Submission {
            proposal: Proposal::Text,
            deposit: btt(1),
            description: "hello".into(),
        });
        let c = IGovernance::submitProposalCall::abi_decode(&tx.data)?;
        assert_eq!(
            (c.kind, c.payload.len(), c.description.as_str()),
            (2, 0, "hello")
        );

        let to: alloy_primitives::Address = "0x00000000000000000000000000000000000000a1".parse()?;
        let tx = submit_call(&Submission {
            proposal: Proposal::TreasurySpend { to, amount: btt(5) },
            deposit: btt(2),
            description: String::new(),
        });
        assert_eq!(tx.value, btt(2));
        let c = IGovernance::submitProposalCall::abi_decode(&tx.data)?;
        assert_eq!(c.kind, 3);
        assert_eq!(SpendPayload::abi_decode_params(&c.payload)?, (to, btt(5)));
        assert_eq!(c.payload.len(), 64);

        let tx = vote_call(7, VoteOption::NoWithVeto);
        assert_eq!((tx.to, tx.value), (gov, U256::ZERO));
        let c = IGovernance::vote_0Call::abi_decode(&tx.data)?;
        assert_eq!((c.id, c.option), (7, 4));
        let mut expected = IGovernance::vote_0Call::SELECTOR.to_vec();
        expected.extend_from_slice(&[0; 31]);
        expected.push(7);
        expected.extend_from_slice(&[0; 31]);
        expected.push(4);
        assert_eq!(tx.data, expected);
        Ok(())
    }

    #[test]
    fn the_id_comes_from_the_submitted_log() -> Result<()> {
        let gov = format!("{:#x}", chain_state::governance_address());
        let topic = format!("{:#x}", IGovernance::ProposalSubmitted::SIGNATURE_HASH);
        let id_topic = format!("0x{:064x}", 42);
        let proposer = format!("0x{:064x}", 0xab);
        let other = format!("{:#x}", chain_state::staking_address());
        let receipt = json!({
            "status": "0x1",
            "logs": [
                // The same event signature from another address does not count.
                {"address": other, "topics": [topic, format!("0x{:064x}", 9)], "data": "0x"},
                {"address": gov, "topics": [topic, id_topic, proposer], "data": "0x"},
            ]
        });
        assert_eq!(proposal_id(&receipt)?, 42);
        let none =
            json!({"logs": [{"address": gov, "topics": [format!("0x{:064x}", 1)], "data": "0x"}]});
        assert_eq!(
            proposal_id(&none)
                .map_err(|e| e.to_string())
                .err()
                .as_deref(),
            Some("the receipt has no ProposalSubmitted log from the governance module")
        );
        assert!(proposal_id(&json!({})).is_err());
        let huge = json!({"logs": [{"address": gov, "topics": [topic, format!("0x1{}", "0".repeat(63))]}]});
        assert!(proposal_id(&huge).is_err());
        Ok(())
    }

    #[test]
    fn counts_and_lines() {
        assert_eq!(count_of(&json!(3)), Some(3));
        assert_eq!(count_of(&json!("0x3")), Some(3));
        assert_eq!(count_of(&json!("3")), Some(3));
        assert_eq!(count_of(&json!(null)), None);
        let p = json!({"id": 2, "kind": "param_change", "status": "passed", "proposer": "0xab",
            "deposit": "100000000000000000000", "votingEnd": 60, "description": "d",
            "effectiveHeight": 90, "tally": {"yes": "1", "no": "0", "abstain": "0", "veto": "0"},
            "change": {"param": "gas_limit", "value": "20000000"}});
        assert_eq!(
            proposal_text(&p),
            vec![
                "#2 param_change passed by 0xab, deposit 100 BTT, voting ends at 60: d".to_string(),
                "tally: yes 0.000000000000000001 BTT, no 0 BTT, abstain 0 BTT, veto 0 BTT".into(),
                "change: gas_limit = 20000000 from block 90".into(),
            ]
        );
    }
}
