//! The server-rendered pages of browser sign-in (askama templates in `templates/`,
//! compiled into the binary, HTML-escaped by default): login, the second factor
//! (code, enrolment, recovery codes), consent, logout and a
//! message page for errors that must not redirect.

use askama::Template;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::http::browser::page_headers;

/// Hidden form fields carrying the authorization request across a post.
pub(crate) type Hidden = Vec<(&'static str, String)>;

#[derive(Template)]
#[template(path = "login.html")]
pub(crate) struct Login<'a> {
    pub(crate) client_name: &'a str,
    pub(crate) csrf: &'a str,
    pub(crate) hidden: &'a Hidden,
    pub(crate) username: &'a str,
    pub(crate) error: Option<&'a str>,
    /// Shows the "set up a second factor" box (`mfa = "optional"`).
    pub(crate) offer_enrol: bool,
    /// Shows the "Sign in with a passkey" button (the issuer has a host name).
    pub(crate) offer_passkey: bool,
}

/// A WebAuthn ceremony a page offers: `/passkey.js` runs it when the form is submitted
/// (the options are public data; the id is a random, single-use handle).
pub(crate) struct PasskeyForm<'a> {
    /// The ceremony id, posted back.
    pub(crate) id: &'a str,
    /// The options for `navigator.credentials` (JSON).
    pub(crate) options: &'a str,
}

/// The passwordless sign-in page: the named user's passkey.
#[derive(Template)]
#[template(path = "passkey_signin.html")]
pub(crate) struct PasskeySignIn<'a> {
    pub(crate) client_name: &'a str,
    pub(crate) csrf: &'a str,
    pub(crate) hidden: &'a Hidden,
    pub(crate) username: &'a str,
    pub(crate) passkey: PasskeyForm<'a>,
    pub(crate) error: Option<&'a str>,
}

/// The second-factor page: a TOTP code or a recovery code.
#[derive(Template)]
#[template(path = "mfa_code.html")]
pub(crate) struct MfaCode<'a> {
    pub(crate) client_name: &'a str,
    pub(crate) csrf: &'a str,
    pub(crate) hidden: &'a Hidden,
    pub(crate) error: Option<&'a str>,
    /// The user's passkeys, offered next to the code.
    pub(crate) passkey: Option<PasskeyForm<'a>>,
    /// Whether the code field is offered (not where only a passkey reaches the level).
    pub(crate) codes: bool,
}

/// The enrolment page: the QR code (an inline SVG this server rendered), the key for
/// manual entry, and the field for the first code.
#[derive(Template)]
#[template(path = "mfa_enrol.html")]
pub(crate) struct MfaEnrol<'a> {
    pub(crate) qr_svg: &'a str,
    pub(crate) secret: &'a str,
    pub(crate) csrf: &'a str,
    pub(crate) hidden: &'a Hidden,
    pub(crate) error: Option<&'a str>,
    /// Registering a passkey instead of (or before) the app.
    pub(crate) passkey: Option<PasskeyForm<'a>>,
    /// The default label of the new passkey.
    pub(crate) label: &'a str,
    /// Whether the TOTP enrolment is offered (not where only a passkey reaches the level).
    pub(crate) totp: bool,
}

/// The recovery codes, shown once after enrolment.
#[derive(Template)]
#[template(path = "mfa_recovery.html")]
pub(crate) struct MfaRecovery<'a> {
    pub(crate) codes: Vec<&'a str>,
    pub(crate) csrf: &'a str,
    pub(crate) hidden: &'a Hidden,
}

#[derive(Template)]
#[template(path = "consent.html")]
pub(crate) struct Consent<'a> {
    pub(crate) client_name: &'a str,
    pub(crate) username: &'a str,
    pub(crate) scopes: Vec<&'a str>,
    pub(crate) csrf: &'a str,
    pub(crate) hidden: &'a Hidden,
    /// Shows "Add a passkey" (a fresh sign-in with a second factor).
    pub(crate) offer_passkey: bool,
}

