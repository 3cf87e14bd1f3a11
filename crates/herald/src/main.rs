//! `herald`: the command-line entry point. Glue only: parse flags, load the layered
//! configuration, and call into the library crates.

use std::path::PathBuf;

// jemalloc instead of glibc's malloc: the server allocates many small, short-lived
// buffers across threads (requests, JSON, headers), where glibc spent ~10 % of the
// workers' time in a profile. jemalloc rather than mimalloc (used before): the same
// CPU per message, and its background thread hands freed memory back to the system
// while the server is idle, where mimalloc kept it (100,000 endpoints: peak RSS 111 MB
// against 158, see BENCHMARKS.md "Memory with many tenants"). It serves C's `malloc`
// too (the crate's unprefixed feature), so SQLite's freed page caches go back as well.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use herald::config::{Config, Overrides, Role, DEFAULTS};
use herald::server::Server;

#[derive(Parser)]
#[command(
    name = "herald",
    version,
    about = "Herald: a self-hosted webhook platform in one binary",
    long_about = "Herald accepts events through a Svix-compatible v1 API and delivers them as signed \
                  webhooks (Standard Webhooks), durably, with retries and a full attempt log.\n\n\
                  Start with `herald serve`: it needs no setup and keeps everything in ./herald-data."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where the server's configuration and data are: flags of the commands that run on
/// the server's machine (serve, migrate, token, rotate-main-key), not of the client
/// commands, which talk to a server over HTTP.
#[derive(clap::Args)]
struct ServerFiles {
    /// A TOML config file (keys as in `herald config`). Also HERALD_CONFIG.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Where Herald keeps its data. Also HERALD_DATA_DIR. Default ./herald-data.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

impl ServerFiles {
    fn apply(self, overrides: &mut Overrides) {
        overrides.config_file = self.config;
        overrides.data_dir = self.data_dir;
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run the server: the management API and the delivery engine, on the embedded store.
    ///
    /// On first start it creates the data directory and the database, and prints an
    /// admin token once (unless HERALD_ADMIN_TOKEN is set).
    Serve {
        /// Address to listen on, e.g. 127.0.0.1:8071 or 0.0.0.0:8071. Also HERALD_LISTEN.
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
        #[command(flatten)]
        db: DatabaseFlags,
        /// What this node does: all, api (ingest only) or worker (deliveries only).
        /// Also HERALD_ROLE. Roles other than all need --database-url.
        #[arg(long, value_enum)]
        role: Option<Role>,
        /// Development mode: let deliveries reach loopback (127.0.0.0/8, ::1), for
        /// receivers on this machine. Never on a server others can reach.
        #[arg(long)]
        dev: bool,
    },
    /// Create or upgrade the database schema, then exit (`serve` also does it at start).
    Migrate {
        #[command(flatten)]
        db: DatabaseFlags,
    },
    /// Manage API tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Print the configuration defaults, with comments (a starting point for a config file).
    Config,
    /// Print a new random main key (base64), for HERALD_MAIN_KEY.
    Keygen,
    /// Verify a captured webhook request against a secret: exit 0 when it verifies,
    /// 1 when it does not (with a one-line reason), 2 on a usage error. Schemes: standard-webhooks, github, stripe,
    /// shopify, slack, square, twilio, paddle, zoom, linear, gitlab, discord, hmac (hmac-sha256),
    /// none.
    Verify(Box<VerifyArgs>),
    /// Forward deliveries to a local app while developing, like `stripe listen`: opens a
    /// listen session on a Herald server and prints each delivery and the app's answer.
    Listen(Box<herald::cli::listen::ListenArgs>),
    /// Applications (list, create, get, update, delete).
    App {
        #[command(subcommand)]
        op: herald::cli::commands::AppOp,
        #[command(flatten)]
        out: herald::cli::commands::Output,
    },
    /// Endpoints (list, create, get, update, delete, secret, replay).
    Endpoint {
        #[command(subcommand)]
        op: herald::cli::commands::EndpointOp,
        #[command(flatten)]
        out: herald::cli::commands::Output,
    },
    /// Event types (list, create, get, delete).
    EventType {
        #[command(subcommand)]
        op: herald::cli::commands::EventTypeOp,
        #[command(flatten)]
        out: herald::cli::commands::Output,
    },
    /// Messages (list, get).
    Message {
        #[command(subcommand)]
        op: herald::cli::commands::MessageOp,
        #[command(flatten)]
        out: herald::cli::commands::Output,
    },
    /// Delivery attempts (list, resend).
    Attempt {
        #[command(subcommand)]
        op: herald::cli::commands::AttemptOp,
        #[command(flatten)]
        out: herald::cli::commands::Output,
    },
    /// People who sign in to the console (list, add, remove, set-role); an admin token.
    User {
        #[command(subcommand)]
        op: herald::cli::commands::UserOp,
        #[command(flatten)]
        out: herald::cli::commands::Output,
    },
    /// Inbound sources (list, create, get, delete, requests).
    Source {
        #[command(subcommand)]
        op: herald::cli::commands::SourceOp,
        #[command(flatten)]
        out: herald::cli::commands::Output,
    },
    /// Send a message: herald send <event-type> --app APP --data @payload.json.
    Send {
        #[command(flatten)]
        args: herald::cli::commands::SendArgs,
        #[command(flatten)]
        out: herald::cli::commands::Output,
    },
    /// Re-seal every endpoint signing key with a new main key. With the key file, a new
    /// key is generated and written there; with HERALD_MAIN_KEY, set the new key there and
    /// the old one in HERALD_PREVIOUS_MAIN_KEYS first. Stop the embedded-store server
    /// before running it.
    RotateMainKey {
        #[command(flatten)]
        db: DatabaseFlags,
    },
}

#[derive(clap::Args)]
struct VerifyArgs {
    /// The provider's signature scheme.
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(herald_core::inbound::SCHEMES))]
    scheme: String,
    /// The signing secret (for discord: the application's public key in hex). Its value
    /// in the environment is never shown by --help.
    #[arg(long, env = "HERALD_VERIFY_SECRET", hide_env_values = true)]
    secret: String,
    /// A header as "Name: value"; repeat for more.
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
    headers: Vec<String>,
    /// A file of "Name: value" lines (a status line such as "HTTP/1.1 200" is skipped).
    #[arg(long, value_name = "FILE")]
    headers_file: Option<PathBuf>,
    /// The raw body; without it, standard input is read.
    #[arg(long, value_name = "FILE")]
    body_file: Option<PathBuf>,
    /// The full URL the provider called (square and twilio sign it).
    #[arg(long)]
    url: Option<String>,
    /// Largest accepted clock difference for schemes with timestamps, in seconds.
    #[arg(long, default_value_t = 300)]
    tolerance: i64,
    /// hmac-sha256: the header that carries the signature.
    #[arg(long, default_value = "X-Signature")]
    signature_header: String,
    /// hmac-sha256: text before the signature in that header (e.g. "sha256=").
    #[arg(long, default_value = "")]
    signature_prefix: String,
    /// hmac-sha256: hex or base64.
    #[arg(long, default_value = "hex", value_parser = ["hex", "base64"])]
    signature_encoding: String,
    /// hmac: sha1, sha256 or sha512.
    #[arg(long, default_value = "sha256", value_parser = ["sha1", "sha256", "sha512"])]
    signature_algorithm: String,
    /// hmac: a header with the Unix timestamp; the signed text is then "{timestamp}.{body}".
    #[arg(long)]
    timestamp_header: Option<String>,
}

