//! The JSON shapes of the native API (documented in `docs/api.md`), built from engine snapshots.
//!
//! Money is a decimal string of base units (wei); progress and ratios are floats because they
//! are display values, never amounts.

use engine::{PeerInfo, State, Stats};
use metainfo::{Info, Torrent};
use serde::Serialize;

use crate::library::TorrentId;

/// Every value of [`TorrentView::state`], in life-cycle order.
pub const STATES: [&str; 6] = [
    "metadata",
    "checking",
    "downloading",
    "seeding",
    "stopped",
    "error",
];

/// One torrent as the API shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TorrentView {
    /// The torrent's number.
    pub id: TorrentId,
    /// Info-hash (v1, or the truncated v2 hash of a v2-only torrent), 40 hex digits.
    pub hash: String,
    /// Display name.
    pub name: String,
    /// `metadata`, `checking`, `downloading`, `seeding`, `stopped` or `error`.
    pub state: &'static str,
    /// Why it stopped, when `state` is `error`.
    pub error: Option<String>,
    /// Verified fraction, 0 to 1.
    pub progress: f64,
    /// Total size.
    pub size_bytes: u64,
    /// Verified bytes.
    pub have_bytes: u64,
    /// Recent download rate.
    pub download_rate: u64,
    /// Recent upload rate.
    pub upload_rate: u64,
    /// Payload received in this session.
    pub downloaded_bytes: u64,
    /// Payload sent in this session.
    pub uploaded_bytes: u64,
    /// Uploaded over downloaded (0 before anything was downloaded).
    pub ratio: f64,
    /// Seconds to completion at the current rate, when downloading.
    pub eta_s: Option<u64>,
    /// Connected peers.
    pub peers: usize,
    /// Verified pieces.
    pub pieces_have: u32,
    /// Pieces in the torrent (0 while fetching metadata).
    pub pieces_total: u32,
    /// When it was added, seconds since the Unix epoch.
    pub added_at: u64,
    /// When it completed, seconds since the Unix epoch (0 if not yet).
    pub done_at: u64,
    /// Where the files go.
    pub download_dir: String,
    /// Position in the queue, 0 first.
    pub queue_position: u32,
    /// The torrent's own download limit, bytes per second (0 = none).
    pub download_limit: u64,
    /// The torrent's own upload limit, bytes per second (0 = none).
    pub upload_limit: u64,
    /// Earned selling its bandwidth in the Speed market, wei, over all runs ("0" when the
    /// market is off).
    pub earnings_wei: String,
    /// Spent buying bandwidth for it, wei, over all runs.
    pub spent_wei: String,
    /// Most it may spend over all runs, wei ("0": it never buys).
    pub budget_wei: String,
    /// Highest price it bids, wei per byte (`null`: no limit but the budget).
    pub max_price: Option<u64>,
}

/// Totals over every torrent.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StatsView {
    /// Torrents in the library.
    pub torrents: usize,
    /// Torrents downloading, seeding or checking.
    pub active: usize,
    /// Torrents stopped.
    pub paused: usize,
    /// Summed download rate.
    pub download_rate: u64,
    /// Summed upload rate.
    pub upload_rate: u64,
    /// Payload received in this session.
    pub downloaded_bytes: u64,
    /// Payload sent in this session.
    pub uploaded_bytes: u64,
    /// Connected peers.
    pub peers: usize,
    /// Verified pieces over all torrents.
    pub pieces_have: u64,
    /// Pieces over all torrents.
    pub pieces_total: u64,
}

/// One file of a torrent.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FileView {
    /// Index among the torrent's files (pad files excluded from the list but counted).
    pub index: usize,
    /// Path inside the torrent, `/`-separated.
    pub path: String,
    /// Size in bytes.
    pub length: u64,
    /// Bytes of it in verified pieces.
    pub bytes_completed: u64,
    /// `bytes_completed / length` (1 for an empty file).
    pub progress: f64,
}

