//! `POST /transmission/rpc`: Transmission's RPC in its legacy dialect (hyphenated method names,
//! `rpc-version` 17), so transmission-remote, Sonarr/Radarr, Flood and the `transmission-rpc`
//! Python client drive the node unchanged.
//!
//! # Layout
//! - [`rpc`] parses the envelope `{"method", "arguments", "tag"}` and answers
//!   `{"result", "arguments", "tag"}` with HTTP 200 even when the method fails: the failure is
//!   the `result` string, as Transmission does. Only a body that is not a JSON object gets a 400.
//! - One `handle_*` function per method, all returning [`Answer`].
//! - [`Selector`] reads the `ids` argument (absent, a number, a hash, a list of them, or
//!   `"recently-active"`); ids that match nothing are left out, never an error.
//! - `TorrentFields` renders one torrent's requested `torrent-get` fields from the library's
//!   views, fetching files, peers and metainfo only when a field needs them.
//!
//! What the node does not have (bandwidth groups, per-torrent limits, file priorities, moving
//! data) is accepted and ignored where Transmission would change a setting, so clients that set
//! them keep working, and answered with an error string where the client expects an action.

use std::cell::OnceCell;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use metainfo::Torrent;
use serde_json::{json, Map, Value};

use crate::library::{
    unix_now, AddOptions, Library, LibraryError, Source, TorrentId, MAX_TORRENT_BYTES,
};
use crate::server::{ApiError, AppState};
use crate::views::{PeerView, TorrentView};

/// The RPC version we speak (Transmission 4.0's).
const RPC_VERSION: u64 = 17;
/// The oldest RPC version a client may assume.
const RPC_VERSION_MINIMUM: u64 = 1;
/// Transmission 4.0's semantic version of RPC 17.
const RPC_VERSION_SEMVER: &str = "5.3.0";
/// The Transmission release whose behaviour we follow; clients parse the leading number
/// (Sonarr and Radarr want at least 2.40).
const TRANSMISSION_VERSION: &str = "3.00";
/// The session's default seed ratio (shown, not enforced: the node seeds until stopped).
const SEED_RATIO_LIMIT: f64 = 2.0;

/// Transmission's torrent status codes.
mod status {
    pub(super) const STOPPED: u8 = 0;
    pub(super) const CHECK: u8 = 2;
    pub(super) const DOWNLOAD: u8 = 4;
    pub(super) const SEED: u8 = 6;
}

/// `eta` when the torrent is not downloading (Transmission's `TR_ETA_NOT_AVAIL`).
const ETA_NOT_AVAILABLE: i64 = -1;
/// `eta` when downloading with no rate yet (`TR_ETA_UNKNOWN`).
const ETA_UNKNOWN: i64 = -2;
/// `uploadRatio` before anything was transferred (`TR_RATIO_NA`).
const RATIO_NOT_AVAILABLE: f64 = -1.0;
/// `uploadRatio` with uploads but nothing downloaded or verified (`TR_RATIO_INF`).
const RATIO_INFINITE: f64 = -2.0;
/// `error` for a local error (disk, bad data dir): Transmission's `TR_STAT_LOCAL_ERROR`.
const ERROR_LOCAL: u8 = 3;

/// Why a method failed; the message is the `result` string clients show, in Transmission's own
/// words where one exists (some clients match on them).
#[derive(Debug, thiserror::Error)]
enum RpcError {
    /// The method is not one Transmission has, or not one the node serves.
    #[error("method name not recognized")]
    UnknownMethod,
    /// The request names no method.
    #[error("no method name")]
    NoMethod,
    /// `torrent-get` without `fields`.
    #[error("no fields specified")]
    NoFields,
    /// `torrent-add` without `filename` or `metainfo`.
    #[error("no filename or metainfo specified")]
    NothingToAdd,
    /// The .torrent data (or its base64) does not parse.
    #[error("invalid or corrupt torrent file: {0}")]
    CorruptTorrent(String),
    /// An argument has the wrong type or an unusable value.
    #[error("{0}")]
    BadArgument(String),
    /// The node does not do this.
    #[error("{0}")]
    Unsupported(&'static str),
    /// The library refused (bad magnet link, storage failure, …).
    #[error("{0}")]
    Library(#[from] LibraryError),
}

/// A method's answer: the `arguments` object on success.
type Answer = Result<Map<String, Value>, RpcError>;

/// `POST /transmission/rpc`. The guard in front has already checked the session id.
pub(crate) async fn rpc(
    State(app): State<AppState>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let request: Map<String, Value> = match serde_json::from_slice(&body) {
        Ok(Value::Object(m)) => m,
        Ok(_) => {
            return ApiError::bad_request(
                "the RPC request must be a JSON object {\"method\": ..., \"arguments\": {...}}",
            )
            .into_response()
        }
        Err(e) => {
            return ApiError::bad_request(format!("invalid JSON in the RPC request: {e}"))
                .into_response()
        }
    };
    let empty = Map::new();
    let args = match request.get("arguments") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(m)) => m,
        Some(_) => {
            return ApiError::bad_request("\"arguments\" must be a JSON object").into_response()
        }
    };
    let answer = match request.get("method").and_then(Value::as_str) {
        Some(method) => dispatch(&app, method, args).await,
        None => Err(RpcError::NoMethod),
    };
    let mut reply = Map::new();
    match answer {
        Ok(arguments) => {
            reply.insert("result".into(), "success".into());
            reply.insert("arguments".into(), Value::Object(arguments));
        }
        Err(e) => {
            tracing::debug!(method = ?request.get("method"), "transmission rpc failed: {e}");
            reply.insert("result".into(), e.to_string().into());
            reply.insert("arguments".into(), Value::Object(Map::new()));
        }
    }
    // Transmission echoes a numeric tag only.
    if let Some(tag) = request.get("tag").filter(|t| t.is_number()) {
        reply.insert("tag".into(), tag.clone());
    }
    (StatusCode::OK, Json(Value::Object(reply))).into_response()
}

