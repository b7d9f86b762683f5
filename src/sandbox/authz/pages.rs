//! The authorization server over HTTP: its router and handlers, which
//! record every request ([`AuthorizationServer::requests`]), add
//! `Cache-Control: no-store` to token answers (RFC 6749 §5.1), and serve the
//! approval pages a person uses (`GET /authorize`'s sign-in form, `GET
//! /device`, and their decisions), HTML-escaping everything they echo.

use super::{AuthorizationServer, AuthzRequestKind, DEVICE_CODE_GRANT, OAuthError, form, no_store};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use std::collections::HashMap;
use std::sync::Arc;

impl AuthorizationServer {
    pub(super) fn user_options(&self) -> String {
        self.users
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|u| format!("<option>{}</option>", html_escape(u)))
            .collect()
    }

    /// Routes: metadata (both well-known names), JWKS, `/device_authorization`,
    /// `/token`, `/revoke`, `/authorize` and the approval pages `/device`, `/authorize/decision`.
    pub fn router(self: Arc<Self>) -> Router {
        let issuer_routes = Arc::clone(&self.issuer).jwks_router();
        Router::new()
            .route(
                "/.well-known/oauth-authorization-server",
                get(metadata_handler),
            )
            .route("/.well-known/openid-configuration", get(metadata_handler))
            .route("/device_authorization", post(device_authorization_handler))
            .route("/token", post(token_handler))
            .route("/revoke", post(revoke_handler))
            .route("/authorize", get(authorize_handler))
            .route("/authorize/decision", post(authorize_decision_handler))
            .route("/device", get(device_page).post(device_decision_handler))
            .with_state(self)
            .merge(issuer_routes)
    }
}

/// Why `/authorize` refused: shown to the person, or redirected to the client (RFC 6749 §4.1.2.1).
pub(super) enum AuthorizeError {
    Shown(OAuthError),
    Redirect {
        redirect_uri: String,
        state: Option<String>,
        error: OAuthError,
    },
}

type Shared = State<Arc<AuthorizationServer>>;

async fn metadata_handler(State(authz): Shared) -> Response {
    axum::Json(authz.metadata()).into_response()
}

async fn device_authorization_handler(State(authz): Shared, body: Bytes) -> Response {
    let client = form(&body).ok().and_then(|p| p.get("client_id").cloned());
    match authz.device_authorization(&body) {
        Ok(v) => {
            authz.record(
                AuthzRequestKind::DeviceAuthorization,
                client.as_deref(),
                None,
            );
            no_store(axum::Json(v).into_response())
        }
        Err(e) => {
            authz.record(
                AuthzRequestKind::DeviceAuthorization,
                client.as_deref(),
                Some(e.code),
            );
            e.into_response()
        }
    }
}

async fn token_handler(State(authz): Shared, body: Bytes) -> Response {
    let params = match form(&body) {
        Ok(p) => p,
        Err(e) => {
            authz.record(AuthzRequestKind::TokenOther, None, Some(e.code));
            return e.into_response();
        }
    };
    let kind = match params.get("grant_type").map(String::as_str) {
        Some(DEVICE_CODE_GRANT) => AuthzRequestKind::TokenDeviceCode,
        Some("authorization_code") => AuthzRequestKind::TokenAuthorizationCode,
        Some("refresh_token") => AuthzRequestKind::TokenRefresh,
        _ => AuthzRequestKind::TokenOther,
    };
    let client = params.get("client_id").cloned();
    match authz.token(&params) {
        Ok(v) => {
            authz.record(kind, client.as_deref(), None);
            no_store(axum::Json(v).into_response())
        }
        Err(e) => {
            authz.record(kind, client.as_deref(), Some(e.code));
            e.into_response()
        }
    }
}

/// RFC 7009 §2: revoke a refresh token (its whole family); unknown tokens are fine (§2.2).
async fn revoke_handler(State(authz): Shared, body: Bytes) -> Response {
    let params = match form(&body) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let client = params.get("client_id").cloned();
    if let Some(token) = params.get("token") {
        let mut grants = authz.lock();
        if let Some(family) = grants.refresh.get(token).map(|g| g.family.clone()) {
            grants.refresh.retain(|_, g| g.family != family);
        }
    }
    authz.record(AuthzRequestKind::Revoke, client.as_deref(), None);
    StatusCode::OK.into_response()
}