/// One connected peer.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PeerView {
    /// Address of the connection.
    pub addr: String,
    /// The client, decoded from the peer id when it follows the usual `-XXnnnn-` form.
    pub client: String,
    /// `tcp` or `utp`.
    pub transport: String,
    /// Recent rate from the peer.
    pub download_rate: u64,
    /// Recent rate to the peer.
    pub upload_rate: u64,
    /// Payload received from it.
    pub downloaded_bytes: u64,
    /// Payload sent to it.
    pub uploaded_bytes: u64,
    /// It wants pieces from us.
    pub interested: bool,
    /// We let it request pieces.
    pub unchoked: bool,
    /// It has every piece.
    pub seed: bool,
}

/// The verified-piece map.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PiecesView {
    /// Pieces in the torrent.
    pub piece_count: u32,
    /// Bytes per piece.
    pub piece_length: u32,
    /// Verified pieces.
    pub have: u32,
    /// The BEP 3 bitfield (piece 0 in the high bit of the first byte), hex.
    pub bitfield: String,
}

/// One tracker.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TrackerView {
    /// Tier, 0 first (BEP 12).
    pub tier: usize,
    /// Announce URL.
    pub url: String,
}

/// A stopped torrent's verified pieces (from its resume record or its last run) and the bytes
/// they hold, counted once when the torrent stops rather than on every view.
#[derive(Debug, Clone)]
pub(crate) struct Resumed {
    pub(crate) have: wire::Bitfield,
    pub(crate) bytes: u64,
}

impl Resumed {
    pub(crate) fn new(info: &Info, have: wire::Bitfield) -> Self {
        let bytes = files(info, Some(&have))
            .iter()
            .map(|f| f.bytes_completed)
            .sum();
        Self { have, bytes }
    }
}

pub(crate) fn torrent_view(
    record: &crate::library::Record,
    torrent: Option<&Torrent>,
    stats: Option<&Stats>,
    resumed: Option<&Resumed>,
    error: Option<&str>,
    wanted_running: bool,
    (earned, spent): (speed::Amount, speed::Amount),
) -> TorrentView {
    let size = torrent.map(|t| t.info.total_length).unwrap_or(0);
    let pieces_total = torrent.map(|t| t.info.num_pieces()).unwrap_or(0);
    let (have_bytes, pieces_have) = match (stats, resumed) {
        (Some(s), _) => (s.total_length.saturating_sub(s.bytes_left), s.pieces_have),
        (None, Some(r)) => (r.bytes, r.have.count_ones()),
        (None, None) => (0, 0),
    };
    let state: &'static str = match (error, stats.map(|s| &s.state)) {
        (Some(_), _) | (_, Some(State::Failed(_))) => "error",
        (None, Some(State::Checking)) => "checking",
        (None, Some(State::Downloading)) => "downloading",
        (None, Some(State::Seeding)) => "seeding",
        (None, Some(State::Stopped)) => "stopped",
        (None, None) if !wanted_running => "stopped",
        (None, None) if torrent.is_none() => "metadata",
        (None, None) => "checking",
    };
    let error = error
        .map(str::to_string)
        .or_else(|| match stats.map(|s| &s.state) {
            Some(State::Failed(e)) => Some(e.clone()),
            _ => None,
        });
    let (down, up, down_rate, up_rate, peers) = stats
        .map(|s| {
            (
                s.bytes_downloaded,
                s.bytes_uploaded,
                s.download_rate_bytes_per_s,
                s.upload_rate_bytes_per_s,
                s.peers,
            )
        })
        .unwrap_or_default();
    let left = size.saturating_sub(have_bytes);
    TorrentView {
        id: record.id,
        hash: record.hash.clone(),
        name: record.name.clone(),
        state,
        error,
        progress: if size == 0 {
            if torrent.is_some() && state != "checking" {
                1.0
            } else {
                0.0
            }
        } else {
            have_bytes as f64 / size as f64
        },
        size_bytes: size,
        have_bytes,
        download_rate: down_rate,
        upload_rate: up_rate,
        downloaded_bytes: down,
        uploaded_bytes: up,
        ratio: if down == 0 {
            0.0
        } else {
            up as f64 / down as f64
        },
        eta_s: (state == "downloading" && down_rate > 0).then(|| left.div_ceil(down_rate)),
        peers,
        pieces_have,
        pieces_total,
        added_at: record.added_at,
        done_at: record.done_at,
        download_dir: record.download_dir.display().to_string(),
        queue_position: record.queue_position,
        download_limit: record.download_limit,
        upload_limit: record.upload_limit,
        earnings_wei: earned.0.to_string(),
        spent_wei: spent.0.to_string(),
        budget_wei: record.budget.0.to_string(),
        max_price: record.max_price,
    }
}

