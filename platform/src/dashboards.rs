//! The dashboards: the built single-page app from `dashboards/dist`,
//! embedded with `rust-embed`. Unknown non-API paths fall back to
//! `index.html`; an empty build shows a placeholder page.

use axum::Router;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};
use rust_embed::RustEmbed;

/// The embedded `dashboards/dist` folder.
#[derive(RustEmbed)]
#[folder = "$CARGO_MANIFEST_DIR/../dashboards/dist"]
pub struct Assets;

/// Path prefixes that never fall back to the app.
const API_PREFIXES: &[&str] = &["/api/", "/auth/", "/loki/", "/-/", "/metrics"];

const PLACEHOLDER: &str = "<!doctype html><html><head><meta charset=\"utf-8\">\
<title>Tidewatch</title></head><body style=\"font-family:sans-serif;max-width:40em;margin:4em auto\">\
<h1>Tidewatch</h1><p>The dashboards have not been built into this binary. Run \
<code>./scripts/build-dashboards</code> and rebuild, or use the APIs: \
<a href=\"/api/platform/openapi.json\">platform OpenAPI</a>, \
<a href=\"/api/v1/query?query=up\">PromQL</a>.</p></body></html>";

/// Routes: the fallback serving the app.
pub fn router() -> Router {
    Router::new().fallback(serve)
}

async fn serve(uri: Uri) -> Response {
    let path = uri.path();
    if API_PREFIXES.iter().any(|p| path.starts_with(p)) {
        return (StatusCode::NOT_FOUND, "not found\n").into_response();
    }
    let rel = path.trim_start_matches('/');
    if !rel.is_empty()
        && let Some(resp) = asset(rel)
    {
        return resp;
    }
    match asset("index.html") {
        Some(mut resp) => {
            resp.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            resp
        }
        None => Html(PLACEHOLDER).into_response(),
    }
}

fn asset(rel: &str) -> Option<Response> {
    let file = Assets::get(rel)?;
    let mime = file.metadata.mimetype();
    let mut resp = file.data.into_owned().into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(mime).unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    if rel.starts_with("assets/") {
        // Vite puts content hashes in these names.
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=31536000, immutable"),
        );
    }
    Some(resp)
}
