//! Layered configuration: the commented defaults file embedded in the binary, then an
//! optional TOML file, then `HERALD_*` environment variables, then command-line flags.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use serde::Deserialize;

pub const DEFAULTS: &str = include_str!("../config.default.toml");

/// Settings that are lists of strings (comma-separated in the environment).
const STRING_LISTS: &[&str] = &[
    "allowed_subnets",
    "resolve",
    "previous_main_keys",
    "environments",
];

/// What `serve --dev` opens: loopback, for receivers on the developer's machine.
pub const DEV_SUBNETS: &[&str] = &["127.0.0.0/8", "::1/128"];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub data_dir: PathBuf,
    pub listen: String,
    pub admin_token: String,
    pub admin_email: String,
    pub admin_password: String,
    pub environments: Vec<String>,
    pub log_level: String,
    pub log_format: String,
    pub max_body_bytes: usize,
    pub max_endpoints_per_app: usize,
    pub request_timeout_secs: f64,
    pub retry_schedule_secs: Vec<f64>,
    pub retry_jitter: f64,
    pub max_retry_after_secs: f64,
    pub svix_headers: bool,
    pub user_agent: String,
    pub max_in_flight: usize,
    pub max_in_flight_per_endpoint: usize,
    pub worker_threads: usize,
    pub poll_interval_ms: u64,
    pub lease_secs: f64,
    pub database_url: String,
    pub database_pool_size: usize,
    pub wait_for_db_secs: u64,
    pub role: Role,
    pub allowed_subnets: Vec<String>,
    pub https_only: bool,
    pub outbound_proxy: String,
    pub resolve: Vec<String>,
    pub public_url: String,
    pub portal_frame_ancestors: String,
    pub portal_brand_color: String,
    pub portal_logo_url: String,
    pub portal_title: String,
    pub main_key: String,
    pub main_key_file: String,
    pub previous_main_keys: Vec<String>,
    pub header_read_timeout_secs: f64,
    pub max_connections: usize,
    pub api_request_deadline_secs: f64,
    pub poll_max_wait_secs: f64,
    pub transform_threads: usize,
    pub transform_cpu_ms: f64,
    pub transform_memory_mb: f64,
    pub shutdown_grace_secs: f64,
    pub message_retention_days: f64,
    pub audit_retention_days: f64,
    pub session_hours: f64,
    pub oidc_issuer: String,
    pub oidc_client_id: String,
    pub oidc_client_secret: String,
    pub retention_sweep_secs: f64,
    pub endpoint_auto_disable_secs: f64,
    pub operational_webhooks: bool,
    pub otlp_endpoint: String,
}

/// What a node does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The API and the delivery engine.
    All,
    /// The API only: deliveries are left in the database for worker nodes.
    Api,
    /// The delivery engine only (and /api/v1/health).
    Worker,
}

impl Role {
    pub fn serves_api(self) -> bool {
        self != Role::Worker
    }

    pub fn delivers(self) -> bool {
        self != Role::Api
    }
}

/// Values given on the command line (they win over everything else).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub config_file: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
    pub listen: Option<String>,
    pub database_url: Option<String>,
    pub role: Option<Role>,
    pub wait_for_db_secs: Option<u64>,
    /// `serve --dev`: open loopback to deliveries.
    pub dev: bool,
}

impl Config {
    /// Builds the configuration from all layers, reading the process environment.
    pub fn load(flags: &Overrides) -> anyhow::Result<Config> {
        Self::load_from(flags, |k| std::env::var(k).ok())
    }