pub(crate) fn stats(views: &[TorrentView]) -> StatsView {
    StatsView {
        torrents: views.len(),
        active: views
            .iter()
            .filter(|v| matches!(v.state, "downloading" | "seeding" | "checking" | "metadata"))
            .count(),
        paused: views.iter().filter(|v| v.state == "stopped").count(),
        download_rate: views.iter().map(|v| v.download_rate).sum(),
        upload_rate: views.iter().map(|v| v.upload_rate).sum(),
        downloaded_bytes: views.iter().map(|v| v.downloaded_bytes).sum(),
        uploaded_bytes: views.iter().map(|v| v.uploaded_bytes).sum(),
        peers: views.iter().map(|v| v.peers).sum(),
        pieces_have: views.iter().map(|v| u64::from(v.pieces_have)).sum(),
        pieces_total: views.iter().map(|v| u64::from(v.pieces_total)).sum(),
    }
}

/// Per-file progress: each verified piece credits the bytes it overlaps in each file.
pub(crate) fn files(info: &Info, have: Option<&wire::Bitfield>) -> Vec<FileView> {
    let mut done = vec![0u64; info.files.len()];
    if let Some(have) = have {
        let plen = u64::from(info.piece_length);
        for piece in have.iter_ones() {
            let start = u64::from(piece) * plen;
            let end = (start + plen).min(info.total_length);
            // Files are sorted by offset; find the first that ends after `start`.
            let first = info.files.partition_point(|f| f.offset + f.length <= start);
            for (i, f) in info.files.iter().enumerate().skip(first) {
                if f.offset >= end {
                    break;
                }
                let lo = start.max(f.offset);
                let hi = end.min(f.offset + f.length);
                if hi > lo {
                    done[i] += hi - lo;
                }
            }
        }
    }
    info.files
        .iter()
        .enumerate()
        .filter(|(_, f)| !f.pad)
        .map(|(i, f)| FileView {
            index: i,
            path: f.path.join("/"),
            length: f.length,
            bytes_completed: done[i].min(f.length),
            progress: if f.length == 0 {
                1.0
            } else {
                done[i].min(f.length) as f64 / f.length as f64
            },
        })
        .collect()
}

/// The verified pieces of a torrent sized to it: none while its metadata is unknown, none when
/// `have` does not match its piece count.
pub(crate) fn piece_bits(
    torrent: Option<&Torrent>,
    have: Option<wire::Bitfield>,
) -> wire::Bitfield {
    let n = torrent.map(|t| t.info.num_pieces()).unwrap_or(0);
    match have {
        Some(b) if b.len() == n => b,
        _ => wire::Bitfield::new(n),
    }
}

pub(crate) fn pieces(torrent: Option<&Torrent>, have: Option<wire::Bitfield>) -> PiecesView {
    let bits = piece_bits(torrent, have);
    PiecesView {
        piece_count: bits.len(),
        piece_length: torrent.map(|t| t.info.piece_length).unwrap_or(0),
        have: bits.count_ones(),
        bitfield: bits.as_bytes().iter().map(|b| format!("{b:02x}")).collect(),
    }
}

pub(crate) fn trackers(tiers: &[Vec<String>]) -> Vec<TrackerView> {
    tiers
        .iter()
        .enumerate()
        .flat_map(|(tier, urls)| {
            urls.iter().map(move |u| TrackerView {
                tier,
                url: u.clone(),
            })
        })
        .collect()
}

pub(crate) fn peer(p: &PeerInfo) -> PeerView {
    PeerView {
        addr: p.addr.to_string(),
        client: client_name(&p.peer_id),
        transport: p.transport.to_string(),
        download_rate: p.download_rate_bytes_per_s,
        upload_rate: p.upload_rate_bytes_per_s,
        downloaded_bytes: p.downloaded,
        uploaded_bytes: p.uploaded,
        interested: p.interested,
        unchoked: p.unchoked,
        seed: p.is_seed,
    }
}

