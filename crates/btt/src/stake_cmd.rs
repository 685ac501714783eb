//! `btt stake`: proof of stake from the command line, through a node's JSON-RPC. Transactions
//! call the staking module at `0x…b77001` (ABI [`chain_state::IStaking`]); views read the
//! node's `btt_*` methods.
//!
//! # Layout
//! - [`ChainArgs`]: the flags every `stake` and `gov` subcommand takes (`--rpc`, `--json`, the
//!   signer), and the signer they name ([`ChainArgs::signer`]).
//! - [`Tx`] and [`ChainArgs::send`]: one module call, sent the way `market::RpcChain` sends
//!   its own: estimate the gas first, so a call the module would refuse fails with the module's
//!   reason before any fee is paid; then sign (EIP-1559), send and wait for the receipt.
//! - [`run`]: the `stake` subcommands; the calldata comes from small pure functions
//!   (`*_call`) that the unit tests decode back with the ABI.
//!
//! Amounts are exact: `--amount` text is parsed to integer wei, views print exact BTT in text
//! and the node's decimal wei strings in JSON. With `--json` the last stdout line is one JSON
//! object; a transaction prints `{"hash", "status", "block", "gas_used", "fee_wei"}`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use alloy_primitives::{hex, Bytes, B256, U256};
use alloy_sol_types::SolCall;
use anyhow::{bail, Context, Result};
use chain_state::IStaking;
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use wallet::client::{CallRequest, TxEip1559, DEFAULT_RPC_URL};
use wallet::{sign_eip1559, Keystore, Password, PrivateKey, RpcClient, Signer, TxReceipt, Wei};
use zeroize::Zeroizing;

/// Gas margin over the node's estimate, in percent (as `market::RpcChain` uses).
const GAS_MARGIN_PERCENT: u64 = 25;

// ---- shared with `btt gov` ----------------------------------------------------------------------

/// Where the node is, how to print, and who signs; every flag is global to the subcommands.
#[derive(Args, Clone, Debug)]
pub(crate) struct ChainArgs {
    /// The node's JSON-RPC URL (http:// only).
    #[arg(long, env = "BTT_RPC", default_value = DEFAULT_RPC_URL, global = true)]
    pub(crate) rpc: String,
    /// Timeout of each request to the node, in seconds.
    #[arg(
        long,
        env = "BTT_RPC_TIMEOUT_SECS",
        default_value_t = 10,
        global = true
    )]
    pub(crate) rpc_timeout_secs: u64,
    /// Print one JSON object (on the last stdout line) instead of text.
    #[arg(long, env = "BTT_JSON", global = true, value_parser = clap::builder::BoolishValueParser::new())]
    pub(crate) json: bool,
    /// File holding the signer's hex secp256k1 private key on its first line (mode 0600).
    #[arg(long, env = "BTT_KEY_FILE", global = true)]
    pub(crate) key_file: Option<PathBuf>,
    /// Keystore directory holding the signer's key (with --from and --password-file).
    #[arg(long, env = "BTT_KEYSTORE", global = true)]
    pub(crate) keystore: Option<PathBuf>,
    /// The signer's address in the keystore.
    #[arg(long, env = "BTT_FROM", global = true)]
    pub(crate) from: Option<String>,
    /// File holding the keystore password on its first line (default: a prompt).
    #[arg(long, env = "BTT_PASSWORD_FILE", global = true)]
    pub(crate) password_file: Option<PathBuf>,
    /// How long to wait for a transaction's receipt, in seconds.
    #[arg(long, env = "BTT_WAIT_SECS", default_value_t = 120, global = true)]
    pub(crate) wait_secs: u64,
}

/// One call to a module, ready to estimate and sign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Tx {
    /// The module.
    pub(crate) to: alloy_primitives::Address,
    /// ABI calldata.
    pub(crate) data: Vec<u8>,
    /// Value sent along, wei.
    pub(crate) value: U256,
}

impl ChainArgs {
    /// The JSON-RPC client for `--rpc`.
    pub(crate) fn client(&self) -> Result<RpcClient> {
        Ok(RpcClient::new(&self.rpc)?.with_timeout(Duration::from_secs(self.rpc_timeout_secs)))
    }

    /// The signer's address without unlocking a keystore; `None` when no signer is named.
    pub(crate) fn signer_address(&self) -> Result<Option<wallet::Address>> {
        if self.key_file.is_some() {
            return Ok(Some(self.signer(None)?.address()));
        }
        match (&self.keystore, &self.from) {
            (Some(_), Some(from)) => parse_address(from, "--from").map(|a| Some(to_wallet(a))),
            _ => Ok(None),
        }
    }

    /// The key that signs `command`'s transaction: `--key-file`, or `--keystore` with `--from`
    /// (and `--password-file`, else a prompt).
    pub(crate) fn signer(&self, command: Option<&str>) -> Result<Signer> {
        if self.key_file.is_some() && self.keystore.is_some() {
            bail!("both --key-file and --keystore name the signing key: give one");
        }
        if let Some(path) = &self.key_file {
            return read_key_file(path).map(Signer::new);
        }
        let (Some(dir), Some(from)) = (&self.keystore, &self.from) else {
            bail!(
                "{} signs a transaction: pass --key-file FILE, or --keystore DIR --from ADDRESS \
                 [--password-file FILE]",
                command.unwrap_or("this command")
            );
        };
        let address = to_wallet(parse_address(from, "--from")?);
        // Opening a keystore creates its directory: a typo must not leave one behind.
        if !dir.is_dir() {
            bail!(
                "--keystore {}: no such directory; create keys with `btt wallet new`",
                dir.display()
            );
        }
        let password = match &self.password_file {
            Some(f) => Password::from_file(f)?,
            None => Password::prompt(&format!("password for {address}: "))?,
        };
        Ok(Keystore::open(dir)?.unlock(&address, &password)?)
    }

