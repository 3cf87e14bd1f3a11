//! `herald listen` sessions, server side. A session is an endpoint of an application
//! (uid `listen-{name}`, URL `herald-listen:listen-{name}`) plus, while the CLI is
//! connected, a Server-Sent Events stream. The engine hands the endpoint's signed
//! deliveries to the [`ListenHub`] (it implements `herald_core::relay::Relay`), which
//! sends each down the stream and waits for the CLI to post back what the local app
//! answered. Everything else (attempt log, retries, replay) is the ordinary engine's.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::IntoResponse;
use axum::Extension;
use herald_core::relay::{Relay, RelayFuture, RelayRequest, RelayResponse, SCHEME};
use herald_core::secret::Secret;
use herald_core::{ids, time::now_ms};
use herald_store::{Application, Endpoint, StoreError, StoredSecret};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::{mpsc, oneshot};

use crate::error::{invalid, ApiError, ApiResult};
use crate::extract::QueryPairs;
use crate::routes::visible_app;
use crate::state::{ApiState, Caller};

/// Deliveries waiting to be written to a session's stream.
const STREAM_BUFFER: usize = 64;
/// The application `herald listen` uses when given none.
pub const DEFAULT_APP_UID: &str = "herald-listen";

/// An open stream: where its events go, and the hash of the token that opened it (only
/// that token may answer its deliveries).
struct Stream {
    events: mpsc::Sender<Event>,
    token_hash: String,
}

/// A delivery sent down a stream and not answered yet.
struct Waiting {
    endpoint_id: String,
    token_hash: String,
    answer: oneshot::Sender<RelayResponse>,
}

#[derive(Default)]
struct Sessions {
    /// Open streams by endpoint id.
    streams: HashMap<String, Stream>,
    /// Unanswered deliveries by request id.
    waiting: HashMap<String, Waiting>,
}

/// The connected `herald listen` sessions of this node.
#[derive(Clone, Default)]
pub struct ListenHub {
    sessions: Arc<Mutex<Sessions>>,
}

impl std::fmt::Debug for ListenHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ListenHub")
    }
}

/// Removes a session when its stream ends (the CLI went away), failing what waited on it.
struct SessionGuard {
    hub: ListenHub,
    endpoint_id: String,
    stream: mpsc::WeakSender<Event>,
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        let mut s = self.hub.lock();
        // Only if a newer session has not replaced this one.
        let ours = s.streams.get(&self.endpoint_id).is_some_and(|open| {
            self.stream
                .upgrade()
                .is_some_and(|mine| mine.same_channel(&open.events))
        });
        // A session taken over leaves the newer one's deliveries alone.
        if ours {
            s.streams.remove(&self.endpoint_id);
            s.waiting.retain(|_, w| w.endpoint_id != self.endpoint_id);
        }
    }
}

/// Forgets a delivery that stopped waiting (timed out or answered).
struct WaitGuard {
    hub: ListenHub,
    request_id: String,
}

impl Drop for WaitGuard {
    fn drop(&mut self) {
        self.hub.lock().waiting.remove(&self.request_id);
    }
}

impl ListenHub {
    fn lock(&self) -> std::sync::MutexGuard<'_, Sessions> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens (or takes over) the session of an endpoint for the caller with `token_hash`.
    /// A session already connected is told plainly that it was taken over (a `taken`
    /// event, then its stream ends), so that two `herald listen` with one name do not
    /// take it from each other forever; returns whether one was.
    fn open(
        &self,
        endpoint_id: &str,
        token_hash: &str,
        name: &str,
    ) -> (mpsc::Receiver<Event>, SessionGuard, bool) {
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let guard = SessionGuard {
            hub: self.clone(),
            endpoint_id: endpoint_id.to_string(),
            stream: tx.downgrade(),
        };
        // A previous stream of the same session ends when its sender is dropped here,
        // after the `taken` event.
        let previous = self.lock().streams.insert(
            endpoint_id.to_string(),
            Stream {
                events: tx,
                token_hash: token_hash.to_string(),
            },
        );
        let took_over = previous.is_some_and(|old| {
            let taken = Event::default().event("taken").data(
                json!({
                    "message": format!(
                        "another herald listen took over session '{name}'; to run both, give each its own --name"
                    ),
                })
                .to_string(),
            );
            // A stream too far behind to take the event is cut off all the same.
            let _ = old.events.try_send(taken);
            true
        });
        (rx, guard, took_over)
    }

    /// Passes the local app's answer to the delivery waiting for it, if `token_hash`
    /// is the token of the session it was sent to.
    fn answer(&self, request_id: &str, token_hash: &str, response: RelayResponse) -> bool {
        let mut s = self.lock();
        let theirs = s
            .waiting
            .get(request_id)
            .is_some_and(|w| w.token_hash == token_hash);
        if !theirs {
            return false;
        }
        match s.waiting.remove(request_id) {
            Some(w) => w.answer.send(response).is_ok(),
            None => false,
        }
    }
}

