//! End-to-end with the official Svix SDKs, Python (PyPI `svix`) and JavaScript (npm
//! `svix`): each SDK drives the API and its own verifier checks the delivered webhook.
//! scripts/test.sh installs both and points HERALD_TEST_PYTHON and HERALD_TEST_NODE_PATH
//! at them; without those the tests fail, unless HERALD_SKIP_SDK_TEST=1 says to skip
//! them on purpose.

use std::process::Command;

use crate::helpers::*;

/// Runs one SDK script against a fresh server and checks it printed its OK line. The
/// program comes from `env_var` (skippable only with HERALD_SKIP_SDK_TEST=1).
async fn run_sdk_script(
    env_var: &str,
    script: &'static str,
    ok_line: &str,
    env: &[(&str, &str)],
    build: fn(String, &str) -> Command,
) {
    let Ok(setting) = std::env::var(env_var) else {
        if std::env::var("HERALD_SKIP_SDK_TEST").as_deref() == Ok("1") {
            eprintln!("SKIPPED on request (HERALD_SKIP_SDK_TEST=1): {script}");
            return;
        }
        panic!("{env_var} is not set: run scripts/test.sh, which installs the Svix SDKs");
    };
    let app = spawn_app(env).await;
    let url = app.url.clone();
    let path = format!("{}/tests/sdk/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = tokio::task::spawn_blocking(move || {
        build(setting, &path)
            .env("HERALD_URL", url)
            .env("HERALD_TOKEN", ADMIN_TOKEN)
            .output()
            .expect("run the SDK script")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{script} failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains(ok_line), "stdout:\n{stdout}");
}

#[tokio::test]
async fn official_svix_python_sdk_drives_herald() {
    run_sdk_script(
        "HERALD_TEST_PYTHON",
        "svix_e2e.py",
        "SVIX SDK E2E OK",
        &[],
        |python, script| {
            let mut cmd = Command::new(python);
            cmd.arg(script);
            cmd
        },
    )
    .await;
}

/// The same with the official Svix JavaScript SDK (npm `svix`), from the node_modules
/// folder in HERALD_TEST_NODE_PATH.
#[tokio::test]
async fn official_svix_js_sdk_drives_herald() {
    run_sdk_script(
        "HERALD_TEST_NODE_PATH",
        "svix_e2e.js",
        "SVIX JS SDK E2E OK",
        &[],
        |node_path, script| {
            let mut cmd = Command::new("node");
            cmd.arg(script).env("NODE_PATH", node_path);
            cmd
        },
    )
    .await;
}

/// Destinations and pollers, every route the Python SDK has for them.
#[tokio::test]
async fn official_svix_python_sdk_drives_destinations() {
    run_sdk_script(
        "HERALD_TEST_PYTHON",
        "svix_destinations.py",
        "SVIX SDK DESTINATIONS OK",
        // The fifoEndpoint's receiver refuses twice: retries come quickly.
        &[("HERALD_RETRY_SCHEDULE_SECS", "0.2,0.2,0.2")],
        |python, script| {
            let mut cmd = Command::new(python);
            cmd.arg(script);
            cmd
        },
    )
    .await;
}

/// Endpoint transformations set and read with the Python SDK, delivered through.
#[tokio::test]
async fn official_svix_python_sdk_sets_transformations() {
    run_sdk_script(
        "HERALD_TEST_PYTHON",
        "svix_transformations.py",
        "SVIX SDK TRANSFORMATIONS OK",
        &[],
        |python, script| {
            let mut cmd = Command::new(python);
            cmd.arg(script);
            cmd
        },
    )
    .await;
}
