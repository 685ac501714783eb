//! State shared between the consensus app (writer) and the RPC server (readers).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use crate::mempool::Mempool;
use crate::store::FinalizedBlock;

/// What the RPC side reads while consensus runs.
pub struct Shared {
    /// Transactions waiting for a block.
    pub mempool: Mutex<Mempool>,
    head: RwLock<Arc<FinalizedBlock>>,
    /// Latest finalized block's latency from its proposal timestamp to our finalization, in ms.
    last_latency_ms: AtomicU64,
    /// Highest height a finalization certificate was seen for.
    pub finalized_tip: AtomicU64,
    /// Height when this run started (for `eth_syncing`).
    pub start_height: u64,
    /// Equivocation evidence consensus reported, newest last (`btt_getEvidence`).
    evidence: Mutex<Vec<Vec<u8>>>,
}

/// Most pieces of evidence kept for `btt_getEvidence`; the oldest go first.
const MAX_EVIDENCE: usize = 64;

impl Shared {
    /// Starts from the stored head.
    pub fn new(mempool: Mempool, head: FinalizedBlock) -> Self {
        let start_height = head.block.header.number;
        Self {
            mempool: Mutex::new(mempool),
            head: RwLock::new(Arc::new(head)),
            last_latency_ms: AtomicU64::new(u64::MAX),
            finalized_tip: AtomicU64::new(start_height),
            start_height,
            evidence: Mutex::new(Vec::new()),
        }
    }

    /// The latest finalized block.
    pub fn head(&self) -> Arc<FinalizedBlock> {
        self.head.read().clone()
    }

    /// Height of the latest finalized block.
    pub fn head_number(&self) -> u64 {
        self.head.read().block.header.number
    }

    /// Records a newly finalized block.
    pub fn set_head(&self, block: FinalizedBlock) {
        let now_ms = crate::now_ms();
        let latency = now_ms.saturating_sub(block.block.header.timestamp_ms);
        self.last_latency_ms.store(latency, Ordering::Relaxed);
        self.finalized_tip
            .fetch_max(block.block.header.number, Ordering::Relaxed);
        *self.head.write() = Arc::new(block);
    }

    /// Keeps a piece of equivocation evidence (once) for anyone to submit to the staking module.
    pub fn add_evidence(&self, evidence: Vec<u8>) {
        let mut kept = self.evidence.lock();
        if kept.contains(&evidence) {
            return;
        }
        if kept.len() == MAX_EVIDENCE {
            kept.remove(0);
        }
        kept.push(evidence);
    }

    /// The evidence kept so far, oldest first.
    pub fn evidence(&self) -> Vec<Vec<u8>> {
        self.evidence.lock().clone()
    }

    /// Latency of the latest finalized block from its timestamp, if one was finalized this run.
    pub fn last_latency_ms(&self) -> Option<u64> {
        match self.last_latency_ms.load(Ordering::Relaxed) {
            u64::MAX => None,
            v => Some(v),
        }
    }
}
