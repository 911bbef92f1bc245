//! The figures an operator watches, published through the [`metrics`] facade so that
//! an application plugs in any exporter (Prometheus through
//! `metrics-exporter-prometheus`, OpenTelemetry, ...). Every series carries a `source`
//! label (the client's name), so several outboxes in one process stay apart. See
//! docs/operations.md for what each one means.

use std::time::Duration;

use headwater_core::engine::{Outbox, SyncStatus};

use crate::parts::DynStore;
use crate::runtime;

/// Delivery latency, capture to acknowledgement, in seconds (a histogram).
pub(crate) const LATENCY: &str = "headwater_delivery_latency_seconds";

/// Where the latency histogram says it comes from (what `histogram!` would say here).
static LATENCY_METADATA: metrics::Metadata<'static> =
    metrics::Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));

/// The latency histogram's key for `source`, made once per syncer: `histogram!` would
/// allocate its label twice for every change delivered (a fifth of `send`'s allocations).
pub(crate) fn latency_key(source: &str) -> metrics::Key {
    metrics::Key::from_parts(
        LATENCY,
        vec![metrics::Label::new("source", source.to_owned())],
    )
}

/// Records one delivered change's latency, with whatever recorder is installed now (one
/// installed after the syncer started is seen too).
pub(crate) fn delivered(key: &metrics::Key, latency: Duration) {
    metrics::with_recorder(|recorder| recorder.register_histogram(key, &LATENCY_METADATA))
        .record(latency.as_secs_f64());
}

/// Sets every gauge and counter from `status`.
pub(crate) fn publish(source: &str, status: &SyncStatus, now: chrono::DateTime<chrono::Utc>) {
    let source = source.to_owned();
    let gauge = |name: &'static str, value: f64| {
        metrics::gauge!(name, "source" => source.clone()).set(value);
    };
    gauge("headwater_pending_changes", status.pending as f64);
    gauge("headwater_pending_bytes", status.pending_bytes as f64);
    let age = status.oldest_pending_at.map_or(0.0, |at| {
        (now - at).num_milliseconds().max(0) as f64 / 1000.0
    });
    gauge("headwater_oldest_pending_age_seconds", age);
    gauge("headwater_in_flight_changes", status.in_flight as f64);
    gauge(
        "headwater_dead_lettered_changes",
        status.dead_lettered as f64,
    );
    gauge("headwater_batch_size", status.batch_size as f64);
    gauge("headwater_in_flight_limit", status.in_flight_limit as f64);
    gauge(
        "headwater_stalled",
        f64::from(u8::from(status.stalled_since.is_some())),
    );
    gauge(
        "headwater_blocked",
        f64::from(u8::from(status.blocked.is_some())),
    );
    let counters = &status.counters;
    let counter = |name: &'static str, value: u64| {
        metrics::counter!(name, "source" => source.clone()).absolute(value);
    };
    counter("headwater_delivered_total", counters.delivered);
    counter("headwater_dead_lettered_total", counters.dead_lettered);
    counter("headwater_retries_total", counters.retries);
    counter("headwater_bisections_total", counters.bisections);
    counter("headwater_quarantined_total", counters.quarantined);
    counter(
        "headwater_rejected_by_server_total",
        counters.rejected_by_server,
    );
    let answers = &counters.answers;
    for (outcome, value) in [
        ("accepted", answers.accepted),
        ("throttled", answers.throttled),
        ("client_error", answers.client_errors),
        ("server_error", answers.server_errors),
        ("timeout", answers.timeouts),
        ("connection_failed", answers.connection_failures),
        ("refused", answers.refused),
    ] {
        metrics::counter!("headwater_requests_total", "source" => source.clone(), "outcome" => outcome)
            .absolute(value);
    }
}

/// Publishes the status every `interval` until the syncer stops.
pub(crate) async fn report(
    outbox: Outbox<DynStore>,
    clock: runtime::SharedClock,
    source: String,
    interval: Duration,
) {
    loop {
        runtime::sleep(interval).await;
        let now = clock.now();
        match outbox.status(now).await {
            Ok(status) => publish(&source, &status, now),
            Err(error) => tracing::debug!(%error, "metrics: cannot read the status"),
        }
        if outbox.is_stopped() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    /// The `headwater_*` names in `text`, each up to the first character that cannot be
    /// in a metric name.
    fn names(text: &str) -> BTreeSet<String> {
        text.match_indices("headwater_")
            .map(|(at, _)| {
                text[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                    .collect::<String>()
            })
            .collect()
    }

    /// docs/operations.md's metrics table is the reference of what this module
    /// publishes: a metric added, renamed or dropped without the page fails here, and
    /// so does an `outcome` label.
    #[test]
    fn the_operations_page_lists_exactly_the_metrics_published() {
        let source = include_str!("metrics.rs");
        let source = &source[..source.find("#[cfg(test)]").unwrap_or(source.len())];
        let page = include_str!("../../../docs/operations.md");
        let section = &page[page.find("## Metrics").expect("a Metrics section")..];
        let section = &section[..section[3..]
            .find("\n## ")
            .map_or(section.len(), |end| end + 3)];
        let published: BTreeSet<String> = names(source)
            .into_iter()
            .filter(|name| name != "headwater_core")
            .collect();
        let documented: BTreeSet<String> = names(section)
            .into_iter()
            .filter(|name| {
                section.contains(&format!("`{name}`")) || section.contains(&format!("`{name}{{"))
            })
            .collect();
        assert_eq!(published, documented, "docs/operations.md's metrics table");
        for outcome in [
            "accepted",
            "throttled",
            "client_error",
            "server_error",
            "timeout",
            "connection_failed",
            "refused",
        ] {
            assert!(source.contains(&format!("(\"{outcome}\"")), "{outcome}");
            assert!(section.contains(&format!("`{outcome}`")), "{outcome}");
        }
    }

    /// A partial success counted in the status reaches its counter: the drop an OTLP
    /// receiver reports is never silent.
    #[test]
    fn records_a_server_dropped_are_published() {
        use metrics_util::debugging::{DebugValue, DebuggingRecorder};

        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let mut status = crate::SyncStatus::default();
        status.counters.rejected_by_server = 3;
        metrics::with_local_recorder(&recorder, || {
            super::publish("phone-7", &status, chrono::Utc::now());
        });
        let published = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .find(|(key, ..)| key.key().name() == "headwater_rejected_by_server_total")
            .map(|(.., value)| value);
        assert_eq!(published, Some(DebugValue::Counter(3)));
    }
}
