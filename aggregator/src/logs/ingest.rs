//! Decoding of ingest bodies: Loki push (snappy protobuf or JSON) and the
//! Elasticsearch bulk API (NDJSON) into a [`Batch`].

use std::collections::BTreeMap;

use serde_json::Value;
use tidewatch_common::Labels;
use tidewatch_common::labels::is_valid_label_name;
use tidewatch_common::loki::{JsonPushRequest, decode_push_request, parse_labels};

use super::model::Batch;

/// Decodes a snappy-compressed protobuf push body.
pub fn from_protobuf(body: &[u8], max_bytes: usize) -> Result<Batch, String> {
    let req = decode_push_request(body, max_bytes).map_err(|e| e.to_string())?;
    let mut out = Batch::default();
    for (i, s) in req.streams.into_iter().enumerate() {
        let labels = parse_labels(&s.labels).map_err(|e| format!("streams[{i}].labels: {e}"))?;
        let entries = s
            .entries
            .into_iter()
            .enumerate()
            .map(|(j, e)| {
                let ts = e
                    .timestamp
                    .ok_or_else(|| format!("streams[{i}].entries[{j}].timestamp: missing"))?;
                Ok((ts.to_nanos(), e.line))
            })
            .collect::<Result<Vec<_>, String>>()?;
        out.streams.push((labels, entries));
    }
    Ok(out)
}

/// Decodes a JSON push body.
pub fn from_json(body: &[u8]) -> Result<Batch, String> {
    let req: JsonPushRequest =
        serde_json::from_slice(body).map_err(|e| format!("invalid JSON push body: {e}"))?;
    let mut out = Batch::default();
    for (i, s) in req.streams.into_iter().enumerate() {
        for name in s.stream.keys() {
            if !is_valid_label_name(name) {
                return Err(format!("streams[{i}].stream: invalid label name {name:?}"));
            }
        }
        let labels = Labels::from_pairs(s.stream);
        let mut entries = Vec::with_capacity(s.values.len());
        for (j, v) in s.values.into_iter().enumerate() {
            let field = || format!("streams[{i}].values[{j}]");
            if v.len() < 2 || v.len() > 3 {
                return Err(format!("{}: expected [timestamp, line]", field()));
            }
            let ts = match &v[0] {
                Value::String(s) => s.parse::<i64>().ok(),
                Value::Number(n) => n.as_i64(),
                _ => None,
            }
            .ok_or_else(|| format!("{}: timestamp must be nanoseconds as a string", field()))?;
            let Value::String(line) = &v[1] else {
                return Err(format!("{}: line must be a string", field()));
            };
            entries.push((ts, line.clone()));
        }
        out.streams.push((labels, entries));
    }
    Ok(out)
}

/// One action of a bulk request and its result status.
pub struct BulkItem {
    /// `index` or `create`.
    pub action: String,
    /// Target index.
    pub index: String,
    /// Document id (given or generated).
    pub id: String,
    /// HTTP-like status of this item.
    pub status: u16,
    /// Error reason, for failed items.
    pub error: Option<String>,
}

/// Decodes an Elasticsearch `_bulk` NDJSON body. Items that cannot be
/// turned into log lines are reported as failed items (status 400), like
/// Elasticsearch does, without failing the others.
pub fn from_bulk(
    body: &[u8],
    label_fields: &[String],
    now_ns: i64,
) -> Result<(Batch, Vec<BulkItem>), String> {
    let text = std::str::from_utf8(body).map_err(|_| "bulk body is not UTF-8".to_string())?;
    let mut lines = text.lines().filter(|l| !l.trim().is_empty()).enumerate();
    let mut streams: BTreeMap<Labels, Vec<(i64, String)>> = BTreeMap::new();
    let mut items = Vec::new();
    while let Some((n, action_line)) = lines.next() {
        let action: Value = serde_json::from_str(action_line)
            .map_err(|e| format!("line {}: invalid action JSON: {e}", n + 1))?;
        let Some((name, meta)) = action.as_object().and_then(|o| o.iter().next()) else {
            return Err(format!("line {}: expected an action object", n + 1));
        };
        if !matches!(name.as_str(), "index" | "create") {
            return Err(format!(
                "line {}: unsupported bulk action {name:?} (only index and create)",
                n + 1
            ));
        }
        let index = meta
            .get("_index")
            .and_then(Value::as_str)
            .unwrap_or("logs")
            .to_string();
        let id = meta
            .get("_id")
            .and_then(Value::as_str)
            .map(String::from)
            .unwrap_or_else(|| format!("{now_ns:x}-{n}"));
        let Some((_, doc_line)) = lines.next() else {
            return Err(format!("line {}: action without a document", n + 1));
        };
        let mut item = BulkItem {
            action: name.clone(),
            index: index.clone(),
            id,
            status: 201,
            error: None,
        };
        match serde_json::from_str::<Value>(doc_line) {
            Ok(Value::Object(doc)) => {
                let (labels, ts, line) = doc_to_entry(&doc, &index, label_fields, now_ns);
                streams.entry(labels).or_default().push((ts, line));
            }
            _ => {
                item.status = 400;
                item.error = Some("document is not a JSON object".into());
            }
        }
        items.push(item);
    }
    Ok((
        Batch {
            streams: streams.into_iter().collect(),
        },
        items,
    ))
}

