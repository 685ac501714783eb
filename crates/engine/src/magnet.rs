//! Magnet links: find peers for a bare info-hash and fetch the info dictionary from them (BEP 9).
//!
//! Peers come from the link itself (`x.pe`), the caller, the link's trackers (`tr`) and the DHT.
//! Up to [`PARALLEL_FETCHES`] connections run at once; each asks its peer for every metadata piece
//! (an info dictionary is small, usually a few hundred KiB, so fetching it whole from each peer
//! costs little and keeps one bad peer from poisoning a shared assembly). The first copy whose
//! hash matches the link wins; a copy that does not match is dropped with its peer. Nothing is
//! trusted before that check, and nothing is written to disk.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use metainfo::{InfoHash, InfoHashV2, Magnet, Torrent};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use wire::{
    ExtendedHandshake, FrameDecoder, Handshake, Message, MetadataAssembler, MetadataMessage,
};

use crate::peer::{connect, UT_METADATA_ID};
use crate::session::{SessionShared, CLIENT_VERSION};
use crate::transport::PeerStream;
use crate::Error;

/// Connections fetching metadata at once.
const PARALLEL_FETCHES: usize = 8;
/// Silence after which a metadata peer is given up.
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest frame read while fetching: a metadata piece plus its dictionary, or a bitfield.
const MAX_FRAME: usize = 1 << 20;

/// A torrent whose info dictionary came from peers, with the peers that answered.
#[derive(Debug, Clone)]
pub struct MetadataFetched {
    /// The torrent: the verified info dictionary plus the link's trackers and web seeds.
    pub torrent: Torrent,
    /// Peers that completed a handshake for this torrent; worth dialling for the data.
    pub peers: Vec<SocketAddr>,
}

/// What the fetched bytes must hash to.
#[derive(Debug, Clone, Copy)]
struct Expected {
    v1: Option<InfoHash>,
    v2: Option<InfoHashV2>,
}

impl Expected {
    fn matches(&self, info: &[u8]) -> bool {
        self.v1.is_none_or(|h| InfoHash::of(info) == h)
            && self.v2.is_none_or(|h| InfoHashV2::of(info) == h)
    }
}

/// Finds peers for `magnet` and fetches its info dictionary; runs until it succeeds or the
/// session's sources are exhausted (callers put a timeout around it if they want one).
pub(crate) async fn fetch(
    session: Arc<SessionShared>,
    magnet: &Magnet,
    extra_peers: Vec<SocketAddr>,
) -> Result<MetadataFetched, Error> {
    let expected = Expected {
        v1: magnet.info_hash_v1,
        v2: magnet.info_hash_v2,
    };
    // The hash on the wire: v1 when the link has one (hybrids too), else the truncated v2 hash.
    let wire_hash = match (magnet.info_hash_v1, magnet.info_hash_v2) {
        (Some(h), _) => h.0,
        (None, Some(h)) => h.truncated(),
        (None, None) => return Err(Error::Magnet("the link names no info-hash".into())),
    };
    let (tx, mut rx) = mpsc::unbounded_channel::<SocketAddr>();
    for p in magnet.peers.iter().chain(&extra_peers) {
        let _ = tx.send(*p);
    }
    let mut sources = crate::discovery::spawn_lookup(
        session.clone(),
        wire_hash,
        magnet.trackers.iter().map(|t| vec![t.clone()]).collect(),
        tx,
    );
    let ours = Handshake::new(wire_hash, session.peer_id).with_v2(expected.v2.is_some());
    // A hybrid's peers may answer with the truncated v2 hash (BEP 52 upgrade).
    let alt = match (magnet.info_hash_v1, magnet.info_hash_v2) {
        (Some(_), Some(v2)) => Some(v2.truncated()),
        _ => None,
    };
    let mut seen: HashSet<SocketAddr> = HashSet::new();
    let mut answered: Vec<SocketAddr> = Vec::new();
    let mut queue: Vec<SocketAddr> = Vec::new();
    let mut running: JoinSet<(SocketAddr, Result<Torrent, String>)> = JoinSet::new();
    let mut sources_open = true;
    let mut torrent = loop {
        while running.len() < PARALLEL_FETCHES {
            let Some(addr) = queue.pop() else { break };
            let session = session.clone();
            running.spawn(async move {
                let r = fetch_from(&session, addr, ours, alt, expected).await;
                (addr, r)
            });
        }
        if running.is_empty() && !sources_open {
            sources.abort_all();
            return Err(Error::Magnet(
                "no peer could provide the torrent's metadata".into(),
            ));
        }
        tokio::select! {
            addr = rx.recv(), if sources_open => match addr {
                Some(a) => {
                    if a.port() != 0 && seen.insert(a) {
                        queue.push(a);
                    }
                }
                None => sources_open = false,
            },
            Some(done) = running.join_next(), if !running.is_empty() => {
                let Ok((addr, result)) = done else { continue };
                match result {
                    Ok(t) => {
                        answered.push(addr);
                        break t;
                    }
                    Err(e) => {
                        if e.starts_with("answered:") {
                            answered.push(addr);
                        }
                        tracing::debug!(%addr, "no metadata: {e}");
                    }
                }
            }
        }
    };
    sources.abort_all();
    running.abort_all();
    torrent.announce_list = magnet.trackers.iter().map(|t| vec![t.clone()]).collect();
    torrent.announce = magnet.trackers.first().cloned();
    torrent.url_list = magnet.web_seeds.clone();
    tracing::info!(name = %torrent.info.name, "fetched metadata");
    Ok(MetadataFetched {
        torrent,
        peers: answered,
    })
}

