//! The Kafka output: `rdkafka` with the idempotent producer and
//! `acks=all`; one message per event, key `cluster_id/uid` (so an event's
//! repeats land in one partition, in order), value the event JSON. A batch
//! is acknowledged once every message is. Delivery is at least once across
//! crashes: consumers de-duplicate by `(uid, count)`, which the value holds.

use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};

use super::record::EventRecord;
use crate::config::KafkaOutput;

/// Kafka producer.
pub struct KafkaSink {
    producer: FutureProducer,
    topic: String,
}

impl KafkaSink {
    /// Builds the producer (connections are made lazily).
    pub fn new(cfg: &KafkaOutput) -> anyhow::Result<KafkaSink> {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &cfg.brokers);
        for (k, v) in &cfg.properties {
            c.set(k, v);
        }
        c.set("acks", "all")
            .set("enable.idempotence", "true")
            .set("message.timeout.ms", "30000")
            .set("linger.ms", "5");
        Ok(KafkaSink {
            producer: c.create()?,
            topic: cfg.topic.clone(),
        })
    }

    /// Produces `events` and waits for every acknowledgement.
    pub async fn send(&mut self, events: &[EventRecord]) -> Result<(), String> {
        let mut pending = Vec::with_capacity(events.len());
        for e in events {
            let key = format!("{}/{}", e.cluster_id, e.uid);
            let value = serde_json::to_vec(e).expect("JSON to memory");
            let rec = FutureRecord::to(&self.topic).key(&key).payload(&value);
            match self.producer.send_result(rec) {
                Ok(f) => pending.push(f),
                Err((e, _)) => return Err(format!("queueing to {}: {e}", self.topic)),
            }
        }
        let mut first_err = None;
        for f in pending {
            match tokio::time::timeout(Duration::from_secs(60), f).await {
                Ok(Ok(Ok(_))) => {}
                Ok(Ok(Err((e, _)))) => {
                    first_err.get_or_insert_with(|| format!("producing to {}: {e}", self.topic));
                }
                Ok(Err(_)) => {
                    first_err.get_or_insert_with(|| "producer dropped a delivery".to_string());
                }
                Err(_) => {
                    first_err
                        .get_or_insert_with(|| format!("producing to {}: timed out", self.topic));
                }
            }
        }
        match first_err {
            None => Ok(()),
            Some(e) => Err(e),
        }
    }
}