async fn authorize_handler(
    State(authz): Shared,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let client = params.get("client_id").cloned();
    match authz.authorize(&params) {
        Ok(id) => {
            authz.record(AuthzRequestKind::Authorize, client.as_deref(), None);
            let resource = params.get("resource").cloned().unwrap_or_default();
            Html(format!(
                "<!doctype html><title>Sign in</title><h1>Sandbox sign-in</h1>\
                 <p>{} asks to act for you on {}.</p>\
                 <form method=post action=\"/authorize/decision\">\
                 <input type=hidden name=request value=\"{}\">\
                 <label>Sign in as <select name=user>{}</select></label>\
                 <button name=decision value=approve>Approve</button>\
                 <button name=decision value=deny>Deny</button></form>",
                html_escape(client.as_deref().unwrap_or("")),
                html_escape(&resource),
                html_escape(&id),
                authz.user_options()
            ))
            .into_response()
        }
        Err(AuthorizeError::Shown(e)) => {
            authz.record(AuthzRequestKind::Authorize, client.as_deref(), Some(e.code));
            (
                e.status,
                Html(format!(
                    "<!doctype html><title>Error</title><p>{}: {}</p>",
                    e.code,
                    html_escape(&e.description)
                )),
            )
                .into_response()
        }
        Err(AuthorizeError::Redirect {
            redirect_uri,
            state,
            error,
        }) => {
            authz.record(
                AuthzRequestKind::Authorize,
                client.as_deref(),
                Some(error.code),
            );
            let mut target = match url::Url::parse(&redirect_uri) {
                Ok(u) => u,
                Err(_) => return StatusCode::BAD_REQUEST.into_response(),
            };
            target
                .query_pairs_mut()
                .append_pair("error", error.code)
                .append_pair("error_description", &error.description);
            if let Some(s) = state {
                target.query_pairs_mut().append_pair("state", &s);
            }
            redirect_to(target.as_str())
        }
    }
}

fn redirect_to(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(v) => {
            let mut r = StatusCode::SEE_OTHER.into_response();
            r.headers_mut().insert(header::LOCATION, v);
            r
        }
        Err(_) => StatusCode::BAD_REQUEST.into_response(),
    }
}

async fn authorize_decision_handler(State(authz): Shared, body: Bytes) -> Response {
    let Ok(params) = form(&body) else {
        return (StatusCode::BAD_REQUEST, "malformed form").into_response();
    };
    let Some(request) = params.get("request") else {
        return (StatusCode::BAD_REQUEST, "missing request").into_response();
    };
    let user = match params.get("decision").map(String::as_str) {
        Some("approve") => match params.get("user") {
            Some(u) => Some(u.as_str()),
            None => return (StatusCode::BAD_REQUEST, "pick a user").into_response(),
        },
        _ => None,
    };
    match authz.decide_authorization(request, user) {
        Ok(location) => redirect_to(&location),
        Err(e) => (StatusCode::BAD_REQUEST, Html(html_escape(&e))).into_response(),
    }
}

async fn device_page(
    State(authz): Shared,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let code = params.get("user_code").cloned().unwrap_or_default();
    Html(format!(
        "<!doctype html><title>Device sign-in</title><h1>Sandbox device sign-in</h1>\
         <form method=post action=\"/device\">\
         <label>Code <input name=user_code value=\"{}\"></label>\
         <label>Sign in as <select name=user>{}</select></label>\
         <button name=decision value=approve>Approve</button>\
         <button name=decision value=deny>Deny</button></form>",
        html_escape(&code),
        authz.user_options()
    ))
    .into_response()
}

async fn device_decision_handler(State(authz): Shared, body: Bytes) -> Response {
    let Ok(params) = form(&body) else {
        return (StatusCode::BAD_REQUEST, "malformed form").into_response();
    };
    let code = params.get("user_code").map(String::as_str).unwrap_or("");
    let result = match params.get("decision").map(String::as_str) {
        Some("approve") => {
            authz.approve_device(code, params.get("user").map(String::as_str).unwrap_or(""))
        }
        _ => authz.deny_device(code),
    };
    match result {
        Ok(()) => Html("<!doctype html><p>Done. You can close this window.</p>").into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, Html(html_escape(&e))).into_response(),
    }
}

pub(super) fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
