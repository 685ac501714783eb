//! `btt wallet`: keys in Ethereum keystore v3 files under `<data dir>/keystore`, and transfers
//! of BTT through a node's JSON-RPC (`balance`, `send`).
//!
//! Amounts are exact: text is parsed to integer wei and printed back with every significant
//! decimal, never through a float. Passwords come from `--password-file`, from the variable named by `--password-env`, or from a
//! prompt on the terminal; they are never printed or logged. Private keys to import are read from
//! `--key-file` or a prompt, never from the command line (which other users can see in `ps`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use wallet::client::{Fees, DEFAULT_RPC_URL};
use wallet::{sign_eip1559, Address, Keystore, Password, RpcClient, TxReceipt, Wei};

/// `btt wallet …`
#[derive(Args)]
pub(crate) struct WalletArgs {
    #[command(subcommand)]
    command: WalletCommand,
    /// Directory of the keystore files (default: <data dir>/keystore).
    #[arg(long, env = "BTT_KEYSTORE", global = true)]
    keystore: Option<PathBuf>,
    /// Data directory (default: $XDG_DATA_HOME/btt).
    #[arg(long, env = "BTT_DATA_DIR", global = true)]
    pub(crate) data_dir: Option<PathBuf>,
    /// Read the password from the first line of this file.
    #[arg(long, env = "BTT_PASSWORD_FILE", global = true)]
    password_file: Option<PathBuf>,
    /// Read the password from the environment variable with this name.
    #[arg(long, env = "BTT_PASSWORD_ENV", global = true)]
    password_env: Option<String>,
    /// Print JSON instead of text.
    #[arg(long, env = "BTT_JSON", global = true, value_parser = clap::builder::BoolishValueParser::new())]
    json: bool,
}

