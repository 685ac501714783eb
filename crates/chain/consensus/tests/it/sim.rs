//! Deterministic simulations: 4 validators, commonware's simulated runtime and network.
//! Times are virtual; each test takes a few seconds of wall time.

use chain_consensus::sim::{self, LinkSpec};

const ALL: [usize; 4] = [0, 1, 2, 3];

fn max_of(heights: &[u64], who: &[usize]) -> u64 {
    who.iter().map(|&i| heights[i]).max().unwrap_or(0)
}

#[test]
fn crashes_below_and_at_the_fault_bound() {
    let (result, _) = sim::run(1, 4, LinkSpec::GOOD, |mut c| async move {
        c.wait_for(&ALL, 5, 30_000).await?;

        // One of four down: 3 is still a quorum (n = 3f + 1, f = 1).
        c.crash(3);
        let base = max_of(&c.heights(), &ALL);
        c.wait_for(&[0, 1, 2], base + 5, 30_000).await?;

        // Two down: no quorum, nothing may finalize (checked every 50 ms).
        c.crash(2);
        c.sleep_ms(5_000).await; // certificates already in flight may still land
        c.expect_halted(30_000).await?;
        let stalled = c.heights();
        assert!(stalled[3] < stalled[0], "3 was down while others finalized");

        // Both come back from their own storage; the chain resumes and 3 catches up through
        // marshal's backfill.
        c.start(2).await;
        c.start(3).await;
        let target = max_of(&stalled, &ALL) + 5;
        c.wait_for(&ALL, target, 60_000).await?;
        let status = c.status(3);
        assert!(status.applied.unwrap().height >= target);
        assert!(status.finalized_tip >= target);
        assert!(c.violations().is_empty());
        // Marshal delivers the genesis block too, then every height once, in order.
        let chain = c.chain();
        assert!(chain.keys().copied().eq(0..chain.len() as u64));
        assert_eq!(chain[&0], sim::genesis().hash());
        Ok::<_, String>(())
    });
    result.unwrap();
}

#[test]
fn partition_halts_and_heal_resumes() {
    let (result, _) = sim::run(2, 4, LinkSpec::GOOD, |c| async move {
        c.wait_for(&ALL, 3, 30_000).await?;

        // 2 | 2: neither side has a quorum.
        c.partition(&[&[0, 1], &[2, 3]]).await;
        c.sleep_ms(3_000).await;
        c.expect_halted(20_000).await?;
        c.heal().await;
        let base = max_of(&c.heights(), &ALL);
        c.wait_for(&ALL, base + 5, 60_000).await?;

        // 3 | 1: the majority goes on; the isolated one catches up after healing.
        c.partition(&[&[0, 1, 2], &[3]]).await;
        let base = max_of(&c.heights(), &ALL);
        c.wait_for(&[0, 1, 2], base + 10, 60_000).await?;
        assert!(c.heights()[3] <= base + 1);
        c.heal().await;
        c.wait_for(&[3], base + 10, 60_000).await?;
        assert!(c.violations().is_empty());
        Ok::<_, String>(())
    });
    result.unwrap();
}

#[test]
fn lossy_links_still_finalize() {
    let lossy = LinkSpec {
        latency_ms: 50,
        jitter_ms: 20,
        delivered_percent: 80,
    };
    let (result, _) = sim::run(3, 4, lossy, |c| async move {
        c.wait_for(&ALL, 15, 120_000).await?;
        assert!(c.violations().is_empty());
        Ok::<_, String>(())
    });
    result.unwrap();
}

#[test]
fn one_slow_validator() {
    let (result, _) = sim::run(4, 4, LinkSpec::GOOD, |c| async move {
        let slow = LinkSpec {
            latency_ms: 400,
            jitter_ms: 100,
            delivered_percent: 100,
        };
        c.set_links_of(3, Some(slow)).await;
        c.wait_for(&ALL, 15, 60_000).await?;
        assert!(c.violations().is_empty());
        Ok::<_, String>(())
    });
    result.unwrap();
}

