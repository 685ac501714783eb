//! JSON-RPC error codes for the errors of this crate.
//!
//! The node's `eth_*` server turns any error from this crate into a JSON-RPC error object with
//! [`RpcError::rpc_code`] and the error's `Display` text as the message. Codes and message prefixes
//! follow go-ethereum because wallets and client libraries (ethers, viem, web3.py) recognise
//! failures by matching on geth's strings ("nonce too low", "insufficient funds for gas * price +
//! value", …), so each message starts with geth's text and may add detail after a colon.
//!
//! | code | meaning | used for |
//! |---|---|---|
//! | [`SERVER_ERROR`] (-32000) | geth's generic server error | every transaction rejection (decode, validation, admission) and block errors |
//! | [`INVALID_PARAMS`] (-32602) | malformed method parameters | amounts that do not parse |

/// geth's code for every transaction rejection (`eth_sendRawTransaction`, `eth_call`, …).
pub const SERVER_ERROR: i32 = -32000;

/// JSON-RPC 2.0 "invalid params": a parameter that is not well formed.
pub const INVALID_PARAMS: i32 = -32602;

/// An error that the JSON-RPC server can return to a client.
pub trait RpcError: std::error::Error {
    /// The JSON-RPC `error.code` for this error.
    fn rpc_code(&self) -> i32;

    /// The JSON-RPC `error.message`: the `Display` text, which starts with geth's wording.
    fn rpc_message(&self) -> String {
        self.to_string()
    }
}
