//! How the agent trusts its collector over HTTPS, and the client certificate it presents.
//!
//! With `ca_file`, the agent trusts **only** the CA certificate(s) in that file for the
//! collector, not the operating system's roots as well: a province runs its collector under its
//! own CA, and trusting every public CA besides would let a certificate any of them issued for
//! the collector's name read and alter the agents' traffic. Without `ca_file` the operating
//! system's roots apply (a collector with a publicly issued certificate).
//!
//! The files are read whenever a client is built (at start, and for each speed test), so a
//! renewed client certificate is picked up without a restart of the daemon at the next test and
//! by every `once`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The TLS files of one agent; every one optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// The CA (PEM) the collector's certificate must chain to; the only one trusted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM) and its key (PEM), for a collector that requires one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key_file: Option<PathBuf>,
}

/// TLS settings that make no client.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{}: {reason}", path.display())]
    File { path: PathBuf, reason: String },
    #[error("cannot set up TLS: {0}")]
    Client(String),
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| bad(path, e.to_string()))
}

impl TlsFiles {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// These settings, with each one they leave unset taken from `fallback` (the certificate
    /// and its key as one).
    pub fn or(&self, fallback: &TlsFiles) -> TlsFiles {
        let (client_cert_file, client_key_file) = if self.client_cert_file.is_some() {
            (self.client_cert_file.clone(), self.client_key_file.clone())
        } else {
            (
                fallback.client_cert_file.clone(),
                fallback.client_key_file.clone(),
            )
        };
        TlsFiles {
            ca_file: self.ca_file.clone().or_else(|| fallback.ca_file.clone()),
            client_cert_file,
            client_key_file,
        }
    }

    /// The same files named by absolute paths, so the state directory keeps working whatever
    /// directory the agent is started from.
    pub fn absolute(&self) -> std::io::Result<TlsFiles> {
        let absolute = |p: &Option<PathBuf>| p.as_deref().map(std::path::absolute).transpose();
        Ok(TlsFiles {
            ca_file: absolute(&self.ca_file)?,
            client_cert_file: absolute(&self.client_cert_file)?,
            client_key_file: absolute(&self.client_key_file)?,
        })
    }

    /// The problems of a configuration: a certificate without its key or the reverse.
    pub fn check(&self, errors: &mut Vec<String>) {
        match (&self.client_cert_file, &self.client_key_file) {
            (Some(_), None) => errors.push("client_cert_file needs client_key_file".into()),
            (None, Some(_)) => errors.push("client_key_file needs client_cert_file".into()),
            _ => {}
        }
    }

    /// `builder` trusting only `ca_file` (when set) and presenting the client certificate (when
    /// set). Every file is read and parsed here, so a bad one is reported by name.
    pub fn apply(
        &self,
        builder: reqwest::ClientBuilder,
    ) -> Result<reqwest::ClientBuilder, TlsError> {
        let mut builder = builder;
        if let Some(ca_file) = &self.ca_file {
            let parsed = reqwest::Certificate::from_pem_bundle(&read(ca_file)?);
            let certs = match parsed {
                Ok(certs) if !certs.is_empty() => certs,
                Ok(_) => return Err(bad(ca_file, "no PEM certificate in it".into())),
                Err(e) => return Err(bad(ca_file, hatang_probe::root_cause(&e))),
            };
            builder = builder.tls_certs_only(certs);
        }
        if let (Some(cert_file), Some(key_file)) = (&self.client_cert_file, &self.client_key_file) {
            // reqwest wants the key and the chain in one PEM buffer.
            let mut pem = read(key_file)?;
            pem.push(b'\n');
            pem.extend(read(cert_file)?);
            let identity = reqwest::Identity::from_pem(&pem).map_err(|e| {
                bad(
                    cert_file,
                    format!(
                        "with {}: {}",
                        key_file.display(),
                        hatang_probe::root_cause(&e)
                    ),
                )
            })?;
            builder = builder.identity(identity);
        }
        Ok(builder)
    }
}

fn bad(path: &Path, reason: String) -> TlsError {
    TlsError::File {
        path: path.to_path_buf(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(ca: &str, cert: Option<&str>) -> TlsFiles {
        TlsFiles {
            ca_file: (!ca.is_empty()).then(|| ca.into()),
            client_cert_file: cert.map(|c| format!("{c}.crt").into()),
            client_key_file: cert.map(|c| format!("{c}.key").into()),
        }
    }

    #[test]
    fn configured_files_win_over_stored_ones_and_the_pair_stays_together() {
        let stored = files("/state/ca.pem", Some("/state/me"));
        assert_eq!(TlsFiles::default().or(&stored), stored);
        assert_eq!(
            files("/etc/ca.pem", None).or(&stored),
            files("/etc/ca.pem", Some("/state/me"))
        );
        assert_eq!(
            files("", Some("/etc/me")).or(&stored),
            files("/state/ca.pem", Some("/etc/me"))
        );
        assert!(TlsFiles::default().is_empty());
        assert!(!stored.is_empty());
    }

    #[test]
    fn a_certificate_needs_its_key() {
        let mut errors = Vec::new();
        let mut half = files("", Some("me"));
        half.client_key_file = None;
        half.check(&mut errors);
        files("ca.pem", Some("me")).check(&mut errors);
        assert_eq!(errors, ["client_cert_file needs client_key_file"]);
    }

    #[test]
    fn unusable_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("absent.pem");
        let err = files(missing.to_str().unwrap(), None)
            .apply(reqwest::Client::builder())
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.starts_with(&format!("{}: ", missing.display())),
            "{err}"
        );
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "nothing here\n").unwrap();
        let err = files(empty.to_str().unwrap(), None)
            .apply(reqwest::Client::builder())
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.ends_with("empty.pem: no PEM certificate in it"),
            "{err}"
        );
    }

    #[test]
    fn stored_paths_are_absolute() {
        let relative = files("ca.pem", Some("me"));
        let absolute = relative.absolute().unwrap();
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(absolute.ca_file, Some(cwd.join("ca.pem")));
        assert_eq!(absolute.client_key_file, Some(cwd.join("me.key")));
    }
}