/// `GET /transmission/rpc`: the RPC takes POST only.
pub(crate) async fn rpc_get() -> Response {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "bad_request",
        "Transmission RPC takes POST requests",
    )
    .into_response()
}

async fn dispatch(app: &AppState, method: &str, args: &Map<String, Value>) -> Answer {
    let lib = &app.library;
    match method {
        "session-get" => Ok(handle_session_get(app, args)),
        "session-set" => handle_session_set(lib, args),
        "session-stats" => Ok(handle_session_stats(lib)),
        "session-close" => Err(RpcError::Unsupported(
            "session-close is not supported; stop the node with SIGTERM or `btt node` controls",
        )),
        "torrent-add" => handle_torrent_add(lib, args).await,
        "torrent-get" => handle_torrent_get(app, args),
        "torrent-set" => handle_torrent_set(lib, args),
        "torrent-start" | "torrent-start-now" => handle_start_stop(lib, args, true).await,
        "torrent-stop" => handle_start_stop(lib, args, false).await,
        "torrent-verify" => handle_verify(lib, args).await,
        "torrent-reannounce" => {
            selected(lib, args)?;
            Ok(Map::new())
        }
        "torrent-remove" => handle_remove(lib, args).await,
        "torrent-set-location" => Err(RpcError::Unsupported(
            "moving a torrent's data is not supported yet",
        )),
        "torrent-rename-path" => Err(RpcError::Unsupported(
            "renaming a torrent's files is not supported yet",
        )),
        "queue-move-top" | "queue-move-up" | "queue-move-down" | "queue-move-bottom" => {
            handle_queue_move(lib, args, method)
        }
        "free-space" => handle_free_space(args),
        "port-test" => Ok(object(json!({"port-is-open": false}))),
        "blocklist-update" => Err(RpcError::Unsupported(
            "blocklists are not supported; the node has no blocklist to update",
        )),
        "group-get" => Ok(object(json!({"group": []}))),
        "group-set" => Ok(Map::new()),
        _ => Err(RpcError::UnknownMethod),
    }
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// When this process first answered an RPC request (for `secondsActive`).
fn started() -> Instant {
    static STARTED: OnceLock<Instant> = OnceLock::new();
    *STARTED.get_or_init(Instant::now)
}

// ---------------------------------------------------------------------------------------------
// Sessions
// ---------------------------------------------------------------------------------------------

fn handle_session_get(app: &AppState, args: &Map<String, Value>) -> Map<String, Value> {
    let lib = &app.library;
    let download_dir = lib.download_dir().display().to_string();
    let free = free_bytes(lib.download_dir()).map_or(-1, |(free, _)| free as i64);
    let version = format!("{TRANSMISSION_VERSION} (btt {})", crate::VERSION);
    let (session_down, session_up) = lib.session_limits();
    let all: Map<String, Value> = [
        ("alt-speed-down", json!(50)),
        ("alt-speed-enabled", json!(false)),
        ("alt-speed-time-begin", json!(540)),
        ("alt-speed-time-day", json!(127)),
        ("alt-speed-time-enabled", json!(false)),
        ("alt-speed-time-end", json!(1020)),
        ("alt-speed-up", json!(50)),
        ("blocklist-enabled", json!(false)),
        ("blocklist-size", json!(0)),
        ("blocklist-url", json!("")),
        ("cache-size-mb", json!(4)),
        ("config-dir", json!(lib.state_dir().display().to_string())),
        ("default-trackers", json!("")),
        ("dht-enabled", json!(lib.session().dht_addr().is_some())),
        ("download-dir", json!(download_dir)),
        ("download-dir-free-space", json!(free)),
        ("download-queue-enabled", json!(false)),
        ("download-queue-size", json!(5)),
        ("encryption", json!("tolerated")),
        ("idle-seeding-limit", json!(30)),
        ("idle-seeding-limit-enabled", json!(false)),
        (
            "incomplete-dir",
            json!(lib.download_dir().display().to_string()),
        ),
        ("incomplete-dir-enabled", json!(false)),
        ("lpd-enabled", json!(lib.session().config().lsd)),
        (
            "peer-limit-global",
            json!(lib.session().config().max_connections),
        ),
        (
            "peer-limit-per-torrent",
            json!(lib.session().config().max_connections_per_torrent),
        ),
        ("peer-port", json!(lib.session().listen_port())),
        ("peer-port-random-on-start", json!(false)),
        ("pex-enabled", json!(lib.session().config().pex)),
        ("utp-enabled", json!(lib.session().config().utp)),
        ("port-forwarding-enabled", json!(false)),
        ("queue-stalled-enabled", json!(false)),
        ("queue-stalled-minutes", json!(30)),
        ("rename-partial-files", json!(false)),
        ("rpc-version", json!(RPC_VERSION)),
        ("rpc-version-minimum", json!(RPC_VERSION_MINIMUM)),
        ("rpc-version-semver", json!(RPC_VERSION_SEMVER)),
        ("script-torrent-added-enabled", json!(false)),
        ("script-torrent-added-filename", json!("")),
        ("script-torrent-done-enabled", json!(false)),
        ("script-torrent-done-filename", json!("")),
        ("script-torrent-done-seeding-enabled", json!(false)),
        ("script-torrent-done-seeding-filename", json!("")),
        ("seed-queue-enabled", json!(false)),
        ("seed-queue-size", json!(10)),
        ("seedRatioLimit", json!(SEED_RATIO_LIMIT)),
        ("seedRatioLimited", json!(false)),
        ("session-id", json!(&*app.session_id)),
        ("speed-limit-down", json!(limit_kb(session_down))),
        ("speed-limit-down-enabled", json!(session_down > 0)),
        ("speed-limit-up", json!(limit_kb(session_up))),
        ("speed-limit-up-enabled", json!(session_up > 0)),
        ("start-added-torrents", json!(true)),
        ("trash-original-torrent-files", json!(false)),
        (
            "units",
            json!({
                "memory-bytes": 1024,
                "memory-units": ["KiB", "MiB", "GiB", "TiB"],
                "size-bytes": 1000,
                "size-units": ["kB", "MB", "GB", "TB"],
                "speed-bytes": 1000,
                "speed-units": ["kB/s", "MB/s", "GB/s", "TB/s"],
            }),
        ),
        ("utp-enabled", json!(true)),
        ("version", json!(version)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    // RPC 16 lets a client ask for some keys only.
    match args.get("fields").and_then(Value::as_array) {
        Some(fields) if !fields.is_empty() => fields
            .iter()
            .filter_map(Value::as_str)
            .filter_map(|f| all.get(f).map(|v| (f.to_string(), v.clone())))
            .collect(),
        _ => all,
    }
}

fn handle_session_stats(lib: &Library) -> Map<String, Value> {
    let views = lib.list();
    let stats = crate::views::stats(&views);
    let active = views.iter().filter(|v| v.state != "stopped").count();
    let seconds = started().elapsed().as_secs();
    let current = json!({
        "uploadedBytes": stats.uploaded_bytes,
        "downloadedBytes": stats.downloaded_bytes,
        "filesAdded": views.len(),
        "sessionCount": 1,
        "secondsActive": seconds,
    });
    object(json!({
        "activeTorrentCount": active,
        "pausedTorrentCount": views.len() - active,
        "torrentCount": views.len(),
        "downloadSpeed": stats.download_rate,
        "uploadSpeed": stats.upload_rate,
        // The node keeps no totals across restarts yet: both are this run's.
        "cumulative-stats": current.clone(),
        "current-stats": current,
    }))
}

/// Free and total bytes of the file system holding `path`.
fn free_bytes(path: &std::path::Path) -> Option<(u64, u64)> {
    let s = rustix::fs::statvfs(path).ok()?;
    Some((
        s.f_bavail.saturating_mul(s.f_frsize),
        s.f_blocks.saturating_mul(s.f_frsize),
    ))
}

fn handle_free_space(args: &Map<String, Value>) -> Answer {
    let path = args
        .get("path")
        .and_then(Value::as_str)
        .ok_or_else(|| RpcError::BadArgument("free-space needs a \"path\"".into()))?;
    match rustix::fs::statvfs(path) {
        Ok(s) => Ok(object(json!({
            "path": path,
            "size-bytes": s.f_bavail.saturating_mul(s.f_frsize),
            "total_size": s.f_blocks.saturating_mul(s.f_frsize),
        }))),
        Err(e) => Err(RpcError::BadArgument(format!(
            "{}: {path}",
            std::io::Error::from(e)
        ))),
    }
}

// ---------------------------------------------------------------------------------------------
// Selecting torrents
// ---------------------------------------------------------------------------------------------

/// Which torrents a request names.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Selector {
    /// No `ids`: every torrent.
    All,
    /// `"recently-active"`.
    RecentlyActive,
    /// Numbers and hashes; the ones that match nothing are dropped.
    Keys(Vec<String>),
}

impl Selector {
    /// Reads `ids`: absent, a number, a hash or `"recently-active"`, or a list of numbers and
    /// hashes.
    fn parse(ids: Option<&Value>) -> Result<Self, RpcError> {
        let bad = || {
            RpcError::BadArgument(
                "\"ids\" must be a torrent id, an info-hash, a list of them, or \"recently-active\""
                    .into(),
            )
        };
        let key = |v: &Value| -> Option<String> {
            match v {
                Value::Number(n) => n
                    .as_u64()
                    .or_else(|| {
                        n.as_f64()
                            .filter(|f| f.fract() == 0.0 && *f >= 0.0)
                            .map(|f| f as u64)
                    })
                    .map(|n| n.to_string()),
                Value::String(s) => Some(s.trim().to_string()),
                _ => None,
            }
        };
        match ids {
            None | Some(Value::Null) => Ok(Self::All),
            Some(Value::String(s)) if s == "recently-active" => Ok(Self::RecentlyActive),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| key(v).ok_or_else(bad))
                .collect::<Result<Vec<_>, _>>()
                .map(Self::Keys),
            Some(v) => key(v).map(|k| Self::Keys(vec![k])).ok_or_else(bad),
        }
    }

    /// The ids of the torrents selected, in request order without repeats (by id for `All`).
    fn resolve(&self, lib: &Library) -> Vec<TorrentId> {
        match self {
            // Without activity times, every torrent counts as recently active: a superset is
            // what a client polling for changes can use.
            Self::All | Self::RecentlyActive => lib.ids(),
            Self::Keys(keys) => {
                let mut out = Vec::with_capacity(keys.len());
                for k in keys {
                    if let Ok(id) = lib.resolve(k) {
                        if !out.contains(&id) {
                            out.push(id);
                        }
                    }
                }
                out
            }
        }
    }
}

/// Transmission's speed unit (`speed-bytes` in `session-get`'s `units`).
const SPEED_BYTES: u64 = 1000;
/// What Transmission shows as a limit that is not enabled.
const DEFAULT_LIMIT_KB: u64 = 100;

/// A limit in Transmission's kB/s; an unset one shows Transmission's default value.
fn limit_kb(bytes_per_s: u64) -> u64 {
    if bytes_per_s == 0 {
        DEFAULT_LIMIT_KB
    } else {
        bytes_per_s.div_ceil(SPEED_BYTES)
    }
}

/// Reads a Transmission limit pair (`value` in kB/s and `enabled`) against the current limit in
/// bytes per second. `None`: nothing asked. Transmission keeps a value while a limit is off; we
/// keep only limits in force, so a value sent alone applies only to a limit already on.
fn limit_arg(
    args: &Map<String, Value>,
    value: &str,
    enabled: &str,
    current: u64,
) -> Result<Option<u64>, RpcError> {
    let kb = match args.get(value) {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_u64().ok_or_else(|| {
            RpcError::BadArgument(format!("\"{value}\" must be a whole number of kB/s"))
        })?),
    };
    let on = match args.get(enabled) {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(Value::Number(n)) => Some(n.as_i64() != Some(0)),
        Some(_) => {
            return Err(RpcError::BadArgument(format!(
                "\"{enabled}\" must be a boolean"
            )))
        }
    };
    let bytes = |kb: u64| kb.saturating_mul(SPEED_BYTES);
    Ok(match (on, kb) {
        (Some(false), _) => Some(0),
        (Some(true), Some(kb)) => Some(bytes(kb)),
        (Some(true), None) if current > 0 => None,
        (Some(true), None) => Some(bytes(DEFAULT_LIMIT_KB)),
        (None, Some(kb)) if current > 0 => Some(bytes(kb)),
        (None, _) => None,
    })
}

