//! The page in headless Chromium, driven through WebDriver: todos added while Flume is
//! down show as pending, are delivered once it is back (each id once in the sink), and
//! survive a reload; a second window does not send until the first closes. Flume is the
//! mock serving the page too (`--static`), so the page sends to the relative URL `/` on
//! its own origin.
//!
//! One scenario, two pages: this crate's Rust page (built by `bash scripts/web-demo.sh
//! --build`) and examples/todo-ts, the same app in TypeScript on the npm package
//! (built with Vite from the packed tarball). `scripts/test.sh` builds both, starts
//! chromedriver and runs these with `--ignored`. Screenshots of the pending and synced
//! moments go to `target/web-demo/`.
#![cfg(not(target_arch = "wasm32"))]

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use headwater_mock_flume::{MockConfig, MockFault, MockFlume};

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The Rust page's folder.
fn rust_site() -> PathBuf {
    let site = std::env::var_os("HEADWATER_WEB_DEMO_SITE")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/web-demo/site"));
    assert!(
        site.join("pkg/todo_web.js").exists(),
        "{} has no built page: run `bash scripts/web-demo.sh --build`",
        site.display()
    );
    site
}

/// The TypeScript page's Vite build.
fn typescript_site() -> PathBuf {
    let site = std::env::var_os("HEADWATER_TODO_TS_SITE")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("examples/todo-ts/dist"));
    assert!(
        site.join("index.html").exists(),
        "{} has no built page: run `bash scripts/js-package.sh`, then `npm install` and `npm run build` in examples/todo-ts",
        site.display()
    );
    site
}

/// A mock Flume serving the TypeScript page's build.
async fn typescript_mock() -> MockFlume {
    MockFlume::start(MockConfig {
        static_dir: Some(typescript_site()),
        ..MockConfig::default()
    })
    .await
    .unwrap()
}

/// chromedriver on a free port, and a headless Chromium session through it.
async fn browser(profile: &std::path::Path) -> (tokio::process::Child, Client) {
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let driver = tokio::process::Command::new(
        std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into()),
    )
    .arg(format!("--port={port}"))
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .kill_on_drop(true)
    .spawn()
    .expect("chromedriver on PATH (Debian's chromium-driver)");
    let capabilities: serde_json::Map<String, serde_json::Value> =
        serde_json::from_value(serde_json::json!({
            "goog:chromeOptions": {
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                    "--window-size=900,900",
                    format!("--user-data-dir={}", profile.display()),
                ]
            }
        }))
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    loop {
        match ClientBuilder::rustls()
            .expect("TLS for WebDriver")
            .capabilities(capabilities.clone())
            .connect(&url)
            .await
        {
            Ok(client) => return (driver, client),
            Err(error) if started.elapsed() < Duration::from_secs(20) => {
                let _ = error;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(error) => panic!("cannot start a WebDriver session: {error}"),
        }
    }
}

/// Each row's state (`pending`, `synced`, `dead`) by todo id, read in one script (the
/// page redraws its rows whenever delivery moves).
async fn rows(client: &Client) -> HashMap<String, String> {
    let value = client
        .execute(
            "return [...document.querySelectorAll('#todos li')].map(li => [li.dataset.todo, li.className]);",
            Vec::new(),
        )
        .await
        .unwrap();
    serde_json::from_value::<Vec<(String, String)>>(value)
        .unwrap()
        .into_iter()
        .collect()
}

