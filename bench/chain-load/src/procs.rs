//! Finding the validator processes and reading their CPU time from `/proc`.

use std::path::Path;

use anyhow::{Context, Result};

/// Clock ticks per second of `/proc/<pid>/stat` times (USER_HZ, 100 on every Linux ABI we run on).
const TICKS_PER_SEC: f64 = 100.0;

/// The pids of `btt chain run --config <dir>/node-<i>/config.toml` processes, indexed by `i`
/// (`None` where no such process was found).
pub(crate) fn validator_pids(dir: &Path, nodes: usize) -> Vec<Option<u32>> {
    let mut out = vec![None; nodes];
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if let Some(i) = node_index(&args, &dir) {
            if i < nodes {
                out[i] = Some(pid);
            }
        }
    }
    out
}

/// `Some(i)` when `args` run node `i` of the network in `dir`.
fn node_index(args: &[String], dir: &Path) -> Option<usize> {
    let at = args
        .windows(3)
        .position(|w| w[0] == "chain" && w[1] == "run" && w[2] == "--config")?;
    let config = Path::new(args.get(at + 3)?);
    let config = config
        .canonicalize()
        .unwrap_or_else(|_| config.to_path_buf());
    let node_dir = config.parent()?;
    if node_dir.parent()? != dir {
        return None;
    }
    node_dir
        .file_name()?
        .to_str()?
        .strip_prefix("node-")?
        .parse()
        .ok()
}

/// User plus system CPU seconds a process has used so far.
pub(crate) fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("process {pid} is gone"))?;
    parse_cpu(&stat).with_context(|| format!("cannot parse /proc/{pid}/stat"))
}

/// CPU seconds of this process.
pub(crate) fn own_cpu_seconds() -> Result<f64> {
    cpu_seconds(std::process::id())
}

/// Busy CPU seconds of the whole machine (all cores) since boot, from `/proc/stat`.
pub(crate) fn machine_busy_seconds() -> Result<f64> {
    let stat = std::fs::read_to_string("/proc/stat").context("cannot read /proc/stat")?;
    parse_machine(&stat).context("cannot parse /proc/stat")
}

fn parse_machine(stat: &str) -> Option<f64> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let f: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal: everything but idle and iowait is busy.
    let busy = f.get(0..3)?.iter().sum::<f64>() + f.get(5..8)?.iter().sum::<f64>();
    Some(busy / TICKS_PER_SEC)
}

fn parse_cpu(stat: &str) -> Option<f64> {
    // The command name (field 2) may hold spaces and parentheses; fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / TICKS_PER_SEC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_times_are_read_after_the_command_name() {
        let stat =
            "4242 (btt (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0 1 2 3";
        assert_eq!(parse_cpu(stat), Some(3.0));
        assert!(own_cpu_seconds().is_ok());
        let machine = "cpu  100 5 50 9000 7 10 20 15 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n";
        assert_eq!(parse_machine(machine), Some(2.0));
        assert!(machine_busy_seconds().is_ok());
    }

    #[test]
    fn node_index_comes_from_the_config_path() {
        let dir = Path::new("/nonexistent/net");
        let args: Vec<String> = [
            "/x/btt",
            "chain",
            "run",
            "--config",
            "/nonexistent/net/node-3/config.toml",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(node_index(&args, dir), Some(3));
        assert_eq!(node_index(&args, Path::new("/nonexistent/other")), None);
        assert_eq!(node_index(&args[..3], dir), None);
    }
}
