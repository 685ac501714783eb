//! The scenario grid, its statistics and the markdown table with the targets check.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::{Capacities, MechanismKind, RunReport, Scenario, Seeding, MIB};

/// Which scenarios to run and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GridSpec {
    /// Swarm sizes (leechers).
    pub leechers: Vec<u32>,
    /// Seeder counts.
    pub seedings: Vec<Seeding>,
    /// Capacity models.
    pub capacities: Vec<Capacities>,
    /// Payer shares, percent.
    pub payer_percents: Vec<u32>,
    /// Mechanisms (plain BitTorrent is always run too: goodput is relative to it).
    pub mechanisms: Vec<MechanismKind>,
    /// Seeds per cell: `1..=seeds`.
    pub seeds: u64,
    /// Worker threads.
    pub threads: usize,
    /// Pieces per torrent (256 KiB each).
    pub pieces: u32,
}

impl Default for GridSpec {
    /// The full grid: 10/50/200 leechers; 1:10, 1:50 and 5 fixed seeders; homogeneous and
    /// heterogeneous; 0/10/50/90 % payers; every mechanism; 20 seeds; 2 threads.
    fn default() -> Self {
        Self {
            leechers: vec![10, 50, 200],
            seedings: vec![
                Seeding::Ratio {
                    seeds: 1,
                    leechers: 10,
                },
                Seeding::Ratio {
                    seeds: 1,
                    leechers: 50,
                },
                Seeding::Fixed(5),
            ],
            capacities: vec![Capacities::Homogeneous, Capacities::Heterogeneous],
            payer_percents: vec![0, 10, 50, 90],
            mechanisms: MechanismKind::ALL.to_vec(),
            seeds: 20,
            threads: 2,
            pieces: 256,
        }
    }
}

impl GridSpec {
    /// Every scenario of the grid, plain BitTorrent included, in table order.
    pub fn scenarios(&self) -> Vec<Scenario> {
        let mut mechanisms = self.mechanisms.clone();
        if !mechanisms.contains(&MechanismKind::Plain) {
            mechanisms.insert(0, MechanismKind::Plain);
        }
        let mut out = Vec::new();
        for &l in &self.leechers {
            for &s in &self.seedings {
                for &c in &self.capacities {
                    for &p in &self.payer_percents {
                        for &m in &mechanisms {
                            let mut sc = Scenario::new(l, s, c, p, m);
                            sc.pieces = self.pieces;
                            out.push(sc);
                        }
                    }
                }
            }
        }
        out
    }
}

/// One scenario's runs, one per seed.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// The scenario.
    pub scenario: Scenario,
    /// One report per seed, in seed order.
    pub runs: Vec<RunReport>,
    /// Per seed: goodput over plain BitTorrent's goodput in the same world (same seed).
    pub goodput_vs_plain: Vec<f64>,
}

/// Runs the grid on `spec.threads` threads. Each run depends only on its scenario and seed, so
/// the result does not depend on the thread count or scheduling.
pub fn grid(spec: &GridSpec) -> Vec<Cell> {
    let scenarios = spec.scenarios();
    let seeds = spec.seeds.max(1);
    // Biggest swarms first, so the threads finish together.
    let mut jobs: Vec<(usize, u64)> = (0..scenarios.len())
        .flat_map(|i| (1..=seeds).map(move |s| (i, s)))
        .collect();
    jobs.sort_by_key(|&(i, s)| (std::cmp::Reverse(scenarios[i].leechers), i, s));
    let results: Mutex<Vec<Option<RunReport>>> = Mutex::new(vec![None; jobs.len()]);
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..spec.threads.max(1) {
            scope.spawn(|| loop {
                let j = next.fetch_add(1, Ordering::Relaxed);
                let Some(&(i, s)) = jobs.get(j) else {
                    break;
                };
                let r = crate::run(&scenarios[i], s);
                if let Ok(mut res) = results.lock() {
                    res[j] = Some(r);
                }
            });
        }
    });
    let results = results.into_inner().unwrap_or_default();
    let mut per: Vec<Vec<(u64, RunReport)>> = vec![Vec::new(); scenarios.len()];
    for (&(i, s), r) in jobs.iter().zip(results) {
        if let Some(r) = r {
            per[i].push((s, r));
        }
    }
    let mut cells: Vec<Cell> = scenarios
        .into_iter()
        .zip(per)
        .map(|(scenario, mut runs)| {
            runs.sort_by_key(|r| r.0);
            Cell {
                scenario,
                runs: runs.into_iter().map(|r| r.1).collect(),
                goodput_vs_plain: Vec::new(),
            }
        })
        .collect();
    let plain: Vec<(Scenario, Vec<f64>)> = cells
        .iter()
        .filter(|c| c.scenario.mechanism == MechanismKind::Plain)
        .map(|c| {
            (
                c.scenario.clone(),
                c.runs.iter().map(|r| r.goodput).collect(),
            )
        })
        .collect();
    for cell in &mut cells {
        let world = |s: &Scenario| {
            (
                s.leechers,
                s.seeding,
                s.capacities,
                s.payer_percent,
                s.pieces,
            )
        };
        if let Some((_, base)) = plain
            .iter()
            .find(|(s, _)| world(s) == world(&cell.scenario))
        {
            cell.goodput_vs_plain = cell
                .runs
                .iter()
                .zip(base)
                .map(|(r, b)| if *b > 0.0 { r.goodput / b } else { 0.0 })
                .collect();
        }
    }
    cells
}