/// A small runtime for the client commands (they make a few HTTP calls).
fn client_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// `herald verify`: prints one line and exits 0 (verified) or 1 (not verified). An
/// error it returns is a usage error (a file it cannot read, a malformed header or
/// secret): exit 2, like clap's own.
fn verify_command(args: VerifyArgs) -> anyhow::Result<()> {
    use herald_core::inbound::{verify, CapturedRequest, GenericHmac};
    use std::io::Read;
    let mut lines: Vec<String> = args.headers.clone();
    if let Some(path) = &args.headers_file {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        lines.extend(text.lines().map(str::to_string));
    }
    let mut headers = Vec::new();
    for line in lines.iter().map(|l| l.trim()).filter(|l| !l.is_empty()) {
        if line.starts_with("HTTP/") {
            continue;
        }
        let (name, value) = line
            .split_once(':')
            .with_context(|| format!("'{line}' is not a header (Name: value)"))?;
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
    let body = match &args.body_file {
        Some(path) => std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
        None => {
            let mut b = Vec::new();
            std::io::stdin().read_to_end(&mut b)?;
            b
        }
    };
    let request = CapturedRequest {
        headers,
        body,
        url: args.url.clone(),
    };
    let generic = GenericHmac {
        header: args.signature_header,
        prefix: args.signature_prefix,
        encoding: args.signature_encoding,
        algorithm: args.signature_algorithm,
        timestamp_header: args.timestamp_header,
    };
    if args.scheme == "standard-webhooks" {
        herald_core::secret::VerifyingSecret::parse(&args.secret).map_err(|e| {
            anyhow::anyhow!("--secret is not a Standard Webhooks secret (whsec_…, or whpk_/whsk_ for ed25519): {e}")
        })?;
    }
    let now = herald_core::time::now_ms() / 1000;
    match verify(
        &args.scheme,
        &args.secret,
        &request,
        now,
        args.tolerance,
        &generic,
    ) {
        Ok(()) => {
            herald::outln!("verified: the {} signature matches", args.scheme);
            Ok(())
        }
        Err(reason) => {
            herald::outln!("not verified: {reason}");
            std::process::exit(1);
        }
    }
}

#[derive(clap::Args)]
struct DatabaseFlags {
    /// Keep everything in PostgreSQL (postgres://user@host/db) instead of the embedded
    /// SQLite store. Also HERALD_DATABASE_URL.
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
    /// Wait up to SECS for the database to accept connections instead of failing at
    /// once. Also HERALD_WAIT_FOR_DB_SECS.
    #[arg(long, value_name = "SECS")]
    wait_for_db: Option<u64>,
    #[command(flatten)]
    files: ServerFiles,
}

impl DatabaseFlags {
    fn apply(self, overrides: &mut Overrides) {
        overrides.database_url = self.database_url;
        overrides.wait_for_db_secs = self.wait_for_db;
        self.files.apply(overrides);
    }
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create an admin API token and print it (it is stored only as a hash).
    Create {
        /// A name to recognise the token by.
        #[arg(long, default_value = "cli")]
        name: String,
        /// The environment the token is for (one of `environments`, or default); its
        /// tokens start with hrld_<environment>_.
        #[arg(long, default_value = "default")]
        environment: String,
        #[command(flatten)]
        files: ServerFiles,
    },
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("herald: error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let mut overrides = Overrides::default();
    match cli.command {
        Command::Config => {
            herald::out!("{DEFAULTS}");
            Ok(())
        }
        Command::Serve {
            listen,
            db,
            role,
            dev,
        } => {
            overrides.listen = listen;
            overrides.role = role;
            overrides.dev = dev;
            db.apply(&mut overrides);
            let config = Config::load(&overrides)?;
            init_logging(&config);
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(config.runtime_threads())
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            runtime.block_on(serve(config, dev))
        }
        Command::Verify(args) => {
            if let Err(e) = verify_command(*args) {
                eprintln!("herald: error: {e:#}");
                std::process::exit(2);
            }
            Ok(())
        }
        Command::Listen(args) => client_runtime()?.block_on(herald::cli::listen::run(*args)),
        Command::App { op, out } => client_runtime()?.block_on(herald::cli::commands::app(op, out)),
        Command::Endpoint { op, out } => {
            client_runtime()?.block_on(herald::cli::commands::endpoint(op, out))
        }
        Command::EventType { op, out } => {
            client_runtime()?.block_on(herald::cli::commands::event_type(op, out))
        }
        Command::Message { op, out } => {
            client_runtime()?.block_on(herald::cli::commands::message(op, out))
        }
        Command::Attempt { op, out } => {
            client_runtime()?.block_on(herald::cli::commands::attempt(op, out))
        }
        Command::Source { op, out } => {
            client_runtime()?.block_on(herald::cli::commands::source(op, out))
        }
        Command::User { op, out } => {
            client_runtime()?.block_on(herald::cli::commands::user(op, out))
        }
        Command::Send { args, out } => {
            client_runtime()?.block_on(herald::cli::commands::send(args, out))
        }
        Command::Keygen => {
            herald::outln!("{}", herald_core::sealing::MainKey::generate().expose());
            Ok(())
        }
        Command::RotateMainKey { db } => {
            db.apply(&mut overrides);
            let config = Config::load(&overrides)?;
            init_logging(&config);
            // The embedded store's server must be stopped: take its lock.
            let _lock = if config.database_url.is_empty() {
                Some(herald::server::lock_data_dir(&config)?)
            } else {
                None
            };
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(async {
                let mut stores = vec![herald::server::open_existing_store(&config).await?];
                for name in &config.environments {
                    stores.push(herald::server::open_environment_store(&config, name).await?);
                }
                let done = herald::rotate::rotate_main_key(&config, stores).await?;
                herald::outln!(
                    "re-sealed the signing keys of {} endpoints with main key {}",
                    done.endpoints, done.key_id
                );
                match done.key_file {
                    Some(path) => herald::outln!("the new key is in {}", path.display()),
                    None => herald::outln!(
                        "every secret is sealed with HERALD_MAIN_KEY now; HERALD_PREVIOUS_MAIN_KEYS can be removed"
                    ),
                }
                Ok(())
            })
        }
        Command::Migrate { db } => {
            db.apply(&mut overrides);
            let config = Config::load(&overrides)?;
            init_logging(&config);
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(async {
                let store = herald::server::open_existing_store(&config).await;
                let store = match store {
                    Err(e) if config.database_url.is_empty() => {
                        return Err(
                            e.context("the embedded store migrates itself at `herald serve`")
                        )
                    }
                    other => other?,
                };
                for name in &config.environments {
                    herald::server::open_environment_store(&config, name).await?;
                }
                herald::outln!("the {} schema is up to date", store.backend());
                Ok(())
            })
        }
        Command::Token {
            command:
                TokenCommand::Create {
                    name,
                    environment,
                    files,
                },
        } => {
            files.apply(&mut overrides);
            let config = Config::load(&overrides)?;
            if !config.environment_names().contains(&environment) {
                anyhow::bail!(
                    "no environment named '{environment}': this Herald has {} (the environments setting lists the others)",
                    config.environment_names().join(", ")
                );
            }
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(async {
                let store = if environment == herald_core::environment::DEFAULT {
                    herald::server::open_or_create_store(&config).await?
                } else {
                    herald::server::open_environment_store(&config, &environment).await?
                };
                let token = herald_core::token::generate_in(&environment);
                let now = herald_core::time::now_ms();
                let id = herald_core::ids::generate(herald_core::ids::TOKEN);
                store
                    .token_insert(
                        &id,
                        &herald_core::token::hash(&token),
                        &name,
                        None,
                        None,
                        now,
                        None,
                    )
                    .await?;
                herald::outln!("{token}");
                Ok(())
            })
        }
    }
}

async fn serve(config: Config, dev: bool) -> anyhow::Result<()> {
    if dev {
        tracing::warn!(
            "DEVELOPMENT MODE (--dev): deliveries may reach loopback addresses on this machine; \
             do not use --dev on a server that others can reach"
        );
    }
    let mut server = Server::start(&config).await?;
    let url = server.url();
    let data = std::fs::canonicalize(&config.data_dir).unwrap_or(config.data_dir.clone());
    // The line tests and scripts wait for; keep its shape.
    println!("herald listening on {url}");
    if server.store.is_shared() {
        println!(
            "  data:  PostgreSQL ({}), role {}",
            herald_store::postgres::describe_url(&config.database_url),
            format!("{:?}", config.role).to_lowercase()
        );
    } else if server.first_start {
        println!("  data:  {} (SQLite, created now)", data.display());
    } else {
        println!("  data:  {}", data.display());
    }
    println!("  console: {url}/console   API: {url}/api/v1   docs: {url}/docs");
    if dev {
        println!("  DEV MODE: deliveries to loopback (127.0.0.0/8, ::1) are allowed");
    }
    if let herald::keys::KeySource::Generated(path) = &server.key_source {
        println!(
            "  main key: generated {} (mode 0600); it seals endpoint signing keys. Back it up \
             apart from the database (OPERATIONS.md, \"Backups and keys\").",
            path.display()
        );
    }
    for env in &server.environments {
        match &env.new_admin_token {
            Some(token) => {
                println!("  environment {}: admin token (shown once):", env.name);
                println!("    {token}");
            }
            None => println!("  environment {}", env.name),
        }
    }
    match &server.new_admin_token {
        Some(token) => {
            println!(
                "  admin token (shown once, stored hashed; `herald token create` makes more):"
            );
            println!("    {token}");
            println!("  try:   curl -H 'Authorization: Bearer {token}' {url}/api/v1/app");
        }
        None => println!(
            "  try:   curl -H \"Authorization: Bearer $HERALD_ADMIN_TOKEN\" {url}/api/v1/app"
        ),
    }
    tokio::select! {
        r = server.wait() => return r,
        _ = shutdown_signal() => {}
    }
    tracing::info!("shutting down: no new connections; finishing attempts in flight");
    let report = server.shutdown().await;
    tracing::info!(
        in_flight = report.in_flight_at_stop,
        unfinished = report.unfinished,
        unrecorded = report.unrecorded,
        given_back = report.given_back,
        "stopped"
    );
    println!(
        "herald stopped: {} deliveries in memory at the stop, {} given back to the queue, {} attempts cut off",
        report.in_flight_at_stop, report.given_back, report.unfinished
    );
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

fn init_logging(config: &Config) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.log_level));
    // Colour only on a terminal, and never with NO_COLOR set (https://no-color.org):
    // a log file or a pipe gets plain text.
    use std::io::IsTerminal;
    let colour = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    if config.log_format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}
