//! The storage interface the engine reads from.

use std::future::Future;
use std::pin::Pin;

use promql_parser::label::Matcher;
use tidewatch_common::Labels;

use crate::native::HistogramSeries;

/// One series' samples, columnar: `timestamps[i]` goes with `values[i]`,
/// timestamps ascending (milliseconds). Staleness markers are stored as the
/// special NaN bit pattern `STALE_NAN` and are skipped by the engine.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Series {
    /// Series labels including `__name__`.
    pub labels: Labels,
    /// Sample timestamps (ms), ascending.
    pub timestamps: Vec<i64>,
    /// Sample values.
    pub values: Vec<f64>,
}

/// Bit pattern of Prometheus's staleness marker (a signalling NaN).
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// Whether `v` is the staleness marker.
pub fn is_stale_nan(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// What the engine asks the storage for.
#[derive(Clone, Debug)]
pub struct SelectRequest {
    /// Label matchers, ANDed; at least one matches a non-empty value.
    pub matchers: Vec<Matcher>,
    /// Inclusive start (ms).
    pub start_ms: i64,
    /// Inclusive end (ms).
    pub end_ms: i64,
}

/// Storage failures surfaced to the query API as `execution` errors.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StorageError(pub String);

/// Boxed future returned by [`Storage::select`].
pub type SelectFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Vec<Series>, StorageError>> + Send + 'a>>;

/// Boxed future returned by [`Storage::select_histograms`].
pub type HistogramSelectFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Vec<HistogramSeries>, StorageError>> + Send + 'a>>;

/// A source of series.
pub trait Storage: Send + Sync {
    /// Returns every series matching `req.matchers` with its samples in
    /// `[req.start_ms, req.end_ms]` (series without samples there may be
    /// omitted).
    fn select(&self, req: SelectRequest) -> SelectFuture<'_>;

    /// Whether this storage may hold native-histogram samples; only then
    /// does the engine look for them (see [`crate::native`]).
    fn has_histograms(&self) -> bool {
        false
    }

    /// Like [`Storage::select`] for native-histogram samples.
    fn select_histograms(&self, _req: SelectRequest) -> HistogramSelectFuture<'_> {
        Box::pin(async { Ok(Vec::new()) })
    }
}
