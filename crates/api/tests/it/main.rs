//! api integration tests: a real engine session, library and HTTP server on 127.0.0.1, driven
//! over HTTP.
#![allow(clippy::unwrap_used, missing_docs, unreachable_pub)]

mod market;
mod native;
mod transmission;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use api::client::{http_request, Reply};
use api::{Library, LibraryConfig, Server};
use engine::Session;
use serde_json::Value;

pub use engine::testkit::{config as session_config, data, make_torrent, seeder};

/// A node under test: session, library and server on one state directory.
pub struct TestNode {
    pub server: Server,
    pub library: Library,
    pub url: String,
    pub state: PathBuf,
    pub downloads: PathBuf,
}

impl TestNode {
    /// Starts a node whose state lives in `root` (reusing what is there).
    pub async fn start(root: &Path) -> TestNode {
        Self::start_with(root, None).await
    }

    /// Starts a node taking part in `market`.
    pub async fn start_with(root: &Path, market: Option<Arc<api::NodeMarket>>) -> TestNode {
        let session = Session::start(session_config(&root.join("session")))
            .await
            .unwrap();
        let downloads = root.join("downloads");
        let library = Library::open(
            session,
            LibraryConfig {
                dir: root.join("torrents"),
                download_dir: downloads.clone(),
                resume_dir: root.join("session").join("resume"),
                market,
            },
        )
        .await
        .unwrap();
        let server = Server::start(
            api::Config {
                listen: "127.0.0.1:0".parse().unwrap(),
                max_body_bytes: 1 << 20,
                ..api::Config::default()
            },
            library.clone(),
            api::chain::ChainSource::off(),
        )
        .await
        .unwrap();
        let url = format!("http://{}", server.local_addr());
        TestNode {
            server,
            library,
            url,
            state: root.to_path_buf(),
            downloads,
        }
    }

    /// Stops the server and the session (resume records written).
    pub async fn stop(self) {
        self.server.stop().await;
        self.library.shutdown().await;
    }

    /// The current session id.
    pub async fn session_id(&self) -> String {
        let (status, body) = self.raw("GET", "/api/v1/session", &[], b"").await;
        assert_eq!(status, 200);
        body["session_id"].as_str().unwrap().to_string()
    }

    /// A request with the given headers; returns status and JSON body (Null if not JSON).
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        body: &[u8],
    ) -> (u16, Value) {
        let r = self.reply(method, path, headers, body).await;
        (
            r.status,
            serde_json::from_slice(&r.body).unwrap_or(Value::Null),
        )
    }

    /// The whole reply.
    pub async fn reply(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        body: &[u8],
    ) -> Reply {
        http_request(
            method,
            &format!("{}{}", self.url, path),
            headers,
            body,
            8 << 20,
            Duration::from_secs(30),
        )
        .await
        .unwrap()
    }

    /// A request with the session id and a JSON body.
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let sid = self.session_id().await;
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        self.raw(
            method,
            path,
            &[
                (api::SESSION_HEADER, sid),
                ("Content-Type", "application/json".into()),
            ],
            &bytes,
        )
        .await
    }

    /// Polls a torrent until `cond` holds on its JSON view, or panics after `limit`.
    pub async fn wait_for(&self, id: u64, limit: Duration, cond: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let (status, body) = self
                .raw("GET", &format!("/api/v1/torrents/{id}"), &[], b"")
                .await;
            assert_eq!(status, 200, "{body}");
            if cond(&body["torrent"]) {
                return body["torrent"].clone();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "torrent {id} never reached the expected state: {body}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