/// `session-set`: the global speed limits apply at once; other keys are accepted and ignored
/// (the config file holds the node's settings).
fn handle_session_set(lib: &Library, args: &Map<String, Value>) -> Answer {
    let (down, up) = lib.session_limits();
    let new_down = limit_arg(args, "speed-limit-down", "speed-limit-down-enabled", down)?;
    let new_up = limit_arg(args, "speed-limit-up", "speed-limit-up-enabled", up)?;
    lib.set_session_limits(new_down, new_up);
    Ok(Map::new())
}

/// `torrent-set`: per-torrent speed limits (kept across restarts); other keys are accepted and
/// ignored.
fn handle_torrent_set(lib: &Library, args: &Map<String, Value>) -> Answer {
    for id in selected(lib, args)? {
        let Ok(view) = lib.get(id) else { continue };
        let down = limit_arg(
            args,
            "downloadLimit",
            "downloadLimited",
            view.download_limit,
        )?;
        let up = limit_arg(args, "uploadLimit", "uploadLimited", view.upload_limit)?;
        if down.is_some() || up.is_some() {
            lib.set_limits(id, down, up)?;
        }
    }
    Ok(Map::new())
}

fn selected(lib: &Library, args: &Map<String, Value>) -> Result<Vec<TorrentId>, RpcError> {
    Ok(Selector::parse(args.get("ids"))?.resolve(lib))
}

