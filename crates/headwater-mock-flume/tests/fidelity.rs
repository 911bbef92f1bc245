//! The mock answers as Flume 1.11's HTTP source does: one test per row of the
//! behaviour table in docs/flume.md.

use std::time::Duration;

use headwater_mock_flume::{MockConfig, MockFault, MockFlume, jetty};
use reqwest::{Client, Method, StatusCode};

const JSON_UTF8: &str = "application/json; charset=UTF-8";

async fn flume() -> MockFlume {
    MockFlume::start(MockConfig::default()).await.unwrap()
}

async fn send(
    flume: &MockFlume,
    method: Method,
    path: &str,
    content_type: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> (StatusCode, String) {
    let url = format!("{}{}", flume.url().trim_end_matches('/'), path);
    let mut request = Client::new().request(method, url).body(body);
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.text().await.unwrap())
}

/// Each body gets `status` and a Jetty error page whose message contains `message`.
async fn assert_each_rejected(
    flume: &MockFlume,
    bodies: &[&str],
    status: StatusCode,
    message: &str,
) {
    for body in bodies {
        let (got, text) = post(flume, body).await;
        assert_eq!(got, status, "{body:?}");
        let heading = format!("<h2>HTTP ERROR {} ", status.as_u16());
        assert!(text.contains(&heading), "a Jetty error page: {text}");
        let escaped = message.replace('"', "&quot;");
        assert!(text.contains(&escaped), "{body:?}: {text}");
    }
}

async fn post(flume: &MockFlume, body: &str) -> (StatusCode, String) {
    send(flume, Method::POST, "/", Some(JSON_UTF8), body.to_owned()).await
}

#[tokio::test]
async fn a_valid_batch_is_committed_with_200_and_an_empty_body() {
    let flume = flume().await;
    let (status, body) = post(&flume, r#"[{"headers":{"a":"1"},"body":"x"},{"body":"y"}]"#).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, ""));
    let events = flume.events();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].headers["a"], "1");
    assert_eq!(events[1].body, "y");
}

#[tokio::test]
async fn any_path_and_get_are_handled_like_post() {
    let flume = flume().await;
    let (status, _) = send(
        &flume,
        Method::POST,
        "/any/path?x=1",
        Some(JSON_UTF8),
        r#"[{"body":"a"}]"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = send(
        &flume,
        Method::GET,
        "/",
        Some(JSON_UTF8),
        r#"[{"body":"b"}]"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(flume.event_count(), 2);
}

#[tokio::test]
async fn options_and_trace_are_forbidden_put_and_delete_not_allowed() {
    let flume = flume().await;
    for method in [Method::OPTIONS, Method::TRACE] {
        let (status, _) = send(&flume, method.clone(), "/", None, "").await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method}");
    }
    for method in [Method::PUT, Method::DELETE] {
        let (status, body) = send(&flume, method.clone(), "/", Some(JSON_UTF8), "[]").await;
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::METHOD_NOT_ALLOWED, ""),
            "{method}"
        );
    }
    let (status, _) = send(&flume, Method::PATCH, "/", Some(JSON_UTF8), "[]").await;
    assert_eq!(status, StatusCode::NOT_IMPLEMENTED);
    assert_eq!(flume.event_count(), 0);
}

#[tokio::test]
async fn an_empty_array_is_200_and_commits_nothing() {
    let flume = flume().await;
    assert_eq!(post(&flume, "[]").await.0, StatusCode::OK);
    assert_eq!(flume.event_count(), 0);
}