impl Relay for ListenHub {
    fn relay(&self, request: RelayRequest) -> RelayFuture {
        let hub = self.clone();
        Box::pin(async move {
            let (stream, token_hash) = hub
                .lock()
                .streams
                .get(&request.endpoint_id)
                .filter(|open| !open.events.is_closed())
                .map(|open| (open.events.clone(), open.token_hash.clone()))
                .ok_or("no herald listen session is connected for this endpoint")?;
            // Random, not time-ordered: nobody but the session's CLI learns it.
            let request_id = format!("lreq_{}", ids::random_base62(32));
            let (tx, rx) = oneshot::channel();
            hub.lock().waiting.insert(
                request_id.clone(),
                Waiting {
                    endpoint_id: request.endpoint_id.clone(),
                    token_hash,
                    answer: tx,
                },
            );
            let _forget = WaitGuard {
                hub: hub.clone(),
                request_id: request_id.clone(),
            };
            let data = json!({
                "requestId": request_id,
                "msgId": request.msg_id,
                "headers": request.headers,
                "body": request.body,
            });
            let event = Event::default().event("delivery").data(data.to_string());
            stream
                .send(event)
                .await
                .map_err(|_| "the herald listen session disconnected".to_string())?;
            rx.await
                .map_err(|_| "the herald listen session disconnected before answering".to_string())
        })
    }
}

