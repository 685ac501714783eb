//! Integration tests: deterministic simulations of a validator set, and real sockets.

#![allow(clippy::unwrap_used)]

mod sim;
mod tcp;