    pub fn load_from(
        flags: &Overrides,
        env: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Config> {
        let mut table: toml::Table = DEFAULTS
            .parse()
            .expect("the embedded defaults are valid TOML");
        let file = flags
            .config_file
            .clone()
            .or_else(|| env("HERALD_CONFIG").map(PathBuf::from));
        if let Some(path) = file {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading config file {}", path.display()))?;
            let overlay: toml::Table = text
                .parse()
                .with_context(|| format!("parsing config file {}", path.display()))?;
            for (key, value) in overlay {
                if !table.contains_key(&key) {
                    bail!(
                        "unknown setting '{key}' in {} (see `herald config` for the list)",
                        path.display()
                    );
                }
                table.insert(key, value);
            }
        }
        let keys: Vec<String> = table.keys().cloned().collect();
        for key in keys {
            let name = format!("HERALD_{}", key.to_ascii_uppercase());
            if let Some(raw) = env(&name) {
                let value = env_value(&key, &table[&key], &raw)
                    .with_context(|| format!("invalid value in {name}"))?;
                table.insert(key, value);
            }
        }
        if let Some(d) = &flags.data_dir {
            table.insert(
                "data_dir".into(),
                toml::Value::String(d.display().to_string()),
            );
        }
        if let Some(l) = &flags.listen {
            table.insert("listen".into(), toml::Value::String(l.clone()));
        }
        if let Some(url) = &flags.database_url {
            table.insert("database_url".into(), toml::Value::String(url.clone()));
        }
        if let Some(role) = flags.role {
            let name = format!("{role:?}").to_ascii_lowercase();
            table.insert("role".into(), toml::Value::String(name));
        }
        if let Some(secs) = flags.wait_for_db_secs {
            table.insert("wait_for_db_secs".into(), toml::Value::Integer(secs as i64));
        }
        let mut config: Config = toml::Value::Table(table)
            .try_into()
            .context("invalid configuration")?;
        if flags.dev {
            config
                .allowed_subnets
                .extend(DEV_SUBNETS.iter().map(|s| s.to_string()));
        }
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> anyhow::Result<()> {
        if !(self.request_timeout_secs > 0.0 && self.request_timeout_secs <= 30.0) {
            bail!("request_timeout_secs must be more than 0 and at most 30");
        }
        if self
            .retry_schedule_secs
            .iter()
            .any(|s| !s.is_finite() || *s < 0.0)
            || self.retry_schedule_secs.len() > 50
        {
            bail!("retry_schedule_secs holds at most 50 non-negative numbers");
        }
        if !(0.0..=1.0).contains(&self.retry_jitter) {
            bail!("retry_jitter must be between 0 and 1");
        }
        if self.max_body_bytes < 1024 {
            bail!("max_body_bytes must be at least 1024");
        }
        if self.max_in_flight == 0 || self.max_in_flight_per_endpoint == 0 {
            bail!("max_in_flight and max_in_flight_per_endpoint must be at least 1");
        }
        if herald_core::validate::custom_header_value("user-agent", &self.user_agent).is_err() {
            bail!("user_agent may only hold visible ASCII characters and spaces");
        }
        if !matches!(self.log_format.as_str(), "text" | "json") {
            bail!("log_format must be text or json");
        }
        if !(self.lease_secs.is_finite() && self.lease_secs >= self.request_timeout_secs + 5.0) {
            bail!("lease_secs must exceed request_timeout_secs by at least 5");
        }
        let url = &self.database_url;
        let postgres_or_empty =
            url.is_empty() || url.starts_with("postgres://") || url.starts_with("postgresql://");
        if !postgres_or_empty {
            bail!("database_url must be a postgres:// or postgresql:// URL");
        }
        if self.database_url.is_empty() && self.role != Role::All {
            bail!("role api or worker needs database_url: the embedded store serves one node");
        }
        self.destinations()?;
        self.resolve_overrides()?;
        if !self.outbound_proxy.is_empty()
            && !["http://", "https://", "socks5://", "socks5h://"]
                .iter()
                .any(|p| self.outbound_proxy.starts_with(p))
        {
            bail!("outbound_proxy must be an http://, https:// or socks5:// URL");
        }
        if !(self.transform_cpu_ms >= 1.0 && self.transform_cpu_ms <= 10_000.0) {
            bail!("transform_cpu_ms must be between 1 and 10000");
        }
        if !(self.transform_memory_mb >= 2.0 && self.transform_memory_mb <= 1024.0) {
            bail!("transform_memory_mb must be between 2 and 1024");
        }
        if !(0.0..=30.0).contains(&self.poll_max_wait_secs) {
            bail!("poll_max_wait_secs must be between 0 and 30");
        }
        if !(self.header_read_timeout_secs > 0.0 && self.api_request_deadline_secs > 0.0) {
            bail!("header_read_timeout_secs and api_request_deadline_secs must be more than 0");
        }
        if !self.oidc_issuer.is_empty()
            && (self.oidc_client_id.is_empty()
                || !(self.oidc_issuer.starts_with("https://")
                    || self.oidc_issuer.starts_with("http://")))
        {
            bail!("oidc_issuer must be an http(s) URL, and oidc_client_id set with it");
        }
        if !(self.session_hours > 0.0 && self.session_hours <= 24.0 * 30.0) {
            bail!("session_hours must be more than 0 and at most 720");
        }
        if self.admin_email.is_empty() != self.admin_password.is_empty() {
            bail!("admin_email and admin_password go together");
        }
        if !self.admin_password.is_empty() {
            herald_core::password::check(&self.admin_password)
                .map_err(|e| anyhow::anyhow!("admin_password: {e}"))?;
        }
        let mut seen = std::collections::HashSet::new();
        for name in &self.environments {
            herald_core::environment::check_name(name)
                .map_err(|e| anyhow::anyhow!("environments: {e}"))?;
            if name == herald_core::environment::DEFAULT {
                bail!("environments: 'default' is always there; list only the others");
            }
            if !seen.insert(name) {
                bail!("environments: '{name}' is listed twice");
            }
        }
        if self.audit_retention_days <= 0.0 {
            bail!("audit_retention_days must be more than 0");
        }
        if !(self.message_retention_days > 0.0 && self.retention_sweep_secs > 0.0) {
            bail!("message_retention_days and retention_sweep_secs must be more than 0");
        }
        if self.database_pool_size == 0 {
            bail!("database_pool_size must be at least 1");
        }
        self.ui().check().map_err(|e| anyhow::anyhow!(e))?;
        Ok(())
    }

    /// The portal's branding and embedding settings.
    pub fn ui(&self) -> herald_api::ui::UiConfig {
        herald_api::ui::UiConfig {
            portal_frame_ancestors: self.portal_frame_ancestors.clone(),
            portal_brand_color: self.portal_brand_color.clone(),
            portal_logo_url: self.portal_logo_url.clone(),
            portal_title: self.portal_title.clone(),
        }
    }

    /// Threads of the async runtime: `worker_threads`, or one per core, less one on the
    /// embedded store (its writer thread needs a core of its own), at least one.
    pub fn runtime_threads(&self) -> usize {
        if self.worker_threads > 0 {
            return self.worker_threads;
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        if self.database_url.is_empty() {
            cores.saturating_sub(1).max(1)
        } else {
            cores
        }
    }

    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("herald.db")
    }

    /// Where an environment's embedded database is: the default's is `database_path`,
    /// another's `environments/{name}.db` in the data directory.
    pub fn environment_database_path(&self, name: &str) -> PathBuf {
        if name == herald_core::environment::DEFAULT {
            self.database_path()
        } else {
            self.data_dir
                .join("environments")
                .join(format!("{name}.db"))
        }
    }

    /// Every environment this Herald serves, the default first.
    pub fn environment_names(&self) -> Vec<String> {
        std::iter::once(herald_core::environment::DEFAULT.to_string())
            .chain(self.environments.iter().cloned())
            .collect()
    }

    /// The SSRF guard's policy: global addresses plus `allowed_subnets`.
    pub fn destinations(&self) -> anyhow::Result<herald_core::netguard::DestinationPolicy> {
        let allowed = herald_core::netguard::DestinationPolicy::parse_list(&self.allowed_subnets)
            .map_err(|e| anyhow::anyhow!("allowed_subnets: {e}"))?;
        Ok(herald_core::netguard::DestinationPolicy { allowed })
    }

    /// `resolve` as (host, address) pairs.
    pub fn resolve_overrides(&self) -> anyhow::Result<Vec<(String, std::net::IpAddr)>> {
        self.resolve
            .iter()
            .map(|entry| {
                let (host, ip) = entry
                    .split_once('=')
                    .with_context(|| format!("resolve entry '{entry}' is not host=address"))?;
                let ip = ip
                    .trim()
                    .parse()
                    .with_context(|| format!("resolve entry '{entry}' has no valid address"))?;
                Ok((host.trim().to_ascii_lowercase(), ip))
            })
            .collect()
    }

    pub fn engine(
        &self,
        sealer: std::sync::Arc<herald_core::sealing::Sealer>,
    ) -> herald_engine::EngineConfig {
        let secs = |s: f64| Duration::from_secs_f64(s);
        herald_engine::EngineConfig {
            retry: herald_core::retry::RetryPolicy {
                schedule: self.retry_schedule_secs.iter().map(|s| secs(*s)).collect(),
                jitter: self.retry_jitter,
                max_retry_after: secs(self.max_retry_after_secs),
            },
            request_timeout: secs(self.request_timeout_secs),
            user_agent: if self.user_agent.is_empty() {
                format!("Herald/{}", env!("CARGO_PKG_VERSION"))
            } else {
                self.user_agent.clone()
            },
            svix_headers: self.svix_headers,
            max_in_flight: self.max_in_flight,
            max_in_flight_per_endpoint: self.max_in_flight_per_endpoint,
            poll_interval: Duration::from_millis(self.poll_interval_ms.max(10)),
            response_capture_bytes: 20 * 1024,
            lease: secs(self.lease_secs),
            destinations: std::sync::Arc::new(self.destinations().expect("checked at load")),
            https_only: self.https_only,
            resolve: self.resolve_overrides().expect("checked at load"),
            proxy: (!self.outbound_proxy.is_empty()).then(|| self.outbound_proxy.clone()),
            relay: None,
            sealer,
            auto_disable_after: (self.endpoint_auto_disable_secs > 0.0)
                .then(|| secs(self.endpoint_auto_disable_secs)),
            // Set by the server once the operational application exists.
            operational_app_id: None,
            spans: None,
            // The server shares one `Metrics` between the engine and the API, and one
            // stream signal.
            metrics: Default::default(),
            stream_signal: Default::default(),
            // Set by the server: one pool shared with the API.
            transforms: Default::default(),
        }
    }

    /// The threads that run transformations, shared by the engine and the API.
    pub fn transforms(&self) -> herald_transform::Pool {
        let threads = match self.transform_threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        herald_transform::Pool::new(
            threads,
            herald_transform::Limits {
                cpu: Duration::from_secs_f64(self.transform_cpu_ms / 1000.0),
                memory_bytes: (self.transform_memory_mb * 1024.0 * 1024.0) as usize,
                ..herald_transform::Limits::default()
            },
        )
    }

    pub fn api(
        &self,
        sealer: std::sync::Arc<herald_core::sealing::Sealer>,
    ) -> herald_api::ApiConfig {
        herald_api::ApiConfig {
            max_body_bytes: self.max_body_bytes,
            max_endpoints_per_app: self.max_endpoints_per_app,
            destinations: std::sync::Arc::new(self.destinations().expect("checked at load")),
            https_only: self.https_only,
            public_url: self.public_url.clone(),
            sealer,
            request_deadline: Duration::from_secs_f64(self.api_request_deadline_secs),
            poll_max_wait: Duration::from_secs_f64(self.poll_max_wait_secs),
            session_ttl: Duration::from_secs_f64(self.session_hours * 3600.0),
            oidc: (!self.oidc_issuer.is_empty()).then(|| herald_api::OidcConfig {
                issuer: self.oidc_issuer.clone(),
                client_id: self.oidc_client_id.clone(),
                client_secret: self.oidc_client_secret.clone(),
            }),
            ui: self.ui(),
            environments: self.environment_names(),
            ..Default::default()
        }
    }
}

/// Parses an environment value as the same TOML type as the default it replaces.
fn env_value(key: &str, default: &toml::Value, raw: &str) -> anyhow::Result<toml::Value> {
    if STRING_LISTS.contains(&key) {
        let items = raw.split(',').map(str::trim).filter(|s| !s.is_empty());
        return Ok(toml::Value::Array(
            items.map(|s| toml::Value::String(s.to_string())).collect(),
        ));
    }
    Ok(match default {
        toml::Value::String(_) => toml::Value::String(raw.to_string()),
        toml::Value::Integer(_) => match raw.trim().parse::<i64>() {
            Ok(i) => toml::Value::Integer(i),
            Err(_) => toml::Value::Float(raw.trim().parse().context("expected a number")?),
        },
        toml::Value::Float(_) => {
            toml::Value::Float(raw.trim().parse().context("expected a number")?)
        }
        toml::Value::Boolean(_) => toml::Value::Boolean(match raw.trim() {
            "true" | "1" | "yes" => true,
            "false" | "0" | "no" => false,
            _ => bail!("expected true or false"),
        }),
        toml::Value::Array(_) => toml::Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| {
                    s.parse::<f64>()
                        .map(toml::Value::Float)
                        .context("expected comma-separated numbers")
                })
                .collect::<anyhow::Result<_>>()?,
        ),
        _ => bail!("unsupported setting type"),
    })
}

