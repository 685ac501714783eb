//! Choking per BEP 3: tit-for-tat with an optimistic unchoke.
//!
//! Every [`RECHOKE_INTERVAL`] the choker unchokes the `slots` interested peers that served us fastest
//! (when leeching) or that we serve fastest (when seeding, so upload goes where it is absorbed), skipping
//! snubbed peers, plus one optimistic unchoke rotated every third round, where newly connected peers are
//! three times as likely to be chosen so they get a first piece to trade.

use std::time::Duration;

use rand::Rng;

use crate::picker::PeerKey;

/// How often the unchoke set is recomputed.
pub const RECHOKE_INTERVAL: Duration = Duration::from_secs(10);
/// Rechoke rounds between optimistic-unchoke rotations (3 × 10 s = 30 s, as in BEP 3).
pub const OPTIMISTIC_EVERY: u32 = 3;
/// A peer connected for less than this counts as new for the optimistic draw.
pub const NEW_PEER: Duration = Duration::from_secs(60);

/// What the choker needs to know about one peer.
#[derive(Debug, Clone, Copy)]
pub struct Candidate {
    /// The peer.
    pub key: PeerKey,
    /// The peer wants data from us.
    pub interested: bool,
    /// Recent rate at which the peer sends us payload.
    pub down_rate_bytes_per_s: u64,
    /// Recent rate at which we send the peer payload.
    pub up_rate_bytes_per_s: u64,
    /// The peer sent nothing for a long time although we asked.
    pub snubbed: bool,
    /// Time since the connection was established.
    pub connected_for: Duration,
}

/// Choker state for one torrent.
#[derive(Debug, Default)]
pub struct Choker {
    round: u32,
    optimistic: Option<PeerKey>,
}

impl Choker {
    /// The peer currently holding the optimistic unchoke.
    pub fn optimistic(&self) -> Option<PeerKey> {
        self.optimistic
    }

    /// Computes the unchoke set for this round.
    pub fn rechoke(
        &mut self,
        peers: &[Candidate],
        slots: usize,
        seeding: bool,
        rng: &mut impl Rng,
    ) -> Vec<PeerKey> {
        let mut ranked: Vec<&Candidate> = peers
            .iter()
            .filter(|p| p.interested && !p.snubbed)
            .collect();
        ranked.sort_by_key(|p| {
            std::cmp::Reverse(if seeding {
                p.up_rate_bytes_per_s
            } else {
                p.down_rate_bytes_per_s
            })
        });
        let mut unchoked: Vec<PeerKey> = ranked.iter().take(slots).map(|p| p.key).collect();

        let rotate = self.round.is_multiple_of(OPTIMISTIC_EVERY)
            || self
                .optimistic
                .is_none_or(|o| !peers.iter().any(|p| p.key == o && p.interested));
        self.round = self.round.wrapping_add(1);
        if rotate {
            let pool: Vec<&Candidate> = peers
                .iter()
                .filter(|p| p.interested && !unchoked.contains(&p.key))
                .collect();
            let weight = |p: &Candidate| if p.connected_for < NEW_PEER { 3u32 } else { 1 };
            let total: u32 = pool.iter().map(|p| weight(p)).sum();
            self.optimistic = None;
            if total > 0 {
                let mut pick = rng.gen_range(0..total);
                for p in pool {
                    if pick < weight(p) {
                        self.optimistic = Some(p.key);
                        break;
                    }
                    pick -= weight(p);
                }
            }
        }
        if let Some(o) = self.optimistic {
            if !unchoked.contains(&o) && peers.iter().any(|p| p.key == o && p.interested) {
                unchoked.push(o);
            }
        }
        unchoked
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    use super::*;

    fn cand(key: PeerKey, down: u64, up: u64) -> Candidate {
        Candidate {
            key,
            interested: true,
            down_rate_bytes_per_s: down,
            up_rate_bytes_per_s: up,
            snubbed: false,
            connected_for: Duration::from_secs(600),
        }
    }

    #[test]
    fn leecher_reciprocates_fastest_uploaders_plus_one_optimistic() {
        let peers = [
            cand(1, 10, 0),
            cand(2, 50, 0),
            cand(3, 30, 0),
            cand(4, 0, 0),
            cand(5, 1, 0),
        ];
        let mut c = Choker::default();
        let set = c.rechoke(&peers, 2, false, &mut SmallRng::seed_from_u64(1));
        assert_eq!(&set[..2], &[2, 3]);
        assert_eq!(set.len(), 3);
        assert!([1, 4, 5].contains(&set[2]));
        assert_eq!(c.optimistic(), Some(set[2]));
    }

    #[test]
    fn seeder_ranks_by_upload_and_skips_uninterested_and_snubbed() {
        let mut peers = vec![cand(1, 0, 5), cand(2, 0, 9), cand(3, 0, 7)];
        peers[1].interested = false;
        peers[2].snubbed = true;
        let mut c = Choker::default();
        let set = c.rechoke(&peers, 1, true, &mut SmallRng::seed_from_u64(1));
        assert_eq!(set[0], 1);
        assert!(!set.contains(&2));
    }

    #[test]
    fn optimistic_slot_is_kept_between_rotations() {
        let peers = [cand(1, 9, 0), cand(2, 0, 0), cand(3, 0, 0), cand(4, 0, 0)];
        let mut c = Choker::default();
        let mut rng = SmallRng::seed_from_u64(3);
        let first = c.rechoke(&peers, 1, false, &mut rng);
        for _ in 1..OPTIMISTIC_EVERY {
            assert_eq!(c.rechoke(&peers, 1, false, &mut rng), first);
        }
    }
}
