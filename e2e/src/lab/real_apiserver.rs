//! `lab up --kube-apiserver PATH --etcd PATH`: a real etcd and kube-apiserver in the control
//! plane namespace instead of the stand-in.
//!
//! **Untested on the machine this was written on** (neither binary is available there). It
//! follows the kube-apiserver flags documentation: a CA and a serving certificate for the
//! control plane's addresses, a service-account signing key, a static token file whose user is
//! in `system:masters`, and kubeconfigs that use that token. The `ServiceAccount` admission
//! plugin is disabled because no controller-manager creates the `default` ServiceAccounts.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use rand::RngCore;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

use super::components::{APISERVER_PORT, Env};
use super::plan::LabPlan;
use super::topology::{Desired, ProcessRecord};
use super::{Error, Result};

/// The two processes to start, etcd first.
pub struct RealControlPlane {
    pub etcd: ProcessRecord,
    pub apiserver: ProcessRecord,
}

fn cert_error(e: rcgen::Error) -> Error {
    Error::BadArgument(format!("generating lab certificates: {e}"))
}

fn write(path: &Path, text: &str) -> Result<()> {
    fs::write(path, text).map_err(|e| Error::io(format!("writing {}", path.display()), e))
}

/// The first address of the service range: the `kubernetes` Service's ClusterIP.
fn first_service_ip(plan: &LabPlan) -> String {
    // 203.0.113.0/25 -> 203.0.113.1
    plan.service_cidrs[0]
        .split('/')
        .next()
        .and_then(|a| a.parse::<std::net::Ipv4Addr>().ok())
        .map(|a| std::net::Ipv4Addr::from(u32::from(a) + 1).to_string())
        .unwrap_or_default()
}

fn kubeconfig(server: &str, ca: &Path, token: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: lab\n  cluster:\n    server: {server}\n    certificate-authority: {ca}\nusers:\n- name: admin\n  user:\n    token: {token}\ncontexts:\n- name: lab\n  context:\n    cluster: lab\n    user: admin\ncurrent-context: lab\n",
        ca = ca.display()
    )
}