// ---------------------------------------------------------------------------------------------
// Adding, starting, stopping, removing
// ---------------------------------------------------------------------------------------------

async fn handle_torrent_add(lib: &Library, args: &Map<String, Value>) -> Answer {
    let paused = match args.get("paused") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        // Some clients send 0/1.
        Some(Value::Number(n)) => n.as_i64() != Some(0),
        Some(_) => return Err(RpcError::BadArgument("\"paused\" must be a boolean".into())),
    };
    let download_dir = match args.get("download-dir") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(PathBuf::from(s)),
        Some(_) => {
            return Err(RpcError::BadArgument(
                "\"download-dir\" must be a string".into(),
            ))
        }
    };
    let metainfo = args
        .get("metainfo")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    let filename = args
        .get("filename")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let source = match (metainfo, filename) {
        (Some(b64), _) => Source::Torrent(decode_metainfo(b64)?),
        (None, Some(name)) => source_of_filename(name).await?,
        (None, None) => return Err(RpcError::NothingToAdd),
    };
    let opts = AddOptions {
        download_dir,
        paused,
        ..AddOptions::default()
    };
    match lib.add(source, opts).await {
        Ok(view) => Ok(object(json!({"torrent-added": added_view(&view)}))),
        Err(LibraryError::Duplicate { id, hash, name }) => Ok(object(json!({
            "torrent-duplicate": {"id": id, "name": name, "hashString": hash},
        }))),
        Err(LibraryError::BadTorrent(e)) => Err(RpcError::CorruptTorrent(e)),
        Err(e) => Err(e.into()),
    }
}

fn added_view(view: &TorrentView) -> Value {
    json!({"id": view.id, "name": view.name, "hashString": view.hash})
}

/// Decodes `metainfo` (base64) and checks it parses, so bad data changes nothing.
fn decode_metainfo(b64: &str) -> Result<Vec<u8>, RpcError> {
    let bytes =
        crate::native::decode_base64(b64).map_err(|e| RpcError::CorruptTorrent(e.message))?;
    Torrent::from_bytes(&bytes).map_err(|e| RpcError::CorruptTorrent(e.to_string()))?;
    Ok(bytes)
}

/// `filename`: a magnet link, an `http://` URL of a .torrent, or a local .torrent path (read by
/// the node, as Transmission's daemon does).
async fn source_of_filename(name: &str) -> Result<Source, RpcError> {
    if name.starts_with("magnet:") {
        return Ok(Source::Magnet(name.to_string()));
    }
    let bytes = if name.starts_with("http://") || name.starts_with("https://") {
        crate::native::fetch_torrent(name)
            .await
            .map_err(|e| RpcError::BadArgument(e.message))?
    } else {
        let path = name.strip_prefix("file://").unwrap_or(name);
        let meta = tokio::fs::metadata(path)
            .await
            .map_err(|e| RpcError::BadArgument(format!("cannot read {path}: {e}")))?;
        if meta.len() > MAX_TORRENT_BYTES as u64 {
            return Err(RpcError::CorruptTorrent(format!(
                "{path} is larger than {MAX_TORRENT_BYTES} bytes"
            )));
        }
        tokio::fs::read(path)
            .await
            .map_err(|e| RpcError::BadArgument(format!("cannot read {path}: {e}")))?
    };
    Torrent::from_bytes(&bytes).map_err(|e| RpcError::CorruptTorrent(e.to_string()))?;
    Ok(Source::Torrent(bytes))
}

