//! The web pages: the operator console (`/console`), the consumer portal
//! (`/portal/{app}`, opened with a magic link whose token is in the URL fragment), and
//! the API reference (`/docs`, rendered in the browser from the served OpenAPI
//! document). Every asset is compiled into the binary; nothing is fetched from
//! elsewhere. Pages are plain HTML with one stylesheet and small scripts that call the
//! v1 API with the token the person signed in with (kept in the tab's sessionStorage,
//! never put in a URL the server sees).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::state::ApiState;

/// Branding and embedding of the consumer portal.
#[derive(Clone, Debug)]
pub struct UiConfig {
    /// The CSP `frame-ancestors` of the portal: who may embed it in an iframe.
    pub portal_frame_ancestors: String,
    /// A CSS colour (`#rrggbb`) for the portal's accents.
    pub portal_brand_color: String,
    /// An image URL shown in the portal's header ("" for none).
    pub portal_logo_url: String,
    /// The portal's title.
    pub portal_title: String,
}

impl Default for UiConfig {
    fn default() -> Self {
        UiConfig {
            portal_frame_ancestors: "'self'".into(),
            portal_brand_color: "#3559e0".into(),
            portal_logo_url: String::new(),
            portal_title: "Webhooks".into(),
        }
    }
}

impl UiConfig {
    /// Refuses values that could break out of the page or the header they go in.
    pub fn check(&self) -> Result<(), String> {
        let c = &self.portal_brand_color;
        let hex =
            c.len() == 7 && c.starts_with('#') && c[1..].chars().all(|d| d.is_ascii_hexdigit());
        if !hex {
            return Err("portal_brand_color must be a colour like #3559e0".into());
        }
        let fa = &self.portal_frame_ancestors;
        if fa.is_empty()
            || fa
                .chars()
                .any(|ch| ch == ';' || ch == ',' || ch.is_control())
        {
            return Err("portal_frame_ancestors is a CSP source list, such as 'self' https://app.example.com".into());
        }
        if !self.portal_logo_url.is_empty() {
            let ok = url::Url::parse(&self.portal_logo_url)
                .is_ok_and(|u| matches!(u.scheme(), "https" | "http"));
            if !ok {
                return Err("portal_logo_url must be an http(s) URL".into());
            }
        }
        if self.portal_title.is_empty() || self.portal_title.len() > 100 {
            return Err("portal_title is 1 to 100 characters".into());
        }
        Ok(())
    }
}

/// The embedded files served under `/ui/`, by name.
const ASSETS: &[(&str, &str)] = &[
    ("ui.css", include_str!("../assets/ui.css")),
    ("ui.js", include_str!("../assets/ui.js")),
    ("console.js", include_str!("../assets/console.js")),
    ("portal.js", include_str!("../assets/portal.js")),
    ("docs.js", include_str!("../assets/docs.js")),
    ("favicon.svg", include_str!("../assets/favicon.svg")),
];

const CONSOLE_HTML: &str = include_str!("../assets/console.html");
const PORTAL_HTML: &str = include_str!("../assets/portal.html");
const DOCS_HTML: &str = include_str!("../assets/docs.html");

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next() {
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("svg") => "image/svg+xml",
        _ => "application/octet-stream",
    }
}

/// A short content hash, for ETags and cache-busting asset URLs.
fn etag(body: &str) -> String {
    // FNV-1a: not for security, only to tell versions apart.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in body.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("\"{h:016x}\"")
}

/// Each asset's ETag, in the order of `ASSETS`: the files are compiled in, so they are
/// hashed once, not on every page view.
fn etags() -> &'static [String] {
    static TAGS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    TAGS.get_or_init(|| ASSETS.iter().map(|(_, body)| etag(body)).collect())
}

/// The headers every page carries: a strict CSP (scripts and styles from this server
/// only), no referrer, no sniffing, and who may frame it.
fn page(html: String, frame_ancestors: &str) -> Response {
    let csp = format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: https: http:; \
         connect-src 'self'; base-uri 'none'; form-action 'self'; object-src 'none'; frame-ancestors {frame_ancestors}"
    );
    let mut resp = (StatusCode::OK, html).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    resp
}

/// Text safe inside an HTML attribute or element.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// Asset links carry their hash, so they can be cached for long and still change with
/// a new binary.
fn with_versions(html: &str) -> String {
    let mut out = html.to_string();
    for ((name, _), tag) in ASSETS.iter().zip(etags()) {
        out = out.replace(
            &format!("/ui/{name}\""),
            &format!("/ui/{name}?v={}\"", tag.trim_matches('"')),
        );
    }
    out
}

async fn console() -> Response {
    page(with_versions(CONSOLE_HTML), "'none'")
}

async fn docs() -> Response {
    page(with_versions(DOCS_HTML), "'none'")
}

async fn portal(State(state): State<Arc<ApiState>>, Path(_app): Path<String>) -> Response {
    let ui = &state.config.ui;
    let html = with_versions(PORTAL_HTML)
        .replace("{{title}}", &escape(&ui.portal_title))
        .replace("{{brand_color}}", &escape(&ui.portal_brand_color))
        .replace("{{logo_url}}", &escape(&ui.portal_logo_url));
    page(html, &ui.portal_frame_ancestors)
}

async fn asset(Path(name): Path<String>, headers: HeaderMap) -> Response {
    let Some(i) = ASSETS.iter().position(|(n, _)| *n == name) else {
        return (StatusCode::NOT_FOUND, "no such file").into_response();
    };
    let (body, tag) = (ASSETS[i].1, &etags()[i]);
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == tag);
    let mut resp = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (StatusCode::OK, body).into_response()
    };
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(&name)),
    );
    // Links carry the content hash (see `with_versions`), so a day is safe.
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=86400"),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(v) = HeaderValue::from_str(tag) {
        h.insert(header::ETAG, v);
    }
    resp
}

/// The page routes, merged into the main router.
pub fn routes() -> Router<Arc<ApiState>> {
    Router::new()
        // Someone who opens the server's address in a browser is sent to the console.
        .route(
            "/",
            get(|| async { axum::response::Redirect::to("/console") }),
        )
        .route("/console", get(console))
        .route("/docs", get(docs))
        .route("/portal/{app}", get(portal))
        .route("/ui/{name}", get(asset))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branding_values_that_could_break_out_are_refused() {
        assert!(UiConfig::default().check().is_ok());
        let bad = |f: fn(&mut UiConfig)| {
            let mut c = UiConfig::default();
            f(&mut c);
            c.check().is_err()
        };
        assert!(bad(|c| c.portal_brand_color = "red;}".into()));
        assert!(bad(
            |c| c.portal_frame_ancestors = "'self'; script-src *".into()
        ));
        assert!(bad(|c| c.portal_logo_url = "javascript:alert(1)".into()));
        assert_eq!(escape("\"><script>"), "&quot;&gt;&lt;script&gt;");
    }
}
