//! The interface between consensus and the chain: [`ChainApp`], and what consensus tells the
//! node about progress ([`Status`]).

use crate::ValidatorInfo;
use chain_types::{Block, B256};

/// What consensus knows when it asks for a block to be built or verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProposalCtx {
    /// Validator-set epoch of the round: heights `[epoch * L, epoch * L + L - 1]` for the
    /// epoch length `L` ([`crate::Config::epoch_length`]).
    pub epoch: u64,
    /// Consensus view (round number within the epoch); views without a block leave gaps.
    pub view: u64,
    /// The round's leader: its identity key as `0x` hex, as in [`crate::ValidatorInfo::identity`].
    pub leader: String,
    /// This node's clock (the consensus runtime's clock), in milliseconds since the Unix epoch.
    pub now_ms: u64,
}

/// The answer to [`ChainApp::verify`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The block is a valid child of its parent; this node votes for it.
    Valid,
    /// The block can never be valid as a child of this parent (the reason is logged). Honest
    /// nodes must agree, so this must not depend on local state such as the mempool or clock.
    Invalid(String),
    /// The block is timestamped ahead of this node's clock: consensus waits on its own clock
    /// until `now_ms` and asks again, and never votes against the block for this.
    RetryAt {
        /// When to ask again, in milliseconds since the Unix epoch.
        now_ms: u64,
    },
}

/// The chain behind consensus: builds, verifies and applies blocks.
///
/// Calls are synchronous and may be slow (execution). On the production runtime they run on a
/// dedicated thread, one at a time, so consensus keeps voting and relaying while a block
/// executes; in the deterministic simulation they run inline.
pub trait ChainApp: Send + 'static {
    /// The height-0 block every validator starts from; identical on all of them.
    fn genesis(&self) -> Block;

    /// Builds a child of `parent` (a block this node has built or verified; possibly not
    /// finalized). The child must have `parent_hash = parent.hash()` and
    /// `number = parent.number + 1`. `None` skips the view.
    fn build(&mut self, parent: &Block, ctx: &ProposalCtx) -> Option<Block>;

    /// Deterministic validity of `block` as a child of `parent`. Consensus has already checked
    /// the parent hash and the height.
    fn verify(&mut self, parent: &Block, block: &Block, ctx: &ProposalCtx) -> Verdict;

    /// A finalized block, in height order, at least once (again after a restart if it was not
    /// acknowledged), starting with the genesis block at height 0 on a fresh start. It must be durable before this returns `Ok`, and applying a height twice
    /// must be harmless. On `Err` consensus logs the error and retries the same block after
    /// [`crate::FINALIZE_RETRY_MS`]; nothing after it is delivered until it succeeds.
    fn finalized(&mut self, block: &Block) -> Result<(), String>;

    /// The committee of `epoch`, in any order: `Some` once the last block of `epoch - 1` is
    /// finalized and applied (epoch 0: the genesis committee), `None` while it is not known
    /// yet. Must be deterministic: every node answers the same for the same epoch.
    ///
    /// Consensus asks for `committee(e + 1)` right after [`ChainApp::finalized`] returns for
    /// the last block of epoch `e` (height `e * L + L - 1`), and on a restart for the epoch of
    /// `finalized_height() + 1`. Every entry's proof of possession is checked; a committee that
    /// fails the check, or `None` when the answer is due, stalls this node at the boundary
    /// (logged, asked again every [`crate::FINALIZE_RETRY_MS`]).
    fn committee(&self, epoch: u64) -> Option<Vec<ValidatorInfo>>;

    /// The height of the last block this application has applied (0 on a fresh start); on
    /// restart consensus resumes in the epoch of `finalized_height() + 1`.
    fn finalized_height(&self) -> u64;

    /// Conflicting votes consensus has seen from one signer: the encoded evidence (see
    /// `crate::evidence`). Anyone may submit it to the chain; the default ignores it.
    fn equivocation(&mut self, evidence: Vec<u8>) {
        let _ = evidence;
    }
}

/// A block the application has applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Finality {
    /// Its height.
    pub height: u64,
    /// Its hash.
    pub hash: B256,
    /// When [`ChainApp::finalized`] returned for it, on the consensus clock (ms since the Unix
    /// epoch).
    pub finalized_at_ms: u64,
}

/// Progress as consensus sees it, published through [`crate::Handle::subscribe`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Status {
    /// The last block applied in this run (`None` until the first one after start).
    pub applied: Option<Finality>,
    /// The highest height this node has seen a finalization certificate for. Ahead of
    /// `applied` while the node catches up (the `highestBlock` of `eth_syncing`).
    pub finalized_tip: u64,
}