/// Registering another passkey, from a fresh sign-in.
#[derive(Template)]
#[template(path = "passkey_add.html")]
pub(crate) struct PasskeyAdd<'a> {
    pub(crate) csrf: &'a str,
    pub(crate) hidden: &'a Hidden,
    pub(crate) passkey: PasskeyForm<'a>,
    pub(crate) label: &'a str,
    pub(crate) error: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "logout.html")]
pub(crate) struct Logout<'a> {
    pub(crate) signed_in: bool,
    pub(crate) csrf: &'a str,
    pub(crate) hidden: &'a Hidden,
}

#[derive(Template)]
#[template(path = "message.html")]
pub(crate) struct Message<'a> {
    pub(crate) title: &'a str,
    pub(crate) message: &'a str,
}

/// How a page loads the passkey script (each template with a passkey form has it).
const PASSKEY_SCRIPT: &str = "<script src=\"/passkey.js\"></script>";

/// Renders `page` with `status`, the page headers and the extra headers in `extra`
/// (cookies). A template error is a plain 500.
pub(crate) fn render(status: StatusCode, page: &impl Template, extra: HeaderMap) -> Response {
    match page.render() {
        Ok(html) => {
            // Scripts are allowed only on a page that loads the passkey script (the
            // templates include it with a passkey form only).
            let scripts = html.contains(PASSKEY_SCRIPT);
            let mut response = (status, html).into_response();
            let headers = response.headers_mut();
            headers.extend(extra);
            page_headers(headers, scripts);
            response
        }
        Err(e) => {
            tracing::error!(error = %e, "template failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// An error page (no redirect: the redirect URI is unknown or not trusted).
pub(crate) fn error_page(status: StatusCode, message: &str) -> Response {
    render(
        status,
        &Message {
            title: "Sign-in request refused",
            message,
        },
        HeaderMap::new(),
    )
}

/// `GET /passkey.js`: the one script of the sign-in pages (the WebAuthn call), served by
/// this server so the pages' policy allows scripts from this origin only.
#[utoipa::path(
    get,
    path = "/passkey.js",
    tag = "browser",
    responses((status = 200, description = "The passkey script of the sign-in pages", body = String, content_type = "text/javascript"))
)]
pub(crate) async fn passkey_js() -> Response {
    let mut out = HeaderMap::new();
    out.insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("text/javascript; charset=utf-8"),
    );
    out.insert(
        axum::http::header::X_CONTENT_TYPE_OPTIONS,
        axum::http::HeaderValue::from_static("nosniff"),
    );
    (StatusCode::OK, out, include_str!("../../static/passkey.js")).into_response()
}

#[cfg(test)]
mod tests {
    use axum::http::header::CONTENT_SECURITY_POLICY;

    use super::*;

    fn policy(passkey: Option<PasskeyForm<'_>>) -> String {
        let hidden = Hidden::new();
        let page = MfaCode {
            client_name: "app",
            csrf: "c",
            hidden: &hidden,
            error: None,
            passkey,
            codes: true,
        };
        let r = render(StatusCode::OK, &page, HeaderMap::new());
        r.headers()[CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .to_owned()
    }

    /// Scripts (this origin's only) are allowed on a page with a passkey form, and on
    /// no other page.
    #[test]
    fn only_a_page_with_a_passkey_form_may_run_a_script() {
        let with = policy(Some(PasskeyForm {
            id: "id",
            options: "{}",
        }));
        assert!(with.contains("script-src 'self'"), "{with}");
        let without = policy(None);
        assert!(!without.contains("script-src"), "{without}");
        assert!(without.starts_with("default-src 'none'"), "{without}");
        let error = error_page(StatusCode::BAD_REQUEST, "no");
        let csp = error.headers()[CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(!csp.contains("script-src"), "{csp}");
    }
}