#[tokio::test]
async fn empty_and_null_bodies_are_500s() {
    let flume = flume().await;
    let null_list = ["", "  \n", "null"];
    assert_each_rejected(
        &flume,
        &null_list,
        StatusCode::INTERNAL_SERVER_ERROR,
        jetty::NULL_LIST,
    )
    .await;
    let null_event = [r#"[{"body":"a"},null]"#, r#"[{"body":"a"},]"#, "[,]"];
    assert_each_rejected(
        &flume,
        &null_event,
        StatusCode::INTERNAL_SERVER_ERROR,
        jetty::NULL_EVENT,
    )
    .await;
    assert_eq!(flume.event_count(), 0);
}

#[tokio::test]
async fn invalid_json_is_a_400_with_flumes_text() {
    let flume = flume().await;
    let bodies = [
        r#"{"headers":{},"body":"x"}"#,
        r#"[{"body":"x"}"#,
        r#"[{"headers":{"a":{"b":1}}}]"#,
        r#"[{"headers":{"a":[1]}}]"#,
        r#"[{"body":{"text":"x"}}]"#,
        r#"[{"headers":{"a":"1","a":"2"}}]"#,
        r#""just a string""#,
    ];
    assert_each_rejected(&flume, &bodies, StatusCode::BAD_REQUEST, jetty::BAD_REQUEST).await;
    assert_eq!(flume.event_count(), 0);
}

#[tokio::test]
async fn content_after_the_array_is_a_400() {
    let flume = flume().await;
    let bodies = [r#"[{"body":"a"}] trailing"#, "[][]", "[] ]"];
    assert_each_rejected(&flume, &bodies, StatusCode::BAD_REQUEST, jetty::BAD_REQUEST).await;
    assert_eq!(flume.event_count(), 0);
}

#[tokio::test]
async fn numbers_and_booleans_become_their_text_and_unknown_keys_are_skipped() {
    let flume = flume().await;
    let (status, _) = post(
        &flume,
        r#"[{"headers":{"n":42,"f":1.5,"t":true},"body":false,"extra":{"x":[1]}}]"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let event = &flume.events()[0];
    assert_eq!(event.headers["n"], "42");
    assert_eq!(event.headers["f"], "1.5");
    assert_eq!(event.headers["t"], "true");
    assert_eq!(event.body, "false");
    assert_eq!(event.headers.len(), 3);
}

#[tokio::test]
async fn a_batch_is_atomic() {
    let flume = flume().await;
    let (status, _) = post(&flume, r#"[{"body":"good"},{"body":"good"},{"body":[]}]"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        flume.event_count(),
        0,
        "nothing of a rejected batch is committed"
    );
}

#[tokio::test]
async fn charset_rules() {
    let flume = flume().await;
    let body = r#"[{"headers":{"h":"é"},"body":"ü"}]"#;
    // With the charset, or application/json alone: UTF-8.
    for content_type in [
        JSON_UTF8,
        "application/json",
        "text/json",
        "application/json;charset=utf-8",
    ] {
        assert_eq!(
            send(&flume, Method::POST, "/", Some(content_type), body)
                .await
                .0,
            StatusCode::OK
        );
    }
    for event in flume.events() {
        assert_eq!(
            (event.headers["h"].as_str(), event.body.as_str()),
            ("é", "ü")
        );
    }
    // Without a charset on another type, Jetty reads ISO-8859-1: the text is mangled.
    assert_eq!(
        send(&flume, Method::POST, "/", Some("text/plain"), body)
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(flume.events()[4].body, "Ã¼");
    // UTF-16 and UTF-32 are accepted.
    let utf16: Vec<u8> = body.encode_utf16().flat_map(u16::to_be_bytes).collect();
    assert_eq!(
        send(
            &flume,
            Method::POST,
            "/",
            Some("application/json; charset=UTF-16"),
            utf16
        )
        .await
        .0,
        StatusCode::OK
    );
    assert_eq!(flume.events()[5].body, "ü");
    // Jetty normalizes utf8 to utf-8; any other charset is a 500.
    assert_eq!(
        send(
            &flume,
            Method::POST,
            "/",
            Some("application/json; charset=utf8"),
            body
        )
        .await
        .0,
        StatusCode::OK
    );
    for charset in ["ISO-8859-1", "latin1", "no-such-charset"] {
        let content_type = format!("application/json; charset={charset}");
        let (status, text) = send(&flume, Method::POST, "/", Some(&content_type), body).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{charset}");
        assert!(text.contains(jetty::DESERIALIZER_FAILED));
    }
    assert_eq!(flume.event_count(), 7);
}

#[tokio::test]
async fn a_batch_over_transaction_capacity_is_a_503_every_time() {
    let flume = flume().await;
    let batch = format!("[{}]", [r#"{"body":"x"}"#; 101].join(","));
    for _ in 0..3 {
        let (status, text) = post(&flume, &batch).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(text.contains("Error appending event to channel. Channel might be full.Put queue for MemoryTransaction of capacity 100 full"), "{text}");
    }
    let exactly = format!("[{}]", [r#"{"body":"x"}"#; 100].join(","));
    assert_eq!(post(&flume, &exactly).await.0, StatusCode::OK);
    assert_eq!(flume.event_count(), 100);
}

#[tokio::test]
async fn a_full_channel_is_a_503_after_keep_alive_and_drains_at_the_sink_rate() {
    let flume = MockFlume::start(MockConfig {
        capacity: 10,
        transaction_capacity: 10,
        drain_rate: Some(100.0),
        keep_alive: Duration::from_millis(20),
        metrics: true,
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let ten = format!("[{}]", [r#"{"body":"x"}"#; 10].join(","));
    assert_eq!(post(&flume, &ten).await.0, StatusCode::OK);
    let (status, text) = post(&flume, &ten).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(text.contains(jetty::NO_SPACE), "{text}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        post(&flume, &ten).await.0,
        StatusCode::OK,
        "the sink made room"
    );
    let metrics: serde_json::Value = Client::new()
        .get(format!("{}metrics", flume.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(metrics["SOURCE.r1"]["AppendBatchReceivedCount"], "3");
    assert_eq!(metrics["SOURCE.r1"]["AppendBatchAcceptedCount"], "2");
    assert_eq!(metrics["CHANNEL.c1"]["EventPutSuccessCount"], "20");
    assert_eq!(metrics["CHANNEL.c1"]["ChannelCapacity"], "10");
}

#[tokio::test]
async fn cors_is_opt_in() {
    let strict = flume().await;
    let (status, _) = send(&strict, Method::OPTIONS, "/", None, "").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let cors = MockFlume::start(MockConfig {
        cors: true,
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let preflight = Client::new()
        .request(Method::OPTIONS, cors.url())
        .header("origin", "http://app.test")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        "http://app.test"
    );
    assert_eq!(
        preflight.headers()["access-control-allow-headers"],
        "content-type"
    );
    let post = Client::new()
        .post(cors.url())
        .header("origin", "http://app.test")
        .header("content-type", JSON_UTF8)
        .body("[]")
        .send()
        .await
        .unwrap();
    assert_eq!(
        post.headers()["access-control-allow-origin"],
        "http://app.test"
    );
}

#[tokio::test]
async fn a_static_folder_is_served_on_the_same_origin() {
    let dir = std::env::temp_dir().join(format!("headwater-static-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("index.html"), "<h1>app</h1>").unwrap();
    let flume = MockFlume::start(MockConfig {
        static_dir: Some(dir.clone()),
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let (status, body) = send(&flume, Method::GET, "/index.html", None, "").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "<h1>app</h1>"));
    assert_eq!(post(&flume, r#"[{"body":"x"}]"#).await.0, StatusCode::OK);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn a_sink_file_gets_one_json_line_per_event() {
    let path = std::env::temp_dir().join(format!("headwater-sink-{}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let flume = MockFlume::start(MockConfig {
        sink_file: Some(path.clone()),
        ..MockConfig::default()
    })
    .await
    .unwrap();
    post(
        &flume,
        r#"[{"headers":{"id":"1"},"body":"a"},{"headers":{"id":"2"},"body":"b\nc"}]"#,
    )
    .await;
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["headers"]["id"], "2");
    assert_eq!(lines[1]["body"], "b\nc");
    std::fs::remove_file(path).unwrap();
}

#[tokio::test]
async fn faults_drop_connections_before_or_after_the_commit() {
    let flume = flume().await;
    let client = Client::new();
    flume.push_fault(MockFault::DropBeforeCommit);
    let error = client
        .post(flume.url())
        .header("content-type", JSON_UTF8)
        .body(r#"[{"body":"a"}]"#)
        .send()
        .await;
    assert!(error.is_err(), "no answer");
    assert_eq!(flume.event_count(), 0);
    flume.push_fault(MockFault::DropAfterCommit);
    let error = client
        .post(flume.url())
        .header("content-type", JSON_UTF8)
        .body(r#"[{"body":"b"}]"#)
        .send()
        .await;
    assert!(error.is_err(), "no answer");
    assert_eq!(flume.event_count(), 1, "but committed");
    flume.push_fault(MockFault::Hang);
    let hung = client
        .post(flume.url())
        .timeout(Duration::from_millis(100))
        .body("[]")
        .send()
        .await;
    assert!(hung.unwrap_err().is_timeout());
    flume.push_fault(MockFault::Delay(Duration::from_millis(50)));
    let started = std::time::Instant::now();
    assert_eq!(post(&flume, "[]").await.0, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(50));
    flume.push_fault(MockFault::Status(502));
    assert_eq!(
        post(&flume, r#"[{"body":"c"}]"#).await.0,
        StatusCode::BAD_GATEWAY
    );
    assert_eq!(flume.event_count(), 1);
}

#[tokio::test]
async fn a_request_over_the_size_cap_is_a_413() {
    let flume = MockFlume::start(MockConfig {
        max_request_bytes: 100,
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let big = format!(r#"[{{"body":"{}"}}]"#, "x".repeat(200));
    assert_eq!(post(&flume, &big).await.0, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(post(&flume, r#"[{"body":"x"}]"#).await.0, StatusCode::OK);
}

#[tokio::test]
async fn inspection_counts_unique_ids_and_duplicates() {
    let flume = flume().await;
    post(&flume, r#"[{"headers":{"id":"a"}},{"headers":{"id":"b"}}]"#).await;
    post(&flume, r#"[{"headers":{"id":"a"}}]"#).await;
    assert_eq!(
        (flume.unique_ids(), flume.duplicates(), flume.requests()),
        (2, 1, 2)
    );
    flume.shutdown().await;
}

#[tokio::test]
async fn misconfigurations_are_refused() {
    let bad = MockConfig {
        transaction_capacity: 200,
        ..MockConfig::default()
    };
    assert!(
        MockFlume::start(bad)
            .await
            .unwrap_err()
            .to_string()
            .contains("transactionCapacity")
    );
    let bad = MockConfig {
        drain_rate: Some(-1.0),
        ..MockConfig::default()
    };
    assert!(MockFlume::start(bad).await.is_err());
    let bad = MockConfig {
        static_dir: Some("/no/such/dir".into()),
        ..MockConfig::default()
    };
    assert!(
        MockFlume::start(bad)
            .await
            .unwrap_err()
            .to_string()
            .contains("/no/such/dir")
    );
}
