//! Strict base64url (RFC 4648 section 5, no padding) as JWS requires.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::Error;

/// True when every byte is in the base64url alphabet (no padding, no whitespace).
pub(crate) fn is_alphabet(s: &[u8]) -> bool {
    all_bytes(s, |b| is_letter_or_digit(b) | (b == b'-') | (b == b'_'))
}

/// An ASCII letter or digit, without a branch (so a loop over it vectorizes).
#[inline(always)]
pub(crate) fn is_letter_or_digit(b: u8) -> bool {
    // `| 0x20` folds upper case onto lower case and nothing else onto a letter.
    ((b | 0x20).wrapping_sub(b'a') < 26) | (b.wrapping_sub(b'0') < 10)
}

/// True when `accept` holds for every byte of `s`: 32 bytes at a time with no early exit
/// inside a block, so the compiler checks a block in a few vector instructions (these
/// scans run over every token a guard sees).
#[inline(always)]
pub(crate) fn all_bytes(s: &[u8], accept: impl Fn(u8) -> bool) -> bool {
    let mut blocks = s.chunks_exact(32);
    for block in &mut blocks {
        if !block.iter().fold(true, |ok, b| ok & accept(*b)) {
            return false;
        }
    }
    blocks.remainder().iter().all(|b| accept(*b))
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
        // Every byte, alone and inside a 32-byte block, against the definition.
        for b in 0..=255u8 {
            let expected = b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
            assert_eq!(is_alphabet(&[b]), expected, "{b:#x}");
            let mut block = [b'a'; 40];
            block[7] = b;
            assert_eq!(is_alphabet(&block), expected, "{b:#x} in a block");
        }
        assert!(!is_alphabet(b"a=") && !is_alphabet(b"a+") && !is_alphabet(b"\xff"));
    }
}
