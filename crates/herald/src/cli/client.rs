//! A small client of Herald's v1 API for the command line: where the server is and which
//! token to use come from flags, then `HERALD_URL` / `HERALD_TOKEN`, then the CLI config
//! file (`$HERALD_CLI_CONFIG`, else `~/.config/herald/cli.toml`: `server = "…"`,
//! `token = "…"`), then the local default server.

use anyhow::{bail, Context};
use serde_json::Value;

pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8071";

#[derive(Clone)]
pub struct ApiClient {
    pub server: String,
    token: String,
    http: reqwest::Client,
}

/// Server and token as given on the command line (env is read by clap).
#[derive(clap::Args, Clone, Debug, Default)]
pub struct ServerFlags {
    /// The Herald server (also HERALD_URL; default http://127.0.0.1:8071).
    #[arg(long, env = "HERALD_URL", global = true)]
    pub server: Option<String>,
    /// An API token (also HERALD_TOKEN).
    #[arg(long, env = "HERALD_TOKEN", global = true, hide_env_values = true)]
    pub token: Option<String>,
}

fn config_file() -> Option<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("HERALD_CLI_CONFIG") {
        return Some(p.into());
    }
    std::env::var_os("HOME").map(|home| std::path::Path::new(&home).join(".config/herald/cli.toml"))
}

impl ApiClient {
    pub fn new(flags: &ServerFlags) -> anyhow::Result<ApiClient> {
        let file: toml::Table = match config_file() {
            Some(path) if path.exists() => std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?
                .parse()
                .with_context(|| format!("parsing {}", path.display()))?,
            _ => toml::Table::new(),
        };
        let from_file = |key: &str| file.get(key).and_then(|v| v.as_str()).map(str::to_string);
        let server = flags
            .server
            .clone()
            .or_else(|| from_file("server"))
            .unwrap_or_else(|| DEFAULT_SERVER.to_string());
        let Some(token) = flags.token.clone().or_else(|| from_file("token")) else {
            bail!("no API token: pass --token, set HERALD_TOKEN, or put token = \"…\" in the CLI config file (herald serve prints an admin token on its first start)");
        };
        Ok(ApiClient {
            server: server.trim_end_matches('/').to_string(),
            token,
            http: reqwest::Client::new(),
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.server)
    }

    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.url(path))
            .bearer_auth(&self.token)
    }

    /// Calls the API; a non-2xx answer becomes an error with its code and detail.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let mut req = self.request(method.clone(), path);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("cannot reach the Herald server at {}", self.server))?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        let value: Value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if !status.is_success() {
            bail!(
                "{method} {path}: {}",
                describe_error(status.as_u16(), &value)
            );
        }
        Ok(value)
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.call(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }
}

/// "404 not_found: application not found", or the validation messages of a 422.
fn describe_error(status: u16, body: &Value) -> String {
    if let Some(items) = body["detail"].as_array() {
        let msgs: Vec<String> = items
            .iter()
            .map(|i| {
                let loc: Vec<&str> = i["loc"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|l| l.as_str())
                    .collect();
                format!(
                    "{}: {}",
                    loc.join("."),
                    i["msg"].as_str().unwrap_or_default()
                )
            })
            .collect();
        return format!("{status} invalid: {}", msgs.join("; "));
    }
    match (body["code"].as_str(), body["detail"].as_str()) {
        (Some(code), Some(detail)) => format!("{status} {code}: {detail}"),
        _ => format!("{status}: {body}"),
    }
}
