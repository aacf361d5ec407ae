//! TLS record framing (RFC 8446 §5.1, RFC 5246 §6.2). The parent checks that
//! what it relays is a sequence of TLS records — so plaintext (an HTTP
//! request, a secret, a key) is refused rather than carried — without
//! looking inside them.

/// `ContentType`: change_cipher_spec(20), alert(21), handshake(22),
/// application_data(23) (RFC 8446 §5.1).
const CONTENT_TYPES: std::ops::RangeInclusive<u8> = 20..=23;
/// Header: type (1), legacy_record_version (2), length (2).
pub const HEADER_LEN: usize = 5;
/// RFC 5246 §6.2.3: TLSCiphertext.length ≤ 2^14 + 2048 (TLS 1.3 allows
/// less, 2^14 + 256, RFC 8446 §5.2); the larger bound admits both.
pub const MAX_RECORD_PAYLOAD: usize = (1 << 14) + 2048;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("not a TLS record (content type {0})")]
    ContentType(u8),
    #[error("not a TLS record (version {0:#06x})")]
    Version(u16),
    #[error("TLS record of {len} bytes exceeds the {max}-byte limit")]
    TooLong { len: usize, max: usize },
}

/// Checks a record header and returns the payload length that follows.
pub fn check_header(header: &[u8; HEADER_LEN], max_payload: usize) -> Result<usize, RecordError> {
    if !CONTENT_TYPES.contains(&header[0]) {
        return Err(RecordError::ContentType(header[0]));
    }
    // legacy_record_version: 0x0301 in a first ClientHello, 0x0303 after;
    // SSL 3.0 (0x0300) and anything above TLS 1.3's value are not TLS 1.2+.
    let version = u16::from_be_bytes([header[1], header[2]]);
    if !(0x0301..=0x0304).contains(&version) {
        return Err(RecordError::Version(version));
    }
    let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
    if len > max_payload.min(MAX_RECORD_PAYLOAD) {
        return Err(RecordError::TooLong {
            len,
            max: max_payload.min(MAX_RECORD_PAYLOAD),
        });
    }
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_tls_records() {
        assert_eq!(
            check_header(&[22, 3, 1, 0, 200], MAX_RECORD_PAYLOAD),
            Ok(200)
        );
        assert_eq!(
            check_header(&[23, 3, 3, 0x40, 0x00], MAX_RECORD_PAYLOAD),
            Ok(16384)
        );
    }

    #[test]
    fn refuses_plaintext_and_oversize_records() {
        // "POST " — an HTTP request is not a TLS record.
        assert_eq!(
            check_header(b"POST ", MAX_RECORD_PAYLOAD),
            Err(RecordError::ContentType(b'P'))
        );
        assert_eq!(
            check_header(&[22, 3, 0, 0, 1], MAX_RECORD_PAYLOAD),
            Err(RecordError::Version(0x0300))
        );
        assert_eq!(
            check_header(&[23, 3, 3, 0xff, 0xff], MAX_RECORD_PAYLOAD),
            Err(RecordError::TooLong {
                len: 65535,
                max: MAX_RECORD_PAYLOAD
            })
        );
        assert_eq!(
            check_header(&[23, 3, 3, 0x10, 0x00], 1024),
            Err(RecordError::TooLong {
                len: 4096,
                max: 1024
            })
        );
    }
}