fn doc_to_entry(
    doc: &serde_json::Map<String, Value>,
    index: &str,
    label_fields: &[String],
    now_ns: i64,
) -> (Labels, i64, String) {
    let mut pairs = vec![("index".to_string(), index.to_string())];
    for f in label_fields {
        if let Some(Value::String(v)) = doc.get(f) {
            pairs.push((f.clone(), v.clone()));
        }
    }
    if let Some(Value::Object(k)) = doc.get("kubernetes") {
        for (from, to) in [
            ("namespace_name", "namespace"),
            ("pod_name", "pod"),
            ("container_name", "container"),
            ("host", "node"),
        ] {
            if let Some(Value::String(v)) = k.get(from) {
                pairs.push((to.to_string(), v.clone()));
            }
        }
    }
    let ts = ["@timestamp", "timestamp", "time"]
        .iter()
        .find_map(|k| match doc.get(*k) {
            Some(Value::String(s)) => chrono::DateTime::parse_from_rfc3339(s)
                .ok()
                .and_then(|t| t.timestamp_nanos_opt()),
            Some(Value::Number(n)) => n.as_i64().map(|ms| ms.saturating_mul(1_000_000)),
            _ => None,
        })
        .unwrap_or(now_ns);
    let line = ["message", "log", "msg"]
        .iter()
        .find_map(|k| doc.get(*k).and_then(Value::as_str))
        .map(|s| s.trim_end_matches('\n').to_string())
        .unwrap_or_else(|| Value::Object(doc.clone()).to_string());
    (Labels::from_pairs(pairs), ts, line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_push() {
        let b =
            from_json(br#"{"streams":[{"stream":{"app":"a"},"values":[["17","x"],["18","y"]]}]}"#)
                .unwrap();
        assert_eq!(b.entries(), 2);
        let e =
            from_json(br#"{"streams":[{"stream":{"app":"a"},"values":[["x","y"]]}]}"#).unwrap_err();
        assert!(e.contains("streams[0].values[0]"), "{e}");
        let e = from_json(br#"{"streams":[{"stream":{"a-b":"a"},"values":[]}]}"#).unwrap_err();
        assert!(e.contains("invalid label name"), "{e}");
    }

    #[test]
    fn bulk() {
        let body = concat!(
            "{\"index\":{\"_index\":\"app\"}}\n",
            "{\"@timestamp\":\"2024-01-01T00:00:00Z\",\"message\":\"hi\",\"namespace\":\"ns\",\"kubernetes\":{\"pod_name\":\"p\"}}\n",
            "{\"create\":{}}\n",
            "[1]\n"
        );
        let (b, items) = from_bulk(body.as_bytes(), &["namespace".into()], 5).unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[1].status, 400);
        let (labels, entries) = &b.streams[0];
        assert_eq!(labels.get("namespace"), Some("ns"));
        assert_eq!(labels.get("pod"), Some("p"));
        assert_eq!(labels.get("index"), Some("app"));
        assert_eq!(entries[0], (1_704_067_200_000_000_000, "hi".to_string()));
        assert!(from_bulk(b"{\"delete\":{}}\n", &[], 0).is_err());
    }
}