    /// Sends `tx` signed by `signer` and waits for its receipt. `command` (`btt stake
    /// delegate`) names the call in errors; a call the module refuses at the estimate fails
    /// with `<command>: refused by the chain: <reason>` and nothing is sent.
    pub(crate) async fn send(
        &self,
        client: &RpcClient,
        signer: &Signer,
        command: &str,
        tx: Tx,
    ) -> Result<TxReceipt> {
        let from = signer.address();
        let chain_id = client.chain_id().await?;
        let request = CallRequest {
            from: Some(from),
            to: Some(to_wallet(tx.to)),
            value: Wei(tx.value),
            data: tx.data.clone(),
        };
        let estimate =
            client
                .estimate_gas(&request)
                .await
                .map_err(|e| match refusal_reason(&e) {
                    Some(reason) => anyhow::anyhow!("{command}: refused by the chain: {reason}"),
                    None => anyhow::anyhow!("{command}: {e}"),
                })?;
        let gas_limit = estimate.saturating_add(estimate * GAS_MARGIN_PERCENT / 100);
        let fees = client.suggest_fees().await?;
        let nonce = client.nonce(from).await?;
        let unsigned = TxEip1559 {
            chain_id,
            nonce,
            gas_limit,
            max_fee_per_gas: fees.max_fee_per_gas,
            max_priority_fee_per_gas: fees.max_priority_fee_per_gas.min(fees.max_fee_per_gas),
            to: alloy_primitives::TxKind::Call(tx.to),
            value: tx.value,
            access_list: Default::default(),
            input: tx.data.into(),
        };
        let signed = sign_eip1559(unsigned, signer);
        let hash =
            client
                .send_raw_transaction(&signed.raw)
                .await
                .map_err(|e| match refusal_reason(&e) {
                    Some(reason) => anyhow::anyhow!("{command}: refused by the chain: {reason}"),
                    None => anyhow::anyhow!("{command}: {e}"),
                })?;
        if hash != signed.hash {
            bail!(
                "the node reports hash {hash} for transaction {}: it is not the transaction we \
                 signed; check --rpc",
                signed.hash
            );
        }
        if !self.json {
            eprintln!("{command}: sent {hash}; waiting for the receipt");
        }
        Ok(client
            .wait_for_receipt(hash, Duration::from_secs(self.wait_secs))
            .await?)
    }

    /// Prints a transaction's outcome (`extra` adds fields, e.g. a proposal id) and fails
    /// when it reverted in its block.
    pub(crate) fn finish(
        &self,
        command: &str,
        receipt: &TxReceipt,
        extra: &[(&str, Value)],
    ) -> Result<()> {
        let mut out = receipt_json(receipt);
        for (k, v) in extra {
            out[*k] = v.clone();
        }
        if self.json {
            println!("{out}");
        } else {
            let status = if receipt.success { "success" } else { "failed" };
            let mut line = format!(
                "{}: {status} in block {}, gas used {}, fee {} BTT",
                receipt.transaction_hash,
                receipt.block_number,
                receipt.gas_used,
                receipt.fee().to_btt_string()
            );
            for (k, v) in extra {
                line.push_str(&format!(", {k} {v}"));
            }
            println!("{line}");
        }
        if !receipt.success {
            bail!(
                "{command}: transaction {} failed (status 0) in block {}; the fee was still paid",
                receipt.transaction_hash,
                receipt.block_number
            );
        }
        Ok(())
    }

    /// Prints a view: `value` as JSON, else `text`'s lines.
    pub(crate) fn print(&self, value: &Value, text: impl FnOnce(&Value) -> Vec<String>) {
        if self.json {
            println!("{value}");
        } else {
            for line in text(value) {
                println!("{line}");
            }
        }
    }
}

/// The module's reason when the node refused a call because it reverts (JSON-RPC code 3, or
/// a message starting with `execution reverted`).
pub(crate) fn refusal_reason(e: &wallet::ClientError) -> Option<String> {
    match e {
        wallet::ClientError::Rpc { code, message, .. }
            if *code == 3 || message.starts_with("execution reverted") =>
        {
            Some(
                message
                    .strip_prefix("execution reverted: ")
                    .unwrap_or(message)
                    .to_owned(),
            )
        }
        _ => None,
    }
}

/// The JSON every transaction command prints.
pub(crate) fn receipt_json(receipt: &TxReceipt) -> Value {
    json!({
        "hash": receipt.transaction_hash.to_string(),
        "status": if receipt.success { "success" } else { "failed" },
        "block": receipt.block_number,
        "gas_used": receipt.gas_used,
        "fee_wei": receipt.fee().0.to_string(),
    })
}

/// Reads a hex secp256k1 key from the first line of `path`, refusing a file that other users
/// may read.
pub(crate) fn read_key_file(path: &Path) -> Result<PrivateKey> {
    let text = read_secret(path)?;
    let first = text.lines().next().unwrap_or("");
    PrivateKey::from_hex(first).map_err(|e| {
        anyhow::anyhow!(
            "{}: {e}; the first line must be a private key in hex",
            path.display()
        )
    })
}

/// A secret file's text; refused when its mode lets the group or others read it.
fn read_secret(path: &Path) -> Result<Zeroizing<String>> {
    use std::os::unix::fs::PermissionsExt;
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        bail!(
            "{} has mode {mode:o}, readable by other users: run `chmod 600 {}`",
            path.display(),
            path.display()
        );
    }
    Ok(Zeroizing::new(std::fs::read_to_string(path).with_context(
        || format!("cannot read {}", path.display()),
    )?))
}

