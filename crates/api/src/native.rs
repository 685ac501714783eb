//! `/api/v1`: the native JSON API (documented in `docs/api.md`) and its event stream.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::library::{AddOptions, Event, Source, TorrentId, MAX_TORRENT_BYTES};
use crate::server::{parse_json, ApiError, AppState};
use crate::views::TorrentView;

/// Most torrents one list page returns.
const MAX_PAGE: usize = 1000;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/session", get(session).patch(set_session))
        .route("/api/v1/stats", get(stats))
        .route("/api/v1/torrents", get(list).post(add))
        .route(
            "/api/v1/torrents/{id}",
            get(show).delete(remove).patch(set_torrent),
        )
        .route("/api/v1/torrents/{id}/start", post(start))
        .route("/api/v1/torrents/{id}/stop", post(stop))
        .route("/api/v1/torrents/{id}/files", get(files))
        .route("/api/v1/torrents/{id}/peers", get(peers))
        .route("/api/v1/torrents/{id}/pieces", get(pieces))
        .route("/api/v1/torrents/{id}/trackers", get(trackers))
        .route("/api/v1/wallet", get(wallet))
        .route("/api/v1/market", get(market))
        .route("/api/v1/market/claim", post(claim))
        .route("/api/v1/chain", get(chain))
        .route("/api/v1/events", get(events))
}

async fn session(State(app): State<AppState>) -> Json<Value> {
    let (download_limit, upload_limit) = app.library.session_limits();
    Json(json!({
        "download_limit": download_limit,
        "upload_limit": upload_limit,
        "version": crate::VERSION,
        "session_id": &*app.session_id,
        "peer_port": app.library.session().listen_port(),
        "download_dir": app.library.download_dir().display().to_string(),
        "network": app.config.network,
    }))
}

/// Limits to change, bytes per second (0 = none); a missing one stays as it is.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsBody {
    download_limit: Option<u64>,
    upload_limit: Option<u64>,
}

async fn set_session(
    State(app): State<AppState>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let b: LimitsBody = parse_json(&body?)?;
    app.library
        .set_session_limits(b.download_limit, b.upload_limit);
    Ok(session(State(app)).await)
}

/// What `PATCH /api/v1/torrents/{id}` may change; a missing field stays as it is.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TorrentBody {
    download_limit: Option<u64>,
    upload_limit: Option<u64>,
    /// Wei, a decimal string.
    budget: Option<String>,
    max_price: Option<u64>,
}

async fn set_torrent(
    State(app): State<AppState>,
    Path(id): Path<String>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let b: TorrentBody = parse_json(&body?)?;
    let budget = b.budget.as_deref().map(parse_budget).transpose()?;
    let id = app.library.resolve(&id)?;
    // Checked before anything changes: a refused budget leaves the limits as they were too.
    if budget.is_some() || b.max_price.is_some() {
        app.library.set_buying(id, budget, b.max_price)?;
    }
    let view = app
        .library
        .set_limits(id, b.download_limit, b.upload_limit)?;
    Ok(Json(json!({"torrent": view})))
}

fn parse_budget(text: &str) -> Result<speed::Amount, ApiError> {
    crate::node_market::parse_wei(text, "budget").map_err(ApiError::bad_request)
}

async fn stats(State(app): State<AppState>) -> Json<Value> {
    Json(json!(app.library.stats()))
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    state: Option<String>,
    q: Option<String>,
    sort: Option<String>,
    offset: Option<usize>,
    limit: Option<usize>,
}

