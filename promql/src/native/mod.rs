//! Native histograms: the float histogram model, the test-file notation,
//! histogram samples in storage and the part of PromQL evaluated over
//! them.
//!
//! Support is deliberately partial. Selectors return histogram samples
//! (with lookback and staleness), and `histogram_count`, `histogram_sum`,
//! `histogram_avg`, `histogram_stddev`, `histogram_stdvar`,
//! `histogram_quantile` and `histogram_fraction` of a selector read them;
//! any other expression over a series
//! holding histogram samples fails with an error starting with
//! [`NOT_SUPPORTED`] instead of returning a wrong float result.

pub(crate) mod eval;
pub mod histogram;
pub mod notation;
pub mod stats;
pub(crate) mod store;

use tidewatch_common::Labels;

pub use histogram::{CounterResetHint, FloatHistogram, HistogramError, Span};
pub use notation::{expand_histogram_token, format_histogram, go_g, parse_histogram};

/// Prefix of the error returned for expressions over native histograms
/// that the engine does not evaluate.
pub const NOT_SUPPORTED: &str = "native histograms are not supported in";

/// One series' native-histogram samples, timestamps ascending (ms).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HistogramSeries {
    /// Series labels including `__name__`.
    pub labels: Labels,
    /// Sample timestamps (ms), ascending.
    pub timestamps: Vec<i64>,
    /// Histogram samples (a stale marker has the staleness NaN as sum).
    pub histograms: Vec<FloatHistogram>,
}
