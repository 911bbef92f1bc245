//! Against a real OpenTelemetry Collector (v0.161.0: the OTLP receiver and the file
//! exporter), started by `scripts/otel-collector.sh`, which exports
//! `HEADWATER_OTLP_URL` and `HEADWATER_OTLP_FILE`; scripts/test.sh runs these. Each
//! prints what the Collector answered and stored.

use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

use headwater::{ChangeData, EventMapping, Headwater, OtlpEncoding, Protocol};
use headwater_core::flume::Push;
use headwater_core::model::{Captured, Change, ChangeIdGenerator, Seq};
use headwater_core::otlp::{OtlpEncoder, OtlpMapping, UID_ATTRIBUTE, read_answer};

fn collector() -> (String, std::path::PathBuf) {
    let url = std::env::var("HEADWATER_OTLP_URL")
        .expect("HEADWATER_OTLP_URL: start a collector with scripts/otel-collector.sh");
    let file = std::env::var("HEADWATER_OTLP_FILE").expect("HEADWATER_OTLP_FILE");
    (url, file.into())
}

/// `log.record.uid` of every record in the exporter's file, in order, duplicates kept.
fn stored_uids(file: &std::path::Path) -> Vec<String> {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let mut uids = Vec::new();
    for line in text.lines().filter(|line| !line.trim().is_empty()) {
        let request: serde_json::Value = serde_json::from_str(line).unwrap();
        for resource in request["resourceLogs"].as_array().into_iter().flatten() {
            for scope in resource["scopeLogs"].as_array().into_iter().flatten() {
                for record in scope["logRecords"].as_array().into_iter().flatten() {
                    for attribute in record["attributes"].as_array().into_iter().flatten() {
                        if attribute["key"] == UID_ATTRIBUTE {
                            uids.push(
                                attribute["value"]["stringValue"]
                                    .as_str()
                                    .unwrap_or_default()
                                    .to_owned(),
                            );
                        }
                    }
                }
            }
        }
    }
    uids
}

/// Waits until the exporter's file stops growing (it flushes every 100 ms).
async fn settled_uids(file: &std::path::Path) -> Vec<String> {
    let mut last = usize::MAX;
    loop {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let uids = stored_uids(file);
        if uids.len() == last {
            return uids;
        }
        last = uids.len();
    }
}

