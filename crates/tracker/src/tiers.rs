//! BEP 12 `announce-list` tier rules.

use rand::seq::SliceRandom;

/// The trackers of one torrent in BEP 12 order.
///
/// Tiers are shuffled once at start. An announce tries [`TierList::current`]; on failure the
/// caller calls [`TierList::report_failure`] and tries the next tracker of the same tier, moving
/// to the next tier only when every tracker of the tier has failed. On success
/// [`TierList::report_success`] moves that tracker to the front of its tier and the next
/// announce starts again from the first tier.
///
/// Empty URLs and URLs already listed in an earlier position are dropped, so the same tracker is
/// never announced to twice in one round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TierList {
    /// Non-empty tiers.
    tiers: Vec<Vec<String>>,
    /// Cursor: `tiers[tier][index]` is the current tracker whenever `tiers` is non-empty.
    tier: usize,
    index: usize,
}

impl TierList {
    /// Builds the list from `announce-list` tiers (or `vec![vec![announce]]`), shuffling each tier.
    pub fn new(tiers: Vec<Vec<String>>, rng: &mut impl rand::Rng) -> Self {
        let mut seen = std::collections::HashSet::new();
        let mut out: Vec<Vec<String>> = Vec::with_capacity(tiers.len());
        for tier in tiers {
            let mut tier: Vec<String> = tier
                .into_iter()
                .map(|u| u.trim().to_owned())
                .filter(|u| !u.is_empty() && seen.insert(u.clone()))
                .collect();
            if !tier.is_empty() {
                tier.shuffle(rng);
                out.push(tier);
            }
        }
        Self {
            tiers: out,
            tier: 0,
            index: 0,
        }
    }

    /// The tracker to announce to next, `None` when there are no trackers.
    pub fn current(&self) -> Option<&str> {
        self.tiers
            .get(self.tier)?
            .get(self.index)
            .map(String::as_str)
    }

    /// The current tracker answered: move it to the front of its tier and start the next announce
    /// from the first tier.
    pub fn report_success(&mut self) {
        if let Some(tier) = self.tiers.get_mut(self.tier) {
            if self.index < tier.len() {
                let url = tier.remove(self.index);
                tier.insert(0, url);
            }
        }
        self.tier = 0;
        self.index = 0;
    }

    /// The current tracker failed: advance to the next tracker of its tier, then to the first
    /// tracker of the next tier. After the last tracker of the last tier it wraps around to the
    /// start ([`TierList::at_start`] turns true), meaning a whole round failed.
    pub fn report_failure(&mut self) {
        let Some(tier) = self.tiers.get(self.tier) else {
            return;
        };
        self.index += 1;
        if self.index >= tier.len() {
            self.index = 0;
            self.tier += 1;
            if self.tier >= self.tiers.len() {
                self.tier = 0;
            }
        }
    }

    /// True when [`TierList::current`] is the first tracker of the first tier: at start, after a
    /// success, or after every tracker failed in turn. Callers use it to wait for the next
    /// interval instead of retrying at once.
    pub fn at_start(&self) -> bool {
        self.tier == 0 && self.index == 0
    }

    /// True when there are no trackers at all.
    pub fn is_empty(&self) -> bool {
        self.tiers.is_empty()
    }

    /// Every tracker, tier by tier, in the order they would be tried from the start.
    pub fn all(&self) -> impl Iterator<Item = &str> {
        self.tiers.iter().flatten().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn list(tiers: &[&[&str]], seed: u64) -> TierList {
        let tiers = tiers
            .iter()
            .map(|t| t.iter().map(|s| s.to_string()).collect())
            .collect();
        TierList::new(tiers, &mut rand::rngs::StdRng::seed_from_u64(seed))
    }

    fn all(t: &TierList) -> Vec<&str> {
        t.all().collect()
    }

    #[test]
    fn shuffles_within_tiers_only() {
        let mut orders = std::collections::HashSet::new();
        for seed in 0..32 {
            let t = list(&[&["a", "b", "c"], &["x", "y"]], seed);
            let order = all(&t);
            let mut first: Vec<&str> = order[..3].to_vec();
            first.sort_unstable();
            assert_eq!(first, ["a", "b", "c"]);
            assert!(order[3..] == ["x", "y"] || order[3..] == ["y", "x"]);
            orders.insert(order.join(","));
        }
        // The shuffle actually permutes.
        assert!(orders.len() > 1);
        // Deterministic for a seed.
        assert_eq!(
            all(&list(&[&["a", "b", "c"]], 5)),
            all(&list(&[&["a", "b", "c"]], 5))
        );
    }

    #[test]
    fn walks_a_tier_before_the_next_and_wraps() {
        let mut t = list(&[&["a"], &["b"], &["c"]], 0);
        assert!(t.at_start());
        let mut seen = Vec::new();
        for _ in 0..3 {
            seen.push(t.current().unwrap().to_owned());
            t.report_failure();
        }
        assert_eq!(seen, ["a", "b", "c"]);
        assert!(t.at_start());
        assert_eq!(t.current(), Some("a"));
    }

    #[test]
    fn success_moves_tracker_to_front_of_its_tier() {
        let mut t = list(&[&["a", "b", "c"], &["x", "y"]], 7);
        let tier0 = all(&t)[..3]
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>();
        let tier1 = all(&t)[3..]
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>();
        // The first two of tier 0 fail, the third answers.
        t.report_failure();
        t.report_failure();
        assert_eq!(t.current(), Some(tier0[2].as_str()));
        t.report_success();
        assert!(t.at_start());
        assert_eq!(
            all(&t),
            [&tier0[2], &tier0[0], &tier0[1], &tier1[0], &tier1[1]]
        );

        // All of tier 0 fails, the second of tier 1 answers: tier 1 is reordered, tier 0 kept,
        // and the next announce starts from tier 0 again.
        for _ in 0..4 {
            t.report_failure();
        }
        assert_eq!(t.current(), Some(tier1[1].as_str()));
        t.report_success();
        assert_eq!(t.current(), Some(tier0[2].as_str()));
        assert_eq!(
            all(&t),
            [&tier0[2], &tier0[0], &tier0[1], &tier1[1], &tier1[0]]
        );
    }

    #[test]
    fn drops_empty_and_duplicate_entries() {
        let t = list(&[&[], &["", " "], &["a", " a "], &["a", "b"]], 0);
        assert_eq!(all(&t), ["a", "b"]);
        let mut empty = list(&[&[], &[""]], 0);
        assert!(empty.is_empty());
        assert_eq!(empty.current(), None);
        empty.report_failure();
        empty.report_success();
        assert_eq!(empty.current(), None);
    }
}