#[derive(Subcommand)]
enum WalletCommand {
    /// Create a new key, encrypted with a password.
    New,
    /// Import a hex private key (read from --key-file or a prompt), encrypted with a password.
    Import {
        /// File holding the hex private key on its first line.
        #[arg(long, env = "BTT_KEY_FILE")]
        key_file: Option<PathBuf>,
    },
    /// List the addresses in the keystore.
    List,
    /// Show the BTT balance of an address (default: the keystore's only key).
    Balance {
        /// The address (0x + 40 hex digits).
        address: Option<String>,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Send BTT in a signed EIP-1559 transaction and wait for its receipt.
    Send {
        /// The sending address; its key must be in the keystore (default: the only key there).
        #[arg(long, env = "BTT_FROM")]
        from: Option<String>,
        /// The receiving address.
        #[arg(long, env = "BTT_TO")]
        to: String,
        /// Amount in BTT, exact decimal with at most 18 decimals (e.g. 1.5).
        #[arg(long, env = "BTT_AMOUNT")]
        amount: String,
        /// Max fee per gas in gwei (default: twice the latest base fee plus the tip).
        #[arg(long, env = "BTT_MAX_FEE_GWEI")]
        max_fee_gwei: Option<String>,
        /// Max priority fee (tip) per gas in gwei (default: the node's suggestion).
        #[arg(long, env = "BTT_PRIORITY_FEE_GWEI")]
        priority_fee_gwei: Option<String>,
        /// Print the hash and return without waiting for the receipt.
        #[arg(long, env = "BTT_NO_WAIT", value_parser = clap::builder::BoolishValueParser::new())]
        no_wait: bool,
        /// How long to wait for the receipt, in seconds.
        #[arg(long, env = "BTT_WAIT_SECS", default_value_t = 120)]
        wait_secs: u64,
        #[command(flatten)]
        node: NodeArgs,
    },
}

/// Where the node is.
#[derive(Args)]
struct NodeArgs {
    /// The node's JSON-RPC URL (http:// only).
    #[arg(long, env = "BTT_RPC", default_value = DEFAULT_RPC_URL)]
    rpc: String,
    /// Timeout of each request to the node, in seconds.
    #[arg(long, env = "BTT_RPC_TIMEOUT_SECS", default_value_t = 10)]
    rpc_timeout_secs: u64,
}

impl NodeArgs {
    fn client(&self) -> Result<RpcClient> {
        Ok(RpcClient::new(&self.rpc)?.with_timeout(Duration::from_secs(self.rpc_timeout_secs)))
    }
}

/// Parses an address given on the command line; `what` names the argument in errors.
fn parse_address(text: &str, what: &str) -> Result<Address> {
    text.trim()
        .parse()
        .map_err(|e| anyhow::anyhow!("{what}: {e}"))
}

/// `address`, or the keystore's only key when it is absent.
fn address_or_only_key(address: Option<&str>, what: &str, dir: &Path) -> Result<Address> {
    if let Some(text) = address {
        return parse_address(text, what);
    }
    // A missing directory is an empty keystore; looking must not create it.
    let keys = if dir.is_dir() {
        Keystore::open(dir)?.list()?
    } else {
        Vec::new()
    };
    match keys.as_slice() {
        [only] => Ok(*only),
        [] => bail!(
            "no {what} given and the keystore at {} is empty: give an address",
            dir.display()
        ),
        _ => bail!(
            "no {what} given and the keystore at {} holds {} keys: say which one",
            dir.display(),
            keys.len()
        ),
    }
}

/// Exact gwei text (at most 9 decimals) to wei per gas.
fn parse_gwei(text: &str, flag: &str) -> Result<u128> {
    // BTT and gwei are both decimal scales of wei: parse as BTT (10^18) and divide by 10^9.
    let as_btt = Wei::parse_btt(text.trim()).map_err(|e| anyhow::anyhow!("{flag}: {e}"))?;
    let giga = Wei::from_wei(1_000_000_000).0;
    let (wei, rest) = as_btt.0.div_rem(giga);
    if !rest.is_zero() {
        bail!("{flag}: {text} gwei has more than 9 decimals (finer than one wei)");
    }
    u128::try_from(wei).map_err(|_| anyhow::anyhow!("{flag}: {text} gwei is too large"))
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

fn password(a: &WalletArgs, confirm: bool) -> Result<Password> {
    if let Some(f) = &a.password_file {
        return Ok(Password::from_file(f)?);
    }
    if let Some(name) = &a.password_env {
        return Ok(Password::from_env(name)?);
    }
    Ok(if confirm {
        Password::prompt_new("new password: ", "repeat it: ")?
    } else {
        Password::prompt("password: ")?
    })
}

/// Runs a wallet subcommand with `data_dir` as the default home of the keystore.
pub(crate) fn run(a: WalletArgs, data_dir: PathBuf) -> Result<()> {
    let dir = a
        .keystore
        .clone()
        .unwrap_or_else(|| data_dir.join("keystore"));
    match &a.command {
        WalletCommand::Balance { address, node } => {
            let address = address_or_only_key(address.as_deref(), "address", &dir)?;
            return runtime()?.block_on(balance(node, address, a.json));
        }
        WalletCommand::Send {
            from,
            to,
            amount,
            max_fee_gwei,
            priority_fee_gwei,
            no_wait,
            wait_secs,
            node,
        } => {
            let from = address_or_only_key(from.as_deref(), "--from", &dir)?;
            let request = SendRequest {
                from,
                to: parse_address(to, "--to")?,
                value: Wei::parse_btt(amount.trim())
                    .map_err(|e| anyhow::anyhow!("--amount {amount:?}: {e}"))?,
                max_fee: max_fee_gwei
                    .as_deref()
                    .map(|t| parse_gwei(t, "--max-fee-gwei"))
                    .transpose()?,
                tip: priority_fee_gwei
                    .as_deref()
                    .map(|t| parse_gwei(t, "--priority-fee-gwei"))
                    .transpose()?,
                wait: (!no_wait).then(|| Duration::from_secs(*wait_secs)),
            };
            let client = node.client()?;
            return runtime()?.block_on(send(&a, &client, &dir, request));
        }
        _ => {}
    }
    let store = Keystore::open(&dir)?;
    let print = |address: wallet::Address| {
        if a.json {
            println!(
                "{}",
                serde_json::json!({ "address": address.to_checksum() })
            );
        } else {
            println!("{address}");
        }
    };
    match &a.command {
        WalletCommand::New => {
            let address = store.create(&password(&a, true)?)?;
            eprintln!("created a key in {}", dir.display());
            print(address);
        }
        WalletCommand::Import { key_file } => {
            let hex = zeroize::Zeroizing::new(match key_file {
                Some(f) => std::fs::read_to_string(f)
                    .with_context(|| format!("cannot read {}", f.display()))?,
                None => rpassword::prompt_password("private key (hex): ")
                    .context("cannot read the private key from the terminal; use --key-file")?,
            });
            let first = hex.lines().next().unwrap_or("").trim();
            let address = store.import(first, &password(&a, true)?)?;
            eprintln!("imported into {}", dir.display());
            print(address);
        }
        WalletCommand::List => {
            let addresses = store.list()?;
            if a.json {
                let list: Vec<String> = addresses.iter().map(|a| a.to_checksum()).collect();
                println!("{}", serde_json::json!({ "addresses": list }));
            } else {
                for address in addresses {
                    println!("{address}");
                }
            }
        }
        WalletCommand::Balance { .. } | WalletCommand::Send { .. } => {}
    }
    Ok(())
}

async fn balance(node: &NodeArgs, address: Address, json: bool) -> Result<()> {
    let balance = node.client()?.balance(address).await?;
    if json {
        println!(
            "{}",
            serde_json::json!({
                "address": address.to_checksum(),
                "balance_wei": balance.0.to_string(),
                "balance_btt": balance.to_btt_string(),
            })
        );
    } else {
        println!("{} BTT", balance.to_btt_string());
    }
    Ok(())
}

/// A transfer as given on the command line, checked.
struct SendRequest {
    from: Address,
    to: Address,
    value: Wei,
    /// Max fee per gas in wei, if given.
    max_fee: Option<u128>,
    /// Max priority fee per gas in wei, if given.
    tip: Option<u128>,
    /// How long to wait for the receipt; `None` to return after sending.
    wait: Option<Duration>,
}

async fn send(a: &WalletArgs, client: &RpcClient, dir: &Path, r: SendRequest) -> Result<()> {
    // Ask the node first: an unreachable node fails before the password prompt.
    client.chain_id().await?;
    let fees = match (r.max_fee, r.tip) {
        (Some(max_fee), Some(tip)) => Fees {
            max_fee_per_gas: max_fee,
            max_priority_fee_per_gas: tip,
        },
        (Some(max_fee), None) => Fees {
            max_fee_per_gas: max_fee,
            max_priority_fee_per_gas: client.max_priority_fee().await?.min(max_fee),
        },
        (None, tip) => {
            let suggested = client.suggest_fees().await?;
            match tip {
                None => suggested,
                Some(tip) => Fees {
                    max_fee_per_gas: (suggested.max_fee_per_gas
                        - suggested.max_priority_fee_per_gas)
                        .checked_add(tip)
                        .context("--priority-fee-gwei is too large")?,
                    max_priority_fee_per_gas: tip,
                },
            }
        }
    };
    if fees.max_priority_fee_per_gas > fees.max_fee_per_gas {
        bail!("the priority fee is above the max fee: raise --max-fee-gwei or lower --priority-fee-gwei");
    }
    let store = Keystore::open(dir)?;
    if store.find(&r.from)?.is_empty() {
        bail!(
            "no key for {} in {}: import it with `btt wallet import` or pass --keystore",
            r.from,
            dir.display()
        );
    }
    let signer = store.unlock(&r.from, &password(a, false)?)?;
    let tx = client.prepare_transfer(r.from, r.to, r.value, fees).await?;
    let signed = sign_eip1559(tx, &signer);
    drop(signer);
    let hash = client.send_raw_transaction(&signed.raw).await?;
    if hash != signed.hash {
        bail!(
            "the node reports hash {hash} for transaction {}: it is not the transaction we signed",
            signed.hash
        );
    }
    let Some(wait) = r.wait else {
        if a.json {
            println!("{}", serde_json::json!({ "hash": hash.to_string() }));
        } else {
            println!("{hash}");
        }
        return Ok(());
    };
    if !a.json {
        println!("{hash}");
        eprintln!(
            "sent {} BTT from {} to {}; waiting for the receipt",
            r.value.to_btt_string(),
            r.from,
            r.to
        );
    }
    let receipt = client.wait_for_receipt(hash, wait).await?;
    print_receipt(a.json, &r, &receipt);
    if !receipt.success {
        bail!(
            "transaction {hash} failed (status 0) in block {}; the fee was still paid",
            receipt.block_number
        );
    }
    Ok(())
}

fn print_receipt(json: bool, r: &SendRequest, receipt: &TxReceipt) {
    let status = if receipt.success { "success" } else { "failed" };
    let fee = receipt.fee();
    if json {
        println!(
            "{}",
            serde_json::json!({
                "hash": receipt.transaction_hash.to_string(),
                "from": r.from.to_checksum(),
                "to": r.to.to_checksum(),
                "value_wei": r.value.0.to_string(),
                "status": status,
                "block": receipt.block_number,
                "gas_used": receipt.gas_used,
                "effective_gas_price_wei": receipt.effective_gas_price.to_string(),
                "fee_wei": fee.0.to_string(),
                "fee_btt": fee.to_btt_string(),
            })
        );
    } else {
        println!("status: {status}");
        println!("block: {}", receipt.block_number);
        println!("gas used: {}", receipt.gas_used);
        println!("fee: {} BTT", fee.to_btt_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gwei_is_exact() {
        assert_eq!(parse_gwei("1", "--f").ok(), Some(1_000_000_000));
        assert_eq!(parse_gwei("1.5", "--f").ok(), Some(1_500_000_000));
        assert_eq!(parse_gwei("0.000000001", "--f").ok(), Some(1));
        assert_eq!(parse_gwei("0", "--f").ok(), Some(0));
        for bad in ["0.0000000001", "-1", "1e9", "", "1.", "x"] {
            let err = parse_gwei(bad, "--max-fee-gwei").map_err(|e| e.to_string());
            assert!(
                matches!(&err, Err(m) if m.starts_with("--max-fee-gwei")),
                "{bad}: {err:?}"
            );
        }
        // 2^128 wei does not fit the u128 of an EIP-1559 fee field.
        assert!(parse_gwei("340282366920938463463374607431.768211456", "--f").is_err());
        assert_eq!(
            parse_gwei("340282366920938463463374607431.768211455", "--f").ok(),
            Some(u128::MAX)
        );
    }

    #[test]
    fn addresses_and_the_only_key() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let ks = dir.path().join("ks");
        let given = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";
        assert_eq!(
            address_or_only_key(Some(given), "--to", &ks)?.to_string(),
            given
        );
        let err = address_or_only_key(Some("0x12"), "--to", &ks).map_err(|e| e.to_string());
        assert!(matches!(&err, Err(m) if m.starts_with("--to: invalid address")));
        // No keystore: an error, and the directory is not created by looking.
        assert!(address_or_only_key(None, "--from", &ks).is_err());
        assert!(!ks.exists());
        let store = Keystore::open(&ks)?.with_scrypt(wallet::ScryptParams::new(4, 8, 1)?);
        let password = Password::new("pw");
        let first = store.create(&password)?;
        assert_eq!(address_or_only_key(None, "--from", &ks)?, first);
        store.create(&password)?;
        let err = address_or_only_key(None, "--from", &ks).map_err(|e| e.to_string());
        assert!(
            matches!(&err, Err(m) if m.contains("holds 2 keys")),
            "{err:?}"
        );
        Ok(())
    }
}
