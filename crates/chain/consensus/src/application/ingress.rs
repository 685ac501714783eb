//! Requests to the application actor and the [`Mailbox`] that sends them.

use super::now_ms;
use crate::{
    block::ConsensusBlock, keys::to_hex, Identity, ProposalCtx, Scheme, ValidatorInfo, Verdict,
};
use commonware_actor::Feedback;
use commonware_codec::Encode;
use commonware_consensus::{
    marshal::{ancestry::Ancestry, Update},
    simplex::types::Context,
    Reporter,
};
use commonware_cryptography::{Digested, Digestible};
use commonware_runtime::Clock;
use commonware_utils::acknowledgement::Exact;
use futures::{
    channel::{mpsc, oneshot},
    StreamExt,
};
use std::{
    sync::Arc,
    time::{Duration, UNIX_EPOCH},
};
use tracing::warn;

/// What the actor is asked to do.
pub(crate) enum Message {
    /// Build a child of `parent`; the reply is `None` to skip the view.
    Build {
        parent: Arc<ConsensusBlock>,
        ctx: ProposalCtx,
        reply: oneshot::Sender<Option<ConsensusBlock>>,
    },
    /// Verify `block` as a child of `parent`.
    Verify {
        parent: Arc<ConsensusBlock>,
        block: Arc<ConsensusBlock>,
        ctx: ProposalCtx,
        reply: oneshot::Sender<Verdict>,
    },
    /// Apply a finalized block, then acknowledge it to marshal.
    Finalized {
        block: Arc<ConsensusBlock>,
        ack: Exact,
    },
    /// A finalization certificate exists up to `height` (not yet applied).
    Tip { height: u64 },
    /// Ask [`crate::ChainApp::committee`].
    Committee {
        epoch: u64,
        reply: oneshot::Sender<Option<Vec<ValidatorInfo>>>,
    },
    /// Ask [`crate::ChainApp::finalized_height`].
    FinalizedHeight { reply: oneshot::Sender<u64> },
    /// Hand evidence of conflicting votes to [`crate::ChainApp::equivocation`].
    Equivocation { evidence: Vec<u8> },
}

/// The application as marshal sees it. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Mailbox {
    sender: mpsc::UnboundedSender<Message>,
    /// This node follows the committee without voting: proposals are never checked by the
    /// application (see [`Mailbox::verify`]).
    observer: bool,
}

impl Mailbox {
    pub(crate) fn new(sender: mpsc::UnboundedSender<Message>, observer: bool) -> Self {
        Self { sender, observer }
    }

    /// The same actor, for an epoch in which this node does (`false`) or does not (`true`)
    /// vote.
    pub(crate) fn with_observer(&self, observer: bool) -> Self {
        Self {
            sender: self.sender.clone(),
            observer,
        }
    }

    /// [`crate::ChainApp::committee`]; the outer `None` if the actor has stopped.
    pub(crate) async fn committee(&self, epoch: u64) -> Option<Option<Vec<ValidatorInfo>>> {
        self.ask(|reply| Message::Committee { epoch, reply }).await
    }

    /// [`crate::ChainApp::finalized_height`]; `None` if the actor has stopped.
    pub(crate) async fn finalized_height(&self) -> Option<u64> {
        self.ask(|reply| Message::FinalizedHeight { reply }).await
    }

    /// Queues evidence for [`crate::ChainApp::equivocation`] (dropped if the actor stopped).
    pub(crate) fn equivocation(&self, evidence: Vec<u8>) {
        let _ = self
            .sender
            .unbounded_send(Message::Equivocation { evidence });
    }

    /// Sends a request and waits for its reply; `None` if the actor has stopped.
    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Message) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        self.sender.unbounded_send(make(tx)).ok()?;
        rx.await.ok()
    }
}

fn proposal_ctx(clock: &impl Clock, ctx: &Context<crate::block::Digest, Identity>) -> ProposalCtx {
    ProposalCtx {
        epoch: ctx.round.epoch().get(),
        view: ctx.round.view().get(),
        leader: to_hex(&ctx.leader.encode()),
        now_ms: now_ms(clock),
    }
}

impl<E> commonware_consensus::Application<E> for Mailbox
where
    E: Clock + Send + 'static,
{
    type SigningScheme = Scheme;
    type Context = Context<crate::block::Digest, Identity>;
    type Block = ConsensusBlock;
    type Input = ();

    async fn propose(
        &mut self,
        (clock, ctx): (E, Self::Context),
        mut ancestry: impl Ancestry<Self::Block>,
        _input: (),
    ) -> Option<Digested<Self::Block>> {
        // The first block of the ancestry is the parent to build on.
        let parent = ancestry.next().await?;
        let ctx = proposal_ctx(&clock, &ctx);
        let parent = parent.inner_shared();
        let block = self
            .ask(|reply| Message::Build { parent, ctx, reply })
            .await??;
        let digest = block.digest();
        Some(Digested::precomputed(block, digest))
    }

    async fn verify(
        &mut self,
        (clock, ctx): (E, Self::Context),
        mut ancestry: impl Ancestry<Self::Block>,
    ) -> bool {
        // An observer casts no vote, so its verdict decides nothing: what it applies is only
        // ever a block with a finalization certificate, which the committee's BLS keys vouch
        // for. Skipping the check keeps `ChainApp::verify` a validator-only call.
        if self.observer {
            return true;
        }
        // The ancestry starts with the proposed block, then its parent. Marshal fetches
        // missing parents itself; if the stream still ends early, abstain (stay pending) rather
        // than call the block invalid.
        let (Some(block), Some(parent)) = (ancestry.next().await, ancestry.next().await) else {
            return futures::future::pending().await;
        };
        let (block, parent) = (block.inner_shared(), parent.inner_shared());
        loop {
            let ctx = proposal_ctx(&clock, &ctx);
            let verdict = self
                .ask(|reply| Message::Verify {
                    parent: parent.clone(),
                    block: block.clone(),
                    ctx,
                    reply,
                })
                .await;
            match verdict {
                Some(Verdict::Valid) => return true,
                Some(Verdict::Invalid(reason)) => {
                    warn!(
                        height = block.block().header.number,
                        hash = %block.block().hash(),
                        %reason,
                        "rejected proposed block"
                    );
                    return false;
                }
                Some(Verdict::RetryAt { now_ms: at }) => {
                    // From the future: wait on our own clock, never vote against it.
                    let at = UNIX_EPOCH + Duration::from_millis(at);
                    let min = clock.current() + Duration::from_millis(1);
                    clock.sleep_until(at.max(min)).await;
                }
                None => return futures::future::pending().await,
            }
        }
    }
}

impl Reporter for Mailbox {
    type Activity = Update<ConsensusBlock>;

    fn report(&mut self, update: Self::Activity) -> Feedback {
        let message = match update {
            Update::Tip(_round, height, _digest) => Message::Tip {
                height: height.get(),
            },
            Update::Block(block, ack) => Message::Finalized {
                block: block.inner_shared(),
                ack,
            },
        };
        match self.sender.unbounded_send(message) {
            Ok(()) => Feedback::Ok,
            Err(_) => Feedback::Closed,
        }
    }
}
