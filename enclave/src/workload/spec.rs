//! `NAME[=ENV]...` [--secrets-dir DIR]: which secrets the workload gets and
//! where.

use std::collections::BTreeSet;
use std::path::PathBuf;

use super::WorkloadError;

/// One secret and the environment variable it is delivered in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretMapping {
    pub name: String,
    pub env: String,
    /// Whether `=ENV` was written out (as opposed to [`default_env_name`]).
    pub explicit_env: bool,
}

/// What to deliver and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliverySpec {
    pub secrets: Vec<SecretMapping>,
    /// Deliver as files `DIR/NAME` instead of environment variables.
    pub secrets_dir: Option<PathBuf>,
}

/// `NAME` upper-cased with every other character than an ASCII letter or
/// digit replaced by `_`, and `_` put in front if it would start with a
/// digit: `db-password` → `DB_PASSWORD`, `2fa.seed` → `_2FA_SEED`.
pub fn default_env_name(name: &str) -> String {
    let mut env: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    if env.starts_with(|c: char| c.is_ascii_digit()) {
        env.insert(0, '_');
    }
    env
}

fn valid_env(env: &str) -> bool {
    let mut chars = env.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A secret name must also be a safe single file name.
fn name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("empty secret name")
    } else if name == "." || name == ".." {
        Some("secret name cannot be . or ..")
    } else if name.contains('/') || name.contains('\0') {
        Some("secret name cannot contain / or NUL")
    } else if name.len() > 255 {
        Some("secret name longer than 255 bytes")
    } else {
        None
    }
}

impl DeliverySpec {
    /// Parses `NAME[=ENV]` items.
    pub fn parse<S: AsRef<str>>(
        items: &[S],
        secrets_dir: Option<PathBuf>,
    ) -> Result<Self, WorkloadError> {
        let mut secrets = Vec::with_capacity(items.len());
        let mut names = BTreeSet::new();
        let mut envs = BTreeSet::new();
        for item in items {
            let item = item.as_ref();
            let bad = |reason| WorkloadError::BadSpec {
                item: item.to_string(),
                reason,
            };
            let (name, env, explicit_env) = match item.split_once('=') {
                Some((name, env)) => (name, env.to_string(), true),
                None => (item, default_env_name(item), false),
            };
            if let Some(reason) = name_problem(name) {
                return Err(bad(reason));
            }
            if !valid_env(&env) {
                return Err(bad("environment variable names are [A-Za-z_][A-Za-z0-9_]*"));
            }
            if explicit_env && secrets_dir.is_some() {
                return Err(WorkloadError::EnvWithSecretsDir { name: name.into() });
            }
            if !names.insert(name.to_string()) {
                return Err(WorkloadError::DuplicateName { name: name.into() });
            }
            if secrets_dir.is_none() && !envs.insert(env.clone()) {
                return Err(WorkloadError::DuplicateEnv { env });
            }
            secrets.push(SecretMapping {
                name: name.into(),
                env,
                explicit_env,
            });
        }
        Ok(DeliverySpec {
            secrets,
            secrets_dir,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_env_names() {
        assert_eq!(default_env_name("db-password"), "DB_PASSWORD");
        assert_eq!(default_env_name("api.key/v2"), "API_KEY_V2");
        assert_eq!(default_env_name("2fa"), "_2FA");
        assert_eq!(default_env_name("ключ"), "____");
    }

    #[test]
    fn parses_names_and_env_overrides() {
        let spec = DeliverySpec::parse(&["db-password", "api=API_TOKEN"], None).unwrap();
        let got: Vec<(&str, &str)> = spec
            .secrets
            .iter()
            .map(|m| (m.name.as_str(), m.env.as_str()))
            .collect();
        assert_eq!(got, [("db-password", "DB_PASSWORD"), ("api", "API_TOKEN")]);
    }

    #[test]
    fn refuses_bad_specs() {
        let cases: [(&[&str], Option<&str>, &str); 7] = [
            (&[""], None, "workload_bad_spec"),
            (&["../etc"], None, "workload_bad_spec"),
            (&[".."], Some("/dev/shm/x"), "workload_bad_spec"),
            (&["a=1X"], None, "workload_bad_spec"),
            (&["a", "a=B"], None, "workload_duplicate_name"),
            (&["a-b", "a_b"], None, "workload_duplicate_env"),
            (
                &["a=A"],
                Some("/dev/shm/x"),
                "workload_env_with_secrets_dir",
            ),
        ];
        for (items, dir, reason) in cases {
            let err = DeliverySpec::parse(items, dir.map(PathBuf::from)).unwrap_err();
            assert_eq!(err.reason(), reason, "{items:?}");
        }
        // With files, two names may share a default env name.
        assert!(DeliverySpec::parse(&["a-b", "a_b"], Some("/dev/shm/x".into())).is_ok());
    }
}
