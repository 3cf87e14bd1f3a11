//! What the benchmark examples share: a release `herald serve` of their own on a fresh
//! data directory, and a call to its API that must succeed.

use std::time::Duration;

use serde_json::Value;

/// A running `herald serve --dev`, killed and its data directory removed when dropped.
pub struct HeraldServer {
    child: std::process::Child,
    dir: std::path::PathBuf,
    /// `http://127.0.0.1:{port}/api/v1`.
    pub api: String,
    token: String,
    client: reqwest::Client,
}

impl HeraldServer {
    /// Starts `binary` on `port` with `token` as its admin token, and waits until it
    /// answers.
    pub async fn start(binary: &str, port: u16, token: &str, tag: &str) -> HeraldServer {
        let dir = std::env::temp_dir().join(format!("herald-{tag}-{}", std::process::id()));
        let child = std::process::Command::new(binary)
            .args([
                "serve",
                "--dev",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
            ])
            .arg(&dir)
            .env("HERALD_ADMIN_TOKEN", token)
            .env("HERALD_LOG_LEVEL", "warn")
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("start herald");
        let server = HeraldServer {
            child,
            dir,
            api: format!("http://127.0.0.1:{port}/api/v1"),
            token: token.to_string(),
            client: reqwest::Client::new(),
        };
        for _ in 0..100 {
            let ping = format!("{}/health/ping", server.api);
            if server.client.get(ping).send().await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        server
    }

    /// The server's process id (to read its memory from /proc).
    #[allow(dead_code)] // not every example reads it
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `method path` (under `/api/v1`) with the admin token and a JSON body; panics
    /// unless it succeeds, and returns the answer.
    pub async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let r = self
            .client
            .request(method, format!("{}{path}", self.api))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.status());
        r.json::<Value>().await.unwrap()
    }
}

impl Drop for HeraldServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