async fn list(
    State(app): State<AppState>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    if let Some(s) = &q.state {
        if s != "active" && !crate::views::STATES.contains(&s.as_str()) {
            return Err(ApiError::bad_request(format!(
                "unknown state {s:?}; one of {}, active",
                crate::views::STATES.join(", ")
            )));
        }
    }
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::bad_request(format!(
            "limit must be 1 to {MAX_PAGE}"
        )));
    }
    let needle = q.q.as_deref().map(str::to_lowercase);
    let mut torrents: Vec<TorrentView> = app
        .library
        .list()
        .into_iter()
        .filter(|t| match q.state.as_deref() {
            None => true,
            Some("active") => {
                matches!(t.state, "downloading" | "seeding" | "checking" | "metadata")
            }
            Some(s) => t.state == s,
        })
        .filter(|t| {
            needle
                .as_deref()
                .is_none_or(|n| t.name.to_lowercase().contains(n))
        })
        .collect();
    match q.sort.as_deref() {
        None | Some("id") => {}
        Some("name") => torrents.sort_by(|a, b| a.name.cmp(&b.name)),
        Some("added") => torrents.sort_by_key(|t| t.added_at),
        Some("queue") => torrents.sort_by_key(|t| t.queue_position),
        Some("progress") => torrents.sort_by(|a, b| a.progress.total_cmp(&b.progress)),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "unknown sort {other:?}; one of id, name, added, queue, progress"
            )))
        }
    }
    let total = torrents.len();
    let page: Vec<TorrentView> = torrents
        .into_iter()
        .skip(q.offset.unwrap_or(0))
        .take(limit)
        .collect();
    Ok(Json(json!({"total": total, "torrents": page})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AddBody {
    magnet: Option<String>,
    url: Option<String>,
    /// Base64 of the .torrent file.
    torrent: Option<String>,
    download_dir: Option<PathBuf>,
    #[serde(default)]
    paused: bool,
    #[serde(default)]
    peers: Vec<String>,
    /// Most to spend buying bandwidth, wei as a decimal string.
    budget: Option<String>,
    /// Highest bid, wei per byte.
    max_price: Option<u64>,
}

async fn add(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body?;
    let raw_torrent = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/x-bittorrent"));
    let (source, opts) = if raw_torrent {
        (Source::Torrent(body.to_vec()), AddOptions::default())
    } else {
        let b: AddBody = parse_json(&body)?;
        let given = [b.magnet.is_some(), b.url.is_some(), b.torrent.is_some()]
            .iter()
            .filter(|x| **x)
            .count();
        if given != 1 {
            return Err(ApiError::bad_request(
                "give exactly one of \"magnet\", \"url\" or \"torrent\" (base64 of a .torrent file)",
            ));
        }
        let peers = parse_peers(&b.peers)?;
        let opts = AddOptions {
            download_dir: b.download_dir,
            paused: b.paused,
            peers,
            budget: b
                .budget
                .as_deref()
                .map(parse_budget)
                .transpose()?
                .unwrap_or(speed::Amount::ZERO),
            max_price: b.max_price,
        };
        let source = if let Some(m) = b.magnet {
            Source::Magnet(m)
        } else if let Some(t) = b.torrent {
            Source::Torrent(decode_base64(&t)?)
        } else if let Some(url) = b.url {
            if url.starts_with("magnet:") {
                Source::Magnet(url)
            } else {
                Source::Torrent(fetch_torrent(&url).await?)
            }
        } else {
            return Err(ApiError::bad_request("nothing to add"));
        };
        (source, opts)
    };
    let view = app.library.add(source, opts).await?;
    Ok((StatusCode::CREATED, Json(json!({"torrent": view}))).into_response())
}

/// Parses `ip:port` strings.
pub(crate) fn parse_peers(peers: &[String]) -> Result<Vec<SocketAddr>, ApiError> {
    peers
        .iter()
        .map(|p| {
            p.trim()
                .parse::<SocketAddr>()
                .map_err(|_| ApiError::bad_request(format!("peer {p:?} is not IP:PORT")))
        })
        .collect()
}

/// Decodes standard base64, ignoring whitespace (some clients wrap lines).
pub(crate) fn decode_base64(s: &str) -> Result<Vec<u8>, ApiError> {
    let compact: String = s.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .map_err(|e| ApiError::bad_request(format!("invalid base64 torrent: {e}")))
}

/// Downloads a .torrent file from an `http://` URL.
pub(crate) async fn fetch_torrent(url: &str) -> Result<Vec<u8>, ApiError> {
    let reply = crate::client::http_request(
        "GET",
        url,
        &[],
        &[],
        MAX_TORRENT_BYTES,
        Duration::from_secs(30),
    )
    .await
    .map_err(|e| ApiError::bad_request(format!("cannot fetch {url}: {e}")))?;
    if reply.status != 200 {
        return Err(ApiError::bad_request(format!(
            "cannot fetch {url}: HTTP {}",
            reply.status
        )));
    }
    Ok(reply.body)
}

async fn show(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = app.library.resolve(&id)?;
    let torrent = app.library.get(id)?;
    let meta = app.library.metainfo(id)?;
    Ok(Json(json!({
        "torrent": torrent,
        "trackers": app.library.trackers(id)?,
        "piece_length": meta.as_ref().map(|t| t.info.piece_length),
        "comment": meta.as_ref().and_then(|t| t.comment.clone()),
        "created_by": meta.as_ref().and_then(|t| t.created_by.clone()),
        "private": meta.as_ref().is_some_and(|t| t.info.private),
        "version": meta.as_ref().map(|t| format!("{:?}", t.info.version).to_lowercase()),
        "magnet": app.library.magnet(id)?,
    })))
}

async fn start(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = app.library.resolve(&id)?;
    Ok(Json(json!({"torrent": app.library.start(id).await?})))
}

async fn stop(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = app.library.resolve(&id)?;
    Ok(Json(json!({"torrent": app.library.stop(id).await?})))
}

#[derive(Debug, Deserialize)]
struct RemoveQuery {
    delete_data: Option<bool>,
}

async fn remove(
    State(app): State<AppState>,
    Path(id): Path<String>,
    query: Result<Query<RemoveQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let id = app.library.resolve(&id)?;
    app.library
        .remove(id, q.delete_data.unwrap_or(false))
        .await?;
    Ok(Json(json!({"removed": id})))
}

async fn files(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = app.library.resolve(&id)?;
    Ok(Json(json!({"files": app.library.files(id)?})))
}

async fn peers(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = app.library.resolve(&id)?;
    Ok(Json(json!({"peers": app.library.peers(id)?})))
}

async fn pieces(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = app.library.resolve(&id)?;
    Ok(Json(json!(app.library.pieces(id)?)))
}

async fn trackers(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = app.library.resolve(&id)?;
    Ok(Json(json!({"trackers": app.library.trackers(id)?})))
}

async fn wallet(State(app): State<AppState>) -> Json<Value> {
    let accounts = app.chain.accounts(app.config.keystore_dir.as_deref()).await;
    Json(json!({"accounts": accounts, "market": market_json(&app).await}))
}

async fn market(State(app): State<AppState>) -> Json<Value> {
    Json(market_json(&app).await)
}

/// The market panel: the node's terms, where the wallet's BTT is, earnings and channels.
async fn market_json(app: &AppState) -> Value {
    let Some(m) = app.library.market() else {
        return crate::chain::market_view();
    };
    let balance = match m.own_balance().await {
        Some(b) => b,
        None => app.chain.balance(m.wallet()).await.map(speed::Amount),
    };
    m.view(balance, crate::library::unix_now())
}

/// Claims every voucher held now; answers with each claim and the total paid.
async fn claim(State(app): State<AppState>) -> Result<Json<Value>, ApiError> {
    let Some(m) = app.library.market() else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "market_off",
            "the Speed market is off on this node: nothing to claim (start it with --market true)",
        ));
    };
    let claims = m.claim_all().await;
    Ok(Json(crate::node_market::claims_json(&claims)))
}

