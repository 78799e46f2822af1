//! Query results.

use tidewatch_common::Labels;

use crate::storage::Series;

/// One instant-vector element.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Labels.
    pub labels: Labels,
    /// Timestamp (ms).
    pub timestamp: i64,
    /// Value (0 for a histogram sample).
    pub value: f64,
    /// The native histogram, for a histogram sample.
    pub histogram: Option<Box<crate::native::FloatHistogram>>,
}

/// The value of an evaluated expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A scalar at a timestamp.
    Scalar { timestamp: i64, value: f64 },
    /// A string at a timestamp.
    String { timestamp: i64, value: String },
    /// An instant vector.
    Vector(Vec<Sample>),
    /// A range vector / range-query result.
    Matrix(Vec<Series>),
}
