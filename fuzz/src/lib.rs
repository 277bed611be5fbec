//! What the fuzz targets share: the keys that signed the committed seed envelopes, the
//! verifiers of the Sigstore targets, and the containment check of the extraction targets.

use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;

use railgun_core::trust::sigstore::{IdentityMatcher, IdentityPolicy, SigstoreVerifier};
use railgun_core::trust::{PublicKey, TrustedKeys};

/// The public keys (Ed25519 and P-256) whose private halves signed the seed envelopes of
/// `fuzz/seeds/dsse_envelope` (thrown away after signing), trusted with threshold 1.
pub fn seed_keys() -> &'static TrustedKeys {
    static KEYS: OnceLock<TrustedKeys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let keys = [
            include_str!("../seeds/keys/ed25519.pub"),
            include_str!("../seeds/keys/p256.pub"),
        ]
        .iter()
        .map(|pem| PublicKey::parse(pem).expect("seed key"))
        .collect();
        TrustedKeys::new(keys, 1).expect("seed keys")
    })
}

/// The sigstore-conformance beacon's identity, which most public bundles name.
const BEACON: &str = "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main";

/// Verifiers with the embedded public-good root and the Sigstore staging root (so that
/// Rekor v2 bundles get past the log lookup), each with an identity policy.
pub fn sigstore_verifiers() -> &'static [SigstoreVerifier] {
    static V: OnceLock<Vec<SigstoreVerifier>> = OnceLock::new();
    V.get_or_init(|| {
        let policy = |id: &str| IdentityPolicy {
            identity: IdentityMatcher::Exact(id.into()),
            issuer: "https://token.actions.githubusercontent.com".into(),
        };
        vec![
            SigstoreVerifier::public_good(policy(BEACON)).expect("public good"),
            SigstoreVerifier::with_trusted_root_json(
                include_bytes!(
                    "../../tests/data/sigstore/trusted_root.STAGING.sigstore-python-test-assets.json"
                ),
                policy(BEACON),
            )
            .expect("staging root"),
        ]
    })
}

/// A real bundle (v0.2, Rekor v1) that the public-good root verifies: the trust-root target
/// verifies it with each root it loads.
pub const WHEEL_BUNDLE: &[u8] =
    include_bytes!("../../tests/data/sigstore/rfc8785-0.1.2-py3-none-any.whl.sigstore.json");

/// A scratch layout for one extraction: `base/a/b/dest` (empty) and the archive beside `a`.
/// [`Sandbox::check`] then proves nothing was written outside `dest`.
pub struct Sandbox {
    _dir: tempfile::TempDir,
    base: PathBuf,
    /// Where the archive is written.
    pub archive: PathBuf,
    /// The folder to extract into.
    pub dest: PathBuf,
}

impl Sandbox {
    /// A fresh sandbox with `archive` holding `bytes`.
    pub fn new(bytes: &[u8], name: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let base = dir.path().to_path_buf();
        let dest = base.join("a/b/dest");
        std::fs::create_dir_all(&dest).expect("dest");
        let archive = base.join(name);
        std::fs::write(&archive, bytes).expect("archive");
        Self {
            _dir: dir,
            base,
            archive,
            dest,
        }
    }

    /// Panics (a finding) when the extraction left anything outside `dest`: an entry beside
    /// `dest`, `b`, `a` or the archive, or a symlink inside `dest` whose target leaves it.
    pub fn check(&self) {
        let only = |dir: &Path, allowed: &[&str]| {
            for e in std::fs::read_dir(dir).expect("read_dir") {
                let name = e.expect("entry").file_name();
                assert!(
                    allowed.iter().any(|a| name == *a),
                    "extraction wrote {} outside its folder",
                    dir.join(&name).display()
                );
            }
        };
        let archive_name = self
            .archive
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("");
        only(&self.base, &["a", archive_name]);
        only(&self.base.join("a"), &["b"]);
        only(&self.base.join("a/b"), &["dest"]);
        self.check_links(&self.dest);
    }

    fn check_links(&self, dir: &Path) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&path).expect("read_link");
                let resolved = lexical(&path.parent().unwrap_or(dir).join(&target));
                assert!(
                    resolved.starts_with(&self.dest),
                    "extraction made {} point outside its folder ({})",
                    path.display(),
                    target.display()
                );
            } else if meta.is_dir() {
                self.check_links(&path);
            }
        }
    }
}

/// `path` with `.` and `..` resolved as text (symlinks are checked one by one, each
/// against the folder it lives in).
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}
