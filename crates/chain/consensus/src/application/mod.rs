//! The bridge between commonware's marshal and a [`crate::ChainApp`].
//!
//! [`Mailbox`] implements marshal's `Application` (propose, verify) and its finalized-block
//! `Reporter`; it turns every call into a [`Message`] for the [`Actor`], which owns the
//! `ChainApp` and calls it one request at a time. Waiting (for a reply, or for the clock when a
//! block is from the future) happens in the mailbox's futures, which consensus may cancel at
//! any time; a cancelled request only drops its reply channel.

mod actor;
mod ingress;

pub(crate) use actor::{Actor, Boundary};
pub(crate) use ingress::{Mailbox, Message};

/// Milliseconds since the Unix epoch on a runtime's clock.
pub(crate) fn now_ms(clock: &impl commonware_runtime::Clock) -> u64 {
    clock
        .current()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
