//! Progress display: a redrawn bar on a terminal, one log line per interval otherwise.

use std::io::Write;

use engine::Stats;

/// Human-readable byte count (binary units).
pub(crate) fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn eta(s: &Stats) -> String {
    if s.download_rate_bytes_per_s == 0 {
        return "--:--".into();
    }
    let secs = s.bytes_left / s.download_rate_bytes_per_s;
    if secs >= 3600 {
        format!("{}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
    } else {
        format!("{}:{:02}", secs / 60, secs % 60)
    }
}

fn percent(s: &Stats) -> f64 {
    if s.total_length == 0 {
        return 100.0;
    }
    100.0 * (s.total_length - s.bytes_left) as f64 / s.total_length as f64
}

/// The progress display.
pub(crate) struct Bar {
    terminal: bool,
}

impl Bar {
    pub(crate) fn new(terminal: bool) -> Self {
        Self { terminal }
    }

    fn line(s: &Stats) -> String {
        format!(
            "{:5.1}%  {}/s down  {}/s up  ETA {}  {} peers  {}/{} pieces",
            percent(s),
            bytes(s.download_rate_bytes_per_s),
            bytes(s.upload_rate_bytes_per_s),
            eta(s),
            s.peers,
            s.pieces_have,
            s.pieces_total
        )
    }

    pub(crate) fn show(&mut self, s: &Stats) {
        if self.terminal {
            const WIDTH: usize = 30;
            let filled = ((percent(s) / 100.0) * WIDTH as f64) as usize;
            let bar: String = "#".repeat(filled) + &"-".repeat(WIDTH - filled.min(WIDTH));
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K[{bar}] {}", Self::line(s));
            let _ = err.flush();
        } else {
            tracing::info!("{}", Self::line(s));
        }
    }

    pub(crate) fn finish(&mut self, s: &Stats) {
        if self.terminal {
            self.show(s);
            eprintln!();
        }
    }
}