/// Names the client behind an Azureus-style peer id (`-LT2080-…` → `libtorrent 2.0.8.0`); other
/// ids are shown as their printable prefix.
pub fn client_name(peer_id: &[u8; 20]) -> String {
    let az = peer_id[0] == b'-'
        && peer_id[7] == b'-'
        && peer_id[1..7].iter().all(|b| b.is_ascii_alphanumeric());
    if !az {
        let printable: String = peer_id
            .iter()
            .take_while(|b| b.is_ascii_graphic())
            .take(8)
            .map(|&b| b as char)
            .collect();
        return if printable.is_empty() {
            peer_id[..8].iter().map(|b| format!("{b:02x}")).collect()
        } else {
            printable
        };
    }
    let code = std::str::from_utf8(&peer_id[1..3]).unwrap_or("??");
    let name = match code {
        "LT" => "libtorrent",
        "lt" => "rTorrent",
        "qB" => "qBittorrent",
        "TR" => "Transmission",
        "DE" => "Deluge",
        "UT" => "µTorrent",
        "AZ" => "Vuze",
        "rQ" | "RQ" => "rqbit",
        "BY" => "btt",
        "A2" => "aria2",
        _ => "",
    };
    let version: Vec<String> = peer_id[3..7]
        .iter()
        .map(|&b| match b {
            b'0'..=b'9' => ((b - b'0') as u32).to_string(),
            b'A'..=b'Z' => ((b - b'A') as u32 + 10).to_string(),
            b'a'..=b'z' => ((b - b'a') as u32 + 36).to_string(),
            _ => "?".into(),
        })
        .collect();
    if name.is_empty() {
        format!("{code} {}", version.join("."))
    } else {
        format!("{name} {}", version.join("."))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_names() {
        let mut id = [b'x'; 20];
        id[..8].copy_from_slice(b"-LT2080-");
        assert_eq!(client_name(&id), "libtorrent 2.0.8.0");
        id[..8].copy_from_slice(b"-TR3000-");
        assert_eq!(client_name(&id), "Transmission 3.0.0.0");
        id[..8].copy_from_slice(b"-ZZ1A00-");
        assert_eq!(client_name(&id), "ZZ 1.10.0.0");
        let mut odd = [0u8; 20];
        odd[0] = b'M';
        odd[1] = b'7';
        assert_eq!(client_name(&odd), "M7");
    }

    #[test]
    fn file_progress_counts_overlap_exactly() {
        // Files of 20000 and 30000 bytes in 16 KiB pieces: piece 1 is a[16384..20000] followed
        // by b[0..12768].
        let files = vec![
            (vec!["a".to_string()], 20000),
            (vec!["b".to_string()], 30000),
        ];
        let builder = metainfo::create::Builder::new("d", files)
            .unwrap()
            .piece_length(16384)
            .unwrap();
        let n = builder.piece_count() as usize;
        let t = builder.build(vec![[0u8; 20]; n]).unwrap();
        let mut have = wire::Bitfield::new(t.info.num_pieces());
        assert_eq!(files_of(&t, &have), vec![0, 0]);
        have.set(1, true);
        assert_eq!(files_of(&t, &have), vec![3616, 12768]);
        for i in 0..t.info.num_pieces() {
            have.set(i, true);
        }
        assert_eq!(files_of(&t, &have), vec![20000, 30000]);
    }

    fn files_of(t: &Torrent, have: &wire::Bitfield) -> Vec<u64> {
        files(&t.info, Some(have))
            .iter()
            .map(|f| f.bytes_completed)
            .collect()
    }

    #[test]
    fn pieces_hex_is_the_bep3_bitfield() {
        let builder = metainfo::create::Builder::single_file("f", 16384 * 9).unwrap();
        let builder = builder.piece_length(16384).unwrap();
        let t = builder.build(vec![[0u8; 20]; 9]).unwrap();
        let mut have = wire::Bitfield::new(9);
        have.set(0, true);
        have.set(8, true);
        let v = pieces(Some(&t), Some(have));
        assert_eq!(v.bitfield, "8080");
        assert_eq!(v.have, 2);
        assert_eq!(v.piece_count, 9);
    }
}
