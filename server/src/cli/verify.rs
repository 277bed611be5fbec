//! `railgun verify`: checks a Sigstore bundle for an artifact, offline, as the update client
//! will: trust root (embedded public-good one, or `--trusted-root`), transparency-log
//! evidence, certificate chain, identity and issuer (or a managed key with `--key`).
//! Prints the verified identity and exits 0, or prints one line and exits 1.

use std::path::PathBuf;
use std::process::ExitCode;

use railgun_core::trust::sigstore::{
    IdentityMatcher, IdentityPolicy, SigstoreVerifier, MAX_BUNDLE_BYTES,
};
use railgun_core::trust::PublicKey;

use super::CliResult;

/// Arguments of `railgun verify`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("signer").required(true).args(["identity", "identity_regexp", "key"])))]
pub struct Args {
    /// The artifact file.
    #[arg(long)]
    pub artifact: PathBuf,
    /// Its Sigstore bundle (JSON).
    #[arg(long)]
    pub bundle: PathBuf,
    /// Exact certificate identity, e.g. https://github.com/OWNER/REPO/.github/workflows/release.yml@refs/tags/v1.2.3
    #[arg(long)]
    pub identity: Option<String>,
    /// Regular expression for the whole certificate identity.
    #[arg(long)]
    pub identity_regexp: Option<String>,
    /// Exact OIDC issuer, e.g. https://token.actions.githubusercontent.com
    #[arg(long, required_unless_present = "key", conflicts_with = "key")]
    pub issuer: Option<String>,
    /// A trusted_root.json to use instead of the embedded public-good one.
    #[arg(long)]
    pub trusted_root: Option<PathBuf>,
    /// Public key (PEM) of a bundle signed with a managed key, instead of an identity.
    #[arg(long)]
    pub key: Option<PathBuf>,
}

/// Runs `railgun verify`.
pub fn run(a: Args) -> CliResult {
    let root = a.trusted_root.as_ref().map(std::fs::read).transpose()?;
    let verifier = match (&a.key, &a.identity, &a.identity_regexp, &a.issuer) {
        (Some(key), _, _, _) => {
            SigstoreVerifier::with_key(root.as_deref(), PublicKey::from_file(key)?)?
        }
        (None, id, re, Some(issuer)) => {
            let identity = match (id, re) {
                (Some(id), _) => IdentityMatcher::Exact(id.clone()),
                (None, Some(re)) => IdentityMatcher::regex(re)?,
                (None, None) => return Err("give --identity, --identity-regexp or --key".into()),
            };
            let policy = IdentityPolicy {
                identity,
                issuer: issuer.clone(),
            };
            match &root {
                Some(json) => SigstoreVerifier::with_trusted_root_json(json, policy)?,
                None => SigstoreVerifier::public_good(policy)?,
            }
        }
        (None, _, _, None) => return Err("--issuer is required with an identity".into()),
    };
    let size = std::fs::metadata(&a.bundle)
        .map_err(|e| format!("{}: {e}", a.bundle.display()))?
        .len();
    if size > MAX_BUNDLE_BYTES as u64 {
        return Err(format!(
            "{}: {size} bytes is too large for a sigstore bundle",
            a.bundle.display()
        )
        .into());
    }
    let bundle = std::fs::read(&a.bundle).map_err(|e| format!("{}: {e}", a.bundle.display()))?;
    let v = verifier.verify_file(&a.artifact, &bundle)?;
    if v.issuer.is_empty() {
        println!(
            "verified: {} signed by {}, logged {} ({} #{})",
            a.artifact.display(),
            v.identity,
            v.integrated_time.to_rfc3339(),
            v.log,
            v.log_index
        );
    } else {
        println!(
            "verified: {} signed by {} (issuer {}), logged {} ({} #{})",
            a.artifact.display(),
            v.identity,
            v.issuer,
            v.integrated_time.to_rfc3339(),
            v.log,
            v.log_index
        );
    }
    Ok(ExitCode::SUCCESS)
}
