//! DataFusion tables over the log store (`logs`) and the event store
//! (`events`), for `POST /api/v1/sql`.
//!
//! `logs` has the columns `timestamp`, `labels` (the stream selector),
//! `line`, then one nullable string column per label name. Filters on
//! `timestamp` against literals prune partitions; DataFusion applies every
//! filter again on the rows.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::ScalarValue;
use datafusion::datasource::MemTable;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{
    BinaryExpr, Expr, Operator, TableProviderFilterPushDown, TableType,
};
use datafusion::physical_plan::ExecutionPlan;

use super::events::EventStore;
use super::parquet::{read_conformed, rows_to_batch, schema_for};
use super::store::Store;

type ScanFuture<'a> = Pin<Box<dyn Future<Output = Result<Arc<dyn ExecutionPlan>>> + Send + 'a>>;

/// The `logs` table.
#[derive(Clone)]
pub struct LogsTable {
    store: Arc<Store>,
}

impl std::fmt::Debug for LogsTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LogsTable")
    }
}

impl LogsTable {
    /// A table over `store`.
    pub fn new(store: Arc<Store>) -> Self {
        LogsTable { store }
    }
}

/// Nanoseconds of a timestamp literal.
fn literal_ns(e: &Expr) -> Option<i64> {
    match e {
        Expr::Literal(v, _) => match v {
            ScalarValue::TimestampNanosecond(Some(x), _) => Some(*x),
            ScalarValue::TimestampMicrosecond(Some(x), _) => Some(x.saturating_mul(1_000)),
            ScalarValue::TimestampMillisecond(Some(x), _) => Some(x.saturating_mul(1_000_000)),
            ScalarValue::TimestampSecond(Some(x), _) => Some(x.saturating_mul(1_000_000_000)),
            _ => None,
        },
        Expr::Cast(c) => literal_ns(&c.expr),
        _ => None,
    }
}

fn is_ts_column(e: &Expr) -> bool {
    matches!(e, Expr::Column(c) if c.name == "timestamp")
}

/// The `[start, end]` a filter bounds `timestamp` to, if it does.
fn time_bound(e: &Expr) -> Option<(i64, i64)> {
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = e else {
        return None;
    };
    let (op, v) = if is_ts_column(left) {
        (*op, literal_ns(right)?)
    } else if is_ts_column(right) {
        (op.swap()?, literal_ns(left)?)
    } else if *op == Operator::And {
        let (a, b) = (time_bound(left), time_bound(right));
        return match (a, b) {
            (Some(a), Some(b)) => Some((a.0.max(b.0), a.1.min(b.1))),
            (a, b) => a.or(b),
        };
    } else {
        return None;
    };
    match op {
        Operator::Gt | Operator::GtEq => Some((v, i64::MAX)),
        Operator::Lt | Operator::LtEq => Some((i64::MIN, v)),
        Operator::Eq => Some((v, v)),
        _ => None,
    }
}

impl TableProvider for LogsTable {
    fn schema(&self) -> SchemaRef {
        schema_for(self.store.label_names().iter())
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| {
                if time_bound(f).is_some() {
                    TableProviderFilterPushDown::Inexact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect())
    }

    fn scan<'a, 'b, 'c, 'd, 'e>(
        &'a self,
        state: &'b dyn Session,
        projection: Option<&'c Vec<usize>>,
        filters: &'d [Expr],
        limit: Option<usize>,
    ) -> ScanFuture<'e>
    where
        'a: 'e,
        'b: 'e,
        'c: 'e,
        'd: 'e,
        Self: 'e,
    {
        Box::pin(async move {
            let schema = self.schema();
            let range = filters
                .iter()
                .filter_map(time_bound)
                .fold((i64::MIN, i64::MAX), |a, b| (a.0.max(b.0), a.1.min(b.1)));
            let store = self.store.clone();
            let sch = schema.clone();
            let batches = tokio::task::spawn_blocking(move || -> Result<_> {
                let (files, rows) = store.snapshot(Some(range));
                let rows: Vec<_> = rows
                    .iter()
                    .filter(|r| r.ts >= range.0 && r.ts <= range.1)
                    .collect();
                let mut out = Vec::new();
                if !rows.is_empty() {
                    out.push(rows_to_batch(&rows, &sch)?);
                }
                for f in files {
                    out.extend(
                        read_conformed(&f, &sch)
                            .map_err(|e| DataFusionError::External(e.into()))?,
                    );
                }
                Ok(out)
            })
            .await
            .map_err(|e| DataFusionError::External(e.into()))??;
            let mem = MemTable::try_new(schema, vec![batches])?;
            mem.scan(state, projection, &[], limit).await
        })
    }
}

/// The `events` table.
#[derive(Clone)]
pub struct EventsTable {
    store: Arc<EventStore>,
}

impl std::fmt::Debug for EventsTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EventsTable")
    }
}

impl EventsTable {
    /// A table over `store`.
    pub fn new(store: Arc<EventStore>) -> Self {
        EventsTable { store }
    }
}

impl TableProvider for EventsTable {
    fn schema(&self) -> SchemaRef {
        EventStore::schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn scan<'a, 'b, 'c, 'd, 'e>(
        &'a self,
        state: &'b dyn Session,
        projection: Option<&'c Vec<usize>>,
        _filters: &'d [Expr],
        limit: Option<usize>,
    ) -> ScanFuture<'e>
    where
        'a: 'e,
        'b: 'e,
        'c: 'e,
        'd: 'e,
        Self: 'e,
    {
        Box::pin(async move {
            let batch = self.store.batch()?;
            let mem = MemTable::try_new(EventStore::schema(), vec![vec![batch]])?;
            mem.scan(state, projection, &[], limit).await
        })
    }
}
