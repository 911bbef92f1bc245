//! Delivers changes from the memory store to the bench mock in another process, for
//! profiling (`perf record`): `cargo run --release -p headwater-benches --example
//! deliver -- COUNT IN_FLIGHT`; `RAW=1` sends prebuilt bodies instead, `SQLITE=1`
//! delivers from a SQLite store. `OTLP=URL` delivers OTLP/HTTP logs to that receiver (a
//! real Collector from `scripts/otel-collector.sh`) instead of Flume JSON to the bench
//! mock; with `RAW=1`, prebuilt gzipped bodies go there at the same concurrency.

use std::time::Instant;

use std::sync::Arc;

use headwater::sqlite::SqliteStore;
use headwater::transport::BodyFormat;
use headwater::{ChangeStore, Headwater, HttpConfig, HttpTransport, MemoryStore, Transport};
use headwater_benches::{
    MockProcess, realistic_captured, realistic_changes, realistic_mapping, sqlite_options_from_env,
};
use headwater_core::flume::{BatchEncoder, EncodedBatch};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let count: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let in_flight: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(4);
    let batch: usize = std::env::var("BATCH")
        .ok()
        .and_then(|b| b.parse().ok())
        .unwrap_or(100);
    let otlp = std::env::var("OTLP").ok();
    if let Some(url) = &otlp {
        deliver_otlp(url, count, in_flight, batch).await;
        return;
    }
    let mock = MockProcess::start();
    if std::env::var_os("RAW").is_some() {
        let mut encoder = BatchEncoder::new(realistic_mapping());
        let bodies: Arc<Vec<Vec<u8>>> = Arc::new(
            realistic_changes(count)
                .chunks(batch)
                .map(|chunk| {
                    encoder.encode(chunk, usize::MAX);
                    encoder.batch().body.to_vec()
                })
                .collect(),
        );
        let transport =
            HttpTransport::new(HttpConfig::new([mock.url.clone()]), chrono::Utc::now).unwrap();
        let rate = send_raw(
            count,
            transport,
            bodies,
            in_flight,
            batch,
            BodyFormat::FlumeJson,
        )
        .await;
        println!("raw {count} events, {in_flight} in flight: {rate:.0} events/s");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn ChangeStore> = if std::env::var_os("SQLITE").is_some() {
        let options = sqlite_options_from_env();
        Arc::new(SqliteStore::open_with(dir.path().join("outbox.db"), &options).unwrap())
    } else {
        Arc::new(MemoryStore::new())
    };
    let builder = Headwater::builder()
        .http(|config| *config = HttpConfig::new([mock.url.clone()]))
        .max_in_flight(in_flight)
        .batch_size(batch);
    let rate = timed_delivery(count, store, builder).await;
    println!("{count} changes, {in_flight} in flight: {rate:.0} events/s");
}

/// Fills `store` with `count` realistic changes, then starts `builder` on it and times
/// the delivery of all of them; events per second.
async fn timed_delivery(
    count: usize,
    store: Arc<dyn ChangeStore>,
    builder: headwater::Builder,
) -> f64 {
    for chunk in realistic_captured(count, 1, chrono::Utc::now()).chunks(1000) {
        store.append(chunk.to_vec()).await.unwrap();
    }
    let started = Instant::now();
    let headwater = builder.store(store).start().unwrap();
    headwater.flush().await.unwrap();
    let rate = count as f64 / started.elapsed().as_secs_f64();
    headwater.shutdown().await;
    rate
}

/// Sends every prebuilt body (`count` events in all) with `in_flight` senders, each
/// taking every `in_flight`-th body; events per second.
async fn send_raw(
    count: usize,
    transport: HttpTransport,
    bodies: Arc<Vec<Vec<u8>>>,
    in_flight: usize,
    batch: usize,
    format: BodyFormat,
) -> f64 {
    let transport = Arc::new(transport);
    let started = Instant::now();
    let tasks: Vec<_> = (0..in_flight)
        .map(|sender| {
            let (bodies, transport) = (Arc::clone(&bodies), Arc::clone(&transport));
            tokio::spawn(async move {
                for index in (sender..bodies.len()).step_by(in_flight) {
                    transport
                        .send(EncodedBatch::new(&bodies[index], batch).in_format(format))
                        .await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    count as f64 / started.elapsed().as_secs_f64()
}

/// OTLP/HTTP logs to `url`: prebuilt gzipped bodies (`RAW=1`), or through the facade
/// from the memory store.
async fn deliver_otlp(url: &str, count: usize, in_flight: usize, batch: usize) {
    use std::io::Write;

    use headwater_core::otlp::{OtlpEncoder, OtlpMapping};

    if std::env::var_os("RAW").is_some() {
        let now = chrono::Utc::now();
        let mut encoder = OtlpEncoder::new(&realistic_mapping(), &OtlpMapping::default());
        let bodies: Arc<Vec<Vec<u8>>> = Arc::new(
            realistic_changes(count)
                .chunks(batch)
                .map(|chunk| {
                    let mut body = Vec::new();
                    encoder.start(&mut body, now);
                    for (events, change) in chunk.iter().enumerate() {
                        encoder.push(&mut body, events, change, usize::MAX);
                    }
                    encoder.finish(&mut body);
                    let mut gzip =
                        flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                    gzip.write_all(&body).unwrap();
                    gzip.finish().unwrap()
                })
                .collect(),
        );
        let mut config = HttpConfig::new([url.to_owned()]);
        config.gzip = false;
        config
            .headers
            .push(("content-encoding".into(), "gzip".into()));
        let transport = HttpTransport::new(config, chrono::Utc::now).unwrap();
        let rate = send_raw(
            count,
            transport,
            bodies,
            in_flight,
            batch,
            BodyFormat::OtlpProtobuf,
        )
        .await;
        println!("raw OTLP {count} events, {in_flight} in flight: {rate:.0} events/s");
        return;
    }
    let builder = Headwater::builder()
        .otlp([url.to_owned()], "bench")
        .max_in_flight(in_flight)
        .batch_size(batch);
    let rate = timed_delivery(count, Arc::new(MemoryStore::new()), builder).await;
    println!("OTLP {count} changes, {in_flight} in flight: {rate:.0} events/s");
}
