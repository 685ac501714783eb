//! The one error type of this crate.

use std::net::SocketAddrV4;
use std::path::PathBuf;

/// Why a DHT operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Another program (or another `btt`) already holds the UDP port.
    #[error("dht udp port {addr} is already in use: choose a different port with --dht-port")]
    PortInUse {
        /// The address we tried to bind.
        addr: SocketAddrV4,
    },
    /// The operating system refused the bind (ports below 1024 need privileges).
    #[error(
        "no permission to bind the dht udp socket {addr}: choose a port above 1023 with --dht-port"
    )]
    PermissionDenied {
        /// The address we tried to bind.
        addr: SocketAddrV4,
    },
    /// Any other failure to open the socket or start the DHT thread.
    #[error("could not start the dht on {addr}: {source}")]
    Start {
        /// The address we tried to bind.
        addr: SocketAddrV4,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// No node could be found or none answered a store request (announce or BEP 44 put).
    #[error(
        "no dht node answered: the node is not bootstrapped yet; \
         check --dht-bootstrap and that udp traffic is allowed"
    )]
    NoNodes,
    /// Every node that answered a store request refused it.
    #[error("dht nodes refused the request with error {code} ({message}); retry later")]
    Refused {
        /// The KRPC error code (BEP 5 / BEP 44).
        code: i32,
        /// The text the nodes sent.
        message: String,
    },
    /// A BEP 44 value longer than the protocol allows.
    #[error(
        "bep 44 value is {len} bytes, over the {max}-byte limit: store a hash of the data instead"
    )]
    ValueTooLarge {
        /// Length of the bencoded value given.
        len: usize,
        /// The limit, [`crate::MAX_VALUE_BYTES`].
        max: usize,
    },
    /// A BEP 44 salt longer than the protocol allows.
    #[error("bep 44 salt is {len} bytes, over the {max}-byte limit: use a shorter salt")]
    SaltTooLarge {
        /// Length of the salt given.
        len: usize,
        /// The limit, [`crate::MAX_SALT_BYTES`].
        max: usize,
    },
    /// A different item for the same key and salt is being stored by this node right now.
    #[error(
        "another value for this key and salt is being stored right now: \
         read the latest item and put again with `cas` set to its sequence number"
    )]
    ConflictRisk,
    /// The item's sequence number is lower than one already stored.
    #[error(
        "the mutable item's sequence number is older than the stored one: \
         read the latest item and put again with a higher sequence number"
    )]
    NotMostRecent,
    /// The `cas` sequence number did not match the stored item.
    #[error("the stored item changed since it was read (cas mismatch): read it again and retry")]
    CasFailed,
    /// Writing the routing table file failed.
    #[error(
        "could not save the dht routing table to {path}: {source}; \
         check that the directory exists and is writable"
    )]
    SaveTable {
        /// The file we tried to write.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
}

impl Error {
    /// Maps a socket bind failure to the message an operator can act on.
    pub(crate) fn from_bind(addr: SocketAddrV4, source: std::io::Error) -> Self {
        match source.kind() {
            std::io::ErrorKind::AddrInUse => Error::PortInUse { addr },
            std::io::ErrorKind::PermissionDenied => Error::PermissionDenied { addr },
            _ => Error::Start { addr, source },
        }
    }
}

impl From<mainline::errors::PutQueryError> for Error {
    fn from(error: mainline::errors::PutQueryError) -> Self {
        use mainline::errors::PutQueryError as E;
        match error {
            E::NoClosestNodes | E::Timeout => Error::NoNodes,
            E::ErrorResponse(e) => Error::Refused {
                code: e.code,
                message: e.description,
            },
        }
    }
}

impl From<mainline::errors::PutMutableError> for Error {
    fn from(error: mainline::errors::PutMutableError) -> Self {
        use mainline::errors::{ConcurrencyError as C, PutMutableError as E};
        match error {
            E::Query(e) => e.into(),
            E::Concurrency(C::ConflictRisk) => Error::ConflictRisk,
            E::Concurrency(C::NotMostRecent) => Error::NotMostRecent,
            E::Concurrency(C::CasFailed) => Error::CasFailed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_in_use_names_the_flag() {
        let addr = SocketAddrV4::new([127, 0, 0, 1].into(), 6881);
        let e = Error::from_bind(addr, std::io::ErrorKind::AddrInUse.into());
        assert_eq!(
            e.to_string(),
            "dht udp port 127.0.0.1:6881 is already in use: choose a different port with --dht-port"
        );
    }
}
