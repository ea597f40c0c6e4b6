//! Strict base64url (RFC 4648 section 5, no padding) as JWS requires.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::Error;

/// True when every byte is in the base64url alphabet (no padding, no whitespace).
pub(crate) fn is_alphabet(s: &[u8]) -> bool {
    s.iter()
        .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
}

/// Decodes base64url without padding; refuses any byte outside the alphabet and
/// non-canonical trailing bits.
pub(crate) fn decode(s: &str, what: &'static str) -> Result<Vec<u8>, Error> {
    if !is_alphabet(s.as_bytes()) {
        return Err(Error::Malformed(what));
    }
    URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| Error::Malformed(what))
}

/// Encodes base64url without padding.
pub(crate) fn encode(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Appends the base64url encoding of `bytes` to `out`.
pub(crate) fn encode_into(bytes: impl AsRef<[u8]>, out: &mut String) {
    URL_SAFE_NO_PAD.encode_string(bytes, out);
}
