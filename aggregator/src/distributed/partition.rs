//! Splitting an ingest batch by series onto Kafka partitions, and the
//! message payload: a snappy-compressed remote-write 1.0 `WriteRequest`
//! (the same bytes a Prometheus sender POSTs), so the topic is readable by
//! any remote-write-aware tool.

use tidewatch_common::remote_write::{
    self, Label, MetricMetadata, MetricType, Sample, TimeSeries, WriteRequest,
};

use crate::batch::IngestSeries;
use crate::store::MetricMeta;

/// The partition of a series: its stable label hash (the series id) modulo
/// the partition count, so one series always lands on one partition and is
/// appended in order by one consumer.
pub fn partition_of(series_id: u64, partitions: usize) -> usize {
    // Mix the bits: series ids are already a hash, but a multiplicative
    // step keeps low-bit patterns from skewing small partition counts.
    (series_id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize % partitions.max(1)
}

/// Groups `batch` by partition and encodes one payload per non-empty
/// partition; `meta` (HELP/TYPE/UNIT) travels with every payload.
pub fn split(
    batch: Vec<IngestSeries>,
    meta: &[(String, MetricMeta)],
    partitions: usize,
) -> Vec<(i32, Vec<u8>)> {
    let partitions = partitions.max(1);
    let mut groups: Vec<Vec<TimeSeries>> = vec![Vec::new(); partitions];
    for s in batch {
        let p = partition_of(s.id, partitions);
        groups[p].push(to_timeseries(s));
    }
    let metadata: Vec<MetricMetadata> = meta.iter().map(to_metadata).collect();
    groups
        .into_iter()
        .enumerate()
        .filter(|(_, g)| !g.is_empty())
        .map(|(p, timeseries)| {
            let req = WriteRequest {
                timeseries,
                metadata: metadata.clone(),
            };
            (p as i32, remote_write::encode_write_request(&req))
        })
        .collect()
}

fn to_timeseries(s: IngestSeries) -> TimeSeries {
    TimeSeries {
        labels: s
            .labels
            .into_vec()
            .into_iter()
            .map(|l| Label {
                name: l.name,
                value: l.value,
            })
            .collect(),
        samples: s
            .timestamps
            .iter()
            .zip(&s.values)
            .map(|(&timestamp, &value)| Sample { value, timestamp })
            .collect(),
        ..Default::default()
    }
}

fn to_metadata((name, m): &(String, MetricMeta)) -> MetricMetadata {
    let kind = match m.kind.as_str() {
        "counter" => MetricType::Counter,
        "gauge" => MetricType::Gauge,
        "histogram" => MetricType::Histogram,
        "gaugehistogram" => MetricType::Gaugehistogram,
        "summary" => MetricType::Summary,
        "info" => MetricType::Info,
        "stateset" => MetricType::Stateset,
        _ => MetricType::Unknown,
    };
    MetricMetadata {
        r#type: kind as i32,
        metric_family_name: name.clone(),
        help: m.help.clone(),
        unit: m.unit.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidewatch_common::Labels;

    #[test]
    fn split_keeps_series_whole_and_roundtrips() {
        let batch: Vec<IngestSeries> = (0..50)
            .map(|i| {
                IngestSeries::new(
                    Labels::from_pairs([("__name__", "m"), ("i", &*i.to_string())]),
                    vec![1, 2],
                    vec![i as f64, 0.5],
                )
            })
            .collect();
        let ids: Vec<u64> = batch.iter().map(|s| s.id).collect();
        let parts = split(batch, &[], 4);
        assert!(parts.len() > 1, "50 series spread over partitions");
        let mut seen = 0;
        for (p, payload) in parts {
            let req = remote_write::decode_write_request(&payload, 1 << 20).unwrap();
            let (series, _) = crate::ingest::from_remote_write(req).unwrap();
            for s in series {
                assert!(ids.contains(&s.id));
                assert_eq!(partition_of(s.id, 4) as i32, p);
                assert_eq!(s.timestamps, vec![1, 2]);
                seen += 1;
            }
        }
        assert_eq!(seen, 50);
    }
}
