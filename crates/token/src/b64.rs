//! Strict base64url (RFC 4648 section 5, no padding) as JWS requires.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::Error;

/// The base64url alphabet as a byte table: one load per byte instead of five compares.
const ALPHABET: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric() || c == b'-' || c == b'_';
        b += 1;
    }
    table
};

/// True when every byte is in the base64url alphabet (no padding, no whitespace).
pub(crate) fn is_alphabet(s: &[u8]) -> bool {
    s.iter().all(|b| ALPHABET[usize::from(*b)])
}

/// Decodes base64url without padding; refuses any byte outside the alphabet and
/// non-canonical trailing bits.
///
/// `URL_SAFE_NO_PAD` already refuses every byte outside the alphabet, any `=` padding
/// (`DecodePaddingMode::RequireNone`) and non-zero trailing bits, so no separate
/// alphabet pass is made here (it cost as much as the decoding).
pub(crate) fn decode(s: &str, what: &'static str) -> Result<Vec<u8>, Error> {
    URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| Error::Malformed(what))
}

/// Encodes base64url without padding.
pub(crate) fn encode(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Encodes base64url without padding into `out`, which must be exactly the encoded
/// length (a caller's fixed-size buffer: no allocation).
pub(crate) fn encode_slice(bytes: impl AsRef<[u8]>, out: &mut [u8]) {
    let written = URL_SAFE_NO_PAD.encode_slice(bytes, out);
    debug_assert_eq!(written, Ok(out.len()));
}

/// Appends the base64url encoding of `bytes` to `out`.
pub(crate) fn encode_into(bytes: impl AsRef<[u8]>, out: &mut String) {
    URL_SAFE_NO_PAD.encode_string(bytes, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_refuses_what_the_alphabet_check_refused() {
        assert_eq!(decode("aGk", "x"), Ok(b"hi".to_vec()));
        for bad in [
            "aGk=",
            "aG k",
            "aGk\n",
            "aG+k",
            "aG/k",
            "aG.k",
            "aGl",
            "a",
            "aGk\u{e9}",
        ] {
            assert_eq!(decode(bad, "x"), Err(Error::Malformed("x")), "{bad:?}");
        }
        assert!(is_alphabet(b"azAZ09-_"));
        assert!(!is_alphabet(b"a=") && !is_alphabet(b"a+") && !is_alphabet(b"\xff"));
    }
}