/// An address given on the command line; `flag` names it in errors.
pub(crate) fn parse_address(text: &str, flag: &str) -> Result<alloy_primitives::Address> {
    let a: wallet::Address = text
        .trim()
        .parse()
        .map_err(|e| anyhow::anyhow!("{flag}: {e}"))?;
    Ok(alloy_primitives::Address::from(a.0))
}

fn to_wallet(a: alloy_primitives::Address) -> wallet::Address {
    wallet::Address(a.0 .0)
}

/// An exact BTT amount above zero, in wei.
pub(crate) fn parse_amount(text: &str, flag: &str) -> Result<U256> {
    let wei = Wei::parse_btt(text.trim()).map_err(|e| anyhow::anyhow!("{flag} {text:?}: {e}"))?;
    if wei.0.is_zero() {
        bail!("{flag} must be above zero");
    }
    Ok(wei.0)
}

/// `--amount BTT|all`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Amount {
    /// This many wei.
    Wei(U256),
    /// The caller's whole delegation, read from the node just before sending.
    All,
}

fn parse_amount_or_all(text: &str, flag: &str) -> Result<Amount> {
    if text.trim() == "all" {
        return Ok(Amount::All);
    }
    parse_amount(text, flag)
        .map(Amount::Wei)
        .map_err(|e| anyhow::anyhow!("{e} (or give `all`)"))
}

/// A decimal wei string from a view as exact BTT; other text is shown as it is.
pub(crate) fn btt_text(v: &Value) -> String {
    match v.as_str().and_then(|s| U256::from_str_radix(s, 10).ok()) {
        Some(w) => format!("{} BTT", Wei(w).to_btt_string()),
        None => v.to_string(),
    }
}

/// A view's field as plain text (strings without quotes).
pub(crate) fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

// ---- btt stake ----------------------------------------------------------------------------------

/// `btt stake …`
#[derive(Args)]
pub(crate) struct StakeArgs {
    #[command(subcommand)]
    command: StakeCommand,
    #[command(flatten)]
    chain: ChainArgs,
}

#[derive(Subcommand, Debug)]
enum StakeCommand {
    /// The validator set of an epoch (default: the current one).
    Validators {
        /// The epoch.
        #[arg(long)]
        epoch: Option<u64>,
    },
    /// Register as a validator, bonding --amount with the keys of a validator key file.
    CreateValidator {
        /// The validator key file (as `btt chain init` writes it; mode 0600).
        #[arg(long)]
        validator_key: PathBuf,
        /// Self-bond in BTT, exact decimal.
        #[arg(long)]
        amount: String,
        /// Commission on delegators' rewards, in basis points (0 to 10000).
        #[arg(long, default_value_t = 1000)]
        commission_bps: u16,
    },
    /// Bond BTT to a validator.
    Delegate {
        /// The validator's operator address.
        #[arg(long)]
        validator: String,
        /// BTT to bond, exact decimal.
        #[arg(long)]
        amount: String,
    },
    /// Start unbonding a delegation (paid after the unbonding period).
    Undelegate {
        /// The validator's operator address.
        #[arg(long)]
        validator: String,
        /// BTT to unbond, exact decimal, or `all`.
        #[arg(long)]
        amount: String,
    },
    /// Move a delegation from one validator to another at once.
    Redelegate {
        /// The validator to leave.
        #[arg(long)]
        from_validator: String,
        /// The validator to join.
        #[arg(long)]
        to_validator: String,
        /// BTT to move, exact decimal, or `all`.
        #[arg(long)]
        amount: String,
    },
    /// Withdraw the pending rewards (and, for its operator, the commission) of a validator.
    Claim {
        /// The validator's operator address.
        #[arg(long)]
        validator: String,
    },
    /// Leave jail once the jail period is over.
    Unjail,
    /// Change our validator's commission.
    EditCommission {
        /// The new commission in basis points.
        #[arg(long)]
        bps: u16,
    },
    /// Pending rewards of an address (default: the signer's).
    Rewards {
        /// The address.
        address: Option<String>,
    },
    /// Delegations of an address (default: the signer's).
    Delegations {
        /// The address.
        address: Option<String>,
    },
    /// Double-signing evidence: list what the node saw, or submit some.
    Evidence {
        /// List the evidence the node has seen.
        #[arg(long)]
        list: bool,
        /// Submit this evidence (0x hex), punishing the validator that signed it.
        #[arg(long)]
        submit: Option<String>,
    },
}

impl StakeCommand {
    fn name(&self) -> &'static str {
        match self {
            Self::Validators { .. } => "validators",
            Self::CreateValidator { .. } => "create-validator",
            Self::Delegate { .. } => "delegate",
            Self::Undelegate { .. } => "undelegate",
            Self::Redelegate { .. } => "redelegate",
            Self::Claim { .. } => "claim",
            Self::Unjail => "unjail",
            Self::EditCommission { .. } => "edit-commission",
            Self::Rewards { .. } => "rewards",
            Self::Delegations { .. } => "delegations",
            Self::Evidence { .. } => "evidence",
        }
    }
}

/// A transaction command with its arguments checked (nothing read from the node yet).
#[derive(Debug, Clone, PartialEq, Eq)]
enum StakeTx {
    CreateValidator {
        keys: PathBuf,
        amount: U256,
        commission_bps: u16,
    },
    Delegate {
        validator: alloy_primitives::Address,
        amount: U256,
    },
    Undelegate {
        validator: alloy_primitives::Address,
        amount: Amount,
    },
    Redelegate {
        from: alloy_primitives::Address,
        to: alloy_primitives::Address,
        amount: Amount,
    },
    Claim {
        validator: alloy_primitives::Address,
    },
    Unjail,
    EditCommission {
        bps: u16,
    },
    SubmitEvidence {
        evidence: Vec<u8>,
    },
}

