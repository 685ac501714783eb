//! `btt wallet`: keys in Ethereum keystore v3 files under `<data dir>/keystore`.
//!
//! Passwords come from `--password-file`, from the variable named by `--password-env`, or from a
//! prompt on the terminal; they are never printed or logged. Private keys to import are read from
//! `--key-file` or a prompt, never from the command line (which other users can see in `ps`).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use wallet::{Keystore, Password};

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
    }
    Ok(())
}