/// Makes sure the data directory exists and is private to this user (0700): it holds
/// the database, the main key and the lock, none of which other users may read.
pub fn ensure_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating data directory {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("making {} private (0700)", dir.display()))?;
    }
    Ok(())
}

/// Makes the embedded database private (0600) before SQLite opens it: a new file is
/// created so, and an existing one (with its WAL and shared-memory files, which SQLite
/// creates with the database's mode) is narrowed.
pub fn make_database_private(db_path: &Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(db_path)
            .with_context(|| format!("creating {}", db_path.display()))?;
        for suffix in ["", "-wal", "-shm"] {
            let mut name = db_path.as_os_str().to_owned();
            name.push(suffix);
            let path = std::path::PathBuf::from(name);
            if path.exists() {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                    .with_context(|| format!("making {} private (0600)", path.display()))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_apply_in_order() {
        let dir = std::env::temp_dir().join(format!("herald-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("h.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:1\"\nmax_in_flight = 7\nsvix_headers = true\n",
        )
        .unwrap();
        let env = |k: &str| match k {
            "HERALD_MAX_IN_FLIGHT" => Some("9".to_string()),
            "HERALD_RETRY_SCHEDULE_SECS" => Some("1, 2.5".to_string()),
            _ => None,
        };
        let flags = Overrides {
            config_file: Some(file),
            listen: Some("127.0.0.1:2".into()),
            ..Default::default()
        };
        let c = Config::load_from(&flags, env).unwrap();
        assert_eq!(c.listen, "127.0.0.1:2");
        assert_eq!(c.max_in_flight, 9);
        assert!(c.svix_headers);
        assert_eq!(c.retry_schedule_secs, vec![1.0, 2.5]);
        assert_eq!(c.request_timeout_secs, 15.0);
    }

    #[test]
    fn rejects_unknown_keys_and_bad_values() {
        let dir = std::env::temp_dir().join(format!("herald-cfg2-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("h.toml");
        std::fs::write(&file, "lisen = \"x\"\n").unwrap();
        let flags = Overrides {
            config_file: Some(file),
            ..Default::default()
        };
        assert!(Config::load_from(&flags, |_| None)
            .unwrap_err()
            .to_string()
            .contains("unknown setting 'lisen'"));
        let env = |k: &str| (k == "HERALD_REQUEST_TIMEOUT_SECS").then(|| "99".to_string());
        assert!(Config::load_from(&Overrides::default(), env).is_err());
    }

    #[test]
    fn database_settings_are_checked_together() {
        let load = |vars: &[(&str, &str)]| {
            let vars: Vec<(String, String)> = vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            Config::load_from(&Overrides::default(), |k| {
                vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
            })
        };
        let err = load(&[("HERALD_ROLE", "api")]).unwrap_err().to_string();
        assert!(err.contains("needs database_url"), "{err}");
        let err = load(&[("HERALD_DATABASE_URL", "mysql://x/y")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("postgres://"), "{err}");
        let err = load(&[("HERALD_LEASE_SECS", "10")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("lease_secs"), "{err}");
        let ok = load(&[
            ("HERALD_DATABASE_URL", "postgres://u@h/db"),
            ("HERALD_ROLE", "worker"),
            ("HERALD_WAIT_FOR_DB_SECS", "30"),
        ])
        .unwrap();
        assert_eq!(ok.role, Role::Worker);
        assert_eq!(ok.wait_for_db_secs, 30);
        let flags = Overrides {
            database_url: Some("postgresql://u@h/other".into()),
            role: Some(Role::Api),
            ..Default::default()
        };
        let c = Config::load_from(&flags, |_| None).unwrap();
        assert_eq!(
            (c.database_url.as_str(), c.role),
            ("postgresql://u@h/other", Role::Api)
        );
    }

    #[test]
    fn the_ssrf_guard_is_closed_by_default_and_opened_on_purpose() {
        let plain = Config::load_from(&Overrides::default(), |_| None).unwrap();
        let loopback: std::net::IpAddr = "127.0.0.1".parse().unwrap();
        assert!(plain.destinations().unwrap().check(loopback).is_err());
        let dev = Overrides {
            dev: true,
            ..Default::default()
        };
        let c = Config::load_from(&dev, |_| None).unwrap();
        assert!(c.destinations().unwrap().check(loopback).is_ok());
        let env = |k: &str| match k {
            "HERALD_ALLOWED_SUBNETS" => Some("10.0.0.0/8, fd00::/8".to_string()),
            "HERALD_RESOLVE" => Some("a.test=10.0.0.1".to_string()),
            _ => None,
        };
        let c = Config::load_from(&Overrides::default(), env).unwrap();
        assert_eq!(c.allowed_subnets, ["10.0.0.0/8", "fd00::/8"]);
        assert_eq!(c.resolve_overrides().unwrap()[0].0, "a.test");
        let bad = |k: &str| (k == "HERALD_ALLOWED_SUBNETS").then(|| "10.0.0.0/40".to_string());
        let err = Config::load_from(&Overrides::default(), bad).unwrap_err();
        assert!(format!("{err:#}").contains("allowed_subnets"), "{err:#}");
    }
}
