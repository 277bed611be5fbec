//! `railgun keygen`: writes `NAME.key` (PKCS#8 PEM, mode 0600; Ed25519 as PKCS#8 v1, which
//! OpenSSL and Python's `cryptography` read) and `NAME.pub` (SPKI PEM).

use std::path::PathBuf;
use std::process::ExitCode;

use railgun_core::trust::{KeyAlgorithm, PrivateKey};

use super::CliResult;

/// Arguments of `railgun keygen`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Folder to write the keys into (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// Base name of the files.
    #[arg(long, default_value = "release")]
    pub name: String,
    /// ed25519 (default) or p256.
    #[arg(long, default_value = "ed25519")]
    pub algorithm: KeyAlgorithm,
}

/// Runs the command.
pub fn run(args: Args) -> CliResult {
    std::fs::create_dir_all(&args.out)?;
    let key = PrivateKey::generate(args.algorithm)?;
    let key_path = args.out.join(format!("{}.key", args.name));
    let pub_path = args.out.join(format!("{}.pub", args.name));
    if pub_path.exists() {
        return Err(format!(
            "{} already exists: refusing to overwrite a key",
            pub_path.display()
        )
        .into());
    }
    key.write_pem_file(&key_path)?;
    std::fs::write(&pub_path, key.public_key().to_pem())?;
    println!("private key: {} (keep it secret)", key_path.display());
    println!("public key:  {}", pub_path.display());
    println!("key id:      {}", key.public_key().keyid());
    println!(
        "RAILGUN_UPDATE_PUBLIC_KEY={}",
        key.public_key().to_base64_pem()
    );
    Ok(ExitCode::SUCCESS)
}