async fn handle_start_stop(lib: &Library, args: &Map<String, Value>, start: bool) -> Answer {
    let ids = selected(lib, args)?;
    let results = futures_util::future::join_all(ids.into_iter().map(|id| async move {
        if start {
            lib.start(id).await.map(drop)
        } else {
            lib.stop(id).await.map(drop)
        }
    }))
    .await;
    finish(results)
}

/// Verifying re-reads the data: a running torrent is taken out of the session and added again
/// (the engine checks what is on disk); a stopped one stays stopped.
async fn handle_verify(lib: &Library, args: &Map<String, Value>) -> Answer {
    let ids = selected(lib, args)?;
    let results = futures_util::future::join_all(ids.into_iter().map(|id| async move {
        let running = lib.get(id)?.state != "stopped";
        if running {
            lib.stop(id).await?;
            lib.start(id).await?;
        }
        Ok(())
    }))
    .await;
    finish(results)
}

async fn handle_remove(lib: &Library, args: &Map<String, Value>) -> Answer {
    let ids = selected(lib, args)?;
    let delete = match args.get("delete-local-data") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_i64() != Some(0),
        Some(_) => {
            return Err(RpcError::BadArgument(
                "\"delete-local-data\" must be a boolean".into(),
            ))
        }
    };
    let results =
        futures_util::future::join_all(ids.into_iter().map(|id| lib.remove(id, delete))).await;
    finish(results)
}

