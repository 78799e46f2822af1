//! LogQL: parser, pipeline and evaluator of the subset Tidewatch supports —
//! stream selectors, line filters (`|=`, `!=`, `|~`, `!~`), `json` and
//! `logfmt` parsers, label filters, `line_format`, and the metric queries
//! `count_over_time`, `rate`, `bytes_over_time`, `bytes_rate` aggregated
//! with `sum`/`count`/`min`/`max`/`avg` `by`/`without`.

pub mod ast;
pub mod eval;
pub mod parser;
pub mod pipeline;

pub use ast::Expr;
pub use eval::{Direction, Limits, Params, QueryResult, evaluate, filter_rows, stream_selected};
pub use parser::parse;
