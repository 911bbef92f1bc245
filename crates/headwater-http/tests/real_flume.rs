//! Against a real Apache Flume 1.11.0 agent: the mock must answer the same requests
//! the same way, and the engine must deliver through the real HTTP source.
//!
//! These tests need the agent that `scripts/flume-agent.sh` starts (HTTP source →
//! memory channel with transactionCapacity 20 → file_roll sink with header_and_text);
//! `scripts/test.sh` starts it and runs them with `--ignored` when Java and Maven are
//! present, and says so when it cannot.
#![cfg(not(target_arch = "wasm32"))]

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::Utc;
use headwater_core::engine::{SyncConfig, Syncer};
use headwater_core::model::ChangeData;
use headwater_http::{HttpConfig, HttpTransport};
use headwater_memory::MemoryStore;
use headwater_mock_flume::{MockConfig, MockFlume};
use reqwest::{Client, Method};

struct Agent {
    url: String,
    sink: PathBuf,
    transaction_capacity: usize,
}

fn agent() -> Agent {
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!("{name} is not set: start an agent with `source scripts/flume-agent.sh && flume_start DIR`")
        })
    };
    Agent {
        url: var("HEADWATER_FLUME_URL"),
        sink: PathBuf::from(var("HEADWATER_FLUME_SINK")),
        transaction_capacity: var("HEADWATER_FLUME_TRANSACTION_CAPACITY").parse().unwrap(),
    }
}

/// A mock Flume with the agent's channel sizes.
async fn mock_like(agent: &Agent) -> MockFlume {
    MockFlume::start(MockConfig {
        capacity: 200_000,
        transaction_capacity: agent.transaction_capacity,
        ..MockConfig::default()
    })
    .await
    .unwrap()
}

/// One request sent to both.
struct Case {
    name: &'static str,
    method: Method,
    path: &'static str,
    content_type: Option<&'static str>,
    body: Vec<u8>,
}

const JSON_UTF8: Option<&str> = Some("application/json; charset=UTF-8");

fn case(name: &'static str, content_type: Option<&'static str>, body: impl Into<Vec<u8>>) -> Case {
    Case {
        name,
        method: Method::POST,
        path: "/",
        content_type,
        body: body.into(),
    }
}