/// Polls until `done` holds for the rows, or panics with what was seen.
async fn wait_for(
    client: &Client,
    what: &str,
    timeout: Duration,
    done: impl Fn(&HashMap<String, String>) -> bool,
) -> HashMap<String, String> {
    let started = Instant::now();
    loop {
        let rows = rows(client).await;
        if done(&rows) {
            return rows;
        }
        if started.elapsed() > timeout {
            let status = status_text(client).await;
            panic!("{what}: not after {timeout:?}; rows {rows:?}; status: {status}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// How many times each `id` is in the mock's sink file (every event a todo's change).
fn ids_in_sink(sink: &std::path::Path) -> HashMap<String, usize> {
    let mut ids: HashMap<String, usize> = HashMap::new();
    for line in std::fs::read_to_string(sink).unwrap().lines() {
        let event: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(event["headers"]["collection"], "todos");
        *ids.entry(event["headers"]["id"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    ids
}

/// Types a title and presses "add".
async fn add(client: &Client, title: &str) {
    let input = client.find(Locator::Id("title")).await.unwrap();
    input.send_keys(title).await.unwrap();
    client
        .find(Locator::Id("add"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// The status line's text.
async fn status_text(client: &Client) -> String {
    client
        .find(Locator::Id("status"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Whether there are `count` rows, all synced.
fn all_synced(rows: &HashMap<String, String>, count: usize) -> bool {
    rows.len() == count && rows.values().all(|class| class == "synced")
}

/// Polls until the status line contains `text`.
async fn wait_for_status(client: &Client, text: &str) {
    let started = Instant::now();
    loop {
        let status = status_text(client).await;
        if status.contains(text) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "status never said {text:?}: {status}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn screenshot(client: &Client, page: &str, name: &str) {
    let dir = workspace().join("target/web-demo");
    std::fs::create_dir_all(&dir).unwrap();
    let png = client.screenshot().await.unwrap();
    std::fs::write(dir.join(format!("{page}-{name}")), png).unwrap();
}

#[tokio::test]
#[ignore = "needs the page built and chromedriver: scripts/test.sh runs it with --ignored"]
async fn todos_added_while_flume_is_down_are_pending_then_synced_and_survive_a_reload() {
    offline_todos_reach_flume_once("rust", rust_site()).await;
}

#[tokio::test]
#[ignore = "needs the npm package packed and the TypeScript app built with Vite, and chromedriver: scripts/test.sh runs it with --ignored"]
async fn the_typescript_app_on_the_npm_package_does_the_same() {
    offline_todos_reach_flume_once("typescript", typescript_site()).await;
}

/// The results a checks.html page wrote, once it is done (`None` before).
async fn checks_results(client: &Client) -> Option<serde_json::Value> {
    let done = client
        .execute(
            "const r = document.getElementById('results'); return r && r.dataset.done === '1' ? r.textContent : null;",
            Vec::new(),
        )
        .await
        .unwrap();
    done.as_str()
        .map(|text| serde_json::from_str(text).unwrap())
}

/// Opens `url` (a checks.html; empty: the page already loaded) and gives the results it
/// writes when done.
async fn package_checks(client: &Client, url: &str, timeout: Duration) -> serde_json::Value {
    if !url.is_empty() {
        client.goto(url).await.unwrap();
    }
    let started = Instant::now();
    loop {
        if let Some(results) = checks_results(client).await {
            let failed: Vec<&serde_json::Value> = results["outcomes"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|outcome| outcome["ok"] != true)
                .collect();
            assert!(failed.is_empty(), "checks failed: {failed:#?}");
            return results;
        }
        assert!(
            started.elapsed() < timeout,
            "the checks page did not finish in {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
#[ignore = "needs the npm package packed and the TypeScript app built with Vite, and chromedriver: scripts/test.sh runs it with --ignored"]
async fn the_npm_package_keeps_its_contract_in_chromium() {
    let scratch = std::env::temp_dir().join(format!("todo-checks-{}", std::process::id()));
    let flume = typescript_mock().await;
    let (_driver, client) = browser(&scratch.join("profile")).await;
    let results = package_checks(
        &client,
        &format!("{}checks.html", flume.url()),
        Duration::from_secs(60),
    )
    .await;
    let passed = results["outcomes"].as_array().unwrap().len();
    println!("the npm package's checks: {passed} passed");
    assert!(passed >= 10, "every check ran: {results}");
    assert!(
        flume.unique_ids() >= 1,
        "the delivered change reached Flume"
    );
    assert_eq!(
        flume.event_count(),
        flume.unique_ids(),
        "no change reached Flume twice"
    );
    client.close().await.unwrap();
    let _ = std::fs::remove_dir_all(&scratch);
}

/// The facade wakes delivery on the page's `online` event: the outbox is blocked by a
/// 404 (its next probe a minute away), the mock recovers, and `online` brings the
/// retry within the wake's random delay (at most 10 s), not at the probe.
#[tokio::test]
#[ignore = "needs the npm package built (scripts/js-package.sh, examples/todo-ts's Vite build) and chromedriver: scripts/test.sh runs it"]
async fn the_online_event_wakes_a_blocked_outbox_in_chromium() {
    let scratch = std::env::temp_dir().join(format!("todo-online-{}", std::process::id()));
    let flume = typescript_mock().await;
    for _ in 0..5 {
        flume.push_fault(MockFault::Status(404));
    }
    let (_driver, client) = browser(&scratch.join("profile")).await;
    client
        .goto(&format!("{}checks.html?online", flume.url()))
        .await
        .unwrap();
    let started = Instant::now();
    loop {
        let blocked = client
            .execute("return document.body.dataset.blocked === '1';", Vec::new())
            .await
            .unwrap();
        if blocked == serde_json::Value::Bool(true) {
            break;
        }
        if let Some(results) = checks_results(&client).await {
            panic!("the checks ended before the outbox was blocked: {results}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the page never saw the outbox blocked ({} requests reached the mock)",
            flume.requests()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(flume.unique_ids(), 0, "nothing was committed while blocked");
    flume.clear_faults();
    client
        .execute("window.flumeFixed = true;", Vec::new())
        .await
        .unwrap();
    let results = package_checks(&client, "", Duration::from_secs(60)).await;
    println!(
        "online to delivered: {} ms",
        results["figures"]["online_to_delivered_ms"]
    );
    assert_eq!(flume.unique_ids(), 1, "the change arrived after `online`");
    client.close().await.unwrap();
    let _ = std::fs::remove_dir_all(&scratch);
}

/// `HEADWATER_TODO_TS_BENCH_URL`: a release build of the mock serving examples/todo-ts's
/// build (`headwater mock-flume --static`), as the Rust browser benchmark's mock is.
#[tokio::test]
#[ignore = "needs the npm package built, chromedriver and a release mock in HEADWATER_TODO_TS_BENCH_URL: scripts/test.sh runs it"]
async fn the_npm_package_benchmark() {
    let url = std::env::var("HEADWATER_TODO_TS_BENCH_URL")
        .expect("HEADWATER_TODO_TS_BENCH_URL: a release mock serving examples/todo-ts/dist");
    let scratch = std::env::temp_dir().join(format!("todo-bench-{}", std::process::id()));
    let (_driver, client) = browser(&scratch.join("profile")).await;
    let results = package_checks(
        &client,
        &format!("{url}checks.html?bench"),
        Duration::from_secs(300),
    )
    .await;
    let figures = &results["figures"];
    println!(
        "npm package benchmark: plain record write {:.2} ms, captured write from JS (record + outbox, one transaction) {:.2} ms ({:.2}x; {:.2} ms while delivery runs); synced {} changes to the mock Flume at {:.0} changes/s (median of 3 after a warm-up of 2000 at {:.0})",
        figures["plainWriteMs"].as_f64().unwrap(),
        figures["capturedWriteMs"].as_f64().unwrap(),
        figures["captureRatio"].as_f64().unwrap(),
        figures["capturedWhileDeliveryRunsMs"].as_f64().unwrap(),
        figures["syncedChanges"],
        figures["syncRate"].as_f64().unwrap(),
        figures["warmUpSyncRate"].as_f64().unwrap(),
    );
    client.close().await.unwrap();
    let _ = std::fs::remove_dir_all(&scratch);
}

/// The scenario, on the page in `site`.
async fn offline_todos_reach_flume_once(page: &str, site: PathBuf) {
    let scratch = std::env::temp_dir().join(format!("todo-e2e-{page}-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    let sink = scratch.join("sink.jsonl");
    let flume = MockFlume::start(MockConfig {
        static_dir: Some(site),
        sink_file: Some(sink.clone()),
        ..MockConfig::default()
    })
    .await
    .unwrap();
    // Flume is down: every POST meets a dropped connection until the faults are cleared.
    for _ in 0..100_000 {
        flume.push_fault(MockFault::DropBeforeCommit);
    }
    let (_driver, client) = browser(&scratch.join("profile")).await;
    client.goto(flume.url()).await.unwrap();
    client
        .wait()
        .for_element(Locator::Css("#status"))
        .await
        .unwrap();

    const TODOS: usize = 20;
    for n in 0..TODOS {
        add(&client, &format!("todo {n}")).await;
        wait_for(
            &client,
            "the row appears",
            Duration::from_secs(10),
            |rows| rows.len() == n + 1,
        )
        .await;
    }
    let pending = rows(&client).await;
    assert!(
        pending.values().all(|class| class == "pending"),
        "Flume is down: every row is pending: {pending:?}"
    );
    screenshot(&client, page, "pending.png").await;
    assert_eq!(flume.unique_ids(), 0);

    // Flume is back.
    flume.clear_faults();
    wait_for(
        &client,
        "every row synced",
        Duration::from_secs(90),
        |rows| all_synced(rows, TODOS),
    )
    .await;
    wait_for_status(
        &client,
        &format!("pending 0 · in flight 0 · delivered {TODOS} "),
    )
    .await;
    screenshot(&client, page, "synced.png").await;

    let ids = ids_in_sink(&sink);
    assert_eq!(ids.len(), TODOS, "each todo's change arrived");
    assert!(
        ids.values().all(|&count| count == 1),
        "each id once: {ids:?}"
    );

    // A reload keeps everything.
    client.refresh().await.unwrap();
    wait_for(
        &client,
        "rows after the reload",
        Duration::from_secs(20),
        |rows| all_synced(rows, TODOS),
    )
    .await;
    wait_for_status(&client, "this tab sends").await;

    // A second window of the same origin shows the same data and does not send.
    let first = client.window().await.unwrap();
    let second = client.new_window(false).await.unwrap().handle;
    client.switch_to_window(second.clone()).await.unwrap();
    client.goto(flume.url()).await.unwrap();
    wait_for(
        &client,
        "rows in the second window",
        Duration::from_secs(20),
        |rows| rows.len() == TODOS,
    )
    .await;
    wait_for_status(&client, "another tab sends").await;
    add(&client, "from the second window").await;
    wait_for(
        &client,
        "the second window's todo, sent by the first",
        Duration::from_secs(20),
        |rows| all_synced(rows, TODOS + 1),
    )
    .await;

    // Closing the first hands delivery to the second.
    client.switch_to_window(first).await.unwrap();
    client.close_window().await.unwrap();
    client.switch_to_window(second).await.unwrap();
    wait_for_status(&client, "this tab sends").await;
    add(&client, "after the handover").await;
    wait_for(
        &client,
        "the todo after the handover",
        Duration::from_secs(20),
        |rows| all_synced(rows, TODOS + 2),
    )
    .await;
    let ids = ids_in_sink(&sink);
    assert_eq!(ids.len(), TODOS + 2);
    assert!(
        ids.values().all(|&count| count == 1),
        "nothing sent twice while both windows lived: {ids:?}"
    );
    client.close().await.unwrap();
    let _ = std::fs::remove_dir_all(&scratch);
}
