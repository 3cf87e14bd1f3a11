//! People who sign in to the console as themselves (Herald extension): an admin
//! manages them (`/person`), and each signs in with a password and, when set, a TOTP
//! code (`/session`), getting an HttpOnly, SameSite=Strict session cookie and a CSRF
//! token that every write made with the cookie must carry (`X-CSRF-Token`; checked in
//! the auth layer). A session expires after `session_ttl` and ends on sign-out or when
//! the person is removed.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use herald_core::time::{format_rfc3339, now_ms};
use herald_core::{ids, password, token, totp};
use herald_store::{Person, PersonSession, StoreError};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::apps::forbid_scoped;
use crate::dto::ListResponse;
use crate::error::{invalid, ApiError, ApiResult};
use crate::extract::{JsonBody, QueryPairs};
use crate::roles::Role;
use crate::state::{ApiState, Caller};

/// The session cookie's name.
pub(crate) const SESSION_COOKIE: &str = "herald_session";
const TOTP_ISSUER: &str = "Herald";

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PersonIn {
    pub email: String,
    /// At least 12 characters.
    pub password: String,
    /// admin, developer, support or viewer.
    pub role: String,
    /// Give them a second factor: the answer shows its secret, this once.
    #[serde(default)]
    pub totp: bool,
    /// Herald extension: their role in each other environment they may use (the role
    /// above is the default environment's).
    #[serde(default)]
    pub environments: BTreeMap<String, String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PersonPatch {
    /// A new role, password or TOTP ends the person's sessions.
    #[serde(default)]
    pub role: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    /// true: a new TOTP secret (shown this once); false: no second factor.
    #[serde(default)]
    pub totp: Option<bool>,
    /// Their roles in the other environments, replacing the ones they had (an empty
    /// object takes every other environment away).
    #[serde(default)]
    pub environments: Option<BTreeMap<String, String>>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PersonOut {
    pub id: String,
    pub email: String,
    pub role: String,
    /// Their role in each other environment they may use.
    pub environments: BTreeMap<String, String>,
    /// Whether signing in asks for a TOTP code.
    pub totp: bool,
    pub created_at: String,
    pub updated_at: String,
    /// Only in the answer that made a new TOTP secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub totp_setup: Option<TotpSetupOut>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TotpSetupOut {
    /// Base32, for typing into an authenticator app.
    pub secret: String,
    /// `otpauth://…`, for a QR code.
    pub url: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SessionIn {
    pub email: String,
    pub password: String,
    /// The TOTP code, for someone who has a second factor.
    #[serde(default)]
    pub code: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionOut {
    pub email: String,
    pub role: String,
    /// Send it as `X-CSRF-Token` with every write made with the session cookie.
    pub csrf_token: String,
    pub expires_at: String,
}

fn out(p: Person, totp_setup: Option<TotpSetupOut>) -> PersonOut {
    PersonOut {
        id: p.id,
        email: p.email,
        role: p.role,
        environments: p.environment_roles,
        totp: p.totp_secret.is_some(),
        created_at: format_rfc3339(p.created_at),
        updated_at: format_rfc3339(p.updated_at),
        totp_setup,
    }
}

fn role_of(text: &str) -> ApiResult<&'static str> {
    Role::parse(text)
        .map(Role::as_str)
        .ok_or_else(|| invalid(&["body", "role"], "admin, developer, support or viewer"))
}

/// Roles in other environments, checked: each environment must be one this Herald
/// serves (not the default, whose role is `role`), each role one of the four.
fn environment_roles(
    state: &ApiState,
    given: &BTreeMap<String, String>,
) -> ApiResult<BTreeMap<String, String>> {
    let mut roles = BTreeMap::new();
    for (env, role) in given {
        if env == herald_core::environment::DEFAULT || !state.config.environments.contains(env) {
            return Err(invalid(
                &["body", "environments"],
                format!("'{env}' is not one of this Herald's other environments"),
            ));
        }
        let role = Role::parse(role).ok_or_else(|| {
            invalid(
                &["body", "environments", env.as_str()],
                "admin, developer, support or viewer",
            )
        })?;
        roles.insert(env.clone(), role.as_str().to_string());
    }
    Ok(roles)
}

/// People are the whole Herald's, not one environment's: only the default
/// environment's admins manage them (an admin of another environment could otherwise
/// take over someone who is an admin elsewhere).
fn managed_here(state: &ApiState) -> ApiResult<()> {
    if state.config.environment == herald_core::environment::DEFAULT {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "people are managed with a token or session of the default environment".into(),
        ))
    }
}

/// A new TOTP secret for `email`: sealed for the store, and shown once.
fn new_totp(state: &ApiState, email: &str) -> (String, TotpSetupOut) {
    let secret = totp::generate_secret();
    let url = totp::otpauth_url(TOTP_ISSUER, email, &secret);
    (
        state.config.sealer.seal(&secret),
        TotpSetupOut { secret, url },
    )
}

pub async fn create(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    JsonBody(body): JsonBody<PersonIn>,
) -> ApiResult<(StatusCode, Json<PersonOut>)> {
    forbid_scoped(&caller)?;
    managed_here(&state)?;
    let email = body.email.trim().to_lowercase();
    if !(3..=254).contains(&email.len())
        || !email.contains('@')
        || email.contains(char::is_whitespace)
    {
        return Err(invalid(&["body", "email"], "an email address"));
    }
    password::check(&body.password).map_err(|m| invalid(&["body", "password"], m))?;
    let role = role_of(&body.role)?;
    let environment_roles = environment_roles(&state, &body.environments)?;
    let (sealed, setup) = match body.totp {
        true => {
            let (sealed, setup) = new_totp(&state, &email);
            (Some(sealed), Some(setup))
        }
        false => (None, None),
    };
    let now = now_ms();
    let person = Person {
        id: ids::generate(ids::PERSON),
        email,
        password_hash: password::hash(&body.password),
        role: role.to_string(),
        environment_roles,
        totp_secret: sealed,
        created_at: now,
        updated_at: now,
    };
    let person = state.people.person_insert(person).await?;
    Ok((StatusCode::CREATED, Json(out(person, setup))))
}

pub async fn list(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    q: QueryPairs,
) -> ApiResult<Json<ListResponse<PersonOut>>> {
    forbid_scoped(&caller)?;
    managed_here(&state)?;
    let page = state.people.person_list(q.list(false)?).await?;
    Ok(Json(ListResponse::from_page(page, |p| out(p, None))))
}

pub async fn patch(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(person_id): Path<String>,
    JsonBody(body): JsonBody<PersonPatch>,
) -> ApiResult<Json<PersonOut>> {
    forbid_scoped(&caller)?;
    managed_here(&state)?;
    let mut person = state.people.person_get(&person_id).await?;
    if let Some(role) = &body.role {
        person.role = role_of(role)?.to_string();
    }
    if let Some(roles) = &body.environments {
        person.environment_roles = environment_roles(&state, roles)?;
    }
    if let Some(new) = &body.password {
        password::check(new).map_err(|m| invalid(&["body", "password"], m))?;
        person.password_hash = password::hash(new);
    }
    let mut setup = None;
    match body.totp {
        Some(true) => {
            let (sealed, shown) = new_totp(&state, &person.email);
            person.totp_secret = Some(sealed);
            setup = Some(shown);
        }
        Some(false) => person.totp_secret = None,
        None => {}
    }
    // A new password, role or second factor ends the sessions opened under the old ones.
    let ends_sessions = body.password.is_some()
        || body.role.is_some()
        || body.totp.is_some()
        || body.environments.is_some();
    person.updated_at = now_ms();
    let person = state.people.person_update(person).await?;
    if ends_sessions {
        state.people.sessions_end_for(&person.id).await?;
    }
    Ok(Json(out(person, setup)))
}

/// Ends every session of someone (signed in somewhere they should not be) without
/// removing them.
pub async fn end_sessions(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(person_id): Path<String>,
) -> ApiResult<StatusCode> {
    forbid_scoped(&caller)?;
    managed_here(&state)?;
    let person = state.people.person_get(&person_id).await?;
    state.people.sessions_end_for(&person.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn delete(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(person_id): Path<String>,
) -> ApiResult<StatusCode> {
    forbid_scoped(&caller)?;
    managed_here(&state)?;
    let person = state.people.person_get(&person_id).await?;
    state.people.person_delete(&person.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Failed sign-ins allowed per email and window, on one node.
const MAX_FAILURES: u32 = 5;
const FAILURE_WINDOW_MS: i64 = 15 * 60 * 1000;

/// Refuses a sign-in for an email that failed too often lately (a password guessed by
/// trying); otherwise nothing.
fn check_failures(state: &ApiState, email: &str, now: i64) -> ApiResult<()> {
    let failures = state
        .sign_in_failures
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    match failures.get(email) {
        Some((n, since)) if *n >= MAX_FAILURES && now - since < FAILURE_WINDOW_MS => {
            Err(ApiError::TooManyRequests(format!(
                "too many failed sign-ins for this email; try again in {} minutes",
                (FAILURE_WINDOW_MS - (now - since)) / 60_000 + 1
            )))
        }
        _ => Ok(()),
    }
}

fn count_failure(state: &ApiState, email: &str, now: i64) {
    let mut failures = state
        .sign_in_failures
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if failures.len() >= 10_000 {
        failures.retain(|_, (_, since)| now - *since < FAILURE_WINDOW_MS);
    }
    let entry = failures.entry(email.to_string()).or_insert((0, now));
    if now - entry.1 >= FAILURE_WINDOW_MS {
        *entry = (0, now);
    }
    entry.0 += 1;
}

/// Signs someone in. Public: the password (and code) are the credentials.
pub async fn sign_in(
    State(state): State<Arc<ApiState>>,
    JsonBody(body): JsonBody<SessionIn>,
) -> ApiResult<Response> {
    let email = body.email.trim().to_lowercase();
    let now = now_ms();
    check_failures(&state, &email, now)?;
    let result = sign_in_checked(&state, &body).await;
    match &result {
        Err(ApiError::Unauthorized(_)) => count_failure(&state, &email, now),
        Ok(_) => {
            state
                .sign_in_failures
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&email);
        }
        Err(_) => {}
    }
    result
}

async fn sign_in_checked(state: &Arc<ApiState>, body: &SessionIn) -> ApiResult<Response> {
    let refused = || ApiError::Unauthorized("wrong email or password".into());
    let person = match state
        .people
        .person_get(&body.email.trim().to_lowercase())
        .await
    {
        Ok(p) => p,
        Err(StoreError::NotFound) => {
            // As long as a real check, so that timing does not tell who exists.
            let _ = password::verify(decoy_hash(), &body.password);
            return Err(refused());
        }
        Err(e) => return Err(e.into()),
    };
    if !password::verify(&person.password_hash, &body.password) {
        return Err(refused());
    }
    if let Some(sealed) = &person.totp_secret {
        let secret = state.config.sealer.open(sealed).map_err(|e| {
            tracing::error!(error = %e, "cannot open a TOTP secret");
            ApiError::Internal
        })?;
        let Some(code) = body.code.as_deref().filter(|c| !c.trim().is_empty()) else {
            return Err(ApiError::Unauthorized(
                "a TOTP code is needed: send it as `code`".into(),
            ));
        };
        if !totp::verify(&secret, code, now_ms() / 1000) {
            return Err(ApiError::Unauthorized("wrong TOTP code".into()));
        }
    }
    let (cookie, session) = new_session(state, &person).await?;
    let body = SessionOut {
        email: person.email,
        role: person.role,
        csrf_token: session.csrf,
        expires_at: format_rfc3339(session.expires_at),
    };
    Ok((
        StatusCode::CREATED,
        [(header::SET_COOKIE, cookie)],
        Json(body),
    )
        .into_response())
}

/// Opens a session for someone whose sign-in succeeded: its cookie (HttpOnly,
/// SameSite=Strict, Secure on https) and the session.
async fn new_session(state: &ApiState, person: &Person) -> ApiResult<(String, PersonSession)> {
    let now = now_ms();
    let secret = token::generate();
    let session = PersonSession {
        hash: token::hash(&secret),
        person_id: person.id.clone(),
        csrf: token::generate(),
        created_at: now,
        expires_at: now + state.config.session_ttl.as_millis() as i64,
    };
    state.people.session_insert(session.clone()).await?;
    let cookie = format!(
        "{SESSION_COOKIE}={secret}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{}",
        state.config.session_ttl.as_secs(),
        secure_attribute(state)
    );
    Ok((cookie, session))
}

/// `; Secure` for cookies of a server people reach over https.
pub(crate) fn secure_attribute(state: &ApiState) -> &'static str {
    if state.config.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    }
}

/// A session for someone signed in by single sign-on: its cookie (the console reads its
/// CSRF token from `GET /session`).
pub(crate) async fn open_session(state: &ApiState, person: &Person) -> ApiResult<String> {
    Ok(new_session(state, person).await?.0)
}

/// A hash no password matches, checked when nobody has the email given.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| password::hash(&token::generate()))
}

/// The signed-in person's session.
pub async fn current(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
) -> ApiResult<Json<SessionOut>> {
    let (session, person) = session_of(&state, &headers)
        .await?
        .ok_or_else(|| ApiError::Unauthorized("not signed in".into()))?;
    Ok(Json(SessionOut {
        email: person.email,
        role: person.role,
        csrf_token: session.csrf,
        expires_at: format_rfc3339(session.expires_at),
    }))
}

/// Signs out: the session ends at once, and the cookie is cleared.
pub async fn sign_out(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    if let Some(secret) = cookie(&headers, SESSION_COOKIE) {
        state.people.session_delete(&token::hash(secret)).await?;
    }
    let clear = format!("{SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, clear)]).into_response())
}

/// The session (and its person) the request's cookie names, if it is valid now.
pub(crate) async fn session_of(
    state: &ApiState,
    headers: &HeaderMap,
) -> ApiResult<Option<(PersonSession, Person)>> {
    let Some(secret) = cookie(headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    Ok(state
        .people
        .session_find(&token::hash(secret), now_ms())
        .await?)
}

/// A cookie's value from the request's `Cookie` headers.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}
