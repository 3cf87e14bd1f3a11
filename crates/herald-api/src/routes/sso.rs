//! Single sign-on with an OpenID Connect provider (authorization code with PKCE), for
//! people Herald already knows: the provider vouches for an email, and the person with
//! that email (and their role) is signed in, as with a password.
//!
//! Nothing is kept on the server between the two legs: the state, nonce and PKCE
//! verifier travel in a short-lived HttpOnly cookie sealed with the main key, so the
//! callback may reach any node.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use herald_core::oidc;
use herald_core::time::now_ms;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult};
use crate::extract::QueryPairs;
use crate::state::ApiState;

/// The provider Herald signs people in with.
#[derive(Clone, Debug)]
pub struct OidcConfig {
    /// The issuer URL (its discovery document is `{issuer}/.well-known/openid-configuration`).
    pub issuer: String,
    pub client_id: String,
    /// Empty for a public client (PKCE alone).
    pub client_secret: String,
}

const FLOW_COOKIE: &str = "herald_sso";
/// How long the provider may take to send the person back.
const FLOW_SECS: i64 = 600;

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SsoOut {
    pub enabled: bool,
    pub issuer: Option<String>,
}

/// What travels between the two legs, sealed.
#[derive(Serialize, Deserialize)]
struct Flow {
    state: String,
    nonce: String,
    verifier: String,
    expires: i64,
}

fn config(state: &ApiState) -> ApiResult<&OidcConfig> {
    state
        .config
        .oidc
        .as_ref()
        .ok_or_else(|| ApiError::NotFound("single sign-on is not configured (oidc_issuer)".into()))
}

fn redirect_uri(state: &ApiState) -> String {
    format!(
        "{}/api/v1/sso/callback",
        state.config.public_url.trim_end_matches('/')
    )
}

/// Whether single sign-on is on (the console shows its button).
pub async fn info(State(state): State<Arc<ApiState>>) -> Json<SsoOut> {
    Json(SsoOut {
        enabled: state.config.oidc.is_some(),
        issuer: state.config.oidc.as_ref().map(|o| o.issuer.clone()),
    })
}

/// The client that talks to the provider (configured by the operator, so not through
/// the delivery SSRF guard).
fn provider_client() -> ApiResult<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|_| ApiError::Internal)
}

/// A request to the provider and its JSON answer (whatever the status: the caller
/// looks at it), or a 502 naming `what` failed.
async fn send_for_json(request: reqwest::RequestBuilder, what: &str) -> ApiResult<(u16, Value)> {
    let failed = |why: &str| {
        tracing::warn!(what, why, "the OpenID provider failed");
        ApiError::BadGateway(format!("the OpenID provider's {what} {why}"))
    };
    let answer = request.send().await.map_err(|_| failed("did not answer"))?;
    let status = answer.status().as_u16();
    let bytes = answer.bytes().await.map_err(|_| failed("was cut short"))?;
    let value = serde_json::from_slice(&bytes).map_err(|_| failed("is not JSON"))?;
    Ok((status, value))
}

async fn fetch_json(url: &str, what: &str) -> ApiResult<Value> {
    Ok(send_for_json(provider_client()?.get(url), what).await?.1)
}

async fn discovery(o: &OidcConfig) -> ApiResult<Value> {
    let url = format!(
        "{}/.well-known/openid-configuration",
        o.issuer.trim_end_matches('/')
    );
    fetch_json(&url, "discovery document").await
}

fn redirect(location: &str, cookie: Option<String>) -> Response {
    let mut response = (
        StatusCode::FOUND,
        [(header::LOCATION, location.to_string())],
    )
        .into_response();
    if let Some(cookie) = cookie {
        response
            .headers_mut()
            .append(header::SET_COOKIE, cookie.parse().expect("a valid cookie"));
    }
    response
}

/// Starts a sign-in: to the provider, with PKCE, a state and a nonce.
pub async fn start(State(state): State<Arc<ApiState>>) -> ApiResult<Response> {
    let o = config(&state)?;
    let doc = discovery(o).await?;
    let endpoint = doc["authorization_endpoint"]
        .as_str()
        .ok_or_else(|| ApiError::BadGateway("the provider has no authorization_endpoint".into()))?;
    let (verifier, challenge) = oidc::pkce_pair();
    let flow = Flow {
        state: oidc::random_value(),
        nonce: oidc::random_value(),
        verifier,
        expires: now_ms() / 1000 + FLOW_SECS,
    };
    let mut url = url::Url::parse(endpoint).map_err(|_| {
        ApiError::BadGateway("the provider's authorization_endpoint is not a URL".into())
    })?;
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &o.client_id)
        .append_pair("redirect_uri", &redirect_uri(&state))
        .append_pair("scope", "openid email")
        .append_pair("state", &flow.state)
        .append_pair("nonce", &flow.nonce)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    let sealed = state
        .config
        .sealer
        .seal(&serde_json::to_string(&flow).expect("plain data serializes"));
    // The sealed text has no character a cookie value may not hold but '=' and ':',
    // which base64url avoids.
    use base64::Engine;
    let value = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sealed);
    // Lax, not Strict: the provider's redirect back is a cross-site navigation.
    let cookie = format!(
        "{FLOW_COOKIE}={value}; HttpOnly; SameSite=Lax; Path=/api/v1/sso; Max-Age={FLOW_SECS}{}",
        crate::routes::people::secure_attribute(&state)
    );
    Ok(redirect(url.as_str(), Some(cookie)))
}