fn body_of(uids: &[&str]) -> Vec<u8> {
    let now = chrono::DateTime::from_timestamp_millis(1_700_000_000_000).unwrap();
    let mut ids = ChangeIdGenerator::from_seed(1);
    let mut encoder = OtlpEncoder::new(
        &EventMapping::with_source("conformance"),
        &OtlpMapping::default(),
    );
    let mut body = Vec::new();
    encoder.start(&mut body, now);
    for (n, uid) in uids.iter().enumerate() {
        let data = ChangeData::insert("rows", *uid, &serde_json::json!({"n": n, "text": "héllo"}))
            .unwrap();
        let change = Change::new(
            Seq::new(n as u64 + 1).unwrap(),
            Captured {
                id: ids.next_id(now),
                captured_at: now,
                data,
            },
        );
        assert_eq!(encoder.push(&mut body, n, &change, usize::MAX), Push::Added);
    }
    encoder.finish(&mut body);
    body
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// A request of the conformance table: what it is, its content type and encoding, its
/// body, and the status and records stored that the Collector answers with.
type Row = (
    &'static str,
    &'static str,
    Option<&'static str>,
    Vec<u8>,
    u16,
    usize,
);

#[tokio::test]
#[ignore = "needs a running OpenTelemetry Collector: scripts/test.sh starts one"]
async fn the_collector_answers_as_the_otlp_spec_says() {
    let (url, file) = collector();
    let client = reqwest::Client::new();
    let valid = body_of(&["a", "b", "c"]);
    // A field of 2 MiB of zeros: over the 1 MiB scripts/otel-collector.sh configures.
    let mut oversized = vec![0x0a, 0x80, 0x80, 0x80, 0x01];
    oversized.resize(5 + (2 << 20), 0);
    let rows: Vec<Row> = vec![
        (
            "valid, identity",
            "application/x-protobuf",
            None,
            valid.clone(),
            200,
            3,
        ),
        (
            "valid, gzip",
            "application/x-protobuf",
            Some("gzip"),
            gzip(&valid),
            200,
            3,
        ),
        (
            "empty body",
            "application/x-protobuf",
            None,
            Vec::new(),
            200,
            0,
        ),
        (
            "malformed protobuf",
            "application/x-protobuf",
            None,
            vec![0x0a, 0xff, 0xff, 0x01],
            400,
            0,
        ),
        (
            "gzip header, plain body",
            "application/x-protobuf",
            Some("gzip"),
            valid.clone(),
            400,
            0,
        ),
        (
            "wrong content type",
            "text/plain",
            None,
            valid.clone(),
            415,
            0,
        ),
        (
            "2 MiB, over max_request_body_size (1 MiB)",
            "application/x-protobuf",
            None,
            oversized.clone(),
            400,
            0,
        ),
        (
            "gzip that inflates past max_request_body_size",
            "application/x-protobuf",
            Some("gzip"),
            gzip(&oversized),
            400,
            0,
        ),
    ];
    let mut table =
        String::from("| request | status | records stored | message |\n|---|---|---|---|\n");
    for (name, content_type, encoding, body, expected, stored) in rows {
        let before = settled_uids(&file).await.len();
        let mut request = client
            .post(&url)
            .header("content-type", content_type)
            .body(body);
        if let Some(encoding) = encoding {
            request = request.header("content-encoding", encoding);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let answer_type = response
            .headers()
            .get("content-type")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let bytes = response.bytes().await.unwrap();
        let answer = read_answer(status, answer_type.as_deref(), &bytes);
        let after = settled_uids(&file).await.len();
        table.push_str(&format!(
            "| {name} | {status} | {} | {} |\n",
            after - before,
            answer.message.replace('|', "/")
        ));
        assert_eq!(status, expected, "{name}: {}", answer.message);
        assert_eq!(after - before, stored, "{name}");
        assert_eq!(answer.rejected, None, "{name}");
    }
    println!("{table}");
}

#[tokio::test]
#[ignore = "needs a running OpenTelemetry Collector: scripts/test.sh starts one"]
async fn ten_thousand_changes_arrive_exactly_once_by_uid() {
    exactly_once(10_000, OtlpEncoding::Protobuf).await;
}

#[tokio::test]
#[ignore = "needs a running OpenTelemetry Collector: scripts/test.sh starts one"]
async fn the_json_encoding_arrives_exactly_once_too() {
    exactly_once(2_000, OtlpEncoding::Json).await;
}

async fn exactly_once(count: u32, encoding: OtlpEncoding) {
    let (url, file) = collector();
    let before: std::collections::HashSet<String> = settled_uids(&file).await.into_iter().collect();
    let headwater = Headwater::builder()
        .otlp([url], "headwater-test")
        .source("real-collector")
        .configure(|config| {
            if let Protocol::Otlp(otlp) = &mut config.protocol {
                otlp.encoding = encoding;
            }
        })
        .start()
        .unwrap();
    let changes = (0..count)
        .map(|n| {
            ChangeData::update(
                "todos",
                format!("todo-{}", n % 500),
                &serde_json::json!({"n": n, "title": "buy milk", "done": n.is_multiple_of(3)}),
            )
            .unwrap()
        })
        .collect();
    let receipt = headwater.capture_all(changes).await.unwrap();
    headwater.flush().await.unwrap();
    let status = headwater.status().await.unwrap();
    headwater.shutdown().await;
    drop(receipt);

    let uids = settled_uids(&file).await;
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for uid in uids.iter().filter(|uid| !before.contains(*uid)) {
        *counts.entry(uid).or_default() += 1;
    }
    let duplicates: usize = counts.values().map(|n| n - 1).sum();
    println!(
        "{count} changes into the Collector ({encoding:?}): {} distinct uids stored, {duplicates} duplicates, {} requests",
        counts.len(),
        status.counters.requests
    );
    assert_eq!(counts.len(), count as usize);
    assert_eq!(duplicates, 0);
    assert_eq!(status.counters.delivered, u64::from(count));
    assert_eq!(status.counters.rejected_by_server, 0);
}
