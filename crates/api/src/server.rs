//! The listener, the router and the guards in front of every route.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use rand::Rng;
use serde_json::json;

use crate::chain::ChainSource;
use crate::library::{Library, LibraryError};

/// The header of Transmission's CSRF handshake, used by the native API too.
pub const SESSION_HEADER: &str = "X-Transmission-Session-Id";

/// Largest request body accepted by default (a .torrent in base64 fits with room).
pub const DEFAULT_MAX_BODY_BYTES: usize = 24 * 1024 * 1024;

/// A user name and password for HTTP basic auth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
}

/// How the HTTP server runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen (Transmission's default port, on loopback).
    pub listen: SocketAddr,
    /// Basic-auth credentials; required when `listen` is not a loopback address.
    pub credentials: Option<Credentials>,
    /// The network's name, shown to clients.
    pub network: String,
    /// Where the node's keystore lives (the wallet view lists its addresses, never its keys).
    pub keystore_dir: Option<std::path::PathBuf>,
    /// Largest request body.
    pub max_body_bytes: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9091)),
            credentials: None,
            network: "local".into(),
            keystore_dir: None,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}. Choose another address with `--http ADDR:PORT`")]
    Bind {
        /// The address tried.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Listening beyond loopback without credentials would hand the node to anyone on the network.
    #[error("{0} is not a loopback address: set a user name and password (`--http-username`, `--http-password`) to listen there")]
    NeedsCredentials(SocketAddr),
}

/// What every handler can reach.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) library: Library,
    pub(crate) chain: ChainSource,
    pub(crate) session_id: Arc<str>,
    pub(crate) config: Arc<Config>,
}

/// A running HTTP server.
pub struct Server {
    addr: SocketAddr,
    shutdown: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Binds `config.listen` and serves the API, Transmission RPC, metrics and the UI.
    pub async fn start(
        config: Config,
        library: Library,
        chain: ChainSource,
    ) -> Result<Self, ServerError> {
        if !config.listen.ip().is_loopback() && config.credentials.is_none() {
            return Err(ServerError::NeedsCredentials(config.listen));
        }
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| ServerError::Bind {
                addr: config.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| ServerError::Bind {
            addr: config.listen,
            source,
        })?;
        let state = AppState {
            library,
            chain,
            session_id: new_session_id().into(),
            config: Arc::new(config),
        };
        let app = router(state);
        let (shutdown, mut rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            let stop = async move {
                let _ = rx.wait_for(|s| *s).await;
            };
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(stop)
                .await
            {
                tracing::warn!("http server stopped: {e}");
            }
        });
        Ok(Self {
            addr,
            shutdown,
            task,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting requests and waits for open ones (event streams are cut).
    pub async fn stop(self) {
        self.shutdown.send_replace(true);
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), self.task).await;
    }
}

fn new_session_id() -> String {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut rng = rand::thread_rng();
    (0..48)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

fn router(state: AppState) -> Router {
    let limit = state.config.max_body_bytes;
    Router::new()
        .merge(crate::native::routes())
        .route(
            "/transmission/rpc",
            post(crate::transmission::rpc).get(crate::transmission::rpc_get),
        )
        // transmission-remote posts to `/transmission/rpc/`, with the slash.
        .route(
            "/transmission/rpc/",
            post(crate::transmission::rpc).get(crate::transmission::rpc_get),
        )
        .route("/metrics", get(crate::metrics::metrics))
        .merge(crate::ui::routes())
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such endpoint; see docs/api.md",
    )
}

/// Runs before every handler: Host check, basic auth, then the session-id handshake for
/// requests that change state.
async fn guard(State(app): State<AppState>, req: Request, next: Next) -> Response {
    if !host_allowed(&app, req.headers()) {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the Host header does not name this node; use http://127.0.0.1:<port>/ or listen on another address with credentials",
        )
        .into_response();
    }
    if let Some(creds) = &app.config.credentials {
        if !basic_auth_ok(creds, req.headers()) {
            let mut r = ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "this node needs a user name and password",
            )
            .into_response();
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"btt\""),
            );
            return r;
        }
    }
    let changes_state = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let rpc = req.uri().path().starts_with("/transmission/rpc");
    if (changes_state || rpc) && !session_ok(&app, req.headers()) {
        return session_conflict(&app, rpc);
    }
    next.run(req).await
}