/// Fetches the whole info dictionary from one peer, verified against the link, and for a
/// v2-only torrent the piece layers it needs (BEP 52 hash requests; a hybrid can be checked with
/// its SHA-1 pieces). Errors that happen after the peer completed
/// the handshake start with `answered:` so the caller can keep the address for the download.
async fn fetch_from(
    session: &SessionShared,
    addr: SocketAddr,
    ours: Handshake,
    alt: Option<[u8; 20]>,
    expected: Expected,
) -> Result<Torrent, String> {
    let (stream, theirs) = connect(session, addr, ours, alt).await?;
    if !theirs.supports_extensions() {
        return Err("answered: peer does not support the extension protocol".into());
    }
    fetch_over(stream, expected)
        .await
        .map_err(|e| format!("answered: {e}"))
}

/// Piece-layer answers by pieces root: (first index, hashes) per answered request.
type LayerChunks = std::collections::BTreeMap<[u8; 32], Vec<(u32, Vec<[u8; 32]>)>>;

/// Piece-layer hashes asked for in one BEP 52 request (libtorrent serves up to 512).
const LAYER_CHUNK: u32 = 512;

/// The hash requests that fetch every piece layer a v2-only torrent needs.
fn layer_requests(t: &Torrent) -> Vec<wire::HashRequest> {
    use metainfo::merkle::{block_count, piece_height, tree_height};
    let piece_length = t.info.piece_length;
    let mut out = Vec::new();
    for f in &t.info.files {
        let Some(root) = f.pieces_root.filter(|_| f.length > u64::from(piece_length)) else {
            continue;
        };
        let base = piece_height(piece_length);
        let level_size = 1u64 << (tree_height(block_count(f.length)) - base);
        let chunk = u64::from(LAYER_CHUNK).min(level_size);
        let pieces = f.length.div_ceil(u64::from(piece_length));
        let mut index = 0u64;
        while index < pieces {
            out.push(wire::HashRequest {
                pieces_root: root,
                base_layer: base,
                index: index as u32,
                length: chunk as u32,
                proof_layers: 0,
            });
            index += chunk;
        }
    }
    out
}

