//! The server's PKI: a self-signed CA kept in the data directory (so kubeconfigs stay valid
//! across restarts) and a serving certificate issued at every start for the configured SANs.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("certificate generation: {0}")]
    Cert(#[from] rcgen::Error),
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("invalid TLS SAN {0:?}")]
    BadSan(String),
}

/// The CA (PEM, for kubeconfigs) and a ready server configuration.
pub struct Pki {
    pub ca_pem: String,
    pub server_config: Arc<rustls::ServerConfig>,
}

const CA_NAME: &str = "lab-apiserver-ca";

fn ca_params() -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, CA_NAME);
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p
}

fn read(path: &Path) -> Result<Option<String>, TlsError> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(TlsError::Io {
            path: path.into(),
            source,
        }),
    }
}

fn write(path: &Path, data: &str) -> Result<(), TlsError> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, data)
        .and_then(|_| fs::rename(&tmp, path))
        .map_err(|source| TlsError::Io {
            path: path.into(),
            source,
        })
}

/// Loads the CA from `dir/pki` (creating it the first time) and issues a serving certificate
/// for `sans` (IP addresses or DNS names).
pub fn load_or_create(dir: &Path, sans: &[String]) -> Result<Pki, TlsError> {
    let pki = dir.join("pki");
    fs::create_dir_all(&pki).map_err(|source| TlsError::Io {
        path: pki.clone(),
        source,
    })?;
    let (key_path, cert_path) = (pki.join("ca.key"), pki.join("ca.crt"));
    let (ca_key, ca_pem) = match (read(&key_path)?, read(&cert_path)?) {
        (Some(k), Some(c)) => (KeyPair::from_pem(&k)?, c),
        _ => {
            let key = KeyPair::generate()?;
            let cert = ca_params().self_signed(&key)?;
            write(&key_path, &key.serialize_pem())?;
            write(&cert_path, &cert.pem())?;
            (key, cert.pem())
        }
    };
    let issuer = Issuer::new(ca_params(), ca_key);

    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "kube-apiserver");
    params.distinguished_name = dn;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    let mut names: Vec<String> = sans.to_vec();
    for n in [
        "localhost",
        "127.0.0.1",
        "::1",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    ] {
        if !names.iter().any(|x| x == n) {
            names.push(n.to_string());
        }
    }
    for n in &names {
        let san = match n.parse::<std::net::IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => {
                let valid = !n.is_empty()
                    && n.split('.').all(|l| {
                        !l.is_empty()
                            && l.bytes()
                                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'*')
                    });
                if !valid {
                    return Err(TlsError::BadSan(n.clone()));
                }
                SanType::DnsName(
                    n.clone()
                        .try_into()
                        .map_err(|_| TlsError::BadSan(n.clone()))?,
                )
            }
        };
        params.subject_alt_names.push(san);
    }
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;

    let ca_der = CertificateDer::from_pem_slice(ca_pem.as_bytes()).map_err(|e| TlsError::Io {
        path: cert_path.clone(),
        source: std::io::Error::other(e.to_string()),
    })?;
    let chain: Vec<CertificateDer<'static>> = vec![cert.der().clone(), ca_der];
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Pki {
        ca_pem,
        server_config: Arc::new(config),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ca_is_kept_across_starts() {
        let dir = std::env::temp_dir().join(format!("apiserver-tls-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let a = load_or_create(&dir, &["192.0.2.2".into()]).unwrap();
        let b = load_or_create(&dir, &["192.0.2.2".into(), "203.0.113.194".into()]).unwrap();
        assert_eq!(a.ca_pem, b.ca_pem);
        assert!(a.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert_eq!(a.server_config.alpn_protocols[0], b"h2");
        assert!(matches!(
            load_or_create(&dir, &["bad name!".into()]),
            Err(TlsError::BadSan(_))
        ));
        fs::remove_dir_all(&dir).unwrap();
    }
}
