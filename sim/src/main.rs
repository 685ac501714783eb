//! `sim table [--seeds N] [--threads N] [--pieces N] [--quick] [--out FILE]`: runs the scenario
//! grid and prints the markdown table with its targets check.

use std::process::ExitCode;
use std::time::Instant;

use sim::{Capacities, GridSpec, Seeding};

const USAGE: &str =
    "usage: sim table [--seeds N] [--threads N] [--pieces N] [--quick] [--out FILE]";

fn parse_num<T: std::str::FromStr>(flag: &str, v: Option<String>) -> Result<T, String> {
    v.and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("{flag} needs a number; {USAGE}"))
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() != Some("table") {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    }
    let mut spec = GridSpec::default();
    let mut out_file = None;
    let mut parse = || -> Result<(), String> {
        while let Some(a) = args.next() {
            match a.as_str() {
                "--seeds" => spec.seeds = parse_num("--seeds", args.next())?,
                "--threads" => spec.threads = parse_num("--threads", args.next())?,
                "--pieces" => spec.pieces = parse_num("--pieces", args.next())?,
                "--out" => {
                    out_file = Some(args.next().ok_or(format!("--out needs a file; {USAGE}"))?)
                }
                "--quick" => {
                    // A small grid for a quick look: 10 and 50 leechers, one seeding, both
                    // capacity models.
                    spec.leechers = vec![10, 50];
                    spec.seedings = vec![Seeding::Ratio {
                        seeds: 1,
                        leechers: 10,
                    }];
                    spec.capacities = vec![Capacities::Homogeneous, Capacities::Heterogeneous];
                }
                other => return Err(format!("unknown argument {other:?}; {USAGE}")),
            }
        }
        Ok(())
    };
    if let Err(e) = parse() {
        eprintln!("{e}");
        return ExitCode::from(2);
    }
    let started = Instant::now();
    let cells = sim::grid(&spec);
    let runs: usize = cells.iter().map(|c| c.runs.len()).sum();
    let table = sim::table(&cells);
    print!("{table}");
    eprintln!(
        "{runs} runs in {:.1} s on {} threads",
        started.elapsed().as_secs_f64(),
        spec.threads
    );
    if let Some(path) = out_file {
        if let Err(e) = std::fs::write(&path, &table) {
            eprintln!("cannot write {path}: {e}; check the directory exists and is writable");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
