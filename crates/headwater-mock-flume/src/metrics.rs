use std::sync::atomic::{AtomicU64, Ordering};

/// Flume's source, channel and sink counters.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) requests: AtomicU64,
    pub(crate) batches_received: AtomicU64,
    pub(crate) batches_accepted: AtomicU64,
    pub(crate) events_received: AtomicU64,
    pub(crate) events_accepted: AtomicU64,
    pub(crate) put_attempts: AtomicU64,
    pub(crate) put_successes: AtomicU64,
    pub(crate) takes: AtomicU64,
}

pub(crate) fn add(counter: &AtomicU64, amount: usize) {
    counter.fetch_add(amount as u64, Ordering::Relaxed);
}

fn get(counter: &AtomicU64) -> String {
    counter.load(Ordering::Relaxed).to_string()
}

impl Counters {
    /// The JSON Flume serves at `/metrics` with `-Dflume.monitoring.type=http` (every
    /// value a string, as Flume writes them).
    pub(crate) fn to_json(&self, channel_size: usize, capacity: usize) -> serde_json::Value {
        let fill = if capacity == 0 {
            0.0
        } else {
            channel_size as f64 * 100.0 / capacity as f64
        };
        serde_json::json!({
            "SOURCE.r1": {
                "Type": "SOURCE",
                "AppendBatchReceivedCount": get(&self.batches_received),
                "AppendBatchAcceptedCount": get(&self.batches_accepted),
                "EventReceivedCount": get(&self.events_received),
                "EventAcceptedCount": get(&self.events_accepted),
            },
            "CHANNEL.c1": {
                "Type": "CHANNEL",
                "ChannelSize": channel_size.to_string(),
                "ChannelCapacity": capacity.to_string(),
                "ChannelFillPercentage": fill.to_string(),
                "EventPutAttemptCount": get(&self.put_attempts),
                "EventPutSuccessCount": get(&self.put_successes),
                "EventTakeSuccessCount": get(&self.takes),
            },
            "SINK.k1": {
                "Type": "SINK",
                "EventDrainSuccessCount": get(&self.takes),
            },
        })
    }
}