#[test]
fn blocks_from_the_future_are_waited_for_not_rejected() {
    let (result, _) = sim::run(5, 4, LinkSpec::GOOD, |mut c| async move {
        // Validator 1's clock runs 400 ms fast; verifiers accept 100 ms, so they must wait
        // (Verdict::RetryAt) rather than vote against its blocks.
        c.crash(1);
        c.set_clock_skew(1, 400);
        c.start(1).await;
        c.wait_for(&ALL, 12, 60_000).await?;
        let proposers = c.proposers();
        assert!(
            proposers.values().any(|&p| p == 1),
            "no block from the fast validator was finalized: {proposers:?}"
        );
        assert!(c.violations().is_empty());
        Ok::<_, String>(())
    });
    result.unwrap();
}

/// A run with a crash and a restart, summarised: the chain, the heights, the virtual end time.
fn scenario(seed: u64) -> (Vec<(u64, String)>, Vec<u64>, u64) {
    let ((chain, heights), end_ms) = sim::run(seed, 4, LinkSpec::GOOD, |mut c| async move {
        c.wait_for(&ALL, 5, 30_000).await.unwrap();
        c.crash(2);
        let base = max_of(&c.heights(), &ALL);
        c.wait_for(&[0, 1, 3], base + 5, 30_000).await.unwrap();
        c.start(2).await;
        let base = max_of(&c.heights(), &ALL);
        c.wait_for(&ALL, base + 3, 30_000).await.unwrap();
        assert!(c.violations().is_empty());
        let chain = c
            .chain()
            .into_iter()
            .map(|(h, d)| (h, d.to_string()))
            .collect();
        (chain, c.heights())
    });
    (chain, heights, end_ms)
}

#[test]
fn same_seed_same_outcome() {
    let a = scenario(7);
    let b = scenario(7);
    assert_eq!(a, b);
    assert!(a.0.len() >= 13);
    // Timestamps come from virtual time, which the seed's scheduling and jitter shape.
    let c = scenario(8);
    assert_ne!(a.0, c.0);
}

/// Epochs of ten blocks.
const EPOCH: u64 = 10;

fn epochs(schedule: &[(u64, &[usize])]) -> sim::Epochs {
    sim::Epochs {
        length: EPOCH,
        schedule: schedule.iter().map(|(e, m)| (*e, m.to_vec())).collect(),
    }
}

/// Every finalized height from 0 up, each block built in its height's epoch (checked as a
/// violation when applied).
fn assert_contiguous(c: &sim::Cluster) {
    let chain = c.chain();
    assert!(chain.keys().copied().eq(0..chain.len() as u64));
    assert!(c.violations().is_empty(), "{:?}", c.violations());
}

#[test]
fn epochs_without_committee_changes_do_not_stall() {
    let schedule = epochs(&[(0, &ALL)]);
    let (result, _) = sim::run_with_epochs(11, 4, schedule, LinkSpec::GOOD, |mut c| async move {
        // Four epochs and into the fifth: every boundary is crossed by a fresh engine.
        c.wait_for(&ALL, 4 * EPOCH + 2, 120_000).await?;
        assert_contiguous(&c);
        let proposers = c.proposers();
        for epoch in 1..4 {
            assert!(
                (epoch * EPOCH..(epoch + 1) * EPOCH).any(|h| proposers.contains_key(&h)),
                "nothing proposed in epoch {epoch}"
            );
        }

        // A validator that misses a boundary catches up from its peers' later-epoch votes
        // (it fetches the boundary finalization, then enters the next epochs one by one).
        c.crash(2);
        let base = max_of(&c.heights(), &ALL);
        c.wait_for(&[0, 1, 3], base + 2 * EPOCH, 120_000).await?;
        c.start(2).await;
        let base = max_of(&c.heights(), &ALL);
        c.wait_for(&ALL, base + 3, 120_000).await?;
        assert!(c.epoch_of(c.heights()[2]) >= 6);
        assert_contiguous(&c);
        Ok::<_, String>(())
    });
    result.unwrap();
}

