//! The MAC over the hidden fields of the authorization forms. The request (client,
//! redirect URI, scope, PKCE, nonce, state, DPoP key) and the assurance it asks for
//! ([`super::assurance`]) travel through the login, second-factor and consent forms; a
//! post whose fields are not exactly what this server rendered is refused, so dropping
//! `acr`, moving `auth_after` or removing `stale` in the form gets nothing.
//!
//! The key is the CSRF key (per deployment), used under its own label so that neither
//! MAC can stand for the other. Also here: the tag that names a session in a form
//! without revealing its cookie.

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::assurance::{self, Assurance};
use super::request::{CARRIED, Raw, Refusal};
use crate::http::AppState;
use crate::store::SessionRecord;

/// The name of the form field carrying the MAC.
pub(super) const FIELD: &str = "authz_mac";
const FORM_LABEL: &[u8] = b"tessera authorize form v1\0";
const SESSION_LABEL: &[u8] = b"tessera stale session v1\0";

fn tag(state: &AppState, label: &[u8], fields: &[(&str, Option<&str>)]) -> hmac::Tag {
    let mut ctx = hmac::Context::with_key(&state.csrf_key);
    ctx.update(label);
    // Length-prefixed, with presence marked: no two field lists share an encoding.
    for (name, value) in fields {
        ctx.update(&(name.len() as u64).to_be_bytes());
        ctx.update(name.as_bytes());
        match value {
            Some(v) => {
                ctx.update(&[1]);
                ctx.update(&(v.len() as u64).to_be_bytes());
                ctx.update(v.as_bytes());
            }
            None => ctx.update(&[0]),
        }
    }
    ctx.sign()
}

/// Every sealed field in its fixed order (the request's, then the assurance's), with the
/// value `value_of` finds for it, present or not.
pub(super) fn fields<'a>(
    value_of: impl Fn(&str) -> Option<&'a str>,
) -> Vec<(&'static str, Option<&'a str>)> {
    CARRIED
        .iter()
        .chain(&assurance::FIELDS)
        .map(|&n| (n, value_of(n)))
        .collect()
}

/// The assurance a posted form carries, once its MAC shows the hidden fields are the
/// ones this server rendered (a changed form is refused as a page: nothing in it can be
/// trusted, its redirect URI included).
pub(super) fn open(state: &AppState, raw: &Raw) -> Result<Assurance, Refusal> {
    const CHANGED: Refusal = Refusal::Page(
        "This form was changed after it was sent. Go back to the application and sign in again.",
    );
    if !form_mac_ok(state, &fields(|n| raw.get(n)), raw.get(FIELD)) {
        tracing::info!("authorization form with a changed or missing MAC refused");
        return Err(CHANGED);
    }
    Assurance::carried(raw).ok_or(CHANGED)
}

/// The MAC of `fields` (every sealed name, in a fixed order, present or not).
pub(super) fn form_mac(state: &AppState, fields: &[(&str, Option<&str>)]) -> String {
    URL_SAFE_NO_PAD.encode(tag(state, FORM_LABEL, fields))
}

/// True when `mac` is the MAC of `fields`, compared in constant time.
pub(super) fn form_mac_ok(
    state: &AppState,
    fields: &[(&str, Option<&str>)],
    mac: Option<&str>,
) -> bool {
    let Some(Ok(mac)) = mac.map(|m| URL_SAFE_NO_PAD.decode(m)) else {
        return false;
    };
    let expected = tag(state, FORM_LABEL, fields);
    aws_lc_rs::constant_time::verify_slices_are_equal(expected.as_ref(), &mac).is_ok()
}

/// A short name of `session` for a form (128 bits of a MAC of its cookie's hash).
pub(super) fn session_tag(state: &AppState, session: &SessionRecord) -> String {
    let hash = URL_SAFE_NO_PAD.encode(session.hash.as_bytes());
    let t = tag(state, SESSION_LABEL, &[("session", Some(&hash))]);
    URL_SAFE_NO_PAD.encode(&t.as_ref()[..16])
}