/// What `btt stake <command>` asks for, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
enum StakeRequest {
    Validators(Option<u64>),
    Rewards(Option<alloy_primitives::Address>),
    Delegations(Option<alloy_primitives::Address>),
    ListEvidence,
    Tx(StakeTx),
}

fn check_commission(bps: u16, flag: &str) -> Result<u16> {
    if bps > chain_state::MAX_COMMISSION_BPS {
        bail!(
            "{flag} {bps} is above {} (100 %): give 0 to {}",
            chain_state::MAX_COMMISSION_BPS,
            chain_state::MAX_COMMISSION_BPS
        );
    }
    Ok(bps)
}

/// `0x` hex bytes; `flag` names them in errors.
fn parse_hex(text: &str, flag: &str) -> Result<Vec<u8>> {
    let t = text.trim();
    let Some(digits) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) else {
        bail!("{flag}: expected 0x followed by hex digits");
    };
    let bytes = hex::decode(digits).map_err(|e| anyhow::anyhow!("{flag}: not hex: {e}"))?;
    if bytes.is_empty() {
        bail!("{flag}: empty; give the evidence bytes as 0x hex");
    }
    Ok(bytes)
}

impl StakeCommand {
    /// Checks the arguments; no file or node is touched.
    fn request(&self) -> Result<StakeRequest> {
        let optional = |a: &Option<String>| {
            a.as_deref()
                .map(|a| parse_address(a, "address"))
                .transpose()
        };
        Ok(match self {
            Self::Validators { epoch } => StakeRequest::Validators(*epoch),
            Self::Rewards { address } => StakeRequest::Rewards(optional(address)?),
            Self::Delegations { address } => StakeRequest::Delegations(optional(address)?),
            Self::Evidence { list, submit } => match (list, submit) {
                (true, None) => StakeRequest::ListEvidence,
                (false, Some(hex)) => StakeRequest::Tx(StakeTx::SubmitEvidence {
                    evidence: parse_hex(hex, "--submit")?,
                }),
                (true, Some(_)) => bail!("give --list or --submit, not both"),
                (false, None) => bail!("give --list, or --submit 0xHEX"),
            },
            Self::CreateValidator {
                validator_key,
                amount,
                commission_bps,
            } => StakeRequest::Tx(StakeTx::CreateValidator {
                keys: validator_key.clone(),
                amount: parse_amount(amount, "--amount")?,
                commission_bps: check_commission(*commission_bps, "--commission-bps")?,
            }),
            Self::Delegate { validator, amount } => StakeRequest::Tx(StakeTx::Delegate {
                validator: parse_address(validator, "--validator")?,
                amount: parse_amount(amount, "--amount")?,
            }),
            Self::Undelegate { validator, amount } => StakeRequest::Tx(StakeTx::Undelegate {
                validator: parse_address(validator, "--validator")?,
                amount: parse_amount_or_all(amount, "--amount")?,
            }),
            Self::Redelegate {
                from_validator,
                to_validator,
                amount,
            } => {
                let from = parse_address(from_validator, "--from-validator")?;
                let to = parse_address(to_validator, "--to-validator")?;
                if from == to {
                    bail!("--from-validator and --to-validator are the same validator");
                }
                StakeRequest::Tx(StakeTx::Redelegate {
                    from,
                    to,
                    amount: parse_amount_or_all(amount, "--amount")?,
                })
            }
            Self::Claim { validator } => StakeRequest::Tx(StakeTx::Claim {
                validator: parse_address(validator, "--validator")?,
            }),
            Self::Unjail => StakeRequest::Tx(StakeTx::Unjail),
            Self::EditCommission { bps } => StakeRequest::Tx(StakeTx::EditCommission {
                bps: check_commission(*bps, "--bps")?,
            }),
        })
    }
}

// ---- calldata -----------------------------------------------------------------------------------

fn staking(data: Vec<u8>, value: U256) -> Tx {
    Tx {
        to: chain_state::staking_address(),
        data,
        value,
    }
}

/// `createValidator(identity, bls, pop, commissionBps)` with the keys `info` lists, bonding
/// `amount`.
fn create_validator_call(
    info: &chain_consensus::ValidatorInfo,
    commission_bps: u16,
    amount: U256,
) -> Result<Tx> {
    let bytes = |text: &str, what: &str, len: usize| -> Result<Vec<u8>> {
        let b = hex::decode(text.trim_start_matches("0x"))
            .map_err(|e| anyhow::anyhow!("the validator key's {what} is not hex: {e}"))?;
        if b.len() != len {
            bail!("the validator key's {what} is {} bytes, not {len}", b.len());
        }
        Ok(b)
    };
    let identity = B256::from_slice(&bytes(&info.identity, "identity", 32)?);
    let bls = bytes(&info.bls, "BLS key", chain_state::BLS_KEY_LEN)?;
    let pop = bytes(&info.pop, "proof of possession", chain_state::POP_LEN)?;
    let call = IStaking::createValidatorCall {
        identity,
        bls: Bytes::from(bls),
        pop: Bytes::from(pop),
        commissionBps: commission_bps,
    };
    Ok(staking(call.abi_encode(), amount))
}

fn delegate_call(validator: alloy_primitives::Address, amount: U256) -> Tx {
    staking(IStaking::delegateCall { validator }.abi_encode(), amount)
}

fn undelegate_call(validator: alloy_primitives::Address, amount: U256) -> Tx {
    staking(
        IStaking::undelegateCall { validator, amount }.abi_encode(),
        U256::ZERO,
    )
}

