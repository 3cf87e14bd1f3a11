//! What a token's role lets it do, decided from the request's method and path alone, so
//! that every route, those added later included, falls under one table:
//!
//! | role | may |
//! | --- | --- |
//! | `admin` | everything, tokens and people included |
//! | `developer` | everything but tokens and people: applications, endpoints, event types, sources, destinations, messages, replay |
//! | `support` | read everything (secrets included), and resend, recover and replay; no `herald listen` |
//! | `viewer` | read everything but secrets |
//!
//! Tokens without a role keep what they had: an admin token everything, an
//! application's token everything inside its application, a poller's token its poller.

use axum::http::Method;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Admin,
    Developer,
    Support,
    Viewer,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Admin, Role::Developer, Role::Support, Role::Viewer];

    pub fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "admin" => Role::Admin,
            "developer" => Role::Developer,
            "support" => Role::Support,
            "viewer" => Role::Viewer,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Developer => "developer",
            Role::Support => "support",
            Role::Viewer => "viewer",
        }
    }

    /// Whether this role may make the request (`path` with or without the `/api/v1`
    /// or `/ingest/api/v1` prefix).
    pub fn allows(self, method: &Method, path: &str) -> bool {
        let path = path
            .strip_prefix("/ingest/api/v1")
            .or_else(|| path.strip_prefix("/api/v1"))
            .unwrap_or(path);
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        // An export is a POST (Svix's route) that only reads.
        let export = *method == Method::POST && parts == ["environment", "export"];
        let reads = *method == Method::GET || *method == Method::HEAD || export;
        // Tokens and people: an admin's alone.
        let tokens = matches!(parts.first(), Some(&"token") | Some(&"person"));
        match self {
            Role::Admin => true,
            Role::Developer => !tokens,
            Role::Support => (reads && !tokens && !is_listen(&parts)) || is_replay(method, &parts),
            Role::Viewer => reads && !tokens && !is_secret(&parts) && !is_listen(&parts),
        }
    }
}

/// Resending a message, recovering failures, replaying a window.
fn is_replay(method: &Method, parts: &[&str]) -> bool {
    *method == Method::POST
        && matches!(
            parts.last(),
            Some(&"resend") | Some(&"recover") | Some(&"replay-missing") | Some(&"bulk-replay")
        )
}

/// A signing secret or a poller's token.
fn is_secret(parts: &[&str]) -> bool {
    parts.last() == Some(&"secret")
}

/// A `herald listen` session makes an endpoint that receives the application's traffic
/// (a developer's tool, though it is a GET).
fn is_listen(parts: &[&str]) -> bool {
    parts.first() == Some(&"listen")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table() {
        let cases: &[(&str, &str, [bool; 4])] = &[
            // method, path, [admin, developer, support, viewer]
            ("GET", "/api/v1/app", [true, true, true, true]),
            ("POST", "/api/v1/app", [true, true, false, false]),
            (
                "DELETE",
                "/api/v1/app/a/endpoint/e",
                [true, true, false, false],
            ),
            (
                "GET",
                "/api/v1/app/a/endpoint/e/secret",
                [true, true, true, false],
            ),
            (
                "GET",
                "/app/a/destination/d/secret",
                [true, true, true, false],
            ),
            (
                "POST",
                "/api/v1/app/a/msg/m/endpoint/e/resend",
                [true, true, true, false],
            ),
            (
                "POST",
                "/api/v1/app/a/endpoint/e/recover",
                [true, true, true, false],
            ),
            (
                "POST",
                "/api/v1/app/a/endpoint/e/bulk-replay",
                [true, true, true, false],
            ),
            (
                "POST",
                "/api/v1/app/a/endpoint/e/secret/rotate",
                [true, true, false, false],
            ),
            ("GET", "/api/v1/token", [true, false, false, false]),
            ("POST", "/api/v1/token", [true, false, false, false]),
            ("DELETE", "/api/v1/token/t", [true, false, false, false]),
            (
                "PATCH",
                "/ingest/api/v1/source/s/endpoint/e/transformation",
                [true, true, false, false],
            ),
            ("GET", "/api/v1/listen", [true, true, false, false]),
            ("GET", "/metrics", [true, true, true, true]),
            (
                "POST",
                "/api/v1/environment/export",
                [true, true, true, true],
            ),
            (
                "POST",
                "/api/v1/environment/import",
                [true, true, false, false],
            ),
            (
                "PUT",
                "/api/v1/environment/settings",
                [true, true, false, false],
            ),
        ];
        for (method, path, want) in cases {
            let method = Method::from_bytes(method.as_bytes()).unwrap();
            for (role, allowed) in Role::ALL.iter().zip(want) {
                assert_eq!(
                    role.allows(&method, path),
                    *allowed,
                    "{role:?} {method} {path}"
                );
            }
        }
    }
}
