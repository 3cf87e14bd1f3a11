//! Handlers, one module per resource.

pub mod apps;
pub mod attempts;
pub mod audit;
pub mod auth;
pub mod destinations;
pub mod endpoints;
pub mod environments;
pub mod event_types;
pub mod health;
pub mod messages;
pub mod people;
pub mod pollers;
pub mod sources;
pub mod sso;
pub mod tasks;
pub mod tokens;
pub mod transformations;

use herald_store::{Application, Endpoint, Message, StoreError};

use crate::error::{not_found, ApiError};
use crate::state::{ApiState, Caller};

/// Looks up an application by id or uid as the caller may see it: an app-scoped token
/// sees only its own application, and anything else is simply not found.
pub(crate) async fn visible_app(
    state: &ApiState,
    caller: &Caller,
    id_or_uid: &str,
) -> Result<Application, ApiError> {
    let app = match state.cached_app(id_or_uid) {
        Some(app) => app,
        None => {
            let app = state
                .store
                .app_get(id_or_uid)
                .await
                .map_err(named("application"))?;
            state.cache_app(&app);
            app
        }
    };
    in_scope(caller, app)
}

/// The application if the caller may see it: an application token sees only its own.
fn in_scope(caller: &Caller, app: Application) -> Result<Application, ApiError> {
    match &caller.app_id {
        Some(scope) if scope != &app.id => Err(not_found("application")),
        _ => Ok(app),
    }
}

/// The application a message is posted to: like `visible_app`, but on a shared store it
/// may use an application id looked up within the last two seconds (see
/// `ApiState::cached_app_id_for_ingest`), which saves a database read per message.
pub(crate) async fn ingest_app(
    state: &ApiState,
    caller: &Caller,
    id_or_uid: &str,
) -> Result<Application, ApiError> {
    if state.store.is_shared() {
        if let Some(app) = state.cached_app_id_for_ingest(id_or_uid) {
            return in_scope(caller, app);
        }
    }
    // On a miss this reads the application and caches it (under its id and uid).
    visible_app(state, caller, id_or_uid).await
}

/// An endpoint of an application the caller may see.
pub(crate) async fn visible_endpoint(
    state: &ApiState,
    caller: &Caller,
    app_id: &str,
    endpoint_id: &str,
) -> Result<(Application, Endpoint), ApiError> {
    let app = visible_app(state, caller, app_id).await?;
    let ep = state
        .store
        .endpoint_get(&app.id, endpoint_id)
        .await
        .map_err(named("endpoint"))?;
    Ok((app, ep))
}

/// A message (by id or eventId) of an application the caller may see.
pub(crate) async fn visible_message(
    state: &ApiState,
    caller: &Caller,
    app_id: &str,
    msg_id: &str,
) -> Result<(Application, Message), ApiError> {
    let app = visible_app(state, caller, app_id).await?;
    let msg = state
        .store
        .message_get(&app.id, msg_id)
        .await
        .map_err(named("message"))?;
    Ok((app, msg))
}

/// Maps a store NotFound to a 404 naming `what`.
pub(crate) fn named(what: &'static str) -> impl Fn(StoreError) -> ApiError {
    move |e| match e {
        StoreError::NotFound => not_found(what),
        e => e.into(),
    }
}