fn redelegate_call(
    from: alloy_primitives::Address,
    to: alloy_primitives::Address,
    amount: U256,
) -> Tx {
    staking(
        IStaking::redelegateCall { from, to, amount }.abi_encode(),
        U256::ZERO,
    )
}

fn withdraw_rewards_call(validator: alloy_primitives::Address) -> Tx {
    staking(
        IStaking::withdrawRewardsCall { validator }.abi_encode(),
        U256::ZERO,
    )
}

fn unjail_call() -> Tx {
    staking(IStaking::unjailCall {}.abi_encode(), U256::ZERO)
}

fn edit_commission_call(bps: u16) -> Tx {
    staking(
        IStaking::editCommissionCall { bps }.abi_encode(),
        U256::ZERO,
    )
}

fn submit_evidence_call(evidence: Vec<u8>) -> Tx {
    staking(
        IStaking::submitEvidenceCall {
            evidence: Bytes::from(evidence),
        }
        .abi_encode(),
        U256::ZERO,
    )
}

/// The value of `delegator`'s delegation to `validator` in a `btt_getDelegations` answer.
fn delegation_tokens(
    delegations: &Value,
    delegator: wallet::Address,
    validator: alloy_primitives::Address,
) -> Result<U256> {
    let list = delegations.as_array().ok_or_else(|| {
        anyhow::anyhow!(
            "btt_getDelegations answered {delegations}, not a list; is --rpc a BTT chain node?"
        )
    })?;
    let entry = list.iter().find(|d| {
        d.get("validator")
            .and_then(Value::as_str)
            .and_then(|v| parse_address(v, "validator").ok())
            == Some(validator)
    });
    let tokens = entry
        .and_then(|d| d.get("tokens"))
        .and_then(Value::as_str)
        .map(|t| U256::from_str_radix(t, 10))
        .transpose()
        .map_err(|e| anyhow::anyhow!("btt_getDelegations: bad tokens: {e}"))?
        .unwrap_or(U256::ZERO);
    if tokens.is_zero() {
        bail!(
            "--amount all: {} has no delegation to {validator}: nothing to move",
            delegator
        );
    }
    Ok(tokens)
}

// ---- running ------------------------------------------------------------------------------------

/// Runs a `btt stake` subcommand.
pub(crate) fn run(a: StakeArgs) -> Result<()> {
    let command = format!("btt stake {}", a.command.name());
    let request = a
        .command
        .request()
        .map_err(|e| anyhow::anyhow!("{command}: {e}"))?;
    runtime()?.block_on(execute(&a.chain, &command, request))
}

async fn execute(chain: &ChainArgs, command: &str, request: StakeRequest) -> Result<()> {
    let client = chain.client()?;
    let who = |given: Option<alloy_primitives::Address>| -> Result<wallet::Address> {
        match given {
            Some(a) => Ok(to_wallet(a)),
            None => chain.signer_address()?.ok_or_else(|| {
                anyhow::anyhow!(
                    "{command}: which address? give one, or a signer (--key-file FILE, or \
                     --keystore DIR --from ADDRESS)"
                )
            }),
        }
    };
    match request {
        StakeRequest::Validators(epoch) => {
            let v = client.request("btt_getValidators", json!([epoch])).await?;
            chain.print(&v, validators_text);
            Ok(())
        }
        StakeRequest::Rewards(address) => {
            let who = who(address)?;
            let v = client
                .request("btt_getRewards", json!([format!("{who:#x}")]))
                .await?;
            chain.print(&v, rewards_text);
            Ok(())
        }
        StakeRequest::Delegations(address) => {
            let who = who(address)?;
            let v = client
                .request("btt_getDelegations", json!([format!("{who:#x}")]))
                .await?;
            chain.print(&json!({ "delegations": v }), delegations_text);
            Ok(())
        }
        StakeRequest::ListEvidence => {
            let v = client.request("btt_getEvidence", json!([])).await?;
            chain.print(&json!({ "evidence": v }), |v| {
                v["evidence"]
                    .as_array()
                    .map(|l| l.iter().map(text).collect())
                    .unwrap_or_default()
            });
            Ok(())
        }
        StakeRequest::Tx(tx) => {
            let signer = chain.signer(Some(command))?;
            let tx = resolve(&client, &signer, command, tx).await?;
            let receipt = chain.send(&client, &signer, command, tx).await?;
            chain.finish(command, &receipt, &[])
        }
    }
}