/// The `q`-quantile (0..=1) of `xs` by linear interpolation; `None` if empty.
pub(crate) fn quantile(xs: &[f64], q: f64) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let pos = q.clamp(0.0, 1.0) * (v.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    Some(v[lo] + (v[hi] - v[lo]) * (pos - lo as f64))
}

fn median(xs: &[f64]) -> Option<f64> {
    quantile(xs, 0.5)
}

/// `median [p10–p90]` with `digits` decimals, or `–` with no data.
fn spread(xs: &[f64], digits: usize) -> String {
    match (quantile(xs, 0.5), quantile(xs, 0.1), quantile(xs, 0.9)) {
        (Some(m), Some(lo), Some(hi)) => format!("{m:.digits$} [{lo:.digits$}–{hi:.digits$}]"),
        _ => "–".into(),
    }
}

fn collect(cell: &Cell, f: impl Fn(&RunReport) -> Option<f64>) -> Vec<f64> {
    cell.runs.iter().filter_map(f).collect()
}

fn scenario_label(s: &Scenario) -> String {
    format!(
        "{} | {} ({}) | {} | {} %",
        s.leechers,
        s.seeding.label(),
        s.seeds(),
        s.capacities.label(),
        s.payer_percent
    )
}

/// The markdown table of `cells` (one row per scenario and mechanism) followed by the targets
/// check.
pub fn table(cells: &[Cell]) -> String {
    let mut out = String::new();
    let seeds = cells.iter().map(|c| c.runs.len()).max().unwrap_or(0);
    let _ = writeln!(
        out,
        "Each cell: median [p10–p90] over {seeds} seeds. Rates are seeder-sourced MiB/s per leecher; prices are in units of the reserve R."
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "| leechers | seeders | caps | payers | mechanism | payer MiB/s | non-payer MiB/s | ratio | non-payer seed share | free-class share | earned/paid byte (R) | uncontended price (R) | goodput vs plain | done s | payment bytes % | viol. |"
    );
    let _ = writeln!(
        out,
        "|---:|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for cell in cells {
        let s = &cell.scenario;
        let r = s.reserve_price.max(1) as f64;
        let mib = MIB as f64;
        let row = [
            spread(&collect(cell, |x| x.payer_seed_rate.map(|v| v / mib)), 3),
            spread(&collect(cell, |x| x.nonpayer_seed_rate.map(|v| v / mib)), 3),
            spread(&collect(cell, RunReport::rate_ratio), 2),
            spread(&collect(cell, |x| x.nonpayer_share_contended), 3),
            spread(&collect(cell, |x| x.free_class_share_contended), 3),
            spread(
                &collect(cell, |x| x.earnings_per_paid_byte().map(|v| v / r)),
                2,
            ),
            spread(&collect(cell, |x| x.uncontended_price.map(|v| v / r)), 2),
            spread(&cell.goodput_vs_plain, 3),
            spread(&collect(cell, |x| Some(x.mean_completion_s)), 0),
            spread(&collect(cell, |x| Some(100.0 * x.payment_overhead())), 4),
            cell.runs
                .iter()
                .map(|x| x.violations)
                .sum::<u64>()
                .to_string(),
        ];
        let _ = writeln!(
            out,
            "| {} | {} | {} |",
            scenario_label(s),
            s.mechanism.name(),
            row.join(" | ")
        );
    }
    let _ = writeln!(out);
    out.push_str(&targets(cells));
    out
}

/// One target: PASS/FAIL and the evidence.
fn verdict(out: &mut String, ok: bool, what: &str, evidence: &str) {
    let _ = writeln!(
        out,
        "- {} {what}: {evidence}",
        if ok { "PASS" } else { "FAIL" }
    );
}