async fn chain(State(app): State<AppState>) -> Json<Value> {
    Json(json!(app.chain.status().await))
}

/// Server-sent events: a `torrents` snapshot now and every second, plus `added`, `removed` and
/// `state` as they happen. A client that falls behind skips to the next event.
async fn events(State(app): State<AppState>) -> impl IntoResponse {
    let rx = app.library.subscribe();
    let first = {
        let torrents = app.library.list();
        let stats = crate::views::stats(&torrents);
        sse("torrents", &json!({"torrents": torrents, "stats": stats}))
    };
    let rest = futures_util::stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(ev) => return Some((Ok::<_, Infallible>(to_sse(&ev)), rx)),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    let stream = futures_util::StreamExt::chain(futures_util::stream::iter([Ok(first)]), rest);
    Sse::new(stream).keep_alive(KeepAlive::default())
}

fn to_sse(ev: &Event) -> SseEvent {
    match ev {
        Event::Tick(snapshot) => sse(
            "torrents",
            &json!({"torrents": snapshot.0, "stats": snapshot.1}),
        ),
        Event::Added(t) => sse("added", &json!({"torrent": t})),
        Event::Removed(TorrentId(id)) => sse("removed", &json!({"id": id})),
        Event::State(t) => sse("state", &json!({"torrent": t})),
    }
}

fn sse(name: &str, data: &Value) -> SseEvent {
    SseEvent::default().event(name).data(data.to_string())
}
