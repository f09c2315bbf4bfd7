//! `GET /console/`: the web console, served by the broker itself (issue 24). Its HTML, CSS and
//! JavaScript live in `broker/console/` (plain ES modules, no build step) and are compiled into
//! the binary, so every broker (and NGINX in front of them) serves the same console with nothing
//! fetched from anywhere else. The console signs in through `POST /v1/auth/token` and then uses
//! only the public API with the user's own token, so it can do nothing the user could not.
//!
//! Caching: the assets are served under `/console/assets/<hash>/`, where `<hash>` covers every
//! asset (one hash for the bundle, so that the modules' relative imports stay inside it), with
//! `immutable`; `index.html` names the current hash and is `no-cache`. A request for another
//! hash (an older or newer broker's page during a rolling upgrade, behind NGINX) gets this
//! broker's file, uncached, rather than a 404 that would break the page.

use std::sync::{Arc, LazyLock};

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use sha2::{Digest, Sha256};

use super::error::ApiError;
use crate::error::Error;
use crate::service::Broker;

/// Where the console lives.
pub const CONSOLE_PATH: &str = "/console/";

/// What the page may load and talk to: only this origin, no inline script or style, no frames,
/// no form posts (every form is handled by script; without script nothing is sent, so a password
/// can never end up in a URL through a form's fallback).
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The bundle: file name, content type, content.
const ASSETS: &[(&str, &str, &[u8])] = &[
    ("app.js", "text/javascript; charset=utf-8", include_bytes!("../../console/app.js")),
    ("api.js", "text/javascript; charset=utf-8", include_bytes!("../../console/api.js")),
    ("ui.js", "text/javascript; charset=utf-8", include_bytes!("../../console/ui.js")),
    ("queues.js", "text/javascript; charset=utf-8", include_bytes!("../../console/queues.js")),
    ("topics.js", "text/javascript; charset=utf-8", include_bytes!("../../console/topics.js")),
    ("admin.js", "text/javascript; charset=utf-8", include_bytes!("../../console/admin.js")),
    ("console.css", "text/css; charset=utf-8", include_bytes!("../../console/console.css")),
];

const INDEX: &str = include_str!("../../console/index.html");

/// The placeholder in `index.html` replaced by the assets' hashed base path.
const ASSETS_MARK: &str = "{{assets}}";

/// The bundle's hash: SHA-256 over every asset's name and content, 16 hex digits.
static BUNDLE_HASH: LazyLock<String> = LazyLock::new(|| {
    let mut h = Sha256::new();
    for (name, _, body) in ASSETS {
        h.update(name.as_bytes());
        h.update([0]);
        h.update((body.len() as u64).to_le_bytes());
        h.update(body);
    }
    h.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect()
});

/// `index.html` naming the current bundle.
static PAGE: LazyLock<String> =
    LazyLock::new(|| INDEX.replace(ASSETS_MARK, &format!("{CONSOLE_PATH}assets/{}", *BUNDLE_HASH)));

pub fn routes() -> Router<Arc<Broker>> {
    Router::new()
        .route("/console", get(|| async { Redirect::permanent(CONSOLE_PATH) }))
        .route(CONSOLE_PATH, get(index))
        .route("/console/assets/{hash}/{file}", get(asset))
}

/// Headers every console response carries.
fn secured(mut res: Response, cache: &'static str) -> Response {
    let h = res.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(HeaderName::from_static("cross-origin-opener-policy"), HeaderValue::from_static("same-origin"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    res
}

/// The page's validator: the bundle hash names everything the page is made of.
static ETAG: LazyLock<String> = LazyLock::new(|| format!("\"{}\"", *BUNDLE_HASH));

/// `no-cache` makes the browser ask every time; the ETag lets the answer be a bodiless 304 while
/// this broker serves the same bundle.
async fn index(headers: HeaderMap) -> Response {
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|t| t.trim() == ETAG.as_str()));
    let mut res = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], PAGE.as_str()).into_response()
    };
    if let Ok(tag) = HeaderValue::from_str(&ETAG) {
        res.headers_mut().insert(header::ETAG, tag);
    }
    secured(res, "no-cache")
}

async fn asset(Path((hash, file)): Path<(String, String)>) -> Response {
    let Some((_, kind, body)) = ASSETS.iter().find(|(name, _, _)| *name == file) else {
        return ApiError(Error::NotFound(format!("no console asset '{file}'"))).into_response();
    };
    let cache = if hash == *BUNDLE_HASH { "public, max-age=31536000, immutable" } else { "no-cache" };
    secured((StatusCode::OK, [(header::CONTENT_TYPE, *kind)], *body).into_response(), cache)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_every_module_it_loads_under_the_bundle_hash() {
        assert!(!PAGE.contains(ASSETS_MARK));
        assert!(PAGE.contains(&format!("/console/assets/{}/app.js", *BUNDLE_HASH)));
        assert!(PAGE.contains(&format!("/console/assets/{}/console.css", *BUNDLE_HASH)));
    }

    #[test]
    fn nothing_is_loaded_from_another_origin() {
        for (name, _, body) in ASSETS {
            // SVG's namespace is an identifier, not a fetch.
            let text = String::from_utf8_lossy(body).replace("'http://www.w3.org/2000/svg'", "");
            assert!(!text.contains("http://") && !text.contains("https://"), "{name} names another origin");
        }
        assert!(!INDEX.contains("http://") && !INDEX.contains("https://"));
    }
}
