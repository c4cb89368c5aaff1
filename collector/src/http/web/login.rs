//! Sign-in and sign-out: `GET /login` (the form), `POST /login` (a viewer or admin token for a
//! session cookie), `POST /logout`. The session and CSRF design is in the module above.

use std::fmt::Write as _;

use axum::Form;
use axum::extract::State;
use axum::extract::rejection::FormRejection;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::i18n::Lang;
use super::{
    CSRF_COOKIE, E, SESSION_COOKIE, SESSION_SECS, cookie, document, failed, html_response,
    language, logout_token, random_hex, session_role, set_cookie, valid_session_id,
};
use crate::http::AppState;

/// The pre-session CSRF cookie lives this long: time enough to paste a token.
const CSRF_SECS: i64 = 3600;

/// The language of a request that has no `Ctx` (no session yet).
fn lang_of(headers: &HeaderMap, uri: &Uri) -> (Lang, Option<Lang>) {
    language(uri, headers)
}

/// The sign-in page with a fresh CSRF token, bound to the pre-session cookie it sets.
fn render(state: &AppState, lang: Lang, status: StatusCode, error: Option<&str>) -> Response {
    let t = lang.t();
    let Ok(csrf) = random_hex() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "no randomness").into_response();
    };
    let mut body = format!(
        "<section class=\"card login\"><h1>{title}</h1><p class=\"muted\">{help}</p>",
        title = E(t.sign_in_title),
        help = E(t.sign_in_help),
    );
    if let Some(error) = error {
        let _ = write!(body, "<p class=\"error\" role=\"alert\">{}</p>", E(error));
    }
    let _ = write!(
        body,
        "<form method=\"post\" action=\"/login\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <label for=\"token\">{label}</label>\
         <input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"current-password\" \
          required maxlength=\"256\" spellcheck=\"false\" placeholder=\"htu_…\">\
         <button type=\"submit\">{sign_in}</button></form>\
         <p class=\"switch\"><a href=\"/login?lang={other}\" hreflang=\"{other}\">{switch}</a></p>\
         </section>",
        label = E(t.token_label),
        sign_in = E(t.sign_in),
        other = lang.other().code(),
        switch = E(t.switch_to),
    );
    let mut response = html_response(status, document(lang, t.sign_in_title, None, &body));
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(state, CSRF_COOKIE, &csrf, "/login", CSRF_SECS),
    );
    response
}

/// `GET /login`: the form, or home for a browser already signed in.
pub(super) async fn form(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
    let (lang, remember) = lang_of(&headers, &uri);
    match session_role(&state, &headers).await {
        Ok(Some(_)) => return Redirect::to("/").into_response(),
        Ok(None) => {}
        Err(e) => return failed(lang, e),
    }
    let mut response = render(&state, lang, StatusCode::OK, None);
    if let Some(l) = remember {
        response
            .headers_mut()
            .append(header::SET_COOKIE, super::lang_cookie(&state, l));
    }
    response
}

#[derive(Debug, Deserialize)]
pub(super) struct SignIn {
    #[serde(default)]
    token: String,
    #[serde(default)]
    csrf: String,
}

/// Whether an `Origin` the request names (browsers send one on every POST) is this collector:
/// its `public_url` when one is configured (behind a reverse proxy, `Host` is often the
/// proxy's way to the collector, not the browser's), else the request's `Host`. Absent: not a
/// browser's cross-site form, and the CSRF token still has to match.
fn same_origin(state: &AppState, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    if let Some(public) = &state.config().public_url {
        return public.is_origin_of(origin);
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let origin_host = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .unwrap_or("");
    !host.is_empty() && origin_host.eq_ignore_ascii_case(host)
}

fn forbidden() -> Response {
    (
        StatusCode::FORBIDDEN,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "cross-site request refused\n",
    )
        .into_response()
}

/// `POST /login` with the form fields `token` and `csrf`: a session cookie and a redirect home,
/// or the form again with the reason (and no session).
pub(super) async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    form: Result<Form<SignIn>, FormRejection>,
) -> Response {
    let (lang, _) = lang_of(&headers, &uri);
    let t = lang.t();
    if !same_origin(&state, &headers) {
        return forbidden();
    }
    let Ok(Form(form)) = form else {
        return render(&state, lang, StatusCode::BAD_REQUEST, Some(t.form_expired));
    };
    let expected = cookie(&headers, CSRF_COOKIE).unwrap_or_default();
    if expected.is_empty() || !crate::secret::same(expected.as_bytes(), form.csrf.as_bytes()) {
        return render(&state, lang, StatusCode::FORBIDDEN, Some(t.form_expired));
    }
    let token = form.token.trim();
    if token.is_empty() || token.len() > 256 {
        return render(&state, lang, StatusCode::UNAUTHORIZED, Some(t.bad_token));
    }
    let token_digest = crate::secret::digest(token);
    let now = crate::now();
    match state.store().api_token_role(&token_digest, now).await {
        Ok(Some(_)) => {}
        Ok(None) => {
            tracing::info!("web sign-in refused: unknown, expired or revoked token");
            return render(&state, lang, StatusCode::UNAUTHORIZED, Some(t.bad_token));
        }
        Err(e) => return failed(lang, e),
    }
    let Ok(session_id) = random_hex() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "no randomness").into_response();
    };
    let session_digest = crate::secret::digest(&session_id);
    if let Err(e) = state
        .store()
        .create_session(&session_digest, &token_digest, now, now + SESSION_SECS)
        .await
    {
        return failed(lang, e);
    }
    tracing::info!(
        token = %crate::secret::fingerprint(&token_digest),
        "web session started"
    );
    let mut response = Redirect::to("/").into_response();
    let headers = response.headers_mut();
    headers.append(
        header::SET_COOKIE,
        set_cookie(&state, SESSION_COOKIE, &session_id, "/", SESSION_SECS),
    );
    headers.append(
        header::SET_COOKIE,
        set_cookie(&state, CSRF_COOKIE, "", "/login", 0),
    );
    response
}

#[derive(Debug, Deserialize)]
pub(super) struct SignOut {
    #[serde(default)]
    csrf: String,
}

/// `POST /logout` with the session's sign-out token: ends the session in the database and
/// clears the cookie.
pub(super) async fn sign_out(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    form: Result<Form<SignOut>, FormRejection>,
) -> Response {
    let (lang, _) = lang_of(&headers, &uri);
    if !same_origin(&state, &headers) {
        return forbidden();
    }
    let Some(session_id) = cookie(&headers, SESSION_COOKIE).filter(|id| valid_session_id(id))
    else {
        return Redirect::to("/login").into_response();
    };
    let given = form.map(|Form(f)| f.csrf).unwrap_or_default();
    if !crate::secret::same(logout_token(session_id).as_bytes(), given.as_bytes()) {
        return forbidden();
    }
    if let Err(e) = state
        .store()
        .delete_session(&crate::secret::digest(session_id))
        .await
    {
        return failed(lang, e);
    }
    let mut response = Redirect::to("/login").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&state, SESSION_COOKIE, "", "/", 0),
    );
    response
}
