//! Opaque cursors, hashing and random tokens.

use crate::error::StoreError;
use sha2::{Digest, Sha256};

/// Encodes a keyset position as an opaque, url-safe token (`tag` + hex). Hex keeps it free of
/// `%`, `+` and `/`, so facades can put it in a URL as is; the tag stops a cursor of one listing
/// from being replayed against another.
pub(crate) fn encode_cursor(tag: char, position: &[u8]) -> String {
    let mut out = String::with_capacity(1 + position.len() * 2);
    out.push(tag);
    out.push_str(&hex(position));
    out
}

/// Decodes a cursor made by [`encode_cursor`] with the same tag.
pub(crate) fn decode_cursor(tag: char, cursor: &str) -> Result<Vec<u8>, StoreError> {
    let rest = cursor.strip_prefix(tag).ok_or(StoreError::InvalidCursor)?;
    if rest.len() % 2 != 0 || rest.is_empty() {
        return Err(StoreError::InvalidCursor);
    }
    (0..rest.len())
        .step_by(2)
        .map(|i| rest.get(i..i + 2).and_then(|pair| u8::from_str_radix(pair, 16).ok()).ok_or(StoreError::InvalidCursor))
        .collect()
}

/// A cursor over an integer key.
pub(crate) fn encode_int_cursor(tag: char, position: i64) -> String {
    encode_cursor(tag, &position.to_be_bytes())
}

/// Decodes an integer cursor.
pub(crate) fn decode_int_cursor(tag: char, cursor: &str) -> Result<i64, StoreError> {
    let bytes: [u8; 8] = decode_cursor(tag, cursor)?.try_into().map_err(|_| StoreError::InvalidCursor)?;
    Ok(i64::from_be_bytes(bytes))
}

/// A cursor over a text key.
pub(crate) fn encode_text_cursor(tag: char, position: &str) -> String {
    encode_cursor(tag, position.as_bytes())
}

/// Decodes a text cursor.
pub(crate) fn decode_text_cursor(tag: char, cursor: &str) -> Result<String, StoreError> {
    String::from_utf8(decode_cursor(tag, cursor)?).map_err(|_| StoreError::InvalidCursor)
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// Hex SHA-256 of `data`.
pub(crate) fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

/// `n` bytes from the operating system's CSPRNG.
pub(crate) fn random_bytes(n: usize) -> Result<Vec<u8>, StoreError> {
    let mut buf = vec![0u8; n];
    getrandom::getrandom(&mut buf).map_err(|e| StoreError::Corrupt(format!("no randomness available: {e}")))?;
    Ok(buf)
}

/// Clamps a page size into 1..=1000.
pub(crate) fn clamp_limit(limit: u32) -> u32 {
    limit.clamp(1, 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_foreign_tags() {
        let c = encode_int_cursor('j', 42);
        assert_eq!(decode_int_cursor('j', &c).ok(), Some(42));
        assert!(decode_int_cursor('i', &c).is_err());
        let t = encode_text_cursor('i', "abc-é");
        assert_eq!(decode_text_cursor('i', &t).ok().as_deref(), Some("abc-é"));
        assert!(decode_text_cursor('i', "izz").is_err());
        assert!(c.chars().all(|ch| ch.is_ascii_alphanumeric()));
    }
}
