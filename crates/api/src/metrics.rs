//! `/metrics`: counters and gauges in the Prometheus text format (version 0.0.4).

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use crate::server::AppState;
use crate::views::{StatsView, TorrentView};

pub(crate) async fn metrics(State(app): State<AppState>) -> impl IntoResponse {
    let torrents = app.library.list();
    let stats = crate::views::stats(&torrents);
    let chain = app.chain.status().await;
    let earned = app.library.market().map_or(0, |m| m.earned_total().0);
    let body = render(&torrents, &stats, &chain, earned);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
}

fn render(
    torrents: &[TorrentView],
    stats: &StatsView,
    chain: &crate::chain::ChainView,
    earned_wei: u128,
) -> String {
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, samples: &[(String, String)]| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    let one = |v: u64| vec![(String::new(), v.to_string())];
    metric(
        "btt_build_info",
        "gauge",
        "Version of this node.",
        &[(format!("{{version=\"{}\"}}", crate::VERSION), "1".into())],
    );
    let by_state: Vec<(String, String)> = crate::views::STATES
        .iter()
        .map(|s| {
            (
                format!("{{state=\"{s}\"}}"),
                torrents
                    .iter()
                    .filter(|t| t.state == *s)
                    .count()
                    .to_string(),
            )
        })
        .collect();
    metric("btt_torrents", "gauge", "Torrents by state.", &by_state);
    metric(
        "btt_download_rate_bytes_per_second",
        "gauge",
        "Payload download rate over all torrents.",
        &one(stats.download_rate),
    );
    metric(
        "btt_upload_rate_bytes_per_second",
        "gauge",
        "Payload upload rate over all torrents.",
        &one(stats.upload_rate),
    );
    metric(
        "btt_downloaded_bytes_total",
        "counter",
        "Payload bytes received since the node started.",
        &one(stats.downloaded_bytes),
    );
    metric(
        "btt_uploaded_bytes_total",
        "counter",
        "Payload bytes sent since the node started.",
        &one(stats.uploaded_bytes),
    );
    metric(
        "btt_peers",
        "gauge",
        "Connected peers.",
        &one(stats.peers as u64),
    );
    metric(
        "btt_pieces_have",
        "gauge",
        "Verified pieces over all torrents.",
        &one(stats.pieces_have),
    );
    metric(
        "btt_pieces_total",
        "gauge",
        "Pieces over all torrents.",
        &one(stats.pieces_total),
    );
    metric(
        "btt_market_earnings_wei_total",
        "counter",
        "BTT earned selling bandwidth in the Speed market (every voucher accepted), in base units.",
        &[(String::new(), earned_wei.to_string())],
    );
    metric(
        "btt_chain_up",
        "gauge",
        "1 when the chain answered this scrape.",
        &one(u64::from(chain.height.is_some())),
    );
    if let Some(h) = chain.height {
        metric(
            "btt_chain_height",
            "gauge",
            "Latest finalized block.",
            &one(h),
        );
    }
    if let Some(ms) = chain.finality_ms {
        metric(
            "btt_chain_finality_latency_seconds",
            "gauge",
            "Proposal-to-finalization time of the latest finalized block.",
            &[(String::new(), format!("{:.3}", ms as f64 / 1000.0))],
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_format() {
        let stats = crate::views::stats(&[]);
        let chain = crate::chain::ChainView {
            mode: "local",
            rpc: None,
            chain_id: Some(7215),
            height: Some(12),
            block_time_ms: Some(1),
            finality_ms: Some(250),
            validators: vec![],
            syncing: Some(false),
            error: None,
        };
        let text = render(&[], &stats, &chain, u128::MAX);
        assert!(text.contains(&format!("\nbtt_market_earnings_wei_total {}\n", u128::MAX)));
        assert!(text.contains("# TYPE btt_torrents gauge\nbtt_torrents{state=\"metadata\"} 0\n"));
        assert!(text.contains("\nbtt_chain_height 12\n"));
        assert!(text.contains("\nbtt_chain_finality_latency_seconds 0.250\n"));
        assert!(text.contains("\nbtt_peers 0\n"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (name, value) = line.rsplit_once(' ').unwrap();
            assert!(!name.is_empty());
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }
}
