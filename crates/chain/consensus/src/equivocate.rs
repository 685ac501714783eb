//! A deliberately faulty validator, for test networks only: [`wrap`] puts an [`Equivocator`]
//! around the p2p sender of simplex's votes channel, and every notarize vote it sends is
//! followed by a second notarize for the same round and parent but another payload, signed
//! with the same key. Honest validators then see a conflicting notarize from this node, which
//! simplex reports as fault evidence (see [`crate::evidence`]).
//!
//! Messages on the votes channel are simplex `Vote`s in commonware's codec (a tag, then the
//! vote); anything that does not decode as a notarize passes through unchanged.

use crate::{block::Digest, Identity, Scheme};
use commonware_actor::{Feedback, Unreliable};
use commonware_codec::{DecodeExt, Encode};
use commonware_consensus::simplex::types::{Notarize, Proposal, Vote};
use commonware_p2p::{CheckedSender, LimitedSender, Recipients, Sender};
use commonware_runtime::{IoBuf, IoBufs};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// The rounds (epoch, view) this node led, recorded by the application actor when it is asked
/// to build. Twins are sent only for those: our own proposal reaches a peer before any other
/// vote of that round, so the peer holds our honest notarize (or the twin) in full when the
/// other arrives and reports the pair. In a round led by another, our vote often arrives after
/// the peer already assembled the round's certificate and compacted its votes; a twin then is
/// refused without evidence and gets us blocked before we ever equivocate provably.
pub(crate) type LedRounds = Arc<Mutex<BTreeSet<(u64, u64)>>>;

/// Most led rounds remembered.
const MAX_LED: usize = 1024;

/// Records that this node leads `(epoch, view)`.
pub(crate) fn record_led(led: &LedRounds, epoch: u64, view: u64) {
    let mut rounds = led
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    rounds.insert((epoch, view));
    while rounds.len() > MAX_LED {
        rounds.pop_first();
    }
}

/// On a real network, no twins in the process's first seconds: an honest vote sent before its
/// connection is up is lost, and a twin that then arrives alone is refused without evidence
/// (and gets this node blocked before it ever equivocates provably).
pub(crate) const WARM_UP: Duration = Duration::from_secs(3);

/// When the first equivocator of this process was made.
fn started() -> std::time::Instant {
    static STARTED: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    *STARTED.get_or_init(std::time::Instant::now)
}

/// Wraps `sender`, the votes channel's sender, so that notarizes are equivocated with `scheme`,
/// this validator's signing scheme: each is followed at once by its twin. No twins in the
/// process's first `warm_up`; with `led`, only in the rounds this node led (real networks);
/// without, every notarize (the deterministic simulation).
pub(crate) fn wrap<S: Sender<PublicKey = Identity>>(
    sender: S,
    scheme: Scheme,
    warm_up: Duration,
    led: Option<LedRounds>,
) -> Equivocator<S> {
    started();
    Equivocator {
        inner: sender,
        scheme,
        warm_up,
        led,
    }
}

/// A votes-channel sender that sends a conflicting twin after every notarize.
#[derive(Clone, Debug)]
pub(crate) struct Equivocator<S> {
    inner: S,
    scheme: Scheme,
    warm_up: Duration,
    /// When set, only rounds this node led are equivocated.
    led: Option<LedRounds>,
}

impl<S: Sender<PublicKey = Identity>> LimitedSender for Equivocator<S> {
    type PublicKey = Identity;
    type Checked<'a>
        = Checked<'a, S>
    where
        Self: 'a;

    fn check(&mut self, recipients: Recipients<Identity>) -> Result<Checked<'_, S>, SystemTime> {
        // The checked sender can send once; the twin goes through a clone of the sender,
        // which shares its connections and rate limits.
        let spare = self.inner.clone();
        let scheme = &self.scheme;
        let warm = started().elapsed() >= self.warm_up;
        let led = self.led.clone();
        let first = self.inner.check(recipients)?;
        Ok(Checked {
            first,
            spare,
            scheme,
            warm,
            led,
        })
    }
}

/// The recipients of one send, checked against the rate limits.
pub(crate) struct Checked<'a, S: Sender + 'a> {
    first: S::Checked<'a>,
    spare: S,
    scheme: &'a Scheme,
    /// Past the warm-up: twins are sent.
    warm: bool,
    /// The rounds we led, when only those are equivocated.
    led: Option<LedRounds>,
}