/// Success unless one torrent failed for another reason than having gone meanwhile.
fn finish(results: Vec<Result<(), LibraryError>>) -> Answer {
    for r in results {
        match r {
            Ok(()) | Err(LibraryError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Map::new())
}

fn handle_queue_move(lib: &Library, args: &Map<String, Value>, method: &str) -> Answer {
    let moved = selected(lib, args)?;
    let mut views = lib.list();
    views.sort_by_key(|v| (v.queue_position, v.id));
    let order: Vec<TorrentId> = views.iter().map(|v| v.id).collect();
    let new_order = reorder(&order, &moved, method);
    if new_order != order {
        lib.queue_move_top(&new_order)?;
    }
    Ok(Map::new())
}

/// The queue after a `queue-move-*` of `moved` (selected torrents keep their relative order).
fn reorder(order: &[TorrentId], moved: &[TorrentId], method: &str) -> Vec<TorrentId> {
    let is_moved = |id: &TorrentId| moved.contains(id);
    let (chosen, rest): (Vec<TorrentId>, Vec<TorrentId>) =
        order.iter().partition(|id| is_moved(id));
    match method {
        "queue-move-top" => chosen.into_iter().chain(rest).collect(),
        "queue-move-bottom" => rest.into_iter().chain(chosen).collect(),
        "queue-move-up" => {
            let mut out = order.to_vec();
            for i in 1..out.len() {
                if is_moved(&out[i]) && !is_moved(&out[i - 1]) {
                    out.swap(i, i - 1);
                }
            }
            out
        }
        "queue-move-down" => {
            let mut out = order.to_vec();
            for i in (0..out.len().saturating_sub(1)).rev() {
                if is_moved(&out[i]) && !is_moved(&out[i + 1]) {
                    out.swap(i, i + 1);
                }
            }
            out
        }
        _ => order.to_vec(),
    }
}

// ---------------------------------------------------------------------------------------------
// torrent-get
// ---------------------------------------------------------------------------------------------

fn handle_torrent_get(app: &AppState, args: &Map<String, Value>) -> Answer {
    let lib = &app.library;
    let fields: Vec<&str> = match args.get("fields") {
        Some(Value::Array(f)) => {
            let mut out: Vec<&str> = Vec::with_capacity(f.len());
            for name in f.iter().filter_map(Value::as_str) {
                if !out.contains(&name) {
                    out.push(name);
                }
            }
            out
        }
        _ => return Err(RpcError::NoFields),
    };
    let selector = Selector::parse(args.get("ids"))?;
    let table = args.get("format").and_then(Value::as_str) == Some("table");
    let ids = selector.resolve(lib);
    let mut rows = Vec::with_capacity(ids.len());
    for id in ids {
        // A torrent removed between listing and reading is simply left out.
        let Ok(view) = lib.get(id) else { continue };
        let t = TorrentFields::new(app, view);
        if table {
            let row: Vec<Value> = fields
                .iter()
                .map(|f| t.field(f).unwrap_or(Value::Null))
                .collect();
            rows.push(Value::Array(row));
        } else {
            let obj: Map<String, Value> = fields
                .iter()
                .filter_map(|f| t.field(f).map(|v| (f.to_string(), v)))
                .collect();
            rows.push(Value::Object(obj));
        }
    }
    let torrents = if table {
        let known: Vec<Value> = fields.iter().map(|f| Value::from(*f)).collect();
        std::iter::once(Value::Array(known)).chain(rows).collect()
    } else {
        rows
    };
    let mut out = Map::new();
    out.insert("torrents".into(), Value::Array(torrents));
    if selector == Selector::RecentlyActive {
        // Removals are not tracked per client; a client sees them as ids missing from `All`.
        out.insert("removed".into(), Value::Array(Vec::new()));
    }
    Ok(out)
}

/// One torrent's `torrent-get` fields, with the costlier parts read once and only if asked.
struct TorrentFields<'a> {
    lib: &'a Library,
    view: TorrentView,
    meta: OnceCell<Option<Arc<Torrent>>>,
    peers: OnceCell<Vec<PeerView>>,
}

impl<'a> TorrentFields<'a> {
    fn new(app: &'a AppState, view: TorrentView) -> Self {
        Self {
            lib: &app.library,
            view,
            meta: OnceCell::new(),
            peers: OnceCell::new(),
        }
    }

    fn meta(&self) -> Option<&Torrent> {
        self.meta
            .get_or_init(|| self.lib.metainfo(self.view.id).ok().flatten())
            .as_deref()
    }

    fn peers(&self) -> &[PeerView] {
        self.peers
            .get_or_init(|| self.lib.peers(self.view.id).unwrap_or_default())
    }

    fn status(&self) -> u8 {
        transmission_status(self.view.state)
    }

    fn left(&self) -> u64 {
        self.view.size_bytes.saturating_sub(self.view.have_bytes)
    }

    fn running(&self) -> bool {
        !matches!(self.view.state, "stopped" | "error")
    }

    /// The value of field `name`, or `None` for a field we do not know (left out of the
    /// answer, as Transmission does).
    fn field(&self, name: &str) -> Option<Value> {
        let v = &self.view;
        let value = match name {
            "id" => json!(v.id),
            "name" => json!(v.name),
            "hashString" => json!(v.hash),
            "status" => json!(self.status()),
            "error" => json!(if v.error.is_some() { ERROR_LOCAL } else { 0 }),
            "errorString" => json!(v.error.clone().unwrap_or_default()),
            "percentDone" | "percentComplete" => json!(v.progress),
            "metadataPercentComplete" => json!(if self.meta().is_some() { 1.0 } else { 0.0 }),
            "recheckProgress" => json!(if v.state == "checking" {
                v.progress
            } else {
                0.0
            }),
            "totalSize" | "sizeWhenDone" => json!(v.size_bytes),
            "leftUntilDone" => json!(self.left()),
            "haveValid" => json!(v.have_bytes),
            "haveUnchecked"
            | "corruptEver"
            | "secondsDownloading"
            | "secondsSeeding"
            | "webseedsSendingToUs"
            | "editDate"
            | "bandwidthPriority" => json!(0),
            "desiredAvailable" => {
                let seed_connected = self.peers().iter().any(|p| p.seed);
                json!(if seed_connected { self.left() } else { 0 })
            }
            "rateDownload" => json!(v.download_rate),
            "rateUpload" => json!(v.upload_rate),
            "downloadedEver" => json!(v.downloaded_bytes),
            "uploadedEver" => json!(v.uploaded_bytes),
            "uploadRatio" => json!(ratio(v.uploaded_bytes, v.downloaded_bytes, v.have_bytes)),
            "eta" => json!(eta(v)),
            "etaIdle" => json!(ETA_NOT_AVAILABLE),
            "downloadDir" => json!(v.download_dir),
            "addedDate" => json!(v.added_at),
            "doneDate" => json!(v.done_at),
            "startDate" => json!(if self.running() { v.added_at } else { 0 }),
            "activityDate" => {
                let active = v.download_rate > 0 || v.upload_rate > 0;
                json!(if active {
                    unix_now()
                } else {
                    v.added_at.max(v.done_at)
                })
            }
            "dateCreated" => json!(self
                .meta()
                .and_then(|t| t.creation_date)
                .unwrap_or(0)
                .max(0)),
            "isFinished" | "isStalled" | "sequentialDownload" => json!(false),
            "downloadLimited" => json!(v.download_limit > 0),
            "uploadLimited" => json!(v.upload_limit > 0),
            "honorsSessionLimits" => json!(true),
            "downloadLimit" => json!(limit_kb(v.download_limit)),
            "uploadLimit" => json!(limit_kb(v.upload_limit)),
            "peer-limit" | "maxConnectedPeers" => json!(50),
            "manualAnnounceTime" => json!(-1),
            "queuePosition" => json!(v.queue_position),
            "peersConnected" => json!(v.peers),
            "peersSendingToUs" => {
                json!(self.peers().iter().filter(|p| p.download_rate > 0).count())
            }
            "peersGettingFromUs" => {
                json!(self.peers().iter().filter(|p| p.upload_rate > 0).count())
            }
            "peersFrom" => json!({
                "fromCache": 0, "fromDht": 0, "fromIncoming": 0, "fromLpd": 0,
                "fromLtep": 0, "fromPex": 0, "fromTracker": v.peers,
            }),
            "peers" => Value::Array(self.peers().iter().map(peer_fields).collect()),
            "files" => self.files(true),
            "fileStats" => self.files(false),
            "file-count" => json!(self.lib.files(v.id).map(|f| f.len()).unwrap_or(0)),
            "wanted" => {
                let n = self.lib.files(v.id).map(|f| f.len()).unwrap_or(0);
                json!(vec![1; n])
            }
            "priorities" => {
                let n = self.lib.files(v.id).map(|f| f.len()).unwrap_or(0);
                json!(vec![0; n])
            }
            "trackers" => self.trackers(false),
            "trackerStats" => self.trackers(true),
            "trackerList" => {
                let tiers = self.lib.trackers(v.id).unwrap_or_default();
                let mut text = String::new();
                let mut last_tier = None;
                for t in tiers {
                    if last_tier.is_some_and(|l| l != t.tier) {
                        text.push('\n');
                    }
                    text.push_str(&t.url);
                    text.push('\n');
                    last_tier = Some(t.tier);
                }
                json!(text)
            }
            "magnetLink" => json!(self.lib.magnet(v.id).unwrap_or_default()),
            "comment" => json!(self
                .meta()
                .and_then(|t| t.comment.clone())
                .unwrap_or_default()),
            "creator" => json!(self
                .meta()
                .and_then(|t| t.created_by.clone())
                .unwrap_or_default()),
            "isPrivate" => json!(self.meta().is_some_and(|t| t.info.private)),
            "pieceCount" => json!(v.pieces_total),
            "pieceSize" => json!(self.meta().map(|t| t.info.piece_length).unwrap_or(0)),
            "pieces" => {
                let bits = self.lib.piece_bits(v.id).unwrap_or_default();
                json!(base64::engine::general_purpose::STANDARD.encode(bits.as_bytes()))
            }
            "labels" => json!([]),
            "webseeds" => json!(self.meta().map(|t| t.url_list.clone()).unwrap_or_default()),
            "group" | "primary-mime-type" => json!(""),
            "seedRatioLimit" => json!(SEED_RATIO_LIMIT),
            // 0: follow the session's setting (which is off).
            "seedRatioMode" | "seedIdleMode" => json!(0),
            "seedIdleLimit" => json!(30),
            "torrentFile" => json!(self
                .lib
                .state_dir()
                .join(format!("{}.torrent", v.hash))
                .display()
                .to_string()),
            _ => return None,
        };
        Some(value)
    }

    /// `files` (with names and lengths) or `fileStats` (with wanted and priority).
    fn files(&self, with_names: bool) -> Value {
        let files = self.lib.files(self.view.id).unwrap_or_default();
        let meta = self.meta();
        Value::Array(
            files
                .iter()
                .map(|f| {
                    if with_names {
                        let name = meta
                            .filter(|t| f.index < t.info.files.len())
                            .map(|t| {
                                let p = t.info.file_path(f.index);
                                p.iter()
                                    .map(|c| c.to_string_lossy().into_owned())
                                    .collect::<Vec<_>>()
                                    .join("/")
                            })
                            .unwrap_or_else(|| f.path.clone());
                        json!({"name": name, "length": f.length, "bytesCompleted": f.bytes_completed})
                    } else {
                        json!({"bytesCompleted": f.bytes_completed, "wanted": true, "priority": 0})
                    }
                })
                .collect(),
        )
    }

    /// `trackers` or, with `stats`, `trackerStats` (the node does not report announce results
    /// per tracker yet, so the counts are Transmission's "unknown" values).
    fn trackers(&self, stats: bool) -> Value {
        let trackers = self.lib.trackers(self.view.id).unwrap_or_default();
        Value::Array(
            trackers
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    let host = tracker_host(&t.url);
                    let origin = tracker_origin(&t.url);
                    let scrape = scrape_url(&t.url);
                    if stats {
                        json!({
                            "id": i, "tier": t.tier, "announce": t.url, "scrape": scrape,
                            "host": origin, "sitename": host,
                            "announceState": 0, "scrapeState": 0, "isBackup": false,
                            "hasAnnounced": false, "hasScraped": false,
                            "lastAnnounceSucceeded": false, "lastAnnounceResult": "",
                            "lastAnnounceTime": 0, "lastAnnounceStartTime": 0,
                            "lastAnnounceTimedOut": false, "lastAnnouncePeerCount": 0,
                            "nextAnnounceTime": 0, "lastScrapeSucceeded": false,
                            "lastScrapeResult": "", "lastScrapeTime": 0,
                            "lastScrapeStartTime": 0, "lastScrapeTimedOut": false,
                            "nextScrapeTime": 0, "seederCount": -1, "leecherCount": -1,
                            "downloadCount": -1,
                        })
                    } else {
                        json!({"id": i, "tier": t.tier, "announce": t.url, "scrape": scrape, "sitename": host})
                    }
                })
                .collect(),
        )
    }
}