/// The module call for `tx`, reading what it needs from files and the node.
async fn resolve(client: &RpcClient, signer: &Signer, command: &str, tx: StakeTx) -> Result<Tx> {
    let me = signer.address();
    let all = |validator| async move {
        let d = client
            .request("btt_getDelegations", json!([format!("{me:#x}")]))
            .await?;
        delegation_tokens(&d, me, validator).map_err(|e| anyhow::anyhow!("{command}: {e}"))
    };
    Ok(match tx {
        StakeTx::CreateValidator {
            keys,
            amount,
            commission_bps,
        } => {
            let text = read_secret(&keys)?;
            let keys = chain_consensus::ValidatorKeys::from_hex(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", keys.display()))?;
            let chain_id = client.chain_id().await?;
            let info = keys.public(&chain_consensus::namespace(chain_id));
            create_validator_call(&info, commission_bps, amount)?
        }
        StakeTx::Delegate { validator, amount } => delegate_call(validator, amount),
        StakeTx::Undelegate { validator, amount } => {
            let amount = match amount {
                Amount::Wei(w) => w,
                Amount::All => all(validator).await?,
            };
            undelegate_call(validator, amount)
        }
        StakeTx::Redelegate { from, to, amount } => {
            let amount = match amount {
                Amount::Wei(w) => w,
                Amount::All => all(from).await?,
            };
            redelegate_call(from, to, amount)
        }
        StakeTx::Claim { validator } => withdraw_rewards_call(validator),
        StakeTx::Unjail => unjail_call(),
        StakeTx::EditCommission { bps } => edit_commission_call(bps),
        StakeTx::SubmitEvidence { evidence } => submit_evidence_call(evidence),
    })
}

fn validators_text(v: &Value) -> Vec<String> {
    let list = v["validators"].as_array().cloned().unwrap_or_default();
    let mut lines = vec![format!(
        "epoch {}: {} validators",
        text(&v["epoch"]),
        list.len()
    )];
    for val in &list {
        lines.push(format!(
            "{} {} tokens {} (self-bond {}), commission {} bps, unbonding {}, jailed until {}",
            text(&val["operator"]),
            text(&val["status"]),
            btt_text(&val["tokens"]),
            btt_text(&val["selfBond"]),
            text(&val["commissionBps"]),
            btt_text(&val["unbonding"]),
            text(&val["jailedUntil"]),
        ));
    }
    lines
}

fn delegations_text(v: &Value) -> Vec<String> {
    v["delegations"]
        .as_array()
        .map(|l| {
            l.iter()
                .map(|d| {
                    format!(
                        "{}: {} ({} shares), pending rewards {}",
                        text(&d["validator"]),
                        btt_text(&d["tokens"]),
                        text(&d["shares"]),
                        btt_text(&d["pendingRewards"]),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn rewards_text(v: &Value) -> Vec<String> {
    let mut lines = vec![format!(
        "total {} (commission {})",
        btt_text(&v["total"]),
        btt_text(&v["commission"])
    )];
    for d in v["delegations"].as_array().into_iter().flatten() {
        lines.push(format!(
            "{}: {}",
            text(&d["validator"]),
            btt_text(&d["pending"])
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
        Stake(StakeArgs),
    }

    fn parse(args: &[&str]) -> Result<(StakeRequest, ChainArgs)> {
        let cli = Cli::try_parse_from(std::iter::once("btt").chain(args.iter().copied()))?;
        let Top::Stake(a) = cli.command;
        Ok((a.command.request()?, a.chain))
    }

    fn err(args: &[&str]) -> String {
        match parse(args) {
            Ok(r) => panic!("{args:?} parsed: {:?}", r.0),
            Err(e) => e.to_string(),
        }
    }

    const V1: &str = "0x00000000000000000000000000000000000000a1";
    const V2: &str = "0x00000000000000000000000000000000000000a2";

    fn addr(s: &str) -> alloy_primitives::Address {
        s.parse().expect("a valid test address")
    }

    fn btt(n: u64) -> U256 {
        Wei::from_btt(n).0
    }

    #[test]
    fn common_flags_come_after_the_subcommand() -> Result<()> {
        let (r, c) = parse(&[
            "stake",
            "delegate",
            "--validator",
            V1,
            "--amount",
            "5000",
            "--rpc",
            "http://127.0.0.1:9",
            "--json",
            "--key-file",
            "/k",
        ])?;
        assert_eq!(
            r,
            StakeRequest::Tx(StakeTx::Delegate {
                validator: addr(V1),
                amount: btt(5000)
            })
        );
        assert_eq!(c.rpc, "http://127.0.0.1:9");
        assert!(c.json);
        assert_eq!(c.key_file, Some(PathBuf::from("/k")));
        Ok(())
    }

    #[test]
    fn amounts_are_exact_and_checked() -> Result<()> {
        let (r, _) = parse(&[
            "stake",
            "delegate",
            "--validator",
            V1,
            "--amount",
            "1.000000000000000001",
        ])?;
        assert_eq!(
            r,
            StakeRequest::Tx(StakeTx::Delegate {
                validator: addr(V1),
                amount: btt(1) + U256::from(1u8)
            })
        );
        assert_eq!(
            err(&["stake", "delegate", "--validator", V1, "--amount", "1e3"]),
            "--amount \"1e3\": amount has an invalid character 'e' at position 1: use digits and one '.'"
        );
        assert_eq!(
            err(&["stake", "delegate", "--validator", V1, "--amount", "0"]),
            "--amount must be above zero"
        );
        assert_eq!(
            err(&["stake", "delegate", "--validator", V1, "--amount=-1"]),
            "--amount \"-1\": amount is negative: amounts of BTT are never below zero"
        );
        // `all` only where a delegation is taken from.
        assert_eq!(
            err(&["stake", "delegate", "--validator", V1, "--amount", "all"]),
            "--amount \"all\": amount has an invalid character 'a' at position 0: use digits and one '.'"
        );
        assert_eq!(
            err(&["stake", "undelegate", "--validator", V1, "--amount", "al"]),
            "--amount \"al\": amount has an invalid character 'a' at position 0: use digits and one '.' (or give `all`)"
        );
        let (r, _) = parse(&["stake", "undelegate", "--validator", V1, "--amount", "all"])?;
        assert_eq!(
            r,
            StakeRequest::Tx(StakeTx::Undelegate {
                validator: addr(V1),
                amount: Amount::All
            })
        );
        let (r, _) = parse(&[
            "stake",
            "redelegate",
            "--from-validator",
            V1,
            "--to-validator",
            V2,
            "--amount",
            "2.5",
        ])?;
        assert_eq!(
            r,
            StakeRequest::Tx(StakeTx::Redelegate {
                from: addr(V1),
                to: addr(V2),
                amount: Amount::Wei(btt(5) / U256::from(2u8))
            })
        );
        assert_eq!(
            err(&[
                "stake",
                "redelegate",
                "--from-validator",
                V1,
                "--to-validator",
                V1,
                "--amount",
                "all"
            ]),
            "--from-validator and --to-validator are the same validator"
        );
        Ok(())
    }

    #[test]
    fn addresses_are_checked() -> Result<()> {
        assert_eq!(
            err(&["stake", "claim", "--validator", "0x12"]),
            "--validator: invalid address \"0x12\": expected 0x followed by 40 hex digits"
        );
        // A mixed-case address must carry a valid checksum.
        let e = err(&[
            "stake",
            "claim",
            "--validator",
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD",
        ]);
        assert!(e.starts_with("--validator: "), "{e}");
        assert_eq!(
            err(&["stake", "rewards", "nope"]),
            "address: invalid address \"nope\": expected 0x followed by 40 hex digits"
        );
        let (r, _) = parse(&[
            "stake",
            "rewards",
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        ])?;
        assert_eq!(
            r,
            StakeRequest::Rewards(Some(addr("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed")))
        );
        assert_eq!(
            parse(&["stake", "delegations"])?.0,
            StakeRequest::Delegations(None)
        );
        Ok(())
    }

    #[test]
    fn other_arguments_are_checked() -> Result<()> {
        assert_eq!(
            err(&["stake", "edit-commission", "--bps", "10001"]),
            "--bps 10001 is above 10000 (100 %): give 0 to 10000"
        );
        assert_eq!(
            err(&["stake", "evidence"]),
            "give --list, or --submit 0xHEX"
        );
        assert_eq!(
            err(&["stake", "evidence", "--list", "--submit", "0x01"]),
            "give --list or --submit, not both"
        );
        assert_eq!(
            err(&["stake", "evidence", "--submit", "01"]),
            "--submit: expected 0x followed by hex digits"
        );
        assert!(err(&["stake", "evidence", "--submit", "0xzz"]).starts_with("--submit: not hex"));
        assert_eq!(
            parse(&["stake", "evidence", "--list"])?.0,
            StakeRequest::ListEvidence
        );
        assert_eq!(
            parse(&["stake", "evidence", "--submit", "0x01ab"])?.0,
            StakeRequest::Tx(StakeTx::SubmitEvidence {
                evidence: vec![1, 0xab]
            })
        );
        let (r, _) = parse(&[
            "stake",
            "create-validator",
            "--validator-key",
            "/v.key",
            "--amount",
            "200000",
        ])?;
        assert_eq!(
            r,
            StakeRequest::Tx(StakeTx::CreateValidator {
                keys: PathBuf::from("/v.key"),
                amount: btt(200_000),
                commission_bps: 1000
            })
        );
        assert_eq!(
            parse(&["stake", "validators", "--epoch", "3"])?.0,
            StakeRequest::Validators(Some(3))
        );
        Ok(())
    }

    #[test]
    fn calldata_decodes_back_field_by_field() -> Result<()> {
        let staking = chain_state::staking_address();
        let (v1, v2) = (addr(V1), addr(V2));

        let tx = delegate_call(v1, btt(7));
        assert_eq!((tx.to, tx.value), (staking, btt(7)));
        assert_eq!(&tx.data[..4], IStaking::delegateCall::SELECTOR.as_slice());
        assert_eq!(IStaking::delegateCall::abi_decode(&tx.data)?.validator, v1);
        // Exact bytes: selector ‖ address left-padded to a word.
        let mut expected = IStaking::delegateCall::SELECTOR.to_vec();
        expected.extend_from_slice(&[0; 12]);
        expected.extend_from_slice(v1.as_slice());
        assert_eq!(tx.data, expected);

        let tx = undelegate_call(v2, U256::from(12345u64));
        let c = IStaking::undelegateCall::abi_decode(&tx.data)?;
        assert_eq!(
            (c.validator, c.amount, tx.value),
            (v2, U256::from(12345u64), U256::ZERO)
        );
        assert_eq!(tx.data.len(), 4 + 64);

        let tx = redelegate_call(v1, v2, btt(3));
        let c = IStaking::redelegateCall::abi_decode(&tx.data)?;
        assert_eq!(
            (c.from, c.to, c.amount, tx.value),
            (v1, v2, btt(3), U256::ZERO)
        );

        let tx = withdraw_rewards_call(v2);
        assert_eq!(
            IStaking::withdrawRewardsCall::abi_decode(&tx.data)?.validator,
            v2
        );
        assert_eq!(tx.value, U256::ZERO);

        let tx = unjail_call();
        assert_eq!(tx.data, IStaking::unjailCall::SELECTOR.to_vec());
        IStaking::unjailCall::abi_decode(&tx.data)?;

        let tx = edit_commission_call(250);
        assert_eq!(IStaking::editCommissionCall::abi_decode(&tx.data)?.bps, 250);
        assert_eq!(tx.data[4 + 30..], [0, 250]);

        let tx = submit_evidence_call(vec![9, 8, 7]);
        let c = IStaking::submitEvidenceCall::abi_decode(&tx.data)?;
        assert_eq!(c.evidence.to_vec(), vec![9, 8, 7]);
        // selector ‖ offset 0x20 ‖ length 3 ‖ the bytes padded to a word.
        assert_eq!(tx.data.len(), 4 + 32 * 3);
        assert_eq!(tx.data[4 + 31], 0x20);
        assert_eq!(tx.data[4 + 63], 3);
        assert_eq!(tx.data[4 + 64..4 + 67], [9, 8, 7]);
        assert_eq!(tx.to, staking);
        Ok(())
    }

    #[test]
    fn create_validator_uses_the_key_files_public_keys() -> Result<()> {
        let keys = chain_consensus::ValidatorKeys::generate([7; 32]);
        let info = keys.public(&chain_consensus::namespace(4242));
        let tx = create_validator_call(&info, 500, btt(200_000))?;
        assert_eq!(tx.to, chain_state::staking_address());
        assert_eq!(tx.value, btt(200_000));
        let c = IStaking::createValidatorCall::abi_decode(&tx.data)?;
        assert_eq!(format!("{:#x}", c.identity), info.identity);
        assert_eq!(format!("0x{}", hex::encode(&c.bls)), info.bls);
        assert_eq!(format!("0x{}", hex::encode(&c.pop)), info.pop);
        assert_eq!(c.bls.len(), chain_state::BLS_KEY_LEN);
        assert_eq!(c.pop.len(), chain_state::POP_LEN);
        assert_eq!(c.commissionBps, 500);
        let mut short = info.clone();
        short.bls = "0x0102".into();
        assert_eq!(
            create_validator_call(&short, 500, btt(1))
                .map_err(|e| e.to_string())
                .err()
                .as_deref(),
            Some("the validator key's BLS key is 2 bytes, not 48")
        );
        Ok(())
    }

    #[test]
    fn all_is_the_current_delegation() -> Result<()> {
        let me = wallet::Address([0x11; 20]);
        let answer = json!([
            {"validator": V2, "shares": "5", "tokens": "77", "pendingRewards": "0"},
            {"validator": "0x00000000000000000000000000000000000000A1", "shares": "9",
             "tokens": "100000000000000000000001", "pendingRewards": "3"},
        ]);
        assert_eq!(
            delegation_tokens(&answer, me, addr(V1))?,
            U256::from(100_000_000_000_000_000_000_001u128)
        );
        assert_eq!(delegation_tokens(&answer, me, addr(V2))?, U256::from(77u8));
        let none = delegation_tokens(
            &answer,
            me,
            addr("0x00000000000000000000000000000000000000a3"),
        )
        .map_err(|e| e.to_string());
        assert_eq!(
            none.err().as_deref(),
            Some(
                format!(
                    "--amount all: 0x1111111111111111111111111111111111111111 has no delegation \
                     to {}: nothing to move",
                    addr("0x00000000000000000000000000000000000000a3")
                )
                .as_str()
            )
        );
        assert!(delegation_tokens(&json!({"x": 1}), me, addr(V1)).is_err());
        Ok(())
    }

    #[test]
    fn key_files_readable_by_others_are_refused() -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("key.hex");
        let hex_key = format!("0x{}", "11".repeat(32));
        let key = PrivateKey::from_hex(&hex_key)?;
        std::fs::write(&path, format!("{hex_key}\n"))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))?;
        let e = read_key_file(&path).map_err(|e| e.to_string()).err();
        let shown = path.display();
        assert_eq!(
            e.as_deref(),
            Some(
                format!("{shown} has mode 644, readable by other users: run `chmod 600 {shown}`")
                    .as_str()
            )
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640))?;
        assert!(read_key_file(&path).is_err());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        assert_eq!(read_key_file(&path)?.address(), key.address());
        // The signer the flags name is that key, and so is the default address of views.
        let chain = ChainArgs {
            rpc: DEFAULT_RPC_URL.into(),
            rpc_timeout_secs: 1,
            json: true,
            key_file: Some(path.clone()),
            keystore: None,
            from: None,
            password_file: None,
            wait_secs: 1,
        };
        assert_eq!(chain.signer_address()?, Some(key.address()));
        std::fs::write(&path, "not a key\n")?;
        let e = read_key_file(&path).map_err(|e| e.to_string()).err();
        assert!(
            e.as_deref()
                .is_some_and(|e| e.ends_with("the first line must be a private key in hex")),
            "{e:?}"
        );
        let none = ChainArgs {
            key_file: None,
            ..chain.clone()
        };
        assert_eq!(none.signer_address()?, None);
        assert_eq!(
            none.signer(Some("btt stake unjail"))
                .map(|_| ())
                .map_err(|e| e.to_string())
                .err()
                .as_deref(),
            Some(
                "btt stake unjail signs a transaction: pass --key-file FILE, or --keystore DIR \
                 --from ADDRESS [--password-file FILE]"
            )
        );
        let both = ChainArgs {
            keystore: Some(dir.path().into()),
            ..chain
        };
        assert!(both.signer(None).is_err());
        Ok(())
    }

    #[test]
    fn refusals_carry_the_modules_reason() {
        let reverted = wallet::ClientError::Rpc {
            method: "eth_estimateGas".into(),
            code: 3,
            message: "execution reverted: staking: already punished: 0x01 was slashed".into(),
            data: None,
        };
        assert_eq!(
            refusal_reason(&reverted).as_deref(),
            Some("staking: already punished: 0x01 was slashed")
        );
        let other = wallet::ClientError::Rpc {
            method: "eth_estimateGas".into(),
            code: -32000,
            message: "insufficient funds".into(),
            data: None,
        };
        assert_eq!(refusal_reason(&other), None);
    }

    #[test]
    fn receipts_print_the_agreed_fields() {
        let r = TxReceipt {
            transaction_hash: B256::repeat_byte(0xab),
            success: false,
            block_number: 41,
            block_hash: B256::ZERO,
            gas_used: 50_000,
            effective_gas_price: 3_000_000_000,
            contract_address: None,
        };
        assert_eq!(
            receipt_json(&r),
            json!({
                "hash": format!("0x{}", "ab".repeat(32)),
                "status": "failed",
                "block": 41,
                "gas_used": 50000,
                "fee_wei": "150000000000000",
            })
        );
        assert_eq!(btt_text(&json!("1500000000000000000")), "1.5 BTT");
        assert_eq!(btt_text(&json!(7)), "7");
    }
}