/// Finds or makes the application a session listens on: a source's, the given one, or
/// (admin only) the default `herald-listen` application.
async fn session_app(
    state: &ApiState,
    caller: &Caller,
    q: &QueryPairs,
) -> ApiResult<(Application, Option<String>)> {
    if let Some(source_id) = q.get("source") {
        if caller.app_id.is_some() {
            return Err(ApiError::NotFound("not found".into()));
        }
        let source = state.store.source_get(source_id).await?;
        let app = state.store.app_get(&source.app_id).await?;
        let ingest = format!(
            "{}/in/{}",
            state.config.public_url.trim_end_matches('/'),
            source.id
        );
        return Ok((app, Some(ingest)));
    }
    if let Some(app_id) = q.get("app") {
        return Ok((visible_app(state, caller, app_id).await?, None));
    }
    if caller.app_id.is_some() {
        return Err(invalid(
            &["query", "app"],
            "an application token must name its application",
        ));
    }
    match state.store.app_get(DEFAULT_APP_UID).await {
        Ok(app) => Ok((app, None)),
        Err(StoreError::NotFound) => {
            let now = now_ms();
            let app = Application {
                id: ids::generate(ids::APP),
                uid: Some(DEFAULT_APP_UID.into()),
                name: "herald listen".into(),
                throttle_rate: None,
                metadata: Default::default(),
                created_at: now,
                updated_at: now,
            };
            match state.store.app_insert(app).await {
                Ok(app) => Ok((app, None)),
                Err(StoreError::Conflict(_)) => {
                    Ok((state.store.app_get(DEFAULT_APP_UID).await?, None))
                }
                Err(e) => Err(e.into()),
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// The session's endpoint, made on first use.
async fn session_endpoint(state: &ApiState, app: &Application, name: &str) -> ApiResult<Endpoint> {
    let uid = format!("listen-{name}");
    match state.store.endpoint_get(&app.id, &uid).await {
        Ok(ep) => return Ok(ep),
        Err(StoreError::NotFound) => {}
        Err(e) => return Err(e.into()),
    }
    let now = now_ms();
    let key = Secret::generate_hmac().expose();
    let ep = Endpoint {
        id: ids::generate(ids::ENDPOINT),
        app_id: app.id.clone(),
        uid: Some(uid.clone()),
        url: format!("{SCHEME}{uid}"),
        description: format!("herald listen session '{name}'"),
        disabled: false,
        event_types: None,
        channels: None,
        throttle_rate: None,
        metadata: Default::default(),
        headers: Default::default(),
        secrets: vec![StoredSecret {
            key: state.config.sealer.seal(&key),
            expires_at: None,
        }],
        ordered: false,
        payload_filter: None,
        transformation: None,
        created_at: now,
        updated_at: now,
    };
    match state
        .store
        .endpoint_insert(ep, state.config.max_endpoints_per_app)
        .await
    {
        Ok(ep) => Ok(ep),
        Err(StoreError::Conflict(_)) => Ok(state.store.endpoint_get(&app.id, &uid).await?),
        Err(e) => Err(e.into()),
    }
}

/// `GET /api/v1/listen?app=…|source=…&name=…`: the session's event stream. The first
/// event, `ready`, says where to send and how deliveries are signed; then one
/// `delivery` event per attempt, each to be answered with `POST /api/v1/listen/reply`.
pub async fn stream(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    q: QueryPairs,
) -> ApiResult<impl IntoResponse> {
    let name = q.get("name").unwrap_or("default");
    if name.is_empty()
        || name.len() > 60
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(invalid(
            &["query", "name"],
            "name is 1 to 60 letters, digits, '-' or '_'",
        ));
    }
    let (app, ingest_url) = session_app(&state, &caller, &q).await?;
    let ep = session_endpoint(&state, &app, name).await?;
    let secret = ep
        .secrets
        .first()
        .and_then(|s| state.config.sealer.open(&s.key).ok())
        .ok_or(ApiError::Internal)?;
    let (rx, guard, took_over) = state.config.listen.open(&ep.id, &caller.token_hash, name);
    // What waited for the session (sent while it was away) goes now.
    let now = now_ms();
    state.store.deliveries_due_now(&ep.id, now).await?;
    let ready = Event::default().event("ready").data(
        json!({
            "appId": app.id,
            "appUid": app.uid,
            "endpointId": ep.id,
            "secret": secret,
            "ingestUrl": ingest_url,
            "tookOver": took_over,
        })
        .to_string(),
    );
    let events = futures_util::stream::unfold(
        (Some(ready), rx, guard),
        |(first, mut rx, guard)| async move {
            let event = match first {
                Some(ready) => ready,
                None => rx.recv().await?,
            };
            Some((Ok::<_, Infallible>(event), (None, rx, guard)))
        },
    );
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListenReplyIn {
    pub request_id: String,
    /// The local app's status code; 0 when it could not be reached.
    pub status: u16,
    /// Its response body (or why it could not be reached).
    #[serde(default)]
    pub body: String,
}

/// `POST /api/v1/listen/reply`: what the local app answered to one delivery.
pub async fn reply(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    crate::extract::JsonBody(body): crate::extract::JsonBody<ListenReplyIn>,
) -> ApiResult<StatusCode> {
    let answered = state.config.listen.answer(
        &body.request_id,
        &caller.token_hash,
        RelayResponse {
            status: body.status,
            body: body.body,
        },
    );
    if answered {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(
            "no delivery is waiting for this requestId (it timed out or was answered)".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_the_session_that_got_a_delivery_answers_it() {
        let hub = ListenHub::default();
        let request = RelayRequest {
            endpoint_id: "ep_1".into(),
            msg_id: "msg_1".into(),
            headers: vec![],
            body: "{}".into(),
        };
        // No session: the attempt fails at once.
        assert!(hub.relay(request.clone()).await.is_err());

        let (mut events, _guard, _) = hub.open("ep_1", "hash-of-token-a", "default");
        let pending = tokio::spawn(hub.relay(request));
        let _delivery = events.recv().await.expect("the delivery is streamed");
        let request_id = hub.lock().waiting.keys().next().cloned().unwrap();
        assert!(request_id.starts_with("lreq_") && request_id.len() > 30);
        let answer = |status| RelayResponse {
            status,
            body: String::new(),
        };
        // Another token cannot answer it; the session's token can, once.
        assert!(!hub.answer(&request_id, "hash-of-token-b", answer(500)));
        assert!(hub.answer(&request_id, "hash-of-token-a", answer(204)));
        assert!(!hub.answer(&request_id, "hash-of-token-a", answer(204)));
        assert_eq!(pending.await.unwrap().unwrap().status, 204);
    }

    #[tokio::test]
    async fn a_second_session_of_a_name_takes_over_and_the_first_is_told() {
        let hub = ListenHub::default();
        let (mut first, first_guard, took_over) = hub.open("ep_1", "h1", "dev");
        assert!(!took_over);
        let (_second, _second_guard, took_over) = hub.open("ep_1", "h2", "dev");
        assert!(took_over);
        // The first stream gets one last event, then ends.
        assert!(first.recv().await.is_some(), "the taken event");
        assert!(first.recv().await.is_none(), "then the stream ends");
        drop(first_guard);
        assert!(
            hub.lock().streams.contains_key("ep_1"),
            "the first going away leaves the second's session open"
        );
    }

    #[tokio::test]
    async fn a_session_that_goes_away_fails_what_waited_on_it() {
        let hub = ListenHub::default();
        let (mut events, guard, _) = hub.open("ep_1", "h", "default");
        let pending = tokio::spawn(hub.relay(RelayRequest {
            endpoint_id: "ep_1".into(),
            msg_id: "msg_1".into(),
            headers: vec![],
            body: "{}".into(),
        }));
        let _delivery = events.recv().await.unwrap();
        drop(guard);
        drop(events);
        assert!(pending.await.unwrap().is_err());
        // And later deliveries find no session.
        let later = hub.relay(RelayRequest {
            endpoint_id: "ep_1".into(),
            msg_id: "msg_2".into(),
            headers: vec![],
            body: "{}".into(),
        });
        assert!(later.await.is_err());
    }
}
