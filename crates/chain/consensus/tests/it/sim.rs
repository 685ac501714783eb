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