async fn fetch_over(stream: PeerStream, expected: Expected) -> Result<Torrent, String> {
    use tokio::io::AsyncWriteExt;
    let PeerStream { mut rd, mut wr, .. } = stream;
    let mut hello = ExtendedHandshake {
        v: Some(CLIENT_VERSION.to_owned()),
        ..Default::default()
    };
    hello.m.insert("ut_metadata".into(), UT_METADATA_ID);
    let mut out = Vec::new();
    Message::Extended {
        id: 0,
        payload: &hello.encode(),
    }
    .encode(&mut out);
    wr.write_all(&out).await.map_err(|e| e.to_string())?;

    let mut dec = FrameDecoder::new(MAX_FRAME);
    let mut their_id: Option<u8> = None;
    let mut assembler: Option<MetadataAssembler> = None;
    // The verified torrent, once the metadata is complete, while its piece layers arrive.
    let mut torrent: Option<Torrent> = None;
    let mut pending: Vec<wire::HashRequest> = Vec::new();
    let mut layers = LayerChunks::default();
    loop {
        let n = tokio::time::timeout(READ_TIMEOUT, rd.read(dec.spare()))
            .await
            .map_err(|_| "timed out".to_string())?
            .map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("closed by peer".into());
        }
        dec.advance(n);
        out.clear();
        while let Some(msg) = dec.next().map_err(|e| e.to_string())? {
            if let Some(Ok(h)) = wire::HashMessage::from_message(&msg) {
                match h {
                    wire::HashMessage::Hashes { request, hashes } => {
                        let Some(pos) = pending.iter().position(|r| *r == request) else {
                            continue;
                        };
                        pending.swap_remove(pos);
                        let got: Vec<[u8; 32]> = hashes
                            .chunks_exact(32)
                            .take(request.length as usize)
                            .filter_map(|c| c.try_into().ok())
                            .collect();
                        layers
                            .entry(request.pieces_root)
                            .or_default()
                            .push((request.index, got));
                        if pending.is_empty() {
                            let t = torrent
                                .take()
                                .ok_or("piece layers arrived before the metadata")?;
                            return with_layers(t, layers);
                        }
                    }
                    wire::HashMessage::Reject(_) => {
                        return Err("peer refused to send piece layers".into());
                    }
                    wire::HashMessage::Request(_) => {}
                }
                continue;
            }
            let Message::Extended { id, payload } = msg else {
                continue;
            };
            if id == 0 {
                let ext = ExtendedHandshake::decode(payload).map_err(|e| e.to_string())?;
                let Some(&peer_id) = ext.m.get("ut_metadata").filter(|&&i| i != 0) else {
                    return Err("peer does not offer metadata (no ut_metadata)".into());
                };
                let size = ext
                    .metadata_size
                    .ok_or("peer did not say how large the metadata is")?;
                let a = MetadataAssembler::new(size).map_err(|e| e.to_string())?;
                for piece in a.missing() {
                    let mut payload = Vec::new();
                    MetadataMessage::Request { piece }.encode(&mut payload);
                    Message::Extended {
                        id: peer_id,
                        payload: &payload,
                    }
                    .encode(&mut out);
                }
                their_id = Some(peer_id);
                assembler = Some(a);
            } else if id == UT_METADATA_ID {
                let (Some(a), Some(_)) = (assembler.as_mut(), their_id) else {
                    continue;
                };
                match MetadataMessage::decode(payload) {
                    Ok(MetadataMessage::Data {
                        piece,
                        total_size,
                        data,
                    }) => {
                        if a.handle_data(piece, total_size, data)
                            .map_err(|e| e.to_string())?
                            && a.is_complete()
                            && torrent.is_none()
                        {
                            let bytes = a.take().ok_or("assembly lost")?;
                            if !expected.matches(&bytes) {
                                return Err("metadata does not match the info-hash".into());
                            }
                            let t = Torrent::from_info_bytes(bytes).map_err(|e| {
                                format!("the fetched metadata is not a valid torrent: {e}")
                            })?;
                            if expected.v1.is_some() {
                                return Ok(t);
                            }
                            pending = layer_requests(&t);
                            if pending.is_empty() {
                                return Ok(t);
                            }
                            for r in &pending {
                                wire::HashMessage::Request(*r).encode(&mut out);
                            }
                            torrent = Some(t);
                        }
                    }
                    Ok(MetadataMessage::Reject { piece }) => {
                        return Err(format!("peer rejected metadata piece {piece}"));
                    }
                    Ok(MetadataMessage::Request { .. }) | Err(_) => {}
                }
            }
        }
        if !out.is_empty() {
            wr.write_all(&out).await.map_err(|e| e.to_string())?;
        }
    }
}

/// Joins the piece-layer chunks of each file into whole layers and sets them on `t`, each
/// checked against its pieces root: a peer cannot make us accept a wrong layer.
fn with_layers(mut t: Torrent, layers: LayerChunks) -> Result<Torrent, String> {
    for (root, mut chunks) in layers {
        chunks.sort_by_key(|c| c.0);
        let pieces = t
            .info
            .files
            .iter()
            .find(|f| f.pieces_root == Some(root))
            .map_or(0, |f| {
                f.length.div_ceil(u64::from(t.info.piece_length)) as usize
            });
        let mut layer: Vec<[u8; 32]> = chunks.into_iter().flat_map(|c| c.1).collect();
        layer.truncate(pieces);
        t.set_piece_layer(root, layer)
            .map_err(|e| format!("unusable piece layers: {e}"))?;
    }
    Ok(t)
}
