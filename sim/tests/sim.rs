//! The simulator end to end: determinism, invariants, and the market's key targets on a small
//! swarm (20 leechers, 2 seeders, half of them paying, 5 seeds), so a regression in the `speed`
//! crate's allocation, bidder or credit code shows up here.

#![allow(clippy::unwrap_used)]

use sim::{Capacities, MechanismKind, RunReport, Scenario, Seeding};

const SEEDS: u64 = 5;

fn small(mechanism: MechanismKind, capacities: Capacities, payer_percent: u32) -> Scenario {
    let mut s = Scenario::new(
        20,
        Seeding::Ratio {
            seeds: 1,
            leechers: 10,
        },
        capacities,
        payer_percent,
        mechanism,
    );
    s.pieces = 128;
    s
}

fn runs(s: &Scenario) -> Vec<RunReport> {
    (1..=SEEDS).map(|seed| sim::run(s, seed)).collect()
}

fn median(mut xs: Vec<f64>) -> f64 {
    assert!(!xs.is_empty());
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

#[test]
fn same_seed_same_report_different_seed_different() {
    for m in MechanismKind::ALL {
        let s = small(m, Capacities::Heterogeneous, 50);
        let a = sim::run(&s, 11);
        assert_eq!(a, sim::run(&s, 11), "{m:?} is not deterministic");
        assert_ne!(a, sim::run(&s, 12), "{m:?} ignores the seed");
    }
}

#[test]
fn invariants_hold_and_everyone_finishes() {
    for m in MechanismKind::ALL {
        for caps in [Capacities::Homogeneous, Capacities::Heterogeneous] {
            for pct in [0, 10, 50, 90] {
                let s = small(m, caps, pct);
                for r in runs(&s) {
                    let what = format!("{m:?} {caps:?} {pct} % seed {}", r.seed);
                    assert_eq!(r.violations, 0, "{what}");
                    assert_eq!(r.voucher_rejections, 0, "{what}");
                    assert_eq!(r.completed, r.leechers, "{what}");
                    if !m.has_market() || pct == 0 {
                        assert_eq!(r.paid_bytes, 0, "{what}");
                        assert_eq!(r.seller_earned, 0, "{what}");
                    }
                }
            }
        }
    }
}

#[test]
fn payers_get_well_above_the_non_payers_rate() {
    for caps in [Capacities::Homogeneous, Capacities::Heterogeneous] {
        let ours = runs(&small(MechanismKind::Ours, caps, 50));
        let ratio = median(ours.iter().filter_map(RunReport::rate_ratio).collect());
        // A regression guard below the 3× target, which the full table reports per cell (it is
        // missed in some cells since free slots go to non-bidders first; see docs/benchmarks.md).
        assert!(ratio >= 1.8, "{caps:?}: payers only {ratio:.2}× non-payers");
        // Plain BitTorrent does not favour anyone.
        let plain = runs(&small(MechanismKind::Plain, caps, 50));
        let ratio = median(plain.iter().filter_map(RunReport::rate_ratio).collect());
        assert!(
            ratio < 2.0,
            "{caps:?}: plain BitTorrent favours payers {ratio:.2}×"
        );
    }
}

#[test]
fn free_class_keeps_its_share_and_non_payers_are_not_starved() {
    let ours = runs(&small(MechanismKind::Ours, Capacities::Homogeneous, 50));
    let free = median(
        ours.iter()
            .filter_map(|r| r.free_class_share_contended)
            .collect(),
    );
    assert!(free >= 0.18, "free class got {free:.3} of contended upload");
    let nonpayer = median(
        ours.iter()
            .filter_map(|r| r.nonpayer_share_contended)
            .collect(),
    );
    // Priority pay-as-bid leaves non-payers (almost) nothing; ours does not.
    let pab = runs(&small(MechanismKind::PayAsBid, Capacities::Homogeneous, 50));
    let pab_nonpayer = median(
        pab.iter()
            .filter_map(|r| r.nonpayer_share_contended)
            .collect(),
    );
    assert!(nonpayer >= 0.08, "non-payers got {nonpayer:.3}");
    assert!(
        nonpayer > 2.0 * pab_nonpayer,
        "{nonpayer} vs {pab_nonpayer}"
    );
}

#[test]
fn uncontended_seller_earns_the_reserve_and_the_original_earns_nothing() {
    let mut ours_rounds = 0;
    for r in runs(&small(MechanismKind::Ours, Capacities::Homogeneous, 10)) {
        if let Some(p) = r.uncontended_price {
            assert_eq!(p, 100.0, "seed {}", r.seed);
            ours_rounds += 1;
        }
        assert!(r.earnings_per_paid_byte().unwrap() >= 100.0);
    }
    assert!(ours_rounds > 0, "no uncontended round to check");
    let mut orig_rounds = 0;
    for r in runs(&small(
        MechanismKind::UniformNoReserve,
        Capacities::Homogeneous,
        10,
    )) {
        if let Some(p) = r.uncontended_price {
            assert_eq!(p, 0.0, "seed {}", r.seed);
            orig_rounds += 1;
        }
    }
    assert!(orig_rounds > 0, "no uncontended round to check");
}

#[test]
fn goodput_close_to_plain_and_payments_are_cheap() {
    for caps in [Capacities::Homogeneous, Capacities::Heterogeneous] {
        let plain = runs(&small(MechanismKind::Plain, caps, 50));
        let ours = runs(&small(MechanismKind::Ours, caps, 50));
        let rel = median(
            ours.iter()
                .zip(&plain)
                .map(|(o, p)| o.goodput / p.goodput)
                .collect(),
        );
        // The table's target is 0.95; on this small swarm ours sits at about 0.95, so the test
        // guards against a clear regression rather than the exact target.
        assert!(rel >= 0.9, "{caps:?}: goodput {rel:.3} of plain");
        for r in &ours {
            assert!(r.payment_msg_bytes > 0);
            assert!(
                r.payment_overhead() < 0.001,
                "{caps:?}: overhead {}",
                r.payment_overhead()
            );
        }
    }
}
