//! End-to-end with the official Svix SDKs, Python (PyPI `svix`) and JavaScript (npm
//! `svix`): each SDK drives the API and its own verifier checks the delivered webhook.
//! scripts/test.sh installs both and points HERALD_TEST_PYTHON and HERALD_TEST_NODE_PATH
//! at them; without those the tests fail, unless HERALD_SKIP_SDK_TEST=1 says to skip
//! them on purpose.

use std::process::Command;

use crate::helpers::*;

#[tokio::test]
async fn official_svix_python_sdk_drives_herald() {
    let Ok(python) = std::env::var("HERALD_TEST_PYTHON") else {
        if std::env::var("HERALD_SKIP_SDK_TEST").as_deref() == Ok("1") {
            eprintln!("SKIPPED on request (HERALD_SKIP_SDK_TEST=1): Svix SDK end-to-end test");
            return;
        }
        panic!("HERALD_TEST_PYTHON is not set: run scripts/test.sh, which creates a venv with the svix SDK");
    };
    let app = spawn_app(&[]).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/svix_e2e.py");
    let url = app.url.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .env("HERALD_URL", url)
            .env("HERALD_TOKEN", ADMIN_TOKEN)
            .output()
            .expect("run python")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "SDK script failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("SVIX SDK E2E OK"), "stdout:\n{stdout}");
}

/// The same with the official Svix JavaScript SDK (npm `svix`), from the node_modules
/// folder in HERALD_TEST_NODE_PATH (scripts/test.sh installs it).
#[tokio::test]
async fn official_svix_js_sdk_drives_herald() {
    let Ok(node_path) = std::env::var("HERALD_TEST_NODE_PATH") else {
        if std::env::var("HERALD_SKIP_SDK_TEST").as_deref() == Ok("1") {
            eprintln!("SKIPPED on request (HERALD_SKIP_SDK_TEST=1): Svix JS SDK end-to-end test");
            return;
        }
        panic!("HERALD_TEST_NODE_PATH is not set: run scripts/test.sh, which installs the svix npm package");
    };
    let app = spawn_app(&[]).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/svix_e2e.js");
    let url = app.url.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(script)
            .env("NODE_PATH", node_path)
            .env("HERALD_URL", url)
            .env("HERALD_TOKEN", ADMIN_TOKEN)
            .output()
            .expect("run node")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "JS SDK script failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("SVIX JS SDK E2E OK"), "stdout:\n{stdout}");
}
