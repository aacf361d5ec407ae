//! Every refusal reason the service sends: one enum, its wire strings, the
//! HTTP status where the reason fixes it, and a description each (the
//! OpenAPI document's `Refusal.reason` enum and its description are built
//! from them, so a reason cannot be sent without being documented).
//!
//! The strings are the API: clients and the enclave match on them, so none
//! is ever renamed. Reasons that come from other crates' verdicts (the
//! attestation core, the envelope, custody, the approval check, the policy
//! parser) are mapped into this enum by their stable code ([`Reason::of`]);
//! a unit test reads those crates' `reason()` tables and requires every code
//! to be a variant here.

use std::fmt;

use axum::http::StatusCode;

macro_rules! reasons {
    ($( $(#[doc = $doc:literal])+ $variant:ident = $code:literal $(, $status:ident)? ;)+) => {
        /// Why a request was refused: the `reason` of every non-2xx answer.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Reason {
            $( $(#[doc = $doc])+ $variant, )+
        }

        impl Reason {
            /// Every reason, in declaration order.
            pub const ALL: &'static [Reason] = &[ $( Reason::$variant, )+ ];

            /// The wire string (stable snake_case).
            pub const fn as_str(self) -> &'static str {
                match self { $( Reason::$variant => $code, )+ }
            }

            /// What the reason means, for the API description.
            pub fn description(self) -> &'static str {
                match self { $( Reason::$variant => concat!($($doc),+).trim_ascii(), )+ }
            }

            /// The HTTP status this reason is always sent with, where one
            /// reason has one status (others depend on the route).
            pub fn status(self) -> Option<StatusCode> {
                match self {
                    $( Reason::$variant => reasons!(@status $($status)?), )+
                }
            }

            /// The reason with this wire string.
            pub fn from_code(code: &str) -> Option<Reason> {
                match code {
                    $( $code => Some(Reason::$variant), )+
                    _ => None,
                }
            }
        }
    };
    (@status) => { None };
    (@status $status:ident) => { Some(StatusCode::$status) };
}

reasons! {
    // ------------------------------------------------------------ transport
    /// No route has this path.
    NotFound = "not_found", NOT_FOUND;
    /// The route does not take this method.
    MethodNotAllowed = "method_not_allowed", METHOD_NOT_ALLOWED;
    /// The request body is over `--body-limit`.
    RequestTooLarge = "request_too_large", PAYLOAD_TOO_LARGE;
    /// The body could not be read or is not the route's JSON shape.
    BadRequest = "bad_request";
    /// Too many requests from this address (`--rate-limit`, `--rate-burst`); retry later.
    RateLimited = "rate_limited", TOO_MANY_REQUESTS;
    /// The request took longer than `--request-timeout`; retry.
    Timeout = "timeout", SERVICE_UNAVAILABLE;
    /// The verifier failed inside (a task panicked or a lock was poisoned); retry.
    InternalError = "internal_error", INTERNAL_SERVER_ERROR;
    /// The admin API needs `Authorization: Bearer TOKEN` with a known token.
    Unauthorized = "unauthorized", UNAUTHORIZED;
    // -------------------------------------------------------------- service
    /// This verifier runs without an NSM (`serve --nsm`): it has no attestation document.
    NotAttested = "not_attested", NOT_FOUND;
    /// The verifier is sealed until K custodians unseal it; only the custody routes answer.
    Sealed = "sealed", SERVICE_UNAVAILABLE;
    /// The NSM gave no attestation document; retry.
    NsmUnavailable = "nsm_unavailable", SERVICE_UNAVAILABLE;
    /// This verifier has no NSM, so it cannot forward its key to a joining replica.
    JoinUnavailable = "join_unavailable", SERVICE_UNAVAILABLE;
    /// The store could not complete the request; retry.
    StoreError = "store_error", INTERNAL_SERVER_ERROR;
    /// The store's database cannot be reached; retry.
    StoreUnavailable = "store_unavailable", SERVICE_UNAVAILABLE;
    /// The audit log could not be written (nothing is released or changed unlogged); retry.
    AuditLogUnavailable = "audit_log_unavailable", INTERNAL_SERVER_ERROR;
    /// The release record is logged but fewer than `--witness-threshold` witnesses cosigned it in time; retry.
    WitnessUnavailable = "witness_unavailable", SERVICE_UNAVAILABLE;
    /// Values, policies and owners change only by owner-signed statements (`POST /admin/v1/changes`).
    OwnerApprovalRequired = "owner_approval_required", FORBIDDEN;
    /// A secret name is empty, too long or has characters outside `[A-Za-z0-9._-]`.
    InvalidName = "invalid_name", BAD_REQUEST;
    /// No secret has this name.
    UnknownSecret = "unknown_secret";
    /// A secret with this name exists; its owners change it.
    SecretExists = "secret_exists", CONFLICT;
    /// The secret has no owner set, so no change of it can be approved.
    NoOwners = "no_owners", FORBIDDEN;
    /// The secret has no release policy, so nothing may receive it.
    NoPolicy = "no_policy";
    /// A stored row of this secret was altered, moved or removed outside the verifier; it is not used.
    RowTampered = "row_tampered";
    /// A stored row of this secret is older than the one the log records (rolled back); it is not used.
    RowRolledBack = "row_rolled_back";
    /// A sealed value does not open with this deployment's intake key for this secret.
    SealedValueUnreadable = "sealed_value_unreadable", FORBIDDEN;
    // -------------------------------------------------- challenges, releases
    /// The nonce was not issued by this verifier (or before a restart); retry with a fresh challenge.
    NonceUnknown = "nonce_unknown", FORBIDDEN;
    /// The nonce expired; retry with a fresh challenge.
    NonceExpired = "nonce_expired", FORBIDDEN;
    /// The nonce was already used; every challenge is single-use.
    NonceReplayed = "nonce_replayed", FORBIDDEN;
    /// Too many outstanding challenges; retry shortly.
    ChallengeCapacity = "challenge_capacity";
    /// This address holds too many unused challenges; use them or let them expire.
    TooManyOutstandingNonces = "too_many_outstanding_nonces", TOO_MANY_REQUESTS;
    /// The verifier's random number generator failed; retry.
    RngFailed = "rng_failed";
    /// The release request names no secret.
    NoSecretsRequested = "no_secrets_requested", BAD_REQUEST;
    /// The release request names more secrets than one request may.
    TooManySecrets = "too_many_secrets", BAD_REQUEST;
    /// The release request names a secret twice.
    DuplicateSecret = "duplicate_secret", BAD_REQUEST;
    /// The document carries no nonce (or the challenge's nonce is missing), and one is required.
    NonceMissing = "nonce_missing", FORBIDDEN;
    /// The document's nonce is not the expected one.
    NonceMismatch = "nonce_mismatch", FORBIDDEN;
    /// The enclave runs in debug mode, which the policy does not allow.
    DebugEnclave = "debug_enclave", FORBIDDEN;
    /// The document's PCRs match no allowed measurement set.
    PcrMismatch = "pcr_mismatch", FORBIDDEN;
    /// The document is older than the policy allows.
    DocumentTooOld = "document_too_old", FORBIDDEN;
    /// The document's timestamp is ahead of the verifier's clock.
    DocumentFromFuture = "document_from_future", FORBIDDEN;
    /// The document carries no public key to seal the secrets to.
    PublicKeyMissing = "public_key_missing", FORBIDDEN;
    /// The document's public key is not a 32-byte X25519 HPKE key.
    PublicKeyNotHpke = "public_key_not_hpke", FORBIDDEN;
    // ------------------------------------- the attestation core (attestation)
    /// The attestation document is over the size limit.
    DocumentTooLarge = "document_too_large";
    /// The attestation document is empty.
    EmptyDocument = "empty_document";
    /// The attestation document is not well-formed CBOR.
    MalformedCbor = "malformed_cbor";
    /// Bytes follow the attestation document's CBOR item.
    TrailingBytes = "trailing_bytes";
    /// The attestation document is not a COSE_Sign1 structure.
    MalformedCose = "malformed_cose";
    /// The COSE protected header is malformed.
    MalformedProtectedHeader = "malformed_protected_header";
    /// The COSE algorithm is not ECDSA P-384 with SHA-384.
    UnsupportedAlgorithm = "unsupported_algorithm";
    /// The COSE signature is not 96 bytes of r || s.
    MalformedSignature = "malformed_signature";
    /// A CBOR map in the document repeats a key.
    DuplicateKey = "duplicate_key";
    /// A required document field is missing.
    MissingField = "missing_field";
    /// A required document field is null.
    NullField = "null_field";
    /// A document field has the wrong CBOR type.
    WrongType = "wrong_type";
    /// A document field has an invalid value.
    InvalidField = "invalid_field";
    /// A document field is too short or too long.
    FieldSize = "field_size";
    /// A PCR index is out of range.
    PcrIndexOutOfRange = "pcr_index_out_of_range";
    /// A PCR value is not 32, 48 or 64 bytes.
    PcrLength = "pcr_length";
    /// The document's CA bundle is empty.
    EmptyCabundle = "empty_cabundle";
    /// The document's chain ends in a root this verifier does not trust.
    UntrustedRoot = "untrusted_root";
    /// A certificate of the chain does not parse.
    MalformedCertificate = "malformed_certificate";
    /// A certificate of the chain expired.
    ChainExpired = "chain_expired";
    /// A certificate of the chain is not valid yet.
    ChainNotYetValid = "chain_not_yet_valid";
    /// A certificate of the chain breaks a constraint (CA flag, key usage, path length).
    ChainConstraint = "chain_constraint";
    /// The certificate chain does not validate.
    ChainInvalid = "chain_invalid";
    /// The leaf certificate's key is not a P-384 ECDSA key.
    UnsupportedLeafKey = "unsupported_leaf_key";
    /// A signature does not verify: the document's COSE signature, or an owner's signature on a change statement.
    BadSignature = "bad_signature", FORBIDDEN;
    /// The verification time is out of range.
    InvalidTime = "invalid_time";
    // ----------------------------------------------- the envelope (envelope)
    /// HPKE: the input key material is too short.
    EnvelopeIkmTooShort = "envelope_ikm_too_short";
    /// HPKE: the public key is not 32 bytes.
    EnvelopeBadPublicKey = "envelope_bad_public_key";
    /// HPKE: the binding context is too large.
    EnvelopeContextTooLarge = "envelope_context_too_large";
    /// HPKE: the random number generator failed; retry.
    EnvelopeRngFailed = "envelope_rng_failed";
    /// HPKE: sealing failed.
    EnvelopeSealFailed = "envelope_seal_failed";
    /// An envelope names another secret than expected.
    EnvelopeNameMismatch = "envelope_name_mismatch";
    /// An envelope names another version than expected.
    EnvelopeVersionMismatch = "envelope_version_mismatch";
    /// An envelope did not open.
    EnvelopeOpenFailed = "envelope_open_failed";
    /// A field that must be standard padded base64 is not.
    EnvelopeBadBase64 = "envelope_bad_base64", BAD_REQUEST;
    /// A field that must be lower-case hex is not.
    EnvelopeBadHex = "envelope_bad_hex";
    // -------------------------------------- owner-approved changes (approval)
    /// Not a signed note, or not a `hermetic-change/v1` statement in the exact form.
    MalformedStatement = "malformed_statement", BAD_REQUEST;
    /// The statement names another deployment.
    WrongDeployment = "wrong_deployment", FORBIDDEN;
    /// The statement names another secret.
    WrongSecret = "wrong_secret", FORBIDDEN;
    /// A signature by a key that is not one of the secret's owners.
    UnknownOwner = "unknown_owner", FORBIDDEN;
    /// Fewer distinct owners signed than the threshold asks for.
    NotEnoughApprovals = "not_enough_approvals", FORBIDDEN;
    /// The statement's version is not above the secret's current version.
    StaleVersion = "stale_version", FORBIDDEN;
    /// The submitted content is not the content the statement names.
    ContentMismatch = "content_mismatch", FORBIDDEN;
    /// The content of a `policy` change is not a valid policy for this secret alone.
    InvalidPolicy = "invalid_policy", BAD_REQUEST;
    /// The owners given are not a valid owner set.
    InvalidOwnerSet = "invalid_owner_set", BAD_REQUEST;
    /// The content does not fit the action.
    InvalidContent = "invalid_content", BAD_REQUEST;
    // ---------------------------------------------------- custody (custody)
    /// Custody: the threshold is not 1 <= K <= N.
    InvalidThreshold = "invalid_threshold";
    /// Custody: a threshold of 1 is for development only.
    SingleCustodianThreshold = "single_custodian_threshold";
    /// Custody: a custodian is listed more than once.
    DuplicateCustodian = "duplicate_custodian";
    /// Custody: the deployment id is not 1 to 64 printable ASCII characters.
    InvalidDeployment = "invalid_deployment";
    /// Custody: secret sharing failed.
    SharingFailed = "sharing_failed";
    /// Custody: a custodian public key does not parse.
    BadCustodianPublicKey = "bad_custodian_public_key";
    /// Custody: a custodian private key file does not parse.
    BadCustodianKeyFile = "bad_custodian_key_file";
    /// Custody: the genesis record does not parse or is inconsistent.
    BadGenesisRecord = "bad_genesis_record", BAD_REQUEST;
    /// Custody: the pinned measurements file does not parse.
    BadMeasurements = "bad_measurements";
    /// Custody: the pinned measurements do not identify an enclave image.
    MeasurementsDoNotPinImage = "measurements_do_not_pin_image";
    /// Custody: the custodian holds no share in this genesis record.
    NotACustodian = "not_a_custodian";
    /// Custody: a custodian's share did not open.
    ShareOpenFailed = "share_open_failed";
    /// Custody: a document's user data does not bind the expected peer document.
    BindingMismatch = "binding_mismatch";
    /// Custody: the message belongs to another genesis record.
    WrongGenesis = "wrong_genesis";
    /// Custody: the share index is not in the genesis record.
    UnknownShareIndex = "unknown_share_index";
    /// Custody: the share is bound to a document this enclave did not issue.
    UnknownDocument = "unknown_document";
    /// Custody: the re-sealed share did not open with this enclave's key.
    ResealedShareOpenFailed = "resealed_share_open_failed";
    /// Custody: a share does not match its check value in the genesis record.
    ShareCheckFailed = "share_check_failed";
    /// Custody: the combined key does not match the genesis commitment; the shares are discarded.
    CommitmentMismatch = "commitment_mismatch";
    /// Custody: the key is already unsealed.
    AlreadyUnsealed = "already_unsealed", CONFLICT;
    /// Custody: the challenge is unknown or already used.
    ChallengeUnknown = "challenge_unknown";
    /// Custody: the challenge expired.
    ChallengeExpired = "challenge_expired";
    /// Custody: the forwarded key did not open.
    ForwardOpenFailed = "forward_open_failed";
    // --------------------------------------------- replicas joining (join)
    /// Join: the peer's image PCRs (0, 1, 2, 8) are not this verifier's.
    JoinMeasurementsMismatch = "join_measurements_mismatch", FORBIDDEN;
    /// Join: the peer runs in debug mode.
    JoinDebugMode = "join_debug_mode", FORBIDDEN;
    /// Join: the document is too old or from the future, or the challenge expired.
    JoinStale = "join_stale", FORBIDDEN;
    /// Join: the document lacks the fresh nonce, or the challenge is unknown or used.
    JoinReplayed = "join_replayed", FORBIDDEN;
    /// Join: the peer's document chains to a root this verifier does not trust.
    JoinUntrustedRoot = "join_untrusted_root", FORBIDDEN;
    /// Join: the peer's document does not verify.
    JoinAttestationInvalid = "join_attestation_invalid", FORBIDDEN;
    /// Join: a document does not bind the other's, or carries no usable key.
    JoinBindingMismatch = "join_binding_mismatch", FORBIDDEN;
    /// Join: the peer serves another genesis record.
    JoinGenesisMismatch = "join_genesis_mismatch", FORBIDDEN;
    /// Join: the forwarded key did not open or does not match the genesis commitment.
    JoinKeyRejected = "join_key_rejected", FORBIDDEN;
}

impl Reason {
    /// The reason of another crate's verdict, by its stable code. Every
    /// code those crates define is a variant (the `codes_of_other_crates`
    /// test reads their tables); were one missing, the refusal would go
    /// out as `internal_error` and be logged, never as an undocumented
    /// string.
    pub fn of(code: &str) -> Reason {
        Reason::from_code(code).unwrap_or_else(|| {
            tracing::error!(event = "undocumented_reason", code = %code);
            Reason::InternalError
        })
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<hermetic_approval::Reason> for Reason {
    fn from(r: hermetic_approval::Reason) -> Self {
        Reason::of(r.as_str())
    }
}

impl From<&hermetic_attestation::Error> for Reason {
    fn from(e: &hermetic_attestation::Error) -> Self {
        Reason::of(e.reason())
    }
}

impl From<&hermetic_envelope::EnvelopeError> for Reason {
    fn from(e: &hermetic_envelope::EnvelopeError) -> Self {
        Reason::of(e.reason())
    }
}

impl From<&hermetic_custody::Error> for Reason {
    fn from(e: &hermetic_custody::Error) -> Self {
        Reason::of(e.reason())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn codes_are_unique_snake_case_and_round_trip() {
        let mut seen = BTreeSet::new();
        for &r in Reason::ALL {
            let code = r.as_str();
            assert!(seen.insert(code), "{code} twice");
            assert!(
                !code.is_empty()
                    && code
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b == b'_' || b.is_ascii_digit()),
                "{code}"
            );
            assert_eq!(Reason::from_code(code), Some(r));
            assert!(!r.description().is_empty(), "{code}");
            if let Some(status) = r.status() {
                assert!(
                    status.is_client_error() || status.is_server_error(),
                    "{code}"
                );
            }
        }
        assert_eq!(Reason::from_code("no_such_reason"), None);
        assert_eq!(Reason::of("no_such_reason"), Reason::InternalError);
    }

    /// The `reason()` (or `as_str()`) tables of the crates whose verdicts
    /// the service passes on, read from their sources: every code in them
    /// is a variant, so none reaches the wire undocumented.
    #[test]
    fn codes_of_other_crates() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
        let sources = [
            "attestation/src/error.rs",
            "envelope/src/error.rs",
            "envelope/src/wire.rs",
            "custody/src/error.rs",
            "policy/src/error.rs",
            "approval/src/reason.rs",
            "verifier/src/challenge/mod.rs",
            "verifier/src/policy/mod.rs",
            "verifier/src/release/mod.rs",
            "verifier/src/service/join.rs",
            "verifier/src/store/mod.rs",
        ];
        let mut checked = 0;
        for path in sources {
            let text = std::fs::read_to_string(format!("{root}/{path}")).unwrap();
            for table in reason_tables(&text) {
                for code in quoted(table) {
                    assert!(
                        Reason::from_code(code).is_some(),
                        "{path}: reason {code:?} is not a Reason variant"
                    );
                    checked += 1;
                }
            }
        }
        // The tables were found (attestation alone has 26 codes).
        assert!(checked > 100, "{checked}");
        for r in hermetic_approval::Reason::ALL {
            assert_eq!(Reason::from(r).as_str(), r.as_str());
        }
        for code in hermetic_envelope::wire::TRANSIENT_REASONS {
            assert!(Reason::from_code(code).is_some(), "{code}");
        }
    }

    /// The README's table of reasons lists exactly the variants.
    #[test]
    fn the_readme_lists_every_reason() {
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
        let start = readme.find("| reason | status | meaning |").unwrap();
        let listed: BTreeSet<&str> = readme[start..]
            .lines()
            .skip(2)
            .take_while(|l| l.starts_with("| `"))
            .map(|l| l[3..].split('`').next().unwrap())
            .collect();
        let all: BTreeSet<&str> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(listed, all);
    }

    /// The bodies of `fn reason(` / `fn as_str(` and of `pub mod reason`.
    fn reason_tables(text: &str) -> Vec<&str> {
        let mut out = Vec::new();
        for start in ["fn reason(", "fn as_str(", "pub mod reason {"] {
            let mut rest = text;
            while let Some(i) = rest.find(start) {
                let body = &rest[i..];
                let end = body.find("\n    }\n").or_else(|| body.find("\n}\n"));
                let end = end.unwrap_or(body.len());
                out.push(&body[..end]);
                rest = &body[start.len()..];
            }
        }
        out
    }

    fn quoted(table: &str) -> impl Iterator<Item = &str> {
        table.split('"').skip(1).step_by(2).filter(|s| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_' || b.is_ascii_digit())
        })
    }
}