/// A 409 carrying the current session id (Transmission's handshake).
fn session_conflict(app: &AppState, rpc: bool) -> Response {
    let mut r = if rpc {
        // Transmission's own wording and content type; some remotes match on it.
        (
            StatusCode::CONFLICT,
            [(header::CONTENT_TYPE, "text/html; charset=ISO-8859-1")],
            format!(
                "<h1>409: Conflict</h1><p>Your request had an invalid session-id header.</p><p><code>{SESSION_HEADER}: {}</code></p>",
                app.session_id
            ),
        )
            .into_response()
    } else {
        ApiError::new(
            StatusCode::CONFLICT,
            "session",
            "send the X-Transmission-Session-Id header from GET /api/v1/session or this response",
        )
        .into_response()
    };
    if let Ok(v) = HeaderValue::from_str(&app.session_id) {
        r.headers_mut().insert(SESSION_HEADER, v);
    }
    r
}

fn session_ok(app: &AppState, headers: &HeaderMap) -> bool {
    headers
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == &*app.session_id)
}

fn basic_auth_ok(creds: &Credentials, headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some(b64) = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))
    else {
        return false;
    };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(b64.trim()) else {
        return false;
    };
    let expected = format!("{}:{}", creds.username, creds.password);
    constant_time_eq(&decoded, expected.as_bytes())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// On loopback, only Host names that resolve to loopback are served, so a web page on another
/// origin cannot reach the node through DNS rebinding. Beyond loopback, credentials guard it.
fn host_allowed(app: &AppState, headers: &HeaderMap) -> bool {
    if !app.config.listen.ip().is_loopback() {
        return true;
    }
    match headers.get(header::HOST).and_then(|v| v.to_str().ok()) {
        Some(host) => host_is_loopback(host),
        // HTTP/1.0 clients may omit it; browsers never do.
        None => true,
    }
}

/// Whether a Host header (`name[:port]`, `[v6][:port]`) names a loopback address.
fn host_is_loopback(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((name, _)) => name,
            None => return false,
        },
        None => host.split(':').next().unwrap_or(""),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// An error answer: a status and `{"error": {"code", "message"}}`.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// A short machine-readable code.
    pub code: &'static str,
    /// What went wrong and what to do.
    pub message: String,
}

impl ApiError {
    /// An error with a status, a code and a message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400 with a message.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({"error": {"code": self.code, "message": self.message}})),
        )
            .into_response()
    }
}

impl From<LibraryError> for ApiError {
    fn from(e: LibraryError) -> Self {
        let (status, code) = match &e {
            LibraryError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            LibraryError::Duplicate { .. } => (StatusCode::CONFLICT, "duplicate"),
            LibraryError::BadTorrent(_)
            | LibraryError::BadMagnet(_)
            | LibraryError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            LibraryError::Io(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        Self::new(status, code, e.to_string())
    }
}

impl From<axum::extract::rejection::BytesRejection> for ApiError {
    fn from(e: axum::extract::rejection::BytesRejection) -> Self {
        let status = e.status();
        let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "too_large"
        } else {
            "bad_request"
        };
        Self::new(status, code, e.body_text())
    }
}

/// Parses a JSON body into `T` with an [`ApiError`] that says what is wrong.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_check() {
        for ok in [
            "127.0.0.1:9091",
            "localhost",
            "LOCALHOST:1",
            "[::1]:9091",
            "127.1.2.3",
        ] {
            assert!(host_is_loopback(ok), "{ok}");
        }
        for bad in [
            "evil.example:9091",
            "10.0.0.1:9091",
            "[::1",
            "localhost.evil.com",
            "",
        ] {
            assert!(!host_is_loopback(bad), "{bad}");
        }
    }

    #[test]
    fn constant_time_compare() {
        assert!(constant_time_eq(b"a:b", b"a:b"));
        assert!(!constant_time_eq(b"a:b", b"a:c"));
        assert!(!constant_time_eq(b"a:b", b"a:bb"));
    }

    #[test]
    fn basic_auth_parsing() {
        let creds = Credentials {
            username: "u".into(),
            password: "p:w".into(),
        };
        let mut h = HeaderMap::new();
        assert!(!basic_auth_ok(&creds, &h));
        let good = base64::engine::general_purpose::STANDARD.encode("u:p:w");
        h.insert(
            header::AUTHORIZATION,
            format!("Basic {good}").parse().unwrap(),
        );
        assert!(basic_auth_ok(&creds, &h));
        let bad = base64::engine::general_purpose::STANDARD.encode("u:p");
        h.insert(
            header::AUTHORIZATION,
            format!("Basic {bad}").parse().unwrap(),
        );
        assert!(!basic_auth_ok(&creds, &h));
        h.insert(header::AUTHORIZATION, "Basic !!!".parse().unwrap());
        assert!(!basic_auth_ok(&creds, &h));
    }
}
