//! The LogQL subset Tidewatch evaluates.

use regex::Regex;

/// A parsed query.
#[derive(Debug, Clone)]
pub enum Expr {
    /// Returns log lines (streams).
    Log(LogExpr),
    /// Returns samples (matrix or vector).
    Metric(MetricExpr),
}

/// `{selector} | stage | …`.
#[derive(Debug, Clone)]
pub struct LogExpr {
    /// Stream matchers, ANDed.
    pub matchers: Vec<Matcher>,
    /// Pipeline stages in order.
    pub stages: Vec<Stage>,
}

/// Comparison of a label matcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOp {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `=~`
    Re,
    /// `!~`
    Nre,
}

/// `name op "value"`.
#[derive(Debug, Clone)]
pub struct Matcher {
    /// Label name.
    pub name: String,
    /// Operator.
    pub op: MatchOp,
    /// Value or pattern.
    pub value: String,
    /// Anchored pattern for `=~` and `!~`.
    pub re: Option<Regex>,
}

impl Matcher {
    /// Whether the value (empty when the label is absent) satisfies it.
    pub fn matches(&self, v: &str) -> bool {
        match self.op {
            MatchOp::Eq => v == self.value,
            MatchOp::Ne => v != self.value,
            MatchOp::Re => self.re.as_ref().is_some_and(|r| r.is_match(v)),
            MatchOp::Nre => !self.re.as_ref().is_some_and(|r| r.is_match(v)),
        }
    }
}

/// A line filter operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineOp {
    /// `|=` contains.
    Contains,
    /// `!=` does not contain.
    NotContains,
    /// `|~` matches.
    Match,
    /// `!~` does not match.
    NotMatch,
}

/// Numeric comparison of a label filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `<`
    Lt,
    /// `<=`
    Le,
}

/// A label filter expression.
#[derive(Debug, Clone)]
pub enum LabelPred {
    /// String comparison.
    Str(Matcher),
    /// Numeric comparison.
    Num {
        /// Label.
        name: String,
        /// Operator.
        op: CmpOp,
        /// Right-hand side.
        value: f64,
    },
    /// Both.
    And(Box<LabelPred>, Box<LabelPred>),
    /// Either.
    Or(Box<LabelPred>, Box<LabelPred>),
}

/// One pipeline stage.
#[derive(Debug, Clone)]
pub enum Stage {
    /// A line filter.
    Line {
        /// Operator.
        op: LineOp,
        /// Text or pattern.
        value: String,
        /// Unanchored pattern for `|~` and `!~`.
        re: Option<Regex>,
    },
    /// `| json`
    Json,
    /// `| logfmt`
    Logfmt,
    /// `| <label filter>`
    LabelFilter(LabelPred),
    /// `| line_format "template"`
    LineFormat(Vec<TemplatePart>),
}

/// A piece of a `line_format` template.
#[derive(Debug, Clone, PartialEq)]
pub enum TemplatePart {
    /// Literal text.
    Text(String),
    /// `{{ .label }}`
    Label(String),
    /// `{{ __line__ }}`
    Line,
}

/// Range aggregations over log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeFn {
    /// Number of lines in the window.
    CountOverTime,
    /// Lines per second.
    Rate,
    /// Bytes in the window.
    BytesOverTime,
    /// Bytes per second.
    BytesRate,
}

/// Vector aggregation operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggOp {
    /// `sum`
    Sum,
    /// `count`
    Count,
    /// `min`
    Min,
    /// `max`
    Max,
    /// `avg`
    Avg,
}

/// A metric query.
#[derive(Debug, Clone)]
pub enum MetricExpr {
    /// `fn(log-expr [range])`.
    Range {
        /// Function.
        func: RangeFn,
        /// The lines counted.
        log: LogExpr,
        /// Window, ns.
        range_ns: i64,
    },
    /// `op by (labels) (inner)`.
    Agg {
        /// Operator.
        op: AggOp,
        /// Grouping: `(without, labels)`; `None` aggregates everything.
        grouping: Option<(bool, Vec<String>)>,
        /// Operand.
        inner: Box<MetricExpr>,
    },
}
