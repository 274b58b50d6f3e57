//! Credentials from a Docker-style `config.json` (`~/.docker/config.json`):
//! `{"auths": {"HOST[:PORT]": {"auth": base64("user:password")}}}`; Docker Hub's key is
//! `https://index.docker.io/v1/`. Credential helpers (`credsStore`) are not run.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine as _;
use serde::Deserialize;

use super::RegistryError;

/// A user name and password for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User name.
    pub username: String,
    /// Password or token.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, ****)", self.username)
    }
}

#[derive(Deserialize)]
struct File {
    #[serde(default)]
    auths: BTreeMap<String, Entry>,
}

#[derive(Deserialize)]
struct Entry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

/// The `auths` of a config file, keyed by registry host.
#[derive(Debug, Clone, Default)]
pub struct AuthFile {
    by_host: BTreeMap<String, Credentials>,
}

impl AuthFile {
    /// Reads and decodes `path`.
    pub fn load(path: &Path) -> Result<AuthFile, RegistryError> {
        let bytes = std::fs::read(path)
            .map_err(|e| RegistryError::Config(format!("{}: {e}", path.display())))?;
        Self::parse(&bytes).map_err(|e| match e {
            RegistryError::Config(detail) => {
                RegistryError::Config(format!("{}: {detail}", path.display()))
            }
            other => other,
        })
    }

    /// Decodes the JSON text of a config file.
    pub fn parse(bytes: &[u8]) -> Result<AuthFile, RegistryError> {
        let bad = RegistryError::Config;
        let f: File = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
        let mut by_host = BTreeMap::new();
        for (key, e) in f.auths {
            let creds = match (e.auth, e.username, e.password) {
                (Some(a), _, _) if !a.is_empty() => {
                    let raw = base64::engine::general_purpose::STANDARD
                        .decode(a.trim())
                        .map_err(|err| bad(format!("auths.{key}.auth: {err}")))?;
                    let s = String::from_utf8(raw)
                        .map_err(|_| bad(format!("auths.{key}.auth is not UTF-8")))?;
                    let (u, p) = s
                        .split_once(':')
                        .ok_or_else(|| bad(format!("auths.{key}.auth is not user:password")))?;
                    Credentials {
                        username: u.into(),
                        password: p.into(),
                    }
                }
                (_, Some(u), Some(p)) => Credentials {
                    username: u,
                    password: p,
                },
                _ => continue,
            };
            by_host.insert(host_of(&key), creds);
        }
        Ok(AuthFile { by_host })
    }

    /// The credentials for `registry` (a reference's domain, or a mirror's host).
    pub fn get(&self, registry: &str) -> Option<&Credentials> {
        let host = if registry == "docker.io" {
            "index.docker.io"
        } else {
            registry
        };
        self.by_host.get(host)
    }
}

/// `https://index.docker.io/v1/` → `index.docker.io`; `host:5000` stays.
fn host_of(key: &str) -> String {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let k = k.split('/').next().unwrap_or(k);
    if k == "docker.io" || k == "registry-1.docker.io" {
        "index.docker.io".into()
    } else {
        k.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_base64_auth_and_plain_fields() {
        let j = br#"{"auths": {
            "https://index.docker.io/v1/": {"auth": "dXNlcjpwYTpzcw=="},
            "localhost:5000": {"username": "a", "password": "b"},
            "other": {}
        }}"#;
        let f = AuthFile::parse(j).unwrap();
        let hub = f.get("docker.io").unwrap();
        assert_eq!(
            (hub.username.as_str(), hub.password.as_str()),
            ("user", "pa:ss")
        );
        assert_eq!(f.get("localhost:5000").unwrap().username, "a");
        assert!(f.get("other").is_none());
        assert!(!format!("{hub:?}").contains("pa:ss"));
        assert!(AuthFile::parse(br#"{"auths": {"x": {"auth": "!!"}}}"#).is_err());
    }
}