#[test]
fn a_validator_added_at_an_epoch_boundary_votes_and_proposes() {
    // Node 4 observes epoch 0 and joins the committee from epoch 1.
    let schedule = epochs(&[(0, &ALL), (1, &[0, 1, 2, 3, 4])]);
    let (result, _) = sim::run_with_epochs(12, 5, schedule, LinkSpec::GOOD, |mut c| async move {
        let everyone = [0, 1, 2, 3, 4];
        c.wait_for(&everyone, 3 * EPOCH + 2, 120_000).await?;
        let proposers = c.proposers();
        assert!(
            proposers.range(..EPOCH).all(|(_, &p)| p != 4),
            "node 4 proposed in epoch 0: {proposers:?}"
        );
        assert!(
            proposers.range(2 * EPOCH..).any(|(_, &p)| p == 4),
            "node 4 never proposed in epochs 2 and 3: {proposers:?}"
        );

        // With 5 members the quorum is 4: once 3 is down, nothing finalizes without node 4's
        // votes, so progress shows that they count.
        c.crash(3);
        let base = max_of(&c.heights(), &everyone);
        c.wait_for(&[0, 1, 2, 4], base + EPOCH + 2, 120_000).await?;
        // And without both 3 and 4 there is no quorum.
        c.crash(4);
        c.sleep_ms(5_000).await;
        c.expect_halted(20_000).await?;
        assert_contiguous(&c);
        Ok::<_, String>(())
    });
    result.unwrap();
}

#[test]
fn a_validator_removed_at_an_epoch_boundary_is_not_needed() {
    // Five validators, then from epoch 2 only {0, 1, 2, 3}. Once 4 has left, the chain
    // tolerates 4 and 3 both down (3 of 4 is a quorum); had 4 stayed, 3 of 5 would not be.
    let schedule = epochs(&[(0, &[0, 1, 2, 3, 4]), (2, &ALL)]);
    let (result, _) = sim::run_with_epochs(13, 5, schedule, LinkSpec::GOOD, |mut c| async move {
        c.wait_for(&[0, 1, 2, 3, 4], 2 * EPOCH + 6, 120_000).await?;
        c.crash(4);
        c.crash(3);
        let base = max_of(&c.heights(), &[0, 1, 2]);
        // Across another boundary too.
        c.wait_for(&[0, 1, 2], base + 2 * EPOCH, 120_000).await?;
        let proposers = c.proposers();
        assert!(
            proposers.range(2 * EPOCH..).all(|(_, &p)| p != 4),
            "node 4 proposed after it left: {proposers:?}"
        );
        assert_contiguous(&c);
        Ok::<_, String>(())
    });
    result.unwrap();
}

#[test]
fn an_equivocating_validator_is_reported_with_verifiable_evidence() {
    let schedule = epochs(&[(0, &ALL)]);
    let (result, _) = sim::run_with_epochs(14, 4, schedule, LinkSpec::GOOD, |mut c| async move {
        c.crash(0);
        c.set_equivocate(0, true);
        c.start(0).await;
        // The others block the equivocator once they see the conflict (so it falls behind),
        // and carry on across epoch boundaries as three of four.
        c.wait_for(&[1, 2, 3], 2 * EPOCH + 5, 120_000).await?;
        assert_contiguous(&c);
        let evidence = c.evidence();
        assert!(!evidence.is_empty(), "no node reported the equivocation");
        assert!(evidence.iter().all(|(by, _)| *by != 0), "0 reported itself");
        for (by, bytes) in &evidence {
            let epoch = chain_consensus::evidence_epoch(bytes).map_err(|e| e.to_string())?;
            let proof =
                chain_consensus::verify_evidence(sim::SIM_CHAIN_ID, &c.committee(epoch), bytes)
                    .map_err(|e| format!("evidence from node {by} does not verify: {e}"))?;
            assert_eq!(proof.offender, c.identity_hex(0));
        }
        Ok::<_, String>(())
    });
    result.unwrap();
}
