//! Generic list/get/create/replace/delete handlers over [`Object`]s.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use serde::Serialize;
use serde_json::{Value, json};

use super::object::Object;
use super::{BASE, S};
use crate::AlertEngine;
use crate::api::{ApiError, parse_json};
use crate::objects::AlarmPolicy;

pub(super) fn items<T: Serialize>(v: Vec<T>) -> Json<Value> {
    Json(json!({ "items": v }))
}

fn io_err(e: std::io::Error) -> ApiError {
    ApiError::internal(S, format!("persisting objects: {e}"))
}

impl From<std::io::Error> for ApiError {
    fn from(e: std::io::Error) -> Self {
        io_err(e)
    }
}

async fn list<T: Object>(State(e): State<Arc<AlertEngine>>) -> Json<Value> {
    items(
        e.objects()
            .read(|o| T::map_ref(o).values().cloned().collect::<Vec<T>>()),
    )
}

async fn get_one<T: Object>(
    State(e): State<Arc<AlertEngine>>,
    Path(name): Path<String>,
) -> Result<Json<T>, ApiError> {
    e.objects()
        .read(|o| T::map_ref(o).get(&name).cloned())
        .map(Json)
        .ok_or_else(|| ApiError::not_found(S, format!("{} {name:?} not found", T::KIND)))
}

fn after_change<T: Object>(e: &AlertEngine) {
    if T::KIND == AlarmPolicy::KIND {
        e.reload_policies();
    }
}

async fn create<T: Object>(
    State(e): State<Arc<AlertEngine>>,
    body: Bytes,
) -> Result<(StatusCode, Json<T>), ApiError> {
    let obj: T = parse_json(S, &body)?;
    let created = e.objects().update(|o| {
        if T::map_ref(o).contains_key(obj.name()) {
            return Err(ApiError::conflict(
                S,
                "name",
                format!("{} {:?} already exists", T::KIND, obj.name()),
            ));
        }
        obj.validate(o).map_err(|(f, m)| ApiError::bad(S, f, m))?;
        T::map(o).insert(obj.name().to_string(), obj.clone());
        Ok::<T, ApiError>(obj)
    })?;
    after_change::<T>(&e);
    Ok((StatusCode::CREATED, Json(created)))
}

async fn replace<T: Object>(
    State(e): State<Arc<AlertEngine>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<T>, ApiError> {
    let mut obj: T = parse_json(S, &body)?;
    if obj.name() != name {
        return Err(ApiError::bad(
            S,
            "name",
            format!("name {:?} does not match the path {name:?}", obj.name()),
        ));
    }
    let updated = e.objects().update(|o| {
        let old = T::map_ref(o)
            .get(&name)
            .cloned()
            .ok_or_else(|| ApiError::not_found(S, format!("{} {name:?} not found", T::KIND)))?;
        obj.validate(o).map_err(|(f, m)| ApiError::bad(S, f, m))?;
        obj.on_update(&old);
        T::map(o).insert(name.clone(), obj.clone());
        Ok::<T, ApiError>(obj)
    })?;
    after_change::<T>(&e);
    Ok(Json(updated))
}

async fn delete<T: Object>(
    State(e): State<Arc<AlertEngine>>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    e.objects().update(|o| {
        if T::map(o).remove(&name).is_none() {
            return Err(ApiError::not_found(
                S,
                format!("{} {name:?} not found", T::KIND),
            ));
        }
        T::on_delete(&name, o);
        Ok::<(), ApiError>(())
    })?;
    after_change::<T>(&e);
    Ok(StatusCode::NO_CONTENT)
}

pub(super) fn crud<T: Object>(r: Router<Arc<AlertEngine>>, path: &str) -> Router<Arc<AlertEngine>> {
    r.route(&format!("{BASE}/{path}"), get(list::<T>).post(create::<T>))
        .route(
            &format!("{BASE}/{path}/{{name}}"),
            get(get_one::<T>).put(replace::<T>).delete(delete::<T>),
        )
}