impl<S: Sender<PublicKey = Identity>> CheckedSender for Checked<'_, S> {
    type PublicKey = Identity;

    fn recipients(&self) -> Vec<Identity> {
        self.first.recipients()
    }

    fn send(self, message: impl Into<IoBufs> + Send, priority: bool) -> Unreliable<Feedback> {
        let message = message.into().coalesce();
        let led = self.led;
        let ours = |round: (u64, u64)| {
            led.as_ref().is_none_or(|l| {
                l.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .contains(&round)
            })
        };
        let twin = twin(self.scheme, &message, ours).filter(|_| self.warm);
        let recipients = self.first.recipients();
        let feedback = self.first.send(message, priority);
        if let Some(twin) = twin {
            let mut spare = self.spare;
            // The twin follows at once, so a peer holds both before the round's certificate
            // forms (simplex reports a conflict as evidence only against a vote it holds in
            // full). It may find a peer rate-limited where the original did not; a test
            // network only needs most peers to see both.
            if let Ok(checked) = spare.check(Recipients::Some(recipients)) {
                let _ = checked.send(twin, priority);
            };
        }
        feedback
    }
}

/// A notarize conflicting with `message` if it is one: same round and parent, payload with
/// every bit flipped, signed by `scheme`.
fn twin(scheme: &Scheme, message: &IoBuf, ours: impl Fn((u64, u64)) -> bool) -> Option<IoBufs> {
    let Ok(Vote::Notarize(notarize)) = Vote::<Scheme, Digest>::decode(message.clone()) else {
        return None;
    };
    let round = notarize.proposal.round;
    if !ours((round.epoch().get(), round.view().get())) {
        return None;
    }
    let mut payload = notarize.proposal.payload;
    for b in payload.0.iter_mut() {
        *b = !*b;
    }
    let proposal = Proposal::new(notarize.proposal.round, notarize.proposal.parent, payload);
    let twin = Notarize::sign(scheme, proposal)?;
    Some(Vote::<Scheme, Digest>::Notarize(twin).encode().into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::{
        encode_activity,
        tests::{scheme_of, validators, CHAIN},
        verify_evidence, Equivocation, EquivocationKind,
    };
    use commonware_consensus::{
        simplex::types::{Activity, Attributable, ConflictingNotarize, Finalize, Nullify},
        types::{Epoch, Round, View},
    };
    use commonware_cryptography::sha256;
    use std::sync::{Arc, Condvar, Mutex};

    /// Every message sent, with its recipients, and a signal for each arrival.
    type Log = Arc<(Mutex<Vec<(Vec<Identity>, Vec<u8>)>>, Condvar)>;

    /// Waits (at most 10 s) until `log` holds `n` messages and returns them.
    fn wait_for(log: &Log, n: usize) -> Vec<(Vec<Identity>, Vec<u8>)> {
        let (sent, arrived) = &**log;
        let guard = sent.lock().unwrap();
        let (guard, _) = arrived
            .wait_timeout_while(guard, std::time::Duration::from_secs(10), |v| v.len() < n)
            .unwrap();
        guard.clone()
    }

    /// A sender that records what it is asked to send, and to whom.
    #[derive(Clone, Debug)]
    struct Capture {
        peers: Vec<Identity>,
        sent: Log,
    }

    struct CaptureChecked {
        to: Vec<Identity>,
        sent: Log,
    }

    impl LimitedSender for Capture {
        type PublicKey = Identity;
        type Checked<'a> = CaptureChecked;

        fn check(
            &mut self,
            recipients: Recipients<Identity>,
        ) -> Result<CaptureChecked, SystemTime> {
            let to = match recipients {
                Recipients::All => self.peers.clone(),
                Recipients::Some(to) => to,
                Recipients::One(to) => vec![to],
            };
            Ok(CaptureChecked {
                to,
                sent: self.sent.clone(),
            })
        }
    }

    impl CheckedSender for CaptureChecked {
        type PublicKey = Identity;

        fn recipients(&self) -> Vec<Identity> {
            self.to.clone()
        }

        fn send(self, message: impl Into<IoBufs> + Send, _: bool) -> Unreliable<Feedback> {
            let bytes = message.into().coalesce().as_ref().to_vec();
            self.sent.0.lock().unwrap().push((self.to, bytes));
            self.sent.1.notify_all();
            Unreliable::new(Feedback::Ok)
        }
    }

    fn proposal(view: u64) -> Proposal<Digest> {
        Proposal::new(
            Round::new(Epoch::new(2), View::new(view)),
            View::new(view - 1),
            sha256::Digest([0x5a; 32]),
        )
    }

    /// Validator 2's scheme, the committee, and a capture sender with validator 2 wrapped
    /// around it (its peers are the other three).
    fn setup() -> (
        Scheme,
        Vec<crate::ValidatorInfo>,
        Capture,
        Equivocator<Capture>,
    ) {
        let (keys, infos) = validators();
        let scheme = scheme_of(&keys, &infos, 2, CHAIN);
        let capture = Capture {
            peers: [0, 1, 3]
                .iter()
                .map(|&i| infos[i].identity_key().unwrap())
                .collect(),
            sent: Arc::default(),
        };
        let equivocator = wrap(capture.clone(), scheme.clone(), Duration::ZERO, None);
        (scheme, infos, capture, equivocator)
    }

    #[test]
    fn with_led_rounds_only_the_rounds_we_led_are_twinned() {
        let (scheme, _, capture, _) = setup();
        let led = LedRounds::default();
        record_led(&led, 2, 7);
        let mut picky = wrap(capture.clone(), scheme.clone(), Duration::ZERO, Some(led));
        for view in [6, 7, 8] {
            let notarize = Notarize::sign(&scheme, proposal(view)).unwrap();
            let vote = Vote::<Scheme, Digest>::Notarize(notarize).encode();
            Sender::send(&mut picky, Recipients::All, vote.clone(), true);
        }
        // One vote each for views 6 and 8; view 7 (ours) is twinned.
        let sent = wait_for(&capture.sent, 4);
        let views: Vec<u64> = sent
            .iter()
            .map(|(_, bytes)| {
                match Vote::<Scheme, Digest>::decode(bytes::Bytes::from(bytes.clone())) {
                    Ok(Vote::Notarize(n)) => n.proposal.round.view().get(),
                    _ => panic!("not a notarize"),
                }
            })
            .collect();
        assert_eq!(views, vec![6, 7, 7, 8]);
        // And the record is bounded.
        let led = LedRounds::default();
        for view in 0..(MAX_LED as u64 + 10) {
            record_led(&led, 0, view);
        }
        let rounds = led.lock().unwrap();
        assert_eq!(rounds.len(), MAX_LED);
        assert_eq!(rounds.first(), Some(&(0, 10)));
    }

    #[test]
    fn a_notarize_is_followed_by_a_conflicting_one() {
        let (scheme, infos, capture, mut equivocator) = setup();
        let notarize = Notarize::sign(&scheme, proposal(6)).unwrap();
        let vote = Vote::<Scheme, Digest>::Notarize(notarize.clone()).encode();

        let to = Sender::send(&mut equivocator, Recipients::All, vote.clone(), true);
        assert_eq!(to, capture.peers);
        let sent = wait_for(&capture.sent, 2);
        assert_eq!(sent.len(), 2);
        assert_eq!(sent[0], (capture.peers.clone(), vote.to_vec()));
        assert_eq!(sent[1].0, capture.peers);

        let Ok(Vote::Notarize(twin)) =
            Vote::<Scheme, Digest>::decode(bytes::Bytes::from(sent[1].1.clone()))
        else {
            panic!("the second message is not a notarize");
        };
        assert_eq!(twin.proposal.round, notarize.proposal.round);
        assert_eq!(twin.proposal.parent, notarize.proposal.parent);
        assert_eq!(twin.proposal.payload, sha256::Digest([!0x5a; 32]));
        assert_eq!(twin.signer(), notarize.signer());

        // Honest validators would report the pair, and the chain accepts it.
        let activity = Activity::ConflictingNotarize(ConflictingNotarize::new(notarize, twin));
        let evidence = encode_activity(&activity).unwrap();
        assert_eq!(
            verify_evidence(CHAIN, &infos, &evidence),
            Ok(Equivocation {
                epoch: 2,
                view: 6,
                offender: infos[2].identity.clone(),
                kind: EquivocationKind::ConflictingNotarize,
            })
        );
    }

    #[test]
    fn everything_else_passes_through() {
        let (scheme, _, capture, mut equivocator) = setup();
        let round = Round::new(Epoch::new(2), View::new(6));
        let nullify =
            Vote::<Scheme, Digest>::Nullify(Nullify::sign::<Digest>(&scheme, round).unwrap())
                .encode();
        let finalize =
            Vote::<Scheme, Digest>::Finalize(Finalize::sign(&scheme, proposal(6)).unwrap())
                .encode();
        let garbage = bytes::Bytes::from_static(b"\x00not a vote");
        let one = capture.peers[1].clone();
        for message in [nullify, finalize, garbage] {
            Sender::send(
                &mut equivocator,
                Recipients::One(one.clone()),
                message.clone(),
                false,
            );
            let sent = std::mem::take(&mut *capture.sent.0.lock().unwrap());
            assert_eq!(sent, vec![(vec![one.clone()], message.to_vec())]);
        }
    }
}
