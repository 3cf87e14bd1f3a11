//! People who sign in: a password, a TOTP code when they have one, an HttpOnly session
//! cookie with a CSRF token for writes, their role, sign-out, expiry; and their changes
//! in the audit trail under their email.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::*;

struct Signed {
    cookie: String,
    csrf: String,
}

async fn sign_in(app: &TestApp, body: Value) -> Result<Signed, (u16, Value)> {
    let r = app
        .client
        .post(app.api("/session"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let set_cookie = r
        .headers()
        .get("set-cookie")
        .map(|v| v.to_str().unwrap().to_string());
    let out: Value = r.json().await.unwrap();
    if status != 201 {
        return Err((status, out));
    }
    let set_cookie = set_cookie.expect("a session cookie");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.contains(attr), "{set_cookie}");
    }
    Ok(Signed {
        cookie: set_cookie.split(';').next().unwrap().to_string(),
        csrf: out["csrfToken"].as_str().unwrap().to_string(),
    })
}

async fn with_cookie(
    app: &TestApp,
    s: &Signed,
    method: &str,
    path: &str,
    csrf: bool,
    body: Option<Value>,
) -> u16 {
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = app
        .client
        .request(m, app.api(path))
        .header("cookie", &s.cookie);
    if csrf {
        req = req.header("x-csrf-token", &s.csrf);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    req.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn people_sign_in_with_a_password_and_totp_and_act_within_their_role() {
    let app = spawn_app(&[("HERALD_SESSION_HOURS", "0.0006")]).await; // about 2 s
    let (s, e) = app
        .post(
            "/person",
            json!({"email": "Ana@Example.com", "password": "short", "role": "developer"}),
        )
        .await;
    assert_eq!(
        (s, e["detail"][0]["loc"].clone()),
        (422, json!(["body", "password"]))
    );
    let (s, ana) = app
        .post("/person", json!({"email": "Ana@Example.com", "password": "a long enough password", "role": "developer"}))
        .await;
    assert_eq!(s, 201, "{ana}");
    assert_eq!(ana["email"], "ana@example.com");
    assert_eq!(ana["totp"], false);
    let (s, bo) = app
        .post("/person", json!({"email": "bo@example.com", "password": "another long password", "role": "viewer", "totp": true}))
        .await;
    assert_eq!(s, 201, "{bo}");
    let totp_secret = bo["totpSetup"]["secret"].as_str().unwrap().to_string();
    assert!(bo["totpSetup"]["url"]
        .as_str()
        .unwrap()
        .starts_with("otpauth://totp/Herald:bo%40example.com?secret="));
    // Shown once: the list has no secret.
    let (_, people) = app.get("/person").await;
    assert!(!people.to_string().contains(&totp_secret));

    // Wrong password, unknown email: the same refusal.
    let (s, e1) = sign_in(
        &app,
        json!({"email": "ana@example.com", "password": "wrong password!"}),
    )
    .await
    .err()
    .unwrap();
    let (_, e2) = sign_in(
        &app,
        json!({"email": "nobody@example.com", "password": "wrong password!"}),
    )
    .await
    .err()
    .unwrap();
    assert_eq!(s, 401);
    assert_eq!(e1["detail"], e2["detail"]);

    // Ana signs in; the cookie reads, and writes with the CSRF token only.
    let ana_s = sign_in(
        &app,
        json!({"email": "ANA@example.com", "password": "a long enough password"}),
    )
    .await
    .unwrap();
    assert_eq!(
        with_cookie(&app, &ana_s, "GET", "/app", false, None).await,
        200
    );
    assert_eq!(
        with_cookie(
            &app,
            &ana_s,
            "POST",
            "/app",
            false,
            Some(json!({"name": "x"}))
        )
        .await,
        403
    );
    assert_eq!(
        with_cookie(
            &app,
            &ana_s,
            "POST",
            "/app",
            true,
            Some(json!({"name": "By Ana"}))
        )
        .await,
        201
    );
    // A developer manages no people.
    assert_eq!(
        with_cookie(&app, &ana_s, "GET", "/person", false, None).await,
        403
    );

    // Bo needs a TOTP code.
    let (s, e) = sign_in(
        &app,
        json!({"email": "bo@example.com", "password": "another long password"}),
    )
    .await
    .err()
    .unwrap();
    assert_eq!(s, 401);
    assert!(
        e["detail"]
            .as_str()
            .unwrap()
            .contains("TOTP code is needed"),
        "{e}"
    );
    let (s, _) = sign_in(
        &app,
        json!({"email": "bo@example.com", "password": "another long password", "code": "000000"}),
    )
    .await
    .err()
    .unwrap();
    assert_eq!(s, 401);
    let now = herald_core::time::now_ms() / 1000;
    let code = herald_core::totp::code_at(&totp_secret, now).unwrap();
    let bo_s = sign_in(
        &app,
        json!({"email": "bo@example.com", "password": "another long password", "code": code}),
    )
    .await
    .unwrap();
    // A viewer reads, and may not write even with the token.
    assert_eq!(
        with_cookie(&app, &bo_s, "GET", "/app", false, None).await,
        200
    );
    assert_eq!(
        with_cookie(
            &app,
            &bo_s,
            "POST",
            "/app",
            true,
            Some(json!({"name": "x"}))
        )
        .await,
        403
    );

    // The trail has Ana's change under her email, and Bo's refusal.
    let (_, trail) = app.get("/audit").await;
    let events = trail["data"].as_array().unwrap();
    assert!(events.iter().any(|e| e["actorName"] == "ana@example.com"
        && e["status"] == 201
        && e["route"] == "/api/v1/app"));
    assert!(events
        .iter()
        .any(|e| e["actorName"] == "bo@example.com" && e["allowed"] == false));
    assert!(
        !trail.to_string().contains("a long enough password"),
        "a password in the trail"
    );

    // Signing out ends the session at once.
    let r = app
        .client
        .delete(app.api("/session"))
        .header("cookie", &ana_s.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(
        with_cookie(&app, &ana_s, "GET", "/app", false, None).await,
        401
    );

    // Sessions expire.
    tokio::time::sleep(Duration::from_millis(2300)).await;
    assert_eq!(
        with_cookie(&app, &bo_s, "GET", "/app", false, None).await,
        401
    );

    // An admin ends someone's sessions, or changes their password: they sign in again.
    let ana_id = ana["id"].as_str().unwrap();
    let ana_again = sign_in(
        &app,
        json!({"email": "ana@example.com", "password": "a long enough password"}),
    )
    .await
    .unwrap();
    let (s, _) = app
        .call("DELETE", &format!("/person/{ana_id}/sessions"), None)
        .await;
    assert_eq!(s, 204);
    assert_eq!(
        with_cookie(&app, &ana_again, "GET", "/app", false, None).await,
        401
    );
    let ana_again = sign_in(
        &app,
        json!({"email": "ana@example.com", "password": "a long enough password"}),
    )
    .await
    .unwrap();
    let (s, _) = app
        .call(
            "PATCH",
            &format!("/person/{ana_id}"),
            Some(json!({"password": "a brand new long password"})),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        with_cookie(&app, &ana_again, "GET", "/app", false, None).await,
        401
    );

    // Removing someone ends their sessions.
    let ana_again = sign_in(
        &app,
        json!({"email": "ana@example.com", "password": "a brand new long password"}),
    )
    .await
    .unwrap();
    let (s, _) = app
        .call(
            "DELETE",
            &format!("/person/{}", ana["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(s, 204);
    assert_eq!(
        with_cookie(&app, &ana_again, "GET", "/app", false, None).await,
        401
    );
}

#[tokio::test]
async fn a_password_guessed_by_trying_is_stopped_after_five_failures() {
    let app = spawn_app(&[]).await;
    let (s, _) = app
        .post(
            "/person",
            json!({"email": "dee@example.com", "password": "the right password", "role": "viewer"}),
        )
        .await;
    assert_eq!(s, 201);
    for _ in 0..5 {
        let (s, _) = sign_in(
            &app,
            json!({"email": "dee@example.com", "password": "a wrong guess!"}),
        )
        .await
        .err()
        .unwrap();
        assert_eq!(s, 401);
    }
    // Now even the right password waits for the window to pass.
    let (s, e) = sign_in(
        &app,
        json!({"email": "dee@example.com", "password": "the right password"}),
    )
    .await
    .err()
    .unwrap();
    assert_eq!(s, 429, "{e}");
    assert_eq!(e["code"], "rate_limited");
    // Another email is not held back.
    let (s, _) = app
        .post(
            "/person",
            json!({"email": "eli@example.com", "password": "eli's own password", "role": "viewer"}),
        )
        .await;
    assert_eq!(s, 201);
    assert!(sign_in(
        &app,
        json!({"email": "eli@example.com", "password": "eli's own password"})
    )
    .await
    .is_ok());
}

#[tokio::test]
async fn the_first_admin_is_made_at_first_start_from_the_configuration() {
    let app = spawn_app(&[
        ("HERALD_ADMIN_EMAIL", "Root@Example.com"),
        ("HERALD_ADMIN_PASSWORD", "the operator's first password"),
    ])
    .await;
    let s = sign_in(
        &app,
        json!({"email": "root@example.com", "password": "the operator's first password"}),
    )
    .await
    .unwrap();
    // An admin: people are theirs to manage.
    assert_eq!(
        with_cookie(&app, &s, "GET", "/person", false, None).await,
        200
    );
    let (_, people) = app.get("/person").await;
    assert_eq!(people["data"][0]["role"], "admin");
}