/// Transmission's status code for a library state.
fn transmission_status(state: &str) -> u8 {
    match state {
        "checking" => status::CHECK,
        // Fetching metadata counts as downloading, as in Transmission.
        "downloading" | "metadata" => status::DOWNLOAD,
        "seeding" => status::SEED,
        _ => status::STOPPED,
    }
}

/// Transmission's ratio: over bytes downloaded, or over verified bytes for a torrent that
/// downloaded nothing in this run (a seed).
fn ratio(uploaded: u64, downloaded: u64, have: u64) -> f64 {
    let base = if downloaded > 0 { downloaded } else { have };
    if base > 0 {
        uploaded as f64 / base as f64
    } else if uploaded > 0 {
        RATIO_INFINITE
    } else {
        RATIO_NOT_AVAILABLE
    }
}

fn eta(v: &TorrentView) -> i64 {
    match (v.state, v.eta_s) {
        ("downloading" | "metadata", Some(s)) => i64::try_from(s).unwrap_or(i64::MAX),
        ("downloading" | "metadata", None) => ETA_UNKNOWN,
        _ => ETA_NOT_AVAILABLE,
    }
}

fn peer_fields(p: &PeerView) -> Value {
    let addr: Option<SocketAddr> = p.addr.parse().ok();
    let utp = p.transport == "utp";
    let downloading_from = p.download_rate > 0;
    let uploading_to = p.unchoked && p.interested;
    // Transmission's flag letters, the ones we know: D/d downloading from it (or would),
    // U/u uploading to it (or would), T for uTP.
    let mut flags = String::new();
    if downloading_from {
        flags.push('D');
    }
    if uploading_to {
        flags.push('U');
    } else if p.interested {
        flags.push('u');
    }
    if utp {
        flags.push('T');
    }
    json!({
        "address": addr.map(|a| a.ip().to_string()).unwrap_or_else(|| p.addr.clone()),
        "port": addr.map(|a| a.port()).unwrap_or(0),
        "clientName": p.client,
        "clientIsChoked": !downloading_from,
        "clientIsInterested": !p.seed || downloading_from,
        "flagStr": flags,
        "isDownloadingFrom": downloading_from,
        "isEncrypted": false,
        "isIncoming": false,
        "isUploadingTo": uploading_to,
        "isUTP": utp,
        "peerIsChoked": !p.unchoked,
        "peerIsInterested": p.interested,
        "progress": if p.seed { 1.0 } else { 0.0 },
        "rateToClient": p.download_rate,
        "rateToPeer": p.upload_rate,
    })
}

