//! A small HTTP client for the admin API (used by the `secret`, `policy` and
//! `change` subcommands, the tests and the load benchmark), and the owner's
//! side of a change ([`change`]: propose, sign). Plain HTTP only: the admin
//! listener is meant for loopback.

pub mod change;
pub mod identity;

use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;

use hermetic_envelope::wire::Refusal;

use hermetic_approval::StatementFile;

use crate::service::{
    ChangeApplied, CreateSecret, Created, DeploymentInfo, PolicyList, SecretList,
};
use crate::store::SecretInfo;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{url}: {message}")]
    Transport { url: String, message: String },
    #[error("refused ({status}): {} — {}", refusal.reason, refusal.message)]
    Refused { status: u16, refusal: Refusal },
    #[error("unexpected answer ({status}): {body}")]
    Unexpected { status: u16, body: String },
}

/// A keep-alive HTTP/1.1 client for `http://` URLs.
#[derive(Clone, Debug)]
pub struct HttpClient {
    inner: Client<HttpConnector, Full<Bytes>>,
    timeout: Duration,
}

impl Default for HttpClient {
    fn default() -> Self {
        HttpClient::new(Duration::from_secs(30))
    }
}

impl HttpClient {
    pub fn new(timeout: Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        HttpClient {
            inner: Client::builder(TokioExecutor::new()).build(connector),
            timeout,
        }
    }

    /// A client whose connections leave from `local` (e.g. to act as a
    /// particular client address in tests of per-address limits).
    pub fn bound_to(timeout: Duration, local: std::net::IpAddr) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_local_address(Some(local));
        HttpClient {
            inner: Client::builder(TokioExecutor::new()).build(connector),
            timeout,
        }
    }

    /// Sends one request and returns the status and the whole body.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<(StatusCode, Vec<u8>), ClientError> {
        let transport = |message: String| ClientError::Transport {
            url: url.to_owned(),
            message,
        };
        if !url.starts_with("http://") {
            return Err(transport("only http:// URLs are supported".into()));
        }
        let mut builder = Request::builder().method(method).uri(url);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = builder
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| transport(e.to_string()))?;
        let exchange = async {
            let response = self
                .inner
                .request(request)
                .await
                .map_err(|e| transport(format!("{e:?}")))?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| transport(e.to_string()))?
                .to_bytes();
            Ok((status, body.to_vec()))
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| transport("timed out".into()))?
    }
}

/// Turns a non-2xx answer into [`ClientError::Refused`] and parses a 2xx one.
pub fn parse_answer<T: DeserializeOwned>(
    status: StatusCode,
    body: &[u8],
) -> Result<T, ClientError> {
    if !status.is_success() {
        return Err(match serde_json::from_slice::<Refusal>(body) {
            Ok(refusal) => ClientError::Refused {
                status: status.as_u16(),
                refusal,
            },
            Err(_) => ClientError::Unexpected {
                status: status.as_u16(),
                body: String::from_utf8_lossy(body).into_owned(),
            },
        });
    }
    serde_json::from_slice(body).map_err(|_| ClientError::Unexpected {
        status: status.as_u16(),
        body: String::from_utf8_lossy(body).into_owned(),
    })
}

/// The admin API, authenticated with a bearer token.
#[derive(Clone, Debug)]
pub struct AdminClient {
    base: String,
    authorization: String,
    http: HttpClient,
    /// The intake key the verifier's attestation document binds
    /// (`--verifier-measurements`): values are sealed to it, and the admin
    /// API's must be the same.
    attested_intake: Option<[u8; 32]>,
}

impl AdminClient {
    /// `base` is like `http://127.0.0.1:8444`.
    pub fn new(base: &str, token: &str) -> Self {
        AdminClient {
            base: base.trim_end_matches('/').to_owned(),
            authorization: format!("Bearer {}", token.trim()),
            http: HttpClient::default(),
            attested_intake: None,
        }
    }

