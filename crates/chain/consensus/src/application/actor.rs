//! The loop that owns the [`ChainApp`] and serves [`Message`]s one at a time.

use super::{now_ms, Message};
use crate::{
    block::{hash_of, ConsensusBlock},
    ChainApp, Finality, Status, Verdict, FINALIZE_RETRY_MS,
};
use commonware_cryptography::Digestible;
use commonware_runtime::Clock;
use commonware_utils::Acknowledgement;
use futures::{channel::mpsc, StreamExt};
use std::time::Duration;
use tokio::sync::watch;
use tracing::{debug, error, warn};

/// Owns the application; see the module docs of [`crate::application`].
pub(crate) struct Actor<A> {
    app: A,
    mailbox: mpsc::UnboundedReceiver<Message>,
    status: watch::Sender<Status>,
    max_block_bytes: usize,
    /// Highest height applied in this run: redelivered heights at or below it are only acked.
    applied: Option<u64>,
}

impl<A: ChainApp> Actor<A> {
    pub(crate) fn new(
        app: A,
        mailbox: mpsc::UnboundedReceiver<Message>,
        status: watch::Sender<Status>,
        max_block_bytes: usize,
    ) -> Self {
        Self {
            app,
            mailbox,
            status,
            max_block_bytes,
            applied: None,
        }
    }

    /// Serves requests until every mailbox is dropped.
    pub(crate) async fn run(mut self, clock: impl Clock) {
        while let Some(message) = self.mailbox.next().await {
            match message {
                Message::Build { parent, ctx, reply } => {
                    if reply.is_canceled() {
                        continue;
                    }
                    let built = self.build(parent.block(), &ctx);
                    let _ = reply.send(built);
                }
                Message::Verify {
                    parent,
                    block,
                    ctx,
                    reply,
                } => {
                    if reply.is_canceled() {
                        continue;
                    }
                    let verdict = self.verify(&parent, &block, &ctx);
                    let _ = reply.send(verdict);
                }
                Message::Finalized { block, ack } => {
                    self.finalized(&clock, &block).await;
                    ack.acknowledge();
                }
                Message::Tip { height } => {
                    self.status.send_modify(|s| {
                        s.finalized_tip = s.finalized_tip.max(height);
                    });
                }
            }
        }
    }

    fn build(
        &mut self,
        parent: &chain_types::Block,
        ctx: &crate::ProposalCtx,
    ) -> Option<ConsensusBlock> {
        let block = self.app.build(parent, ctx)?;
        let (number, parent_hash) = (block.header.number, block.header.parent_hash);
        if parent_hash != parent.hash() || Some(number) != parent.header.number.checked_add(1) {
            error!(
                number,
                %parent_hash,
                parent_number = parent.header.number,
                "application built a block that is not a child of the requested parent; skipping the view"
            );
            return None;
        }
        let block = ConsensusBlock::new(block);
        if block.encoded_len() > self.max_block_bytes {
            error!(
                bytes = block.encoded_len(),
                max = self.max_block_bytes,
                "application built a block larger than max_block_bytes; skipping the view"
            );
            return None;
        }
        debug!(number, view = ctx.view, "built block");
        Some(block)
    }

    fn verify(
        &mut self,
        parent: &ConsensusBlock,
        block: &ConsensusBlock,
        ctx: &crate::ProposalCtx,
    ) -> Verdict {
        let (parent, block) = (parent.block(), block.block());
        // Marshal checks the link too; checking here keeps the ChainApp contract independent
        // of that.
        if block.header.parent_hash != parent.hash() {
            return Verdict::Invalid("parent hash does not match the parent block".into());
        }
        if Some(block.header.number) != parent.header.number.checked_add(1) {
            return Verdict::Invalid(format!(
                "block number {} does not follow parent number {}",
                block.header.number, parent.header.number
            ));
        }
        self.app.verify(parent, block, ctx)
    }

    /// Applies a finalized block, retrying until the application succeeds: acknowledging a
    /// block that is not durable would let marshal forget it.
    async fn finalized(&mut self, clock: &impl Clock, wrapped: &ConsensusBlock) {
        let block = wrapped.block();
        let height = block.header.number;
        if self.applied.is_some_and(|applied| height <= applied) {
            return;
        }
        loop {
            match self.app.finalized(block) {
                Ok(()) => break,
                Err(reason) => {
                    warn!(height, %reason, retry_ms = FINALIZE_RETRY_MS, "applying a finalized block failed; retrying");
                    clock.sleep(Duration::from_millis(FINALIZE_RETRY_MS)).await;
                }
            }
        }
        self.applied = Some(height);
        let finality = Finality {
            height,
            hash: hash_of(&wrapped.digest()),
            finalized_at_ms: now_ms(clock),
        };
        self.status.send_modify(|s| {
            s.applied = Some(finality);
            s.finalized_tip = s.finalized_tip.max(height);
        });
    }
}