/// The host part of a tracker URL.
fn tracker_host(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if let Some(v6) = host_port.strip_prefix('[') {
        return format!("[{}]", v6.split(']').next().unwrap_or(""));
    }
    host_port.split(':').next().unwrap_or("").to_string()
}

/// `scheme://host:port` of a tracker URL, the port filled in for http and https: what
/// Transmission shows as a tracker's `host`.
fn tracker_origin(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = tracker_host(url);
    let port = host_port[host.len().min(host_port.len())..]
        .strip_prefix(':')
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| match scheme {
            "https" => "443".into(),
            _ => "80".into(),
        });
    format!("{scheme}://{host}:{port}")
}

/// The scrape URL of an announce URL (BEP 48): the last path segment's `announce` becomes
/// `scrape`; empty when there is no such segment.
fn scrape_url(announce: &str) -> String {
    let (base, query) = announce
        .split_once('?')
        .map_or((announce, None), |(b, q)| (b, Some(q)));
    let Some(slash) = base.rfind('/') else {
        return String::new();
    };
    let last = &base[slash + 1..];
    if !last.starts_with("announce") {
        return String::new();
    }
    let mut out = format!("{}/scrape{}", &base[..slash], &last["announce".len()..]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_selector_forms() {
        assert_eq!(Selector::parse(None).unwrap(), Selector::All);
        assert_eq!(
            Selector::parse(Some(&json!("recently-active"))).unwrap(),
            Selector::RecentlyActive
        );
        assert_eq!(
            Selector::parse(Some(&json!(3))).unwrap(),
            Selector::Keys(vec!["3".into()])
        );
        assert_eq!(
            Selector::parse(Some(&json!([1, 2.0, "ab"]))).unwrap(),
            Selector::Keys(vec!["1".into(), "2".into(), "ab".into()])
        );
        assert!(Selector::parse(Some(&json!({"a": 1}))).is_err());
        assert!(Selector::parse(Some(&json!([true]))).is_err());
        assert!(Selector::parse(Some(&json!(-1))).is_err());
    }

    #[test]
    fn status_codes_follow_transmission() {
        assert_eq!(transmission_status("stopped"), 0);
        assert_eq!(transmission_status("error"), 0);
        assert_eq!(transmission_status("checking"), 2);
        assert_eq!(transmission_status("metadata"), 4);
        assert_eq!(transmission_status("downloading"), 4);
        assert_eq!(transmission_status("seeding"), 6);
    }

    #[test]
    fn ratio_special_values() {
        assert_eq!(ratio(0, 0, 0), RATIO_NOT_AVAILABLE);
        assert_eq!(ratio(5, 0, 0), RATIO_INFINITE);
        assert_eq!(ratio(5, 10, 0), 0.5);
        // A seed that downloaded nothing this run: over verified bytes.
        assert_eq!(ratio(30, 0, 10), 3.0);
    }

    #[test]
    fn queue_moves() {
        let ids: Vec<TorrentId> = (1..=5).map(TorrentId).collect();
        let sel = [TorrentId(2), TorrentId(4)];
        let show = |v: Vec<TorrentId>| v.iter().map(|i| i.0).collect::<Vec<_>>();
        assert_eq!(show(reorder(&ids, &sel, "queue-move-top")), [2, 4, 1, 3, 5]);
        assert_eq!(
            show(reorder(&ids, &sel, "queue-move-bottom")),
            [1, 3, 5, 2, 4]
        );
        assert_eq!(show(reorder(&ids, &sel, "queue-move-up")), [2, 1, 4, 3, 5]);
        assert_eq!(
            show(reorder(&ids, &sel, "queue-move-down")),
            [1, 3, 2, 5, 4]
        );
        // Already at the edge: nothing moves past it.
        assert_eq!(
            show(reorder(&ids, &[TorrentId(1)], "queue-move-up")),
            [1, 2, 3, 4, 5]
        );
        assert_eq!(
            show(reorder(&ids, &[TorrentId(5)], "queue-move-down")),
            [1, 2, 3, 4, 5]
        );
    }

    #[test]
    fn scrape_urls() {
        assert_eq!(
            scrape_url("http://t.example:80/announce"),
            "http://t.example:80/scrape"
        );
        assert_eq!(
            scrape_url("http://t/x/announce.php?k=1"),
            "http://t/x/scrape.php?k=1"
        );
        assert_eq!(scrape_url("http://t/a"), "");
        assert_eq!(scrape_url("udp://t:6969"), "");
    }

    #[test]
    fn tracker_hosts() {
        assert_eq!(tracker_host("http://t.example:8080/announce"), "t.example");
        assert_eq!(tracker_host("udp://10.0.0.1:6969"), "10.0.0.1");
        assert_eq!(tracker_host("http://[::1]:80/announce"), "[::1]");
        assert_eq!(tracker_host("http://u:p@host/announce"), "host");
        assert_eq!(
            tracker_origin("http://t.example/announce"),
            "http://t.example:80"
        );
        assert_eq!(
            tracker_origin("https://t.example/a"),
            "https://t.example:443"
        );
        assert_eq!(tracker_origin("udp://10.0.0.1:6969"), "udp://10.0.0.1:6969");
        assert_eq!(
            tracker_origin("http://[::1]:81/announce"),
            "http://[::1]:81"
        );
    }
}