    /// Seal values only to `intake` (an attested verifier's intake key), and
    /// refuse a deployment whose admin API names another.
    pub fn with_attested_intake(mut self, intake: [u8; 32]) -> Self {
        self.attested_intake = Some(intake);
        self
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<(StatusCode, Vec<u8>), ClientError> {
        let url = format!("{}{path}", self.base);
        self.http
            .send(
                method,
                &url,
                &[
                    ("authorization", &self.authorization),
                    ("content-type", content_type),
                ],
                body,
            )
            .await
    }

    async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<T, ClientError> {
        let (status, body) = self.call(method, path, content_type, body).await?;
        parse_answer(status, &body)
    }

    /// `GET /admin/v1/deployment`: the id statements must name and the
    /// intake key values are sealed to.
    pub async fn deployment(&self) -> Result<DeploymentInfo, ClientError> {
        self.json(
            Method::GET,
            "/admin/v1/deployment",
            "application/json",
            Vec::new(),
        )
        .await
    }

    /// An unsigned statement file for `proposal`, naming this service's
    /// deployment (checked against `deployment` when given) and `version`
    /// (default: the secret's current version + 1); a value is sealed to the
    /// service's intake key.
    pub async fn propose(
        &self,
        proposal: &change::Proposal,
        deployment: Option<&str>,
        version: Option<u64>,
    ) -> Result<StatementFile, change::ProposeError> {
        use base64::Engine as _;
        let info = self.deployment().await?;
        if let Some(given) = deployment {
            if given != info.deployment {
                return Err(change::ProposeError::WrongDeployment {
                    service: info.deployment,
                    given: given.to_owned(),
                });
            }
        }
        let version = match version {
            Some(v) => v,
            None => self.secret_info(proposal.name()).await?.version + 1,
        };
        if let Some(attested) = &self.attested_intake {
            if base64::engine::general_purpose::STANDARD.encode(attested) != info.intake_public_key
            {
                return Err(change::ProposeError::IntakeKeyNotAttested);
            }
        }
        let intake = base64::engine::general_purpose::STANDARD
            .decode(&info.intake_public_key)
            .ok()
            .and_then(|bytes| hermetic_envelope::RecipientPublicKey::from_bytes(&bytes).ok())
            .ok_or(change::ProposeError::BadIntakeKey)?;
        change::propose(
            proposal,
            &info.deployment,
            version,
            Some(&intake),
            &aws_lc_rs::rand::SystemRandom::new(),
        )
    }

    /// `POST /admin/v1/secrets/NAME`: a new secret and its owner set.
    pub async fn create_secret(
        &self,
        name: &str,
        owners: &[String],
        threshold: u32,
    ) -> Result<Created, ClientError> {
        let body = CreateSecret {
            owners: owners.to_vec(),
            threshold,
        };
        let path = format!("/admin/v1/secrets/{name}");
        self.json(
            Method::POST,
            &path,
            "application/json",
            serde_json::to_vec(&body).unwrap_or_default(),
        )
        .await
    }

    /// `POST /admin/v1/changes`: an owner-signed statement file.
    pub async fn submit_change(&self, file: &StatementFile) -> Result<ChangeApplied, ClientError> {
        self.json(
            Method::POST,
            "/admin/v1/changes",
            "application/json",
            file.to_json().into_bytes(),
        )
        .await
    }

    /// `GET /admin/v1/secrets/NAME`: owners, threshold, versions (never a value).
    pub async fn secret_info(&self, name: &str) -> Result<SecretInfo, ClientError> {
        let path = format!("/admin/v1/secrets/{name}");
        self.json(Method::GET, &path, "application/json", Vec::new())
            .await
    }

    pub async fn list_secrets(&self) -> Result<Vec<SecretInfo>, ClientError> {
        let list: SecretList = self
            .json(
                Method::GET,
                "/admin/v1/secrets",
                "application/json",
                Vec::new(),
            )
            .await?;
        Ok(list.secrets)
    }

    pub async fn get_policy(&self, name: &str) -> Result<String, ClientError> {
        let path = format!("/admin/v1/policies/{name}");
        let (status, body) = self
            .call(Method::GET, &path, "application/json", Vec::new())
            .await?;
        if !status.is_success() {
            return parse_answer::<serde_json::Value>(status, &body).map(|_| String::new());
        }
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    pub async fn list_policies(&self) -> Result<Vec<String>, ClientError> {
        let list: PolicyList = self
            .json(
                Method::GET,
                "/admin/v1/policies",
                "application/json",
                Vec::new(),
            )
            .await?;
        Ok(list.policies)
    }
}
