//! `herald listen --forward-to URL`: a development tunnel like `stripe listen`, against
//! your own Herald. It opens a listen session (an endpoint the server relays to this
//! process over Server-Sent Events), forwards each delivery to the local app with its
//! signature headers, prints the exchange, and tells the server what the app answered.
//! When the app is down the attempt fails like any other: Herald keeps the message,
//! retries it, and sends everything that waited as soon as the session reconnects.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};

use super::client::{ApiClient, ServerFlags};
use crate::outln;

#[derive(clap::Args, Debug)]
pub struct ListenArgs {
    /// The local URL deliveries are forwarded to, e.g. http://localhost:3000/webhooks.
    #[arg(long, value_name = "URL")]
    pub forward_to: String,
    /// Listen to this application's messages (default: the `herald-listen` application).
    #[arg(long, conflicts_with = "source")]
    pub app: Option<String>,
    /// Listen to what an inbound source receives (its `/in/…` URL is printed).
    #[arg(long)]
    pub source: Option<String>,
    /// The session's name: one endpoint per name, kept between runs.
    #[arg(long, default_value = "default")]
    pub name: String,
    /// Print the signing secret, to verify deliveries in the local app.
    #[arg(long)]
    pub print_secret: bool,
    #[command(flatten)]
    pub server: ServerFlags,
}

pub async fn run(args: ListenArgs) -> anyhow::Result<()> {
    let client = ApiClient::new(&args.server)?;
    url::Url::parse(&args.forward_to)
        .context("--forward-to must be a URL such as http://localhost:3000/webhooks")?;
    let local = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let mut backoff = Duration::from_secs(1);
    loop {
        let why = session(&client, &local, &args, &mut backoff).await?;
        eprintln!(
            "connection to {} lost ({why}); reconnecting in {} s",
            client.server,
            backoff.as_secs()
        );
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

/// One connected session, until the stream ends; returns why, for a retry. Errors that
/// retrying cannot fix (a bad token, an unknown application) end the command.
async fn session(
    client: &ApiClient,
    local: &reqwest::Client,
    args: &ListenArgs,
    backoff: &mut Duration,
) -> anyhow::Result<String> {
    let mut query = vec![("name", args.name.clone())];
    if let Some(app) = &args.app {
        query.push(("app", app.clone()));
    }
    if let Some(source) = &args.source {
        query.push(("source", source.clone()));
    }
    let resp = client
        .request(reqwest::Method::GET, "/listen")
        .query(&query)
        .header("accept", "text/event-stream")
        .send()
        .await;
    let mut resp = match resp {
        Ok(r) => r,
        Err(e) => return Ok(e.to_string()),
    };
    if resp.status().is_server_error() {
        return Ok(format!("the server answered {}", resp.status()));
    }
    if !resp.status().is_success() {
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        bail!(
            "the server refused the session ({status}): {}",
            body["detail"]
        );
    }
    let mut buffer = String::new();
    loop {
        let chunk = match resp.chunk().await {
            Ok(Some(c)) => c,
            Ok(None) => return Ok("the server closed the stream".into()),
            Err(e) => return Ok(e.to_string()),
        };
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let (event, data) = parse_event(&block);
            match event.as_str() {
                "ready" => {
                    *backoff = Duration::from_secs(1);
                    if data["tookOver"] == true {
                        eprintln!(
                            "note: session '{}' was connected elsewhere; this one took it over (the other was told and stopped)",
                            args.name
                        );
                    }
                    print_ready(args, &data);
                }
                // Another `herald listen` with the same --name took the session: stop
                // rather than take it back, which would only start a tug of war.
                "taken" => bail!(
                    "{}",
                    data["message"]
                        .as_str()
                        .unwrap_or("another herald listen took over this session")
                ),
                "delivery" => {
                    let (client, local, target) =
                        (client.clone(), local.clone(), args.forward_to.clone());
                    tokio::spawn(async move { forward(&client, &local, &target, data).await });
                }
                _ => {}
            }
        }
    }
}

/// The event name and its data (JSON) of one Server-Sent Events block.
fn parse_event(block: &str) -> (String, Value) {
    let mut event = String::from("message");
    let mut data = String::new();
    for line in block.lines() {
        if let Some(v) = line.strip_prefix("event:") {
            event = v.trim().to_string();
        } else if let Some(v) = line.strip_prefix("data:") {
            if !data.is_empty() {
                data.push('\n');
            }
            data.push_str(v.strip_prefix(' ').unwrap_or(v));
        }
    }
    (event, serde_json::from_str(&data).unwrap_or(Value::Null))
}

fn print_ready(args: &ListenArgs, ready: &Value) {
    outln!("Ready. Forwarding deliveries to {}", args.forward_to);
    let app = ready["appUid"]
        .as_str()
        .or(ready["appId"].as_str())
        .unwrap_or_default();
    outln!(
        "  application     {app} ({})",
        ready["appId"].as_str().unwrap_or_default()
    );
    outln!(
        "  endpoint        {}",
        ready["endpointId"].as_str().unwrap_or_default()
    );
    match ready["ingestUrl"].as_str() {
        Some(url) => outln!("  provider sends  {url}"),
        None => outln!("  send events     herald send <event-type> --app {app} --data '{{\"hello\":\"world\"}}'"),
    }
    if args.print_secret {
        outln!(
            "  signing secret  {}",
            ready["secret"].as_str().unwrap_or_default()
        );
    } else {
        outln!("  signing secret  (shown with --print-secret)");
    }
}

/// Forwards one delivery to the local app and reports the answer to the server.
async fn forward(client: &ApiClient, local: &reqwest::Client, target: &str, delivery: Value) {
    let msg_id = delivery["msgId"].as_str().unwrap_or_default().to_string();
    let body = delivery["body"].as_str().unwrap_or_default().to_string();
    let mut req = local.post(target).body(body.clone());
    for pair in delivery["headers"].as_array().into_iter().flatten() {
        if let (Some(name), Some(value)) = (pair[0].as_str(), pair[1].as_str()) {
            req = req.header(name, value);
        }
    }
    let started = Instant::now();
    let (status, answer) = match req.send().await {
        Ok(resp) => {
            let status = resp.status();
            let text = resp.text().await.unwrap_or_default();
            (status.as_u16(), text)
        }
        Err(e) => (0, describe(&e)),
    };
    let ms = started.elapsed().as_millis();
    let time = herald_core::time::format_rfc3339(herald_core::time::now_ms());
    if status == 0 {
        outln!("{time}  {msg_id}  {}  -> local app unreachable: {answer} (Herald retries it and keeps it for replay)", preview(&body));
    } else {
        outln!(
            "{time}  {msg_id}  {}  -> {status}  {ms} ms  {}",
            preview(&body),
            preview(&answer)
        );
    }
    let reply = json!({
        "requestId": delivery["requestId"],
        "status": status,
        "body": answer.chars().take(64 * 1024).collect::<String>(),
    });
    if let Err(e) = client.post("/listen/reply", &reply).await {
        eprintln!("could not report the answer for {msg_id}: {e:#}");
    }
}

fn describe(e: &reqwest::Error) -> String {
    if e.is_connect() {
        "connection refused".into()
    } else if e.is_timeout() {
        "timed out".into()
    } else {
        e.to_string()
    }
}

/// The first characters of a body, on one line.
fn preview(text: &str) -> String {
    let one_line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if one_line.chars().count() > 60 {
        format!("{}…", one_line.chars().take(60).collect::<String>())
    } else {
        one_line
    }
}