fn batch(count: usize, tag: &str) -> String {
    let events: Vec<String> = (0..count)
        .map(|i| format!(r#"{{"headers":{{"case":"{tag}","i":"{i}"}},"body":"event {i}"}}"#))
        .collect();
    format!("[{}]", events.join(","))
}

fn cases(transaction_capacity: usize) -> Vec<Case> {
    let utf16 =
        |text: &str| -> Vec<u8> { text.encode_utf16().flat_map(u16::to_be_bytes).collect() };
    let utf16_surrogate = utf16(r#"[{"headers":{"case":"utf16-surrogate"},"body":"a\ud800b"}]"#);
    let utf16 = utf16(r#"[{"headers":{"case":"utf16"},"body":"ütf-16"}]"#);
    let mut cases = vec![
        case(
            "valid batch",
            JSON_UTF8,
            r#"[{"headers":{"case":"valid","a":"1"},"body":"x"},{"headers":{"case":"valid2"},"body":"y"}]"#,
        ),
        case(
            "non-ASCII, charset=UTF-8",
            JSON_UTF8,
            r#"[{"headers":{"case":"utf8","h":"é"},"body":"ü 日本"}]"#,
        ),
        case(
            "non-ASCII, application/json without charset",
            Some("application/json"),
            r#"[{"headers":{"case":"json-nocharset"},"body":"ü"}]"#,
        ),
        case(
            "non-ASCII, text/plain without charset",
            Some("text/plain"),
            r#"[{"headers":{"case":"plain-nocharset"},"body":"ü"}]"#,
        ),
        case(
            "non-ASCII, no content type",
            None,
            r#"[{"headers":{"case":"no-type"},"body":"ü"}]"#,
        ),
        case(
            "charset=UTF-16",
            Some("application/json; charset=UTF-16"),
            utf16,
        ),
        case(
            "charset=utf8",
            Some("application/json; charset=utf8"),
            r#"[{"headers":{"case":"utf8-alias"},"body":"é"}]"#,
        ),
        case(
            "charset=latin1",
            Some("application/json; charset=latin1"),
            "[]",
        ),
        case(
            "charset=ISO-8859-1",
            Some("application/json; charset=ISO-8859-1"),
            "[]",
        ),
        case(
            "unknown charset",
            Some("application/json; charset=no-such"),
            "[]",
        ),
        case("empty array", JSON_UTF8, "[]"),
        case(
            "UTF-8 byte order mark before the array",
            JSON_UTF8,
            b"\xEF\xBB\xBF[{\"headers\":{\"case\":\"bom\"},\"body\":\"x\"}]".to_vec(),
        ),
        case("empty body", JSON_UTF8, ""),
        case("whitespace body", JSON_UTF8, "  \n"),
        case("null document", JSON_UTF8, "null"),
        case("[null]", JSON_UTF8, "[null]"),
        case(
            "trailing comma [{},]",
            JSON_UTF8,
            r#"[{"headers":{"case":"never"}},]"#,
        ),
        case(
            "object, not array",
            JSON_UTF8,
            r#"{"headers":{},"body":"x"}"#,
        ),
        case("string document", JSON_UTF8, r#""text""#),
        case("array of numbers", JSON_UTF8, "[1]"),
        case(
            "object as header value",
            JSON_UTF8,
            r#"[{"headers":{"a":{"b":"c"}}}]"#,
        ),
        case(
            "array as header value",
            JSON_UTF8,
            r#"[{"headers":{"a":["b"]}}]"#,
        ),
        case("object as body", JSON_UTF8, r#"[{"body":{"b":"c"}}]"#),
        case(
            "duplicate header",
            JSON_UTF8,
            r#"[{"headers":{"a":"1","a":"2"}}]"#,
        ),
        case(
            "content after the array",
            JSON_UTF8,
            r#"[{"body":"x"}] trailing"#,
        ),
        case("second array after the first", JSON_UTF8, "[][]"),
        case("unterminated", JSON_UTF8, r#"[{"body":"x"}"#),
        case(
            "numbers and booleans coerced",
            JSON_UTF8,
            r#"[{"headers":{"case":"coerce","n":42,"f":1.50,"t":true},"body":7}]"#,
        ),
        case(
            "unknown keys skipped",
            JSON_UTF8,
            r#"[{"headers":{"case":"unknown-keys"},"extra":{"x":[1,2]},"body":"kept"}]"#,
        ),
        case(
            "headers as [name, value] pairs",
            JSON_UTF8,
            r#"[{"headers":[["case","pairs"],["p","q"]],"body":"pairs"}]"#,
        ),
        case(
            "null body and no headers",
            JSON_UTF8,
            r#"[{"headers":{"case":"null-body"},"body":null}]"#,
        ),
        // Gson's lenient reading, which Flume's JSONHandler gets from Gson.fromJson.
        case(
            "single-quoted names and strings",
            JSON_UTF8,
            r#"[{'headers':{'case':'single-quoted','q':'it\'s'},'body':'sq'}]"#,
        ),
        case(
            "unquoted names and values",
            JSON_UTF8,
            r#"[{headers:{case:unquoted,k:v1},body:plain}]"#,
        ),
        case(
            "comments: //, /* */ and #",
            JSON_UTF8,
            "// before\n[/* inside */{\"headers\":{\"case\":\"comments\"},\"body\":\"c\"} # end\n]",
        ),
        case(
            "= and => after names, ; between members",
            JSON_UTF8,
            r#"[{"headers"={"case"=>"separators";"k"="v"};"body"="s"}]"#,
        ),
        case(
            "; between events",
            JSON_UTF8,
            r#"[{"headers":{"case":"semicolon"}};{"headers":{"case":"semicolon2"}}]"#,
        ),
        case(
            "the )]}' prefix",
            JSON_UTF8,
            ")]}'\n[{\"headers\":{\"case\":\"prefix\"},\"body\":\"p\"}]",
        ),
        case(
            "keywords in any case",
            JSON_UTF8,
            r#"[{"headers":{"case":"keywords","t":TRUE,"n":Null},"body":False}]"#,
        ),
        case(
            "number-like literals",
            JSON_UTF8,
            r#"[{"headers":{"case":"numbers","a":01,"b":1.,"c":-0},"body":+1}]"#,
        ),
        case(
            "a raw tab in a string",
            JSON_UTF8,
            "[{\"headers\":{\"case\":\"raw-tab\"},\"body\":\"a\tb\"}]",
        ),
        case(
            "a repeated body member",
            JSON_UTF8,
            r#"[{"headers":{"case":"repeated-body"},"body":"a","body":"b"}]"#,
        ),
        case("missing elements [,]", JSON_UTF8, "[,]"),
        case("[null, \"x\"]", JSON_UTF8, r#"[null,"x"]"#),
        case("null document, then text", JSON_UTF8, "null x"),
        case("only a comment", JSON_UTF8, "// nothing here"),
        case("a comment after the array", JSON_UTF8, "[] // late"),
        case(
            "bad \\u escape",
            JSON_UTF8,
            r#"[{"headers":{"case":"never"},"body":"\u12G4"}]"#,
        ),
        case("unterminated \\u escape", JSON_UTF8, r#"[{"body":"\u12"#),
        case(
            "null header value",
            JSON_UTF8,
            r#"[{"headers":{"case":"null-header","gone":null},"body":"n"}]"#,
        ),
        case(
            "null, then a value, under one header name",
            JSON_UTF8,
            r#"[{"headers":{"case":"null-then-value","a":null,"a":"x"}}]"#,
        ),
        case(
            "a value, then null, under one header name",
            JSON_UTF8,
            r#"[{"headers":{"case":"never","a":"x","a":null}}]"#,
        ),
        case(
            "header pair with a null name",
            JSON_UTF8,
            r#"[{"headers":[["case","never"],[null,"x"]]}]"#,
        ),
        case(
            "lone surrogates, UTF-8",
            JSON_UTF8,
            r#"[{"headers":{"case":"surrogate","h":"x\ud800"},"body":"a\udc00b\ud83d\ude00"}]"#,
        ),
        case(
            "lone surrogate, UTF-16",
            Some("application/json; charset=UTF-16"),
            utf16_surrogate,
        ),
        case(
            "batch over transactionCapacity",
            JSON_UTF8,
            batch(transaction_capacity + 1, "over"),
        ),
        case(
            "batch of exactly transactionCapacity",
            JSON_UTF8,
            batch(transaction_capacity, "exact"),
        ),
    ];
    cases.push(Case {
        name: "GET with a batch, any path",
        method: Method::GET,
        path: "/any/path",
        content_type: JSON_UTF8,
        body: br#"[{"headers":{"case":"get"},"body":"via GET"}]"#.to_vec(),
    });
    for method in [
        Method::OPTIONS,
        Method::TRACE,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
        Method::HEAD,
    ] {
        let name: &'static str = match method.as_str() {
            "OPTIONS" => "OPTIONS",
            "TRACE" => "TRACE",
            "PUT" => "PUT",
            "DELETE" => "DELETE",
            "PATCH" => "PATCH",
            _ => "HEAD",
        };
        cases.push(Case {
            name,
            method,
            path: "/",
            content_type: JSON_UTF8,
            body: b"[]".to_vec(),
        });
    }
    cases
}

/// The status and the part of the answer that matters: the message of Jetty's error
/// page (the page around it carries a per-process servlet id), or the whole body.
async fn answer(client: &Client, base: &str, case: &Case) -> (u16, String) {
    let url = format!("{}{}", base.trim_end_matches('/'), case.path);
    let mut request = client
        .request(case.method.clone(), url)
        .body(case.body.clone());
    if let Some(content_type) = case.content_type {
        request = request.header("content-type", content_type);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let message = match (text.find("<h2>"), text.find("</h2>")) {
        (Some(start), Some(end)) => text[start + 4..end].to_owned(),
        _ => text,
    };
    (status, message)
}

/// Events the file_roll sink wrote with header_and_text: `{k=v, k=v} body` per line,
/// body bytes as Flume stored them.
fn real_sink_events(sink: &PathBuf) -> Vec<(BTreeMap<String, String>, Vec<u8>)> {
    let mut events = Vec::new();
    let Ok(entries) = std::fs::read_dir(sink) else {
        return events;
    };
    let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    files.sort();
    for file in files {
        let bytes = std::fs::read(&file).unwrap_or_default();
        for line in bytes.split(|&b| b == b'\n') {
            let Some(split) = line.windows(2).position(|w| w == b"} ") else {
                continue;
            };
            let headers_text = String::from_utf8_lossy(&line[1..split]);
            let headers = headers_text
                .split(", ")
                .filter(|pair| !pair.is_empty())
                .filter_map(|pair| pair.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            events.push((headers, line[split + 2..].to_vec()));
        }
    }
    events
}

#[tokio::test]
#[ignore = "needs a real Flume agent: scripts/test.sh starts one (scripts/flume-agent.sh) and runs these with --ignored"]
async fn the_mock_answers_every_request_as_the_real_agent_does() {
    let agent = agent();
    let mock = mock_like(&agent).await;
    let client = Client::new();
    let mut table = vec![
        "| request | real Flume 1.11.0 | mock |".to_owned(),
        "|---|---|---|".to_owned(),
    ];
    let mut mismatches = Vec::new();
    for case in cases(agent.transaction_capacity) {
        let real = answer(&client, &agent.url, &case).await;
        let mocked = answer(&client, mock.url(), &case).await;
        let show = |(status, message): &(u16, String)| {
            let message = message
                .strip_prefix(&format!("HTTP ERROR {status} "))
                .unwrap_or(message)
                .replace("&quot;", "\"")
                .replace('|', "\\|");
            if message.is_empty() {
                status.to_string()
            } else {
                format!("{status} `{message}`")
            }
        };
        table.push(format!(
            "| {} | {} | {} |",
            case.name,
            show(&real),
            show(&mocked)
        ));
        if real != mocked {
            mismatches.push(format!("{}: real {real:?}, mock {mocked:?}", case.name));
        }
    }
    let table = table.join("\n");
    eprintln!("{table}");
    // docs/flume.md carries this table: scripts/conformance-table.sh regenerates it.
    if let Some(path) = std::env::var_os("HEADWATER_CONFORMANCE_TABLE") {
        std::fs::write(path, format!("{table}\n")).unwrap();
    }
    assert!(
        mismatches.is_empty(),
        "the mock differs from Flume:\n{}",
        mismatches.join("\n")
    );

    // What arrived: every event the mock committed, the agent's sink holds with the
    // same headers and body bytes.
    let expected: HashMap<String, (BTreeMap<String, String>, String)> = mock
        .events()
        .into_iter()
        .filter_map(|event| {
            let key = format!(
                "{}/{}",
                event.headers.get("case")?,
                event.headers.get("i").cloned().unwrap_or_default()
            );
            let mut headers = event.headers;
            // The sink writes a null value as `null`.
            for name in event.null_headers {
                headers.insert(name, "null".to_owned());
            }
            Some((key, (headers, event.body)))
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    let real: HashMap<String, (BTreeMap<String, String>, Vec<u8>)> = loop {
        let real: HashMap<_, _> = real_sink_events(&agent.sink)
            .into_iter()
            .filter_map(|(headers, body)| {
                let key = format!(
                    "{}/{}",
                    headers.get("case")?,
                    headers.get("i").cloned().unwrap_or_default()
                );
                expected
                    .contains_key(&key)
                    .then_some((key, (headers, body)))
            })
            .collect();
        if real.len() >= expected.len() || Instant::now() > deadline {
            break real;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        expected.len() > agent.transaction_capacity,
        "the cases commit events"
    );
    for (key, (headers, body)) in &expected {
        let (real_headers, real_body) = real
            .get(key)
            .unwrap_or_else(|| panic!("{key} is not in the agent's sink"));
        assert_eq!(real_headers, headers, "{key}: headers");
        // Flume stores the body as the string's bytes in the request charset.
        let expected_body: Vec<u8> = if key.starts_with("utf16") {
            [0xFE, 0xFF]
                .into_iter()
                .chain(body.encode_utf16().flat_map(u16::to_be_bytes))
                .collect()
        } else {
            body.clone().into_bytes()
        };
        assert_eq!(real_body, &expected_body, "{key}: body bytes");
    }
    assert!(
        !real
            .keys()
            .any(|key| key.starts_with("over/") || key.starts_with("never/")),
        "refused batches commit nothing"
    );
}

async fn deliver_10000(url: &str) -> (Duration, usize, Vec<String>) {
    let mut http = HttpConfig::new([url]);
    http.timeout = Duration::from_secs(10);
    let mut config = SyncConfig::new("real-flume-e2e", 99);
    config.batch.max_events = 100;
    let run = format!("run-{}", std::process::id());
    let mut syncer = Syncer::new(
        MemoryStore::new(),
        HttpTransport::new(http, Utc::now).unwrap(),
        config,
    )
    .unwrap();
    let outbox = syncer.outbox();
    let changes = (0..10_000)
        .map(|i| {
            ChangeData::update(
                run.clone(),
                format!("k{i}"),
                &serde_json::json!({"n": i, "t": "é"}),
            )
            .unwrap()
        })
        .collect();
    let captured = outbox.capture_all(Utc::now(), changes).await.unwrap();
    let started = Instant::now();
    loop {
        syncer.sync_once(Utc::now()).await.unwrap();
        if outbox.status(Utc::now()).await.unwrap().is_drained() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let elapsed = started.elapsed();
    let status = outbox.status(Utc::now()).await.unwrap();
    assert!(status.is_synced(), "{status:?}");
    (
        elapsed,
        syncer.batch_size(),
        captured.iter().map(|c| c.id().to_string()).collect(),
    )
}

#[tokio::test]
#[ignore = "needs a real Flume agent: scripts/test.sh starts one (scripts/flume-agent.sh) and runs these with --ignored"]
async fn the_engine_delivers_10000_changes_to_the_real_agent_exactly_once() {
    let agent = agent();
    let (elapsed, batch_size, ids) = deliver_10000(&agent.url).await;
    assert_eq!(
        batch_size, agent.transaction_capacity,
        "the batch size settled at the agent's transactionCapacity"
    );

    let deadline = Instant::now() + Duration::from_secs(30);
    let counts = loop {
        let mut counts: HashMap<String, usize> = HashMap::new();
        for (headers, _) in real_sink_events(&agent.sink) {
            if let Some(id) = headers.get("id") {
                *counts.entry(id.clone()).or_default() += 1;
            }
        }
        let arrived = ids.iter().filter(|id| counts.contains_key(*id)).count();
        if arrived == ids.len() || Instant::now() > deadline {
            break counts;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for id in &ids {
        assert_eq!(
            counts.get(id),
            Some(&1),
            "{id} must be in the sink exactly once"
        );
    }

    let mock = mock_like(&agent).await;
    let (mock_elapsed, mock_batch, _) = deliver_10000(mock.url()).await;
    assert_eq!(mock_batch, agent.transaction_capacity);
    assert_eq!(mock.unique_ids(), 10_000);
    eprintln!(
        "10000 changes, batches settling at {batch_size}: real Flume 1.11.0 {:.0} events/s ({} ms), mock {:.0} events/s ({} ms)",
        10_000.0 / elapsed.as_secs_f64(),
        elapsed.as_millis(),
        10_000.0 / mock_elapsed.as_secs_f64(),
        mock_elapsed.as_millis()
    );
}
