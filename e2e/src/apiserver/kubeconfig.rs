//! Kubeconfig files for clients of the stand-in: the CA, the server URL and a bearer token
//! (any token is accepted).

use std::path::{Path, PathBuf};

use super::base64;

#[derive(Debug, thiserror::Error)]
pub enum KubeconfigError {
    #[error(
        "--kubeconfig-out {0:?}: expected PATH=URL, for example /tmp/lab/kubeconfig=https://192.0.2.2:6443"
    )]
    BadSpec(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Where to write one kubeconfig and which server URL it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeconfigOut {
    pub path: PathBuf,
    pub server: String,
}

impl std::str::FromStr for KubeconfigOut {
    type Err = KubeconfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (path, server) = s
            .split_once('=')
            .ok_or_else(|| KubeconfigError::BadSpec(s.into()))?;
        if path.is_empty() || !(server.starts_with("https://") && server.len() > "https://".len()) {
            return Err(KubeconfigError::BadSpec(s.into()));
        }
        Ok(KubeconfigOut {
            path: path.into(),
            server: server.into(),
        })
    }
}

pub const TOKEN: &str = "lab-admin-token";

/// The kubeconfig text.
pub fn render(server: &str, ca_pem: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: lab\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\ncontexts:\n- name: lab\n  context:\n    cluster: lab\n    user: lab-admin\n    namespace: default\ncurrent-context: lab\npreferences: {{}}\nusers:\n- name: lab-admin\n  user:\n    token: {TOKEN}\n",
        ca = base64::encode(ca_pem.as_bytes())
    )
}

/// Writes the file atomically, so readers never see half of it.
pub fn write(out: &KubeconfigOut, ca_pem: &str) -> Result<(), KubeconfigError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| KubeconfigError::Io { path, source }
    };
    if let Some(parent) = out.path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    let tmp = out.path.with_extension("tmp");
    std::fs::write(&tmp, render(&out.server, ca_pem)).map_err(io(&tmp))?;
    std::fs::rename(&tmp, &out.path).map_err(io(&out.path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_or_fail_clearly() {
        let k: KubeconfigOut = "/tmp/x/kubeconfig=https://192.0.2.2:6443".parse().unwrap();
        assert_eq!(k.path, PathBuf::from("/tmp/x/kubeconfig"));
        assert_eq!(k.server, "https://192.0.2.2:6443");
        for bad in [
            "",
            "/tmp/x",
            "=https://a",
            "/tmp/x=http://a",
            "/tmp/x=https://",
        ] {
            assert!(bad.parse::<KubeconfigOut>().is_err(), "{bad}");
        }
    }

    #[test]
    fn rendered_config_is_valid_yaml_with_the_ca() {
        let text = render(
            "https://192.0.2.2:6443",
            "-----BEGIN CERTIFICATE-----\nabc\n-----END CERTIFICATE-----\n",
        );
        let v: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        assert_eq!(
            v["clusters"][0]["cluster"]["server"].as_str(),
            Some("https://192.0.2.2:6443")
        );
        assert_eq!(v["users"][0]["user"]["token"].as_str(), Some(TOKEN));
        assert_eq!(v["current-context"].as_str(), Some("lab"));
    }
}
