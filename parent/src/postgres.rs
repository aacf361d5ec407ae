//! PostgreSQL's one plaintext exchange before TLS, and nothing more.
//!
//! A PostgreSQL client that wants TLS first sends an 8-byte `SSLRequest`
//! (Int32 length 8, Int32 code 80877103) in plaintext, and the server
//! answers one byte, `S` (go ahead with the TLS handshake) or `N` (no TLS);
//! PostgreSQL manual §55.2.10 "SSL Session Encryption" and §55.7 "Message
//! Formats" (SSLRequest). Only PostgreSQL 17's `sslnegotiation=direct`
//! starts with the TLS handshake itself. For a destination allowed with
//! `--allow-postgres`, the parent relays exactly that request and exactly
//! the `S` answer, then TLS records only, as for any other destination.
//! Everything else is refused: a StartupMessage (SQL and the user name in
//! plaintext), a GSSENCRequest or CancelRequest, and an `N` (the session
//! would go on in plaintext).
//!
//! Pure: the checks take bytes and return a verdict; `lib.rs` does the I/O.

/// The SSLRequest, byte for byte: length 8, then 1234 << 16 | 5679.
pub const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
/// The server's answer that lets the TLS handshake begin.
pub const SSL_ACCEPTED: u8 = b'S';

/// §55.7: CancelRequest's code (1234 << 16 | 5678) and GSSENCRequest's
/// (1234 << 16 | 5680).
const CANCEL_REQUEST_CODE: u32 = 80_877_102;
const GSSENC_REQUEST_CODE: u32 = 80_877_104;

/// Why the exchange before TLS was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PreambleError {
    #[error("a plaintext PostgreSQL StartupMessage (protocol {major}.{minor}): only an SSLRequest may precede TLS")]
    StartupMessage { major: u16, minor: u16 },
    #[error("a PostgreSQL CancelRequest in plaintext: only an SSLRequest may precede TLS")]
    CancelRequest,
    #[error("a PostgreSQL GSSENCRequest: only an SSLRequest may precede TLS")]
    GssEncRequest,
    #[error("not a PostgreSQL SSLRequest (first bytes {0:02x?})")]
    NotSslRequest([u8; 8]),
    #[error("the PostgreSQL server refused TLS (answered 'N'): the session would be plaintext")]
    TlsRefused,
    #[error("the PostgreSQL server answered {0:#04x} to the SSLRequest, not 'S'")]
    BadAnswer(u8),
}

/// Checks the first 8 bytes the enclave sends to a PostgreSQL destination.
pub fn check_request(first: &[u8; 8]) -> Result<(), PreambleError> {
    if *first == SSL_REQUEST {
        return Ok(());
    }
    let code = u32::from_be_bytes([first[4], first[5], first[6], first[7]]);
    Err(match code {
        CANCEL_REQUEST_CODE => PreambleError::CancelRequest,
        GSSENC_REQUEST_CODE => PreambleError::GssEncRequest,
        // A StartupMessage's Int32 protocol version: major << 16 | minor
        // (3.0 today, §55.7); the length field comes first.
        _ if (2..=3).contains(&(code >> 16)) => PreambleError::StartupMessage {
            major: (code >> 16) as u16,
            minor: code as u16,
        },
        _ => PreambleError::NotSslRequest(*first),
    })
}

/// Checks the server's one-byte answer to the SSLRequest.
pub fn check_answer(answer: u8) -> Result<(), PreambleError> {
    match answer {
        SSL_ACCEPTED => Ok(()),
        b'N' => Err(PreambleError::TlsRefused),
        other => Err(PreambleError::BadAnswer(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ssl_request_is_the_one_documented() {
        assert_eq!(u32::from_be_bytes([0, 0, 0, 8]), 8);
        assert_eq!(
            u32::from_be_bytes([0x04, 0xd2, 0x16, 0x2f]),
            (1234 << 16) | 5679
        );
        assert_eq!(check_request(&SSL_REQUEST), Ok(()));
        assert_eq!(check_answer(b'S'), Ok(()));
    }

    #[test]
    fn a_plaintext_startup_message_is_refused() {
        // Length 41, protocol 3.0, then "user\0..." would follow.
        let startup = [0, 0, 0, 41, 0, 3, 0, 0];
        assert_eq!(
            check_request(&startup),
            Err(PreambleError::StartupMessage { major: 3, minor: 0 })
        );
        let e = check_request(&startup).unwrap_err().to_string();
        assert!(e.contains("StartupMessage"), "{e}");
    }

    #[test]
    fn other_requests_and_plaintext_are_refused() {
        let cancel = [0, 0, 0, 16, 0x04, 0xd2, 0x16, 0x2e];
        assert_eq!(check_request(&cancel), Err(PreambleError::CancelRequest));
        let gss = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30];
        assert_eq!(check_request(&gss), Err(PreambleError::GssEncRequest));
        // An SSLRequest with another length is not the SSLRequest.
        let long = [0, 0, 0, 9, 0x04, 0xd2, 0x16, 0x2f];
        assert_eq!(
            check_request(&long),
            Err(PreambleError::NotSslRequest(long))
        );
        assert!(matches!(
            check_request(b"SELECT 1"),
            Err(PreambleError::NotSslRequest(_))
        ));
        // A TLS ClientHello (sslnegotiation=direct) is not what this rule
        // admits either.
        assert!(check_request(&[22, 3, 1, 0, 200, 1, 0, 0]).is_err());
    }

    #[test]
    fn only_an_s_answer_lets_tls_begin() {
        assert_eq!(check_answer(b'N'), Err(PreambleError::TlsRefused));
        // An ErrorResponse ('E') from a server too old for SSLRequest.
        assert_eq!(check_answer(b'E'), Err(PreambleError::BadAnswer(b'E')));
        assert_eq!(check_answer(0x16), Err(PreambleError::BadAnswer(0x16)));
    }
}
