//! Environments: isolated namespaces in one Herald. A staging token walks every route of
//! the served OpenAPI document with the default environment's real ids and reaches none
//! of them; each environment delivers its own messages; people use the environments
//! they have a role in; export from staging and import into production.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::*;

/// A request with `token` (and its answer as text, to look for leaks).
async fn call_with(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, String) {
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = client
        .request(m, format!("{url}/api/v1{path}"))
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    match req.send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            (status, r.text().await.unwrap_or_default())
        }
        // A listen stream that is allowed stays open.
        Err(e) if e.is_timeout() => (200, String::new()),
        Err(e) => panic!("{method} {path}: {e}"),
    }
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| panic!("not JSON: {text}"))
}

fn admin_token_of(app: &TestApp, env: &str) -> String {
    let env = app
        ._server
        .environments
        .iter()
        .find(|e| e.name == env)
        .unwrap_or_else(|| panic!("no environment {env}"));
    env.new_admin_token
        .clone()
        .expect("a first admin token for the new environment")
}

#[tokio::test]
async fn a_token_reaches_only_its_own_environment_on_every_route() {
    let app = spawn_app(&[("HERALD_ENVIRONMENTS", "staging")]).await;
    let staging = admin_token_of(&app, "staging");
    assert!(staging.starts_with("hrld_staging_"), "{staging}");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let url = app.url.clone();

    // The default environment's objects, one of each kind.
    let rx = Receiver::start().await;
    let (s, _) = app
        .post(
            "/event-type",
            json!({"name": "only.default", "description": "d"}),
        )
        .await;
    assert_eq!(s, 201);
    let (s, a) = app
        .post("/app", json!({"name": "Default tenant", "uid": "tenant"}))
        .await;
    assert_eq!(s, 201);
    let app_id = a["id"].as_str().unwrap().to_string();
    let (ep_id, ep_secret) = app
        .endpoint(&app_id, &rx.url("/default"), json!({"uid": "orders"}))
        .await;
    let msg_id = app
        .send(
            &app_id,
            json!({"eventType": "only.default", "payload": {"marker": "default-payload"}}),
        )
        .await;
    rx.wait_for(1, Duration::from_secs(10)).await;
    // The attempt is logged after the receiver has answered, so wait for the log.
    let attempts = app
        .attempts_until(&app_id, &msg_id, Duration::from_secs(10), |a| !a.is_empty())
        .await;
    let attempt_id = attempts[0]["id"].as_str().unwrap().to_string();
    let (s, src) = app
        .post(
            "/source",
            json!({"name": "gh", "scheme": "github", "secret": "default-source-secret"}),
        )
        .await;
    assert_eq!(s, 201, "{src}");
    let source_id = src["id"].as_str().unwrap().to_string();
    let (s, dst) = app
        .post(
            &format!("/app/{app_id}/destination"),
            json!({"type": "pollingEndpoint", "config": {}}),
        )
        .await;
    assert_eq!(s, 201, "{dst}");
    let dst_id = dst["id"].as_str().unwrap().to_string();
    let (s, tok) = app
        .post(
            "/token",
            json!({"name": "default viewer", "role": "viewer"}),
        )
        .await;
    assert_eq!(s, 201);
    let token_id = tok["id"].as_str().unwrap().to_string();
    let (s, person) = app
        .post(
            "/person",
            json!({"email": "ops@example.com", "password": "a long enough password", "role": "admin"}),
        )
        .await;
    assert_eq!(s, 201, "{person}");
    let person_id = person["id"].as_str().unwrap().to_string();

    // Staging has a tenant of the same uid and an event type of the same name: the
    // namespaces are apart, so neither conflicts.
    let (s, b) = call_with(
        &client,
        &url,
        &staging,
        "POST",
        "/app",
        Some(json!({"name": "Staging tenant", "uid": "tenant"})),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    let staging_app = json_of(&b)["id"].as_str().unwrap().to_string();
    assert_ne!(staging_app, app_id);

    // Every default id, secret and name that must never show through staging.
    let markers = [
        app_id.as_str(),
        ep_id.as_str(),
        ep_secret.as_str(),
        msg_id.as_str(),
        attempt_id.as_str(),
        source_id.as_str(),
        dst_id.as_str(),
        token_id.as_str(),
        person_id.as_str(),
        "only.default",
        "default-payload",
        "Default tenant",
        "ops@example.com",
    ];
    let value_for = |name: &str| -> &str {
        match name {
            "app_id" => &app_id,
            "endpoint_id" => &ep_id,
            "msg_id" => &msg_id,
            "attempt_id" => &attempt_id,
            "source_id" => &source_id,
            "destination_id" | "sink_id" => &dst_id,
            "token_id" => &token_id,
            "person_id" => &person_id,
            "name" => "only.default",
            _ => "zz-missing",
        }
    };
    let (_, doc) = app.get("/openapi.json").await;
    let mut walked = 0;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let method = method.to_uppercase();
            let id = op["operationId"].as_str().unwrap_or_default();
            // Logout would end the staging token itself.
            if id == "v1.authentication.logout" || id.starts_with("v1.sso.") {
                continue;
            }
            let concrete = path
                .split('/')
                .map(
                    |seg| match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                        Some(name) => value_for(name).to_string(),
                        None => seg.to_string(),
                    },
                )
                .collect::<Vec<_>>()
                .join("/");
            let (sub, prefix) = match concrete.strip_prefix("/ingest/api/v1") {
                Some(rest) => (rest.to_string(), format!("{url}/ingest/api/v1")),
                None => (concrete.clone(), format!("{url}/api/v1")),
            };
            let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
            let mut req = client
                .request(m, format!("{prefix}{sub}"))
                .bearer_auth(&staging);
            if ["POST", "PUT", "PATCH"].contains(&method.as_str()) {
                req = req.json(&json!({}));
            }
            let (status, text) = match req.send().await {
                Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
                Err(e) if e.is_timeout() => (200, String::new()),
                Err(e) => panic!("{method} {concrete}: {e}"),
            };
            for marker in markers {
                assert!(
                    !text.contains(marker),
                    "staging {method} {path} showed the default environment's {marker}: {text}"
                );
            }
            // A route that names a default object never succeeds from staging.
            if path.contains('{') && !path.starts_with("/api/v1/health") {
                assert!(
                    !(200..300).contains(&status),
                    "staging {method} {concrete} answered {status}: {text}"
                );
            }
            walked += 1;
        }
    }
    assert!(walked >= 90, "walked only {walked} routes");

    // Nothing of the default environment was changed by that walk.
    let (s, a) = app.get(&format!("/app/{app_id}")).await;
    assert_eq!((s, a["name"].as_str()), (200, Some("Default tenant")));
    for path in [
        format!("/app/{app_id}/endpoint/{ep_id}"),
        format!("/app/{app_id}/msg/{msg_id}"),
        format!("/source/{source_id}"),
        format!("/app/{app_id}/destination/{dst_id}"),
        "/event-type/only.default".to_string(),
    ] {
        assert_eq!(app.get(&path).await.0, 200, "{path}");
    }
    let (_, tokens) = app.get("/token").await;
    assert!(tokens.to_string().contains(&token_id));

    // And the other way: the default admin reaches nothing of staging's.
    assert_eq!(app.get(&format!("/app/{staging_app}")).await.0, 404);

    // A token of an environment this Herald does not serve, or a header naming one.
    let (s, _) = call_with(
        &client,
        &url,
        "hrld_nowhere_0123456789abcdefghij0123456789abcdefgh",
        "GET",
        "/app",
        None,
    )
    .await;
    assert_eq!(s, 401);
    let r = client
        .get(format!("{url}/api/v1/app"))
        .header("Herald-Environment", "nowhere")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);

    // Staging delivers its own messages, signed with its own endpoint's secret.
    let (s, b) = call_with(
        &client,
        &url,
        &staging,
        "POST",
        &format!("/app/{staging_app}/endpoint"),
        Some(json!({"url": rx.url("/staging")})),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    let staging_ep = json_of(&b)["id"].as_str().unwrap().to_string();
    let (_, b) = call_with(
        &client,
        &url,
        &staging,
        "GET",
        &format!("/app/{staging_app}/endpoint/{staging_ep}/secret"),
        None,
    )
    .await;
    let staging_secret = json_of(&b)["key"].as_str().unwrap().to_string();
    let (s, b) = call_with(
        &client,
        &url,
        &staging,
        "POST",
        &format!("/app/{staging_app}/msg"),
        Some(json!({"eventType": "any.thing", "payload": {"in": "staging"}})),
    )
    .await;
    assert_eq!(s, 202, "{b}");
    let got = rx.wait_for(2, Duration::from_secs(10)).await;
    let to_staging: Vec<_> = got.iter().filter(|r| r.path == "/staging").collect();
    assert_eq!(to_staging.len(), 1);
    assert_eq!(to_staging[0].json()["in"], "staging");
    assert!(verify_with_standardwebhooks(&staging_secret, to_staging[0]));
    assert!(!verify_with_standardwebhooks(&ep_secret, to_staging[0]));

    // Tokens made in staging carry its name; its token list is its own.
    let (s, b) = call_with(
        &client,
        &url,
        &staging,
        "POST",
        "/token",
        Some(json!({"name": "stg viewer", "role": "viewer"})),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    assert!(json_of(&b)["key"]
        .as_str()
        .unwrap()
        .starts_with("hrld_staging_"));
    let (s, b) = call_with(
        &client,
        &url,
        &staging,
        "POST",
        &format!("/auth/app-portal-access/{staging_app}"),
        Some(json!({})),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert!(json_of(&b)["token"]
        .as_str()
        .unwrap()
        .starts_with("hrld_staging_"));

    // A third party's webhook reaches the environment that has the source: staging's
    // source answers (refusing the unsigned request), a made-up one is unknown.
    let (s, b) = call_with(
        &client,
        &url,
        &staging,
        "POST",
        "/source",
        Some(json!({"name": "stg", "scheme": "github", "secret": "staging-source-secret"})),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    let staging_source = json_of(&b)["id"].as_str().unwrap().to_string();
    let inbound = |id: String| client.post(format!("{url}/in/{id}")).body("{}").send();
    let r = inbound(staging_source.clone()).await.unwrap();
    assert_eq!(r.status().as_u16(), 401, "{:?}", r.text().await);
    let r = inbound("src_made_up".into()).await.unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let (_, b) = call_with(
        &client,
        &url,
        &staging,
        "GET",
        &format!("/source/{staging_source}/request"),
        None,
    )
    .await;
    assert_eq!(json_of(&b)["data"].as_array().unwrap().len(), 1, "{b}");

    // People are managed in the default environment only.
    let (s, b) = call_with(&client, &url, &staging, "GET", "/person", None).await;
    assert_eq!(s, 403, "{b}");
}

/// Requests to one server, with the token each names.
struct Api<'a> {
    client: &'a reqwest::Client,
    url: &'a str,
}

impl Api<'_> {
    async fn call(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, String) {
        call_with(self.client, self.url, token, method, path, body).await
    }
}

/// Signs in and returns (cookie, csrf).
async fn sign_in(
    client: &reqwest::Client,
    url: &str,
    email: &str,
    password: &str,
) -> (String, String) {
    let r = client
        .post(format!("{url}/api/v1/session"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let cookie = r
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let body: Value = r.json().await.unwrap();
    (cookie, body["csrfToken"].as_str().unwrap().to_string())
}

#[tokio::test]
async fn people_use_the_environments_they_have_a_role_in() {
    let app = spawn_app(&[("HERALD_ENVIRONMENTS", "staging,production")]).await;
    let client = reqwest::Client::new();
    let url = app.url.clone();
    let staging = admin_token_of(&app, "staging");
    let (s, b) = call_with(
        &client,
        &url,
        &staging,
        "POST",
        "/app",
        Some(json!({"name": "in staging"})),
    )
    .await;
    assert_eq!(s, 201, "{b}");

    // A role in an environment this Herald does not have is refused.
    let (s, e) = app
        .post(
            "/person",
            json!({"email": "dev@example.com", "password": "a long enough password", "role": "viewer", "environments": {"qa": "admin"}}),
        )
        .await;
    assert_eq!(s, 422, "{e}");
    let (s, p) = app
        .post(
            "/person",
            json!({"email": "dev@example.com", "password": "a long enough password", "role": "viewer", "environments": {"staging": "developer"}}),
        )
        .await;
    assert_eq!(s, 201, "{p}");
    assert_eq!(p["environments"], json!({"staging": "developer"}));
    let (cookie, csrf) = sign_in(&client, &url, "dev@example.com", "a long enough password").await;
    let in_env = |env: &str, method: reqwest::Method, path: &str| {
        let mut req = client
            .request(method, format!("{url}/api/v1{path}"))
            .header("cookie", &cookie)
            .header("x-csrf-token", &csrf);
        if !env.is_empty() {
            req = req.header("Herald-Environment", env);
        }
        req
    };
    let r = in_env("", reqwest::Method::GET, "/environment")
        .send()
        .await
        .unwrap();
    let info: Value = r.json().await.unwrap();
    assert_eq!(info["name"], "default");
    assert_eq!(info["available"], json!(["default", "staging"]));
    // Staging as a developer: its applications, and it may make one.
    let r = in_env("staging", reqwest::Method::GET, "/app")
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    assert_eq!(status, 200, "{text}");
    let apps: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(apps["data"][0]["name"], "in staging");
    let r = in_env("staging", reqwest::Method::POST, "/app")
        .json(&json!({"name": "made by dev"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    // The default as a viewer: reads, no writes.
    let r = in_env("", reqwest::Method::POST, "/app")
        .json(&json!({"name": "nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    // Production: no role, nothing.
    let r = in_env("production", reqwest::Method::GET, "/app")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);

    // Taking staging away ends the session (a role changed).
    let (s, p) = app
        .call(
            "PATCH",
            &format!("/person/{}", p["id"].as_str().unwrap()),
            Some(json!({"environments": {}})),
        )
        .await;
    assert_eq!(s, 200, "{p}");
    let r = in_env("staging", reqwest::Method::GET, "/app")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);

    // The audit trail of staging holds the change made there, by that person.
    let (s, b) = call_with(&client, &url, &staging, "GET", "/audit", None).await;
    assert_eq!(s, 200);
    let audit = json_of(&b);
    assert!(
        audit["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["actorName"] == "dev@example.com" && e["method"] == "POST"),
        "{audit}"
    );
    // And the default's does not.
    let (_, audit) = app.get("/audit").await;
    assert!(!audit.to_string().contains("made by dev"), "{audit}");
}

#[tokio::test]
async fn export_from_staging_and_import_into_production_with_a_dry_run_first() {
    let app = spawn_app(&[("HERALD_ENVIRONMENTS", "staging,production")]).await;
    let client = reqwest::Client::new();
    let url = app.url.clone();
    let staging = admin_token_of(&app, "staging");
    let production = admin_token_of(&app, "production");
    let api = Api {
        client: &client,
        url: &url,
    };

    // Staging: two event types, settings, and a transformation on shop/orders.
    let schema = json!({"1": {"type": "object", "required": ["id"]}});
    for body in [
        json!({"name": "order.created", "description": "An order was placed", "schemas": schema}),
        json!({"name": "order.refunded", "description": "Money went back"}),
    ] {
        assert_eq!(
            api.call(&staging, "POST", "/event-type", Some(body))
                .await
                .0,
            201
        );
    }
    let (s, _) = api
        .call(
            &staging,
            "PUT",
            "/environment/settings",
            Some(json!({"portalTitle": "Shop", "retries": 5})),
        )
        .await;
    assert_eq!(s, 200);
    let code = "function handler(webhook) { webhook.payload.promoted = true; return webhook; }";
    for token in [&staging, &production] {
        let (s, b) = api
            .call(
                token,
                "POST",
                "/app",
                Some(json!({"name": "Shop", "uid": "shop"})),
            )
            .await;
        assert_eq!(s, 201, "{b}");
        let (s, b) = api
            .call(
                token,
                "POST",
                "/app/shop/endpoint",
                Some(json!({"url": "https://example.com/hook", "uid": "orders"})),
            )
            .await;
        assert_eq!(s, 201, "{b}");
    }
    let (s, b) = api
        .call(
            &staging,
            "PATCH",
            "/app/shop/endpoint/orders/transformation",
            Some(json!({"code": code, "variables": {"k": "v"}})),
        )
        .await;
    assert_eq!(s, 204, "{b}");
    // Production already has order.created, described differently.
    let (s, _) = api
        .call(
            &production,
            "POST",
            "/event-type",
            Some(json!({"name": "order.created", "description": "old words"})),
        )
        .await;
    assert_eq!(s, 201);

    let (s, exported) = api
        .call(&staging, "POST", "/environment/export", None)
        .await;
    assert_eq!(s, 200, "{exported}");
    let exported = json_of(&exported);
    let names: Vec<_> = exported["eventTypes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["order.created", "order.refunded"]);
    assert_eq!(
        exported["settings"],
        json!({"portalTitle": "Shop", "retries": 5})
    );
    assert_eq!(
        exported["transformations"],
        json!([{"app": "shop", "endpoint": "orders", "code": code, "enabled": true, "variables": {"k": "v"}}])
    );

    // The dry run says what would change and changes nothing.
    let production_state = |c: &reqwest::Client| {
        let (c, url, production) = (c.clone(), url.clone(), production.clone());
        async move {
            let (_, types) = call_with(&c, &url, &production, "GET", "/event-type", None).await;
            let (_, t) = call_with(
                &c,
                &url,
                &production,
                "GET",
                "/app/shop/endpoint/orders/transformation",
                None,
            )
            .await;
            let (_, settings) =
                call_with(&c, &url, &production, "GET", "/environment/settings", None).await;
            (
                json_of(&types)["data"].clone(),
                json_of(&t)["code"].clone(),
                json_of(&settings),
            )
        }
    };
    let before = production_state(&client).await;
    let (s, report) = api
        .call(
            &production,
            "POST",
            "/environment/import?dry_run=true",
            Some(exported.clone()),
        )
        .await;
    assert_eq!(s, 200, "{report}");
    let report = json_of(&report);
    assert_eq!(report["dryRun"], true);
    assert_eq!(report["eventTypes"]["created"], json!(["order.refunded"]));
    assert_eq!(report["eventTypes"]["updated"], json!(["order.created"]));
    assert_eq!(report["settings"], "created");
    assert_eq!(report["transformations"]["created"], json!(["shop/orders"]));
    assert_eq!(
        production_state(&client).await,
        before,
        "a dry run changed production"
    );
    assert_eq!(before.1, Value::Null);

    // The import itself.
    let (s, report) = api
        .call(
            &production,
            "POST",
            "/environment/import",
            Some(exported.clone()),
        )
        .await;
    assert_eq!(s, 200, "{report}");
    assert_eq!(json_of(&report)["dryRun"], false);
    let (types, t_code, settings) = production_state(&client).await;
    let created = types
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "order.created")
        .unwrap();
    assert_eq!(created["description"], "An order was placed");
    assert_eq!(created["schemas"], schema);
    assert!(types.to_string().contains("order.refunded"));
    assert_eq!(t_code, json!(code));
    assert_eq!(settings, json!({"portalTitle": "Shop", "retries": 5}));

    // Again: nothing left to change.
    let (_, report) = api
        .call(
            &production,
            "POST",
            "/environment/import",
            Some(exported.clone()),
        )
        .await;
    let report = json_of(&report);
    assert_eq!(
        report["eventTypes"]["unchanged"],
        json!(["order.created", "order.refunded"])
    );
    assert_eq!(report["settings"], "unchanged");
    assert_eq!(
        report["transformations"]["unchanged"],
        json!(["shop/orders"])
    );

    // Bad imports are refused whole, with the place of the fault.
    let (s, e) = api.call(&production, "POST", "/environment/import", Some(json!({
        "eventTypes": [{"name": "fine.one", "description": "x"}],
        "transformations": [{"app": "shop", "endpoint": "orders", "code": "function handler( {", "enabled": true}]
    }))).await;
    assert_eq!(s, 422, "{e}");
    assert_eq!(json_of(&e)["detail"][0]["loc"], json!(["body", "code"]));
    assert_eq!(
        api.call(&production, "GET", "/event-type/fine.one", None)
            .await
            .0,
        404
    );
    let (s, e) = api
        .call(
            &production,
            "POST",
            "/environment/import",
            Some(json!({"connectors": [{"name": "x", "transformation": "y"}]})),
        )
        .await;
    assert_eq!(s, 422, "{e}");
    // A transformation whose endpoint production lacks is reported, not made.
    let (_, report) = api.call(&production, "POST", "/environment/import", Some(json!({
        "transformations": [{"app": "shop", "endpoint": "nope", "code": code, "enabled": true}]
    }))).await;
    assert_eq!(json_of(&report)["missingEndpoints"], json!(["shop/nope"]));
    // A viewer may export but not import.
    let (_, b) = api
        .call(
            &production,
            "POST",
            "/token",
            Some(json!({"name": "v", "role": "viewer"})),
        )
        .await;
    let viewer = json_of(&b)["key"].as_str().unwrap().to_string();
    assert_eq!(
        api.call(&viewer, "POST", "/environment/export", None)
            .await
            .0,
        200
    );
    assert_eq!(
        api.call(&viewer, "POST", "/environment/import", Some(json!({})))
            .await
            .0,
        403
    );
}

#[tokio::test]
async fn an_existing_store_becomes_the_default_environment_when_environments_are_added() {
    let dir = TempDir::new("env-upgrade");
    let token = "upgrade-admin-token-0123456789";
    let client = reqwest::Client::new();
    let app_id = {
        let herald = HeraldProcess::start(&dir.0, &[("HERALD_ADMIN_TOKEN", token)]);
        let r = client
            .post(format!("{}/api/v1/app", herald.url))
            .bearer_auth(token)
            .json(&json!({"name": "from before", "uid": "old"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 201);
        let app: Value = r.json().await.unwrap();
        app["id"].as_str().unwrap().to_string()
    };
    let herald = HeraldProcess::start(
        &dir.0,
        &[
            ("HERALD_ADMIN_TOKEN", token),
            ("HERALD_ENVIRONMENTS", "staging"),
        ],
    );
    // The banner gives staging's first admin token.
    let at = herald
        .banner
        .iter()
        .position(|l| l.contains("environment staging: admin token"))
        .unwrap_or_else(|| panic!("{:?}", herald.banner));
    let staging = herald.banner[at + 1].trim().to_string();
    assert!(staging.starts_with("hrld_staging_"));
    // The old token and the old data are the default environment's.
    let r = client
        .get(format!("{}/api/v1/app/old", herald.url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let app: Value = r.json().await.unwrap();
    assert_eq!(app["id"], app_id.as_str());
    let r = client
        .get(format!("{}/api/v1/app", herald.url))
        .bearer_auth(&staging)
        .send()
        .await
        .unwrap();
    let apps: Value = r.json().await.unwrap();
    assert_eq!(apps["data"], json!([]));

    // `herald token create --environment staging` makes another of its tokens.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .args([
            "token",
            "create",
            "--name",
            "ci",
            "--environment",
            "staging",
            "--data-dir",
        ])
        .arg(&dir.0)
        .env("HERALD_ENVIRONMENTS", "staging")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let made = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(made.starts_with("hrld_staging_"), "{made}");
    let r = client
        .get(format!("{}/api/v1/environment", herald.url))
        .bearer_auth(&made)
        .send()
        .await
        .unwrap();
    let info: Value = r.json().await.unwrap();
    assert_eq!(info["name"], "staging");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["token", "create", "--environment", "qa", "--data-dir"])
        .arg(&dir.0)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no environment named 'qa'"));
}