/// The targets check block.
pub(crate) fn targets(cells: &[Cell]) -> String {
    let mut out = String::from("Targets:\n\n");
    let of = |m: MechanismKind| cells.iter().filter(move |c| c.scenario.mechanism == m);

    // 1. Payers at least 3× non-payers with equal numbers and a 20 % free share.
    let mut worst: Option<(f64, String)> = None;
    let (mut pass, mut total) = (0, 0);
    for c in of(MechanismKind::Ours).filter(|c| c.scenario.payer_percent == 50) {
        if let Some(m) = median(&collect(c, RunReport::rate_ratio)) {
            total += 1;
            pass += usize::from(m >= 3.0);
            if worst.as_ref().is_none_or(|w| m < w.0) {
                worst = Some((m, scenario_label(&c.scenario)));
            }
        }
    }
    verdict(
        &mut out,
        total > 0 && pass == total,
        "payers get ≥ 3× the non-payers' seeder-sourced rate (ours, 50 % payers, median per cell)",
        &format!(
            "{pass}/{total} cells; lowest median {}",
            worst.map_or("–".into(), |w| format!("{:.2}× ({})", w.0, w.1))
        ),
    );

    // 2. Non-payers keep ≥ 90 % of the 20 % free share while seeders are contended.
    let mut worst: Option<(f64, String)> = None;
    let (mut pass, mut total) = (0, 0);
    for c in of(MechanismKind::Ours).filter(|c| c.scenario.payer_percent > 0) {
        if let Some(m) = median(&collect(c, |x| x.nonpayer_share_contended)) {
            total += 1;
            pass += usize::from(m >= 0.18);
            if worst.as_ref().is_none_or(|w| m < w.0) {
                worst = Some((m, scenario_label(&c.scenario)));
            }
        }
    }
    verdict(
        &mut out,
        total > 0 && pass == total,
        "non-payers get ≥ 18 % (90 % of the 20 % free share) of contended seeder upload (ours, median per cell)",
        &format!(
            "{pass}/{total} cells; lowest median {}",
            worst.map_or("–".into(), |w| format!("{:.3} ({})", w.0, w.1))
        ),
    );

    // 3. Uncontended sellers earn the reserve; the original design earns 0.
    let prices = |m: MechanismKind| -> Vec<(f64, f64)> {
        of(m)
            .flat_map(|c| {
                let r = c.scenario.reserve_price as f64;
                c.runs
                    .iter()
                    .filter_map(move |x| x.uncontended_price.map(|p| (p, r)))
            })
            .collect()
    };
    let ours = prices(MechanismKind::Ours);
    let orig = prices(MechanismKind::UniformNoReserve);
    let ours_ok = !ours.is_empty() && ours.iter().all(|(p, r)| (p - r).abs() < 1e-9);
    let orig_ok = !orig.is_empty() && orig.iter().all(|(p, _)| *p == 0.0);
    verdict(
        &mut out,
        ours_ok && orig_ok,
        "an uncontended seller earns the reserve (ours) and 0 (original (k+1) price)",
        &format!(
            "ours: {} of {} runs with uncontended rounds charged exactly R; original: {} of {} charged 0",
            ours.iter().filter(|(p, r)| (p - r).abs() < 1e-9).count(),
            ours.len(),
            orig.iter().filter(|(p, _)| *p == 0.0).count(),
            orig.len()
        ),
    );

    // 4. Goodput of ours ≥ 95 % of plain BitTorrent.
    let mut worst: Option<(f64, String)> = None;
    let (mut pass, mut total) = (0, 0);
    for c in of(MechanismKind::Ours) {
        if let Some(m) = median(&c.goodput_vs_plain) {
            total += 1;
            pass += usize::from(m >= 0.95);
            if worst.as_ref().is_none_or(|w| m < w.0) {
                worst = Some((m, scenario_label(&c.scenario)));
            }
        }
    }
    verdict(
        &mut out,
        total > 0 && pass == total,
        "swarm goodput of ours ≥ 95 % of plain BitTorrent on the same seed (median per cell)",
        &format!(
            "{pass}/{total} cells; lowest median {}",
            worst.map_or("–".into(), |w| format!("{:.3} ({})", w.0, w.1))
        ),
    );

    // 5. Payment bytes < 0.1 % of payload, every run of every market mechanism.
    let overheads: Vec<f64> = cells
        .iter()
        .filter(|c| c.scenario.mechanism.has_market())
        .flat_map(|c| c.runs.iter().map(RunReport::payment_overhead))
        .collect();
    let max = overheads.iter().copied().fold(0.0, f64::max);
    verdict(
        &mut out,
        !overheads.is_empty() && max < 0.001,
        "payment bytes < 0.1 % of payload bytes (every run)",
        &format!("max {:.4} %", 100.0 * max),
    );

    // 6. No invariant violations.
    let runs = cells.iter().flat_map(|c| c.runs.iter());
    let violations: u64 = runs.clone().map(|x| x.violations).sum();
    let rejections: u64 = runs.clone().map(|x| x.voucher_rejections).sum();
    let refused: u64 = runs.clone().map(|x| x.refused_payments).sum();
    let stalls: u64 = runs.clone().map(|x| x.credit_stalls).sum();
    let unfinished: u64 = runs.map(|x| u64::from(x.leechers - x.completed)).sum();
    verdict(
        &mut out,
        violations == 0,
        "0 invariant violations (checked at every serve and payment)",
        &format!(
            "{violations} violations; also {rejections} vouchers rejected, {refused} payments refused, {stalls} credit stalls, {unfinished} leechers unfinished"
        ),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate() {
        let xs = [4.0, 1.0, 3.0, 2.0, 5.0];
        assert_eq!(quantile(&xs, 0.5), Some(3.0));
        assert_eq!(quantile(&xs, 0.0), Some(1.0));
        assert_eq!(quantile(&xs, 0.1), Some(1.4));
        assert_eq!(quantile(&[], 0.5), None);
        assert_eq!(spread(&xs, 1), "3.0 [1.4–4.6]");
    }
}
