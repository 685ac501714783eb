//! The loop that owns the [`ChainApp`] and serves [`Message`]s one at a time.

use super::{now_ms, Message};
use crate::{
    block::{hash_of, ConsensusBlock, Digest},
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
    /// Blocks per epoch.
    epoch_length: u64,
    /// Told about every epoch's last block once it is applied (and before marshal hears the
    /// acknowledgement), so the next epoch's engine can start.
    boundaries: mpsc::UnboundedSender<Boundary>,
    /// Test networks: the rounds this node led, for the equivocator.
    led: Option<crate::equivocate::LedRounds>,
}

/// The last block of `epoch` has been applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Boundary {
    /// The epoch that ended.
    pub(crate) epoch: u64,
    /// Its last block: the genesis of the next epoch.
    pub(crate) digest: Digest,
}

impl<A: ChainApp> Actor<A> {
    pub(crate) fn new(
        app: A,
        mailbox: mpsc::UnboundedReceiver<Message>,
        status: watch::Sender<Status>,
        max_block_bytes: usize,
        epoch_length: u64,
        boundaries: mpsc::UnboundedSender<Boundary>,
        led: Option<crate::equivocate::LedRounds>,
    ) -> Self {
        Self {
            led,
            app,
            mailbox,
            status,
            max_block_bytes,
            applied: None,
            epoch_length: epoch_length.max(2),
            boundaries,
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
                    if let Some(led) = &self.led {
                        crate::equivocate::record_led(led, ctx.epoch, ctx.view);
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
                Message::Committee { epoch, reply } => {
                    let _ = reply.send(self.app.committee(epoch));
                }
                Message::FinalizedHeight { reply } => {
                    let _ = reply.send(self.app.finalized_height());
                }
                Message::Equivocation { evidence } => self.app.equivocation(evidence),
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
        let digest = wrapped.digest();
        if height
            .checked_add(1)
            .is_some_and(|next| next % self.epoch_length == 0)
        {
            let epoch = height / self.epoch_length;
            let _ = self.boundaries.unbounded_send(Boundary { epoch, digest });
        }
        let finality = Finality {
            height,
            hash: hash_of(&digest),
            finalized_at_ms: now_ms(clock),
        };
        self.status.send_modify(|s| {
            s.applied = Some(finality);
            s.finalized_tip = s.finalized_tip.max(height);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ProposalCtx;
    use chain_types::{Block, Header};
    use commonware_runtime::{deterministic, Runner as _, Spawner as _, Supervisor as _};
    use commonware_utils::acknowledgement::Exact;
    use futures::channel::oneshot;
    use std::sync::{Arc, Mutex};

    fn block(parent: Option<&Block>) -> Block {
        let header = Header {
            parent_hash: parent.map(Block::hash).unwrap_or_default(),
            number: parent.map_or(0, |p| p.header.number + 1),
            transactions_root: chain_types::transactions_root(&[]),
            ..Default::default()
        };
        Block {
            header,
            transactions: Vec::new(),
        }
    }

    /// Fails `finalized` a set number of times; builds whatever `next_build` holds.
    struct App {
        failures_left: usize,
        finalize_calls: Arc<Mutex<Vec<u64>>>,
        next_build: Option<Block>,
    }

    impl ChainApp for App {
        fn genesis(&self) -> Block {
            block(None)
        }
        fn build(&mut self, _parent: &Block, _ctx: &ProposalCtx) -> Option<Block> {
            self.next_build.take()
        }
        fn verify(&mut self, _parent: &Block, _block: &Block, _ctx: &ProposalCtx) -> Verdict {
            Verdict::Valid
        }
        fn committee(&self, _epoch: u64) -> Option<Vec<crate::ValidatorInfo>> {
            None
        }
        fn finalized_height(&self) -> u64 {
            0
        }
        fn finalized(&mut self, block: &Block) -> Result<(), String> {
            self.finalize_calls
                .lock()
                .unwrap()
                .push(block.header.number);
            if self.failures_left > 0 {
                self.failures_left -= 1;
                return Err("disk full".into());
            }
            Ok(())
        }
    }

    fn ctx() -> ProposalCtx {
        ProposalCtx {
            epoch: 0,
            view: 1,
            leader: String::new(),
            now_ms: 0,
        }
    }

    #[test]
    fn finalized_is_acked_only_after_ok_and_once_per_height() {
        deterministic::Runner::default().start(|context| async move {
            let calls = Arc::new(Mutex::new(Vec::new()));
            let app = App {
                failures_left: 2,
                finalize_calls: calls.clone(),
                next_build: None,
            };
            let (tx, rx) = mpsc::unbounded();
            let (status_tx, status_rx) = watch::channel(Status::default());
            let (boundary_tx, mut boundaries) = mpsc::unbounded();
            // Epochs of two blocks: height 1 ends epoch 0.
            let actor = Actor::new(app, rx, status_tx, 1 << 20, 2, boundary_tx, None);
            context.child("actor").spawn(|ctx| actor.run(ctx));

            let genesis = block(None);
            let one = Arc::new(ConsensusBlock::new(block(Some(&genesis))));
            let started = now_ms(&context);
            let (ack, waiter) = Exact::handle();
            tx.unbounded_send(Message::Finalized {
                block: one.clone(),
                ack,
            })
            .unwrap();
            waiter.await.unwrap();
            // Two failures, each followed by a retry delay, before the acknowledgement.
            assert_eq!(*calls.lock().unwrap(), [1, 1, 1]);
            assert!(now_ms(&context) - started >= 2 * FINALIZE_RETRY_MS);
            let status = *status_rx.borrow();
            assert_eq!(status.applied.unwrap().height, 1);
            assert_eq!(status.applied.unwrap().hash, one.block().hash());
            assert_eq!(status.finalized_tip, 1);
            // The last block of epoch 0 is announced once it is applied.
            assert_eq!(
                boundaries.try_recv().ok(),
                Some(Boundary {
                    epoch: 0,
                    digest: one.digest()
                })
            );

            // A redelivered height is acknowledged without calling the application again.
            let (ack, waiter) = Exact::handle();
            tx.unbounded_send(Message::Finalized { block: one, ack })
                .unwrap();
            waiter.await.unwrap();
            assert_eq!(calls.lock().unwrap().len(), 3);
            assert!(boundaries.try_recv().is_err(), "announced twice");
        });
    }

    #[test]
    fn build_and_verify_enforce_the_parent_link() {
        deterministic::Runner::default().start(|context| async move {
            let genesis = block(None);
            let child = block(Some(&genesis));
            // The application "builds" a grandchild of genesis when asked for a child.
            let app = App {
                failures_left: 0,
                finalize_calls: Arc::default(),
                next_build: Some(block(Some(&child))),
            };
            let (tx, rx) = mpsc::unbounded();
            let (status_tx, _status_rx) = watch::channel(Status::default());
            context.child("actor").spawn(|ctx| {
                Actor::new(
                    app,
                    rx,
                    status_tx,
                    1 << 20,
                    u64::MAX,
                    mpsc::unbounded().0,
                    None,
                )
                .run(ctx)
            });

            let parent = Arc::new(ConsensusBlock::new(genesis.clone()));
            let (reply, built) = oneshot::channel();
            tx.unbounded_send(Message::Build {
                parent: parent.clone(),
                ctx: ctx(),
                reply,
            })
            .unwrap();
            assert_eq!(built.await.unwrap(), None, "a non-child is not proposed");

            let (reply, verdict) = oneshot::channel();
            tx.unbounded_send(Message::Verify {
                parent: parent.clone(),
                block: Arc::new(ConsensusBlock::new(block(Some(&child)))),
                ctx: ctx(),
                reply,
            })
            .unwrap();
            assert!(matches!(verdict.await.unwrap(), Verdict::Invalid(_)));

            let (reply, verdict) = oneshot::channel();
            tx.unbounded_send(Message::Verify {
                parent,
                block: Arc::new(ConsensusBlock::new(child)),
                ctx: ctx(),
                reply,
            })
            .unwrap();
            assert_eq!(verdict.await.unwrap(), Verdict::Valid);
        });
    }
}