/// Writes certificates, keys, the token file and both kubeconfigs, and returns the commands.
pub fn prepare(
    plan: &LabPlan,
    dir: &Path,
    kube_apiserver: &Path,
    etcd: &Path,
) -> Result<RealControlPlane> {
    for bin in [kube_apiserver, etcd] {
        if !bin.is_file() {
            return Err(Error::MissingBinary(bin.to_path_buf()));
        }
    }
    let pki = dir.join("pki");
    fs::create_dir_all(&pki).map_err(|e| Error::io(format!("creating {}", pki.display()), e))?;

    let ca_key = KeyPair::generate().map_err(cert_error)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(cert_error)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "ironlb-lab-ca");
    let ca_cert = ca_params.self_signed(&ca_key).map_err(cert_error)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let cp = plan.control_plane();
    let sans = vec![
        cp.ipv4.to_string(),
        plan.mgmt.cp_ip.to_string(),
        "127.0.0.1".into(),
        first_service_ip(plan),
        "kubernetes".into(),
        "kubernetes.default".into(),
        "kubernetes.default.svc".into(),
    ];
    let serving_key = KeyPair::generate().map_err(cert_error)?;
    let mut serving = CertificateParams::new(sans).map_err(cert_error)?;
    serving
        .distinguished_name
        .push(DnType::CommonName, "kube-apiserver");
    let serving_cert = serving
        .signed_by(&serving_key, &issuer)
        .map_err(cert_error)?;
    let sa_key = KeyPair::generate().map_err(cert_error)?;

    let mut token_bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut token_bytes);
    let token: String = token_bytes.iter().map(|b| format!("{b:02x}")).collect();

    let ca_path = pki.join("ca.crt");
    write(&ca_path, &ca_cert.pem())?;
    write(&pki.join("apiserver.crt"), &serving_cert.pem())?;
    write(&pki.join("apiserver.key"), &serving_key.serialize_pem())?;
    write(&pki.join("sa.key"), &sa_key.serialize_pem())?;
    write(&pki.join("sa.pub"), &sa_key.public_key_pem())?;
    write(
        &pki.join("tokens.csv"),
        &format!("{token},lab-admin,lab-admin,\"system:masters\"\n"),
    )?;
    write(
        &dir.join("kubeconfig"),
        &kubeconfig(&plan.external_api_url(), &ca_path, &token),
    )?;
    write(
        &dir.join("kubeconfig.internal"),
        &kubeconfig(&plan.internal_api_url(), &ca_path, &token),
    )?;

    let env = Env {
        plan,
        dir,
        bin_dir: Path::new("/"),
    };
    let p = |name: &str| pki.join(name).display().to_string();
    let etcd_args = vec![
        "--name=lab".to_string(),
        format!("--data-dir={}", dir.join("etcd").display()),
        "--listen-client-urls=http://127.0.0.1:2379".into(),
        "--advertise-client-urls=http://127.0.0.1:2379".into(),
        "--listen-peer-urls=http://127.0.0.1:2380".into(),
        "--initial-advertise-peer-urls=http://127.0.0.1:2380".into(),
        "--initial-cluster=lab=http://127.0.0.1:2380".into(),
    ];
    let apiserver_args = vec![
        "--etcd-servers=http://127.0.0.1:2379".to_string(),
        "--bind-address=0.0.0.0".into(),
        format!("--secure-port={APISERVER_PORT}"),
        format!("--advertise-address={}", cp.ipv4),
        format!(
            "--service-cluster-ip-range={}",
            plan.service_cidrs.join(",")
        ),
        format!("--tls-cert-file={}", p("apiserver.crt")),
        format!("--tls-private-key-file={}", p("apiserver.key")),
        format!("--client-ca-file={}", p("ca.crt")),
        format!("--token-auth-file={}", p("tokens.csv")),
        "--authorization-mode=RBAC".into(),
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
        format!("--service-account-key-file={}", p("sa.pub")),
        format!("--service-account-signing-key-file={}", p("sa.key")),
        "--disable-admission-plugins=ServiceAccount".into(),
        "--allow-privileged=true".into(),
    ];
    let record = |name: &str, program: &Path, args: Vec<String>| ProcessRecord {
        name: name.into(),
        host: cp.name.clone(),
        program: program.to_path_buf(),
        args,
        env: BTreeMap::new(),
        log: env.dir.join("logs").join(format!("{name}.log")),
        pid: None,
        desired: Desired::Running,
    };
    Ok(RealControlPlane {
        etcd: record("etcd", etcd, etcd_args),
        apiserver: record("apiserver", kube_apiserver, apiserver_args),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_service_ip_is_the_range_s_first_host() {
        let plan = LabPlan::new(0, 1, true).unwrap();
        assert_eq!(first_service_ip(&plan), "203.0.113.1");
    }

    #[test]
    fn writes_pki_and_kubeconfigs_for_present_binaries() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("fake-bin");
        fs::write(&fake, "").unwrap();
        let plan = LabPlan::new(0, 1, false).unwrap();
        let cp = prepare(&plan, dir.path(), &fake, &fake).unwrap();
        assert_eq!(cp.apiserver.name, "apiserver");
        assert!(
            cp.apiserver
                .args
                .contains(&"--service-cluster-ip-range=203.0.113.0/25".to_string())
        );
        let kc = fs::read_to_string(dir.path().join("kubeconfig")).unwrap();
        assert!(kc.contains("server: https://203.0.113.194:6443"));
        let kc = fs::read_to_string(dir.path().join("kubeconfig.internal")).unwrap();
        assert!(kc.contains("server: https://192.0.2.2:6443"));
        assert!(
            fs::read_to_string(dir.path().join("pki/ca.crt"))
                .unwrap()
                .contains("BEGIN CERTIFICATE")
        );
        let missing = prepare(
            &plan,
            dir.path(),
            Path::new("/nonexistent/kube-apiserver"),
            &fake,
        );
        assert!(matches!(missing, Err(Error::MissingBinary(_))));
    }
}