/// The provider sends the person back here with a code.
pub async fn callback(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    q: QueryPairs,
) -> ApiResult<Response> {
    let o = config(&state)?.clone();
    let refused = |why: &str| ApiError::Unauthorized(format!("single sign-on failed: {why}"));
    if let Some(error) = q.get("error") {
        return Err(refused(&format!("the provider answered {error}")));
    }
    let code = q.get("code").ok_or_else(|| refused("no code"))?;
    let flow: Flow = crate::routes::people::cookie(&headers, FLOW_COOKIE)
        .and_then(|v| {
            use base64::Engine;
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(v)
                .ok()
        })
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|sealed| state.config.sealer.open(&sealed).ok())
        .and_then(|plain| serde_json::from_str(&plain).ok())
        .ok_or_else(|| refused("this browser did not start the sign-in (or took too long)"))?;
    let now = now_ms() / 1000;
    if flow.expires < now || q.get("state") != Some(flow.state.as_str()) {
        return Err(refused("the sign-in's state does not match"));
    }
    let doc = discovery(&o).await?;
    let token_endpoint = doc["token_endpoint"]
        .as_str()
        .ok_or_else(|| ApiError::BadGateway("the provider has no token_endpoint".into()))?;
    let jwks_uri = doc["jwks_uri"]
        .as_str()
        .ok_or_else(|| ApiError::BadGateway("the provider has no jwks_uri".into()))?;
    let mut form = vec![
        ("grant_type", "authorization_code".to_string()),
        ("code", code.to_string()),
        ("redirect_uri", redirect_uri(&state)),
        ("client_id", o.client_id.clone()),
        ("code_verifier", flow.verifier.clone()),
    ];
    if !o.client_secret.is_empty() {
        form.push(("client_secret", o.client_secret.clone()));
    }
    let client = provider_client()?;
    let request = client
        .post(token_endpoint)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(form_body(&form));
    let (status, tokens) = send_for_json(request, "token answer").await?;
    if !(200..300).contains(&status) {
        return Err(refused(&format!(
            "the provider refused the code ({})",
            tokens["error"].as_str().unwrap_or("no reason")
        )));
    }
    let id_token = tokens["id_token"]
        .as_str()
        .ok_or_else(|| refused("the provider gave no ID token"))?;
    let jwks = fetch_json(jwks_uri, "keys").await?;
    let mut claims =
        oidc::verify_id_token(id_token, &jwks, &o.issuer, &o.client_id, &flow.nonce, now)
            .map_err(|why| refused(&why))?;
    // Providers that keep scope claims out of the ID token give them at userinfo.
    if claims["email"].is_null() {
        let endpoint = doc["userinfo_endpoint"]
            .as_str()
            .ok_or_else(|| refused("the provider gave no email and has no userinfo endpoint"))?;
        let access = tokens["access_token"]
            .as_str()
            .ok_or_else(|| refused("the provider gave no access token"))?;
        let (_, info) = send_for_json(client.get(endpoint).bearer_auth(access), "userinfo").await?;
        if info["sub"] != claims["sub"] {
            return Err(refused("the provider's userinfo is about someone else"));
        }
        claims["email"] = info["email"].clone();
        claims["email_verified"] = info["email_verified"].clone();
    }
    if claims["email_verified"] == Value::Bool(false) {
        return Err(refused("the provider has not verified this email"));
    }
    let email = claims["email"]
        .as_str()
        .ok_or_else(|| refused("the provider gave no email"))?;
    let person = match state.people.person_get(&email.to_lowercase()).await {
        Ok(p) => p,
        Err(herald_store::StoreError::NotFound) => {
            return Err(ApiError::Forbidden(format!(
                "{email} may not sign in here: ask an admin to add you (herald user add)"
            )))
        }
        Err(e) => return Err(e.into()),
    };
    let session_cookie = crate::routes::people::open_session(&state, &person).await?;
    let clear = format!("{FLOW_COOKIE}=; HttpOnly; SameSite=Lax; Path=/api/v1/sso; Max-Age=0");
    let mut response = redirect("/console#/", Some(session_cookie));
    response
        .headers_mut()
        .append(header::SET_COOKIE, clear.parse().expect("a valid cookie"));
    Ok(response)
}

fn form_body(pairs: &[(&str, String)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}
