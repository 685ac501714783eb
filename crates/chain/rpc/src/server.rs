//! The HTTP side: an axum router that takes JSON-RPC bodies on `POST /`, and a server with
//! graceful shutdown around it.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::backend::Backend;
use crate::jsonrpc::{
    error_response, handle_body, ErrorObject, Limits, INTERNAL_ERROR, INVALID_REQUEST,
};
use crate::methods::Methods;

/// Where the node listens by default, like every Ethereum node.
pub const DEFAULT_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8545);

/// Limits and switches of the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Largest request body; larger ones get HTTP 413 and a JSON-RPC error.
    pub max_body_bytes: usize,
    /// Most requests in one batch.
    pub max_batch: usize,
    /// Most blocks one `eth_getLogs` range may cover.
    pub max_log_blocks: u64,
    /// Most logs one `eth_getLogs` may return.
    pub max_logs: usize,
    /// Most blocks one `eth_feeHistory` covers (larger counts are clamped, as in geth).
    pub max_fee_history_blocks: u64,
    /// Answer browser preflights and allow any origin, so web wallets and dapps can connect.
    pub cors: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_body_bytes: 5 * 1024 * 1024,
            max_batch: 1000,
            max_log_blocks: 10_000,
            max_logs: 10_000,
            max_fee_history_blocks: 1024,
            cors: true,
        }
    }
}

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The address is taken or not ours.
    #[error("cannot listen for JSON-RPC on {addr}: {source}; choose a different RPC address")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why binding failed.
        source: std::io::Error,
    },
    /// Accepting or serving connections failed.
    #[error("JSON-RPC server failed: {0}")]
    Io(#[from] std::io::Error),
    /// The server task ended abnormally.
    #[error("JSON-RPC server task ended abnormally: {0}; this is a bug, please report it")]
    Task(String),
}

struct AppState {
    methods: Methods,
}

/// The JSON-RPC endpoint as an axum router (`POST /`, plus CORS preflight), to serve alone or to
/// nest into a larger HTTP API.
pub fn router(backend: Arc<dyn Backend>, config: Config) -> Router {
    let state = Arc::new(AppState {
        methods: Methods { backend, config },
    });
    Router::new()
        .route("/", post(handle).options(preflight))
        .with_state(state)
}

/// Serves JSON-RPC on `listener` until `shutdown` completes, then finishes in-flight requests.
pub async fn serve(
    listener: TcpListener,
    backend: Arc<dyn Backend>,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    axum::serve(listener, router(backend, config))
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

/// A running server on its own task.
#[derive(Debug)]
pub struct Server {
    local_addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), ServerError>>,
}

impl Server {
    /// Binds `addr` (port 0 picks a free port) and starts serving.
    pub async fn start(
        addr: SocketAddr,
        backend: Arc<dyn Backend>,
        config: Config,
    ) -> Result<Self, ServerError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Bind { addr, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| ServerError::Bind { addr, source })?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, backend, config, async move {
            let _ = stopped.await;
        }));
        tracing::info!(%local_addr, "JSON-RPC server listening");
        Ok(Self {
            local_addr,
            stop,
            task,
        })
    }

    /// The address the server listens on.
    pub const fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting connections and waits for in-flight requests to finish.
    pub async fn stop(self) -> Result<(), ServerError> {
        let _ = self.stop.send(());
        self.task
            .await
            .map_err(|e| ServerError::Task(e.to_string()))?
    }
}

async fn handle(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    let config = &state.methods.config;
    let max = config.max_body_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let too_large = |size: Option<u64>| {
        let size = size.map_or_else(|| "larger".to_owned(), |s| format!("{s} bytes,"));
        let err = ErrorObject::new(
            INVALID_REQUEST,
            format!("request body is {size} over the {max} byte limit; send smaller batches"),
        );
        json(
            StatusCode::PAYLOAD_TOO_LARGE,
            error_response(None, &err),
            config.cors,
        )
    };
    if declared.is_some_and(|n| n > max as u64) {
        return too_large(declared);
    }
    let Ok(bytes) = axum::body::to_bytes(body, max).await else {
        return too_large(None);
    };
    let limits = Limits {
        max_batch: config.max_batch,
    };
    let worker = Arc::clone(&state);
    // The backend is synchronous and eth_call may run the EVM: keep it off the async workers.
    let answer = tokio::task::spawn_blocking(move || {
        handle_body(&bytes, limits, |method, params| {
            worker.methods.call(method, params)
        })
    })
    .await;
    match answer {
        Ok(Some(body)) => json(StatusCode::OK, body, config.cors),
        Ok(None) => with_cors(StatusCode::OK.into_response(), config.cors),
        Err(e) => {
            tracing::error!(error = %e, "JSON-RPC request handler panicked");
            let err =
                ErrorObject::new(INTERNAL_ERROR, "internal error: the request handler failed");
            json(
                StatusCode::INTERNAL_SERVER_ERROR,
                error_response(None, &err),
                config.cors,
            )
        }
    }
}

async fn preflight(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if !state.methods.config.cors {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    let h = response.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST, OPTIONS"),
    );
    let allow_headers = headers
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static("content-type"));
    h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, allow_headers);
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("86400"),
    );
    with_cors(response, true)
}

fn json(status: StatusCode, body: String, cors: bool) -> Response {
    let response = (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response();
    with_cors(response, cors)
}

fn with_cors(mut response: Response, cors: bool) -> Response {
    if cors {
        response.headers_mut().insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
    }
    response
}
