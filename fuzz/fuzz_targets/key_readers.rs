//! The key readers: public keys as PEM, base64 SPKI, raw base64 Ed25519 or base64 PEM
//! (`PublicKey::parse`, what `--key` and the trusted-key settings accept), SPKI DER, raw
//! Ed25519 bytes; private keys as PKCS#8 PEM and DER. A key that reads must round-trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use railgun_core::trust::{PrivateKey, PublicKey};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(k) = PublicKey::parse(text) {
            let again = PublicKey::parse(&k.to_pem()).expect("a key read back from its PEM");
            assert_eq!(again.spki_der(), k.spki_der());
        }
        let _ = PublicKey::from_pem(text);
        let _ = PrivateKey::from_pem(text);
    }
    if let Ok(k) = PublicKey::from_spki_der(data) {
        assert_eq!(k.spki_der(), data, "SPKI DER is kept as given");
    }
    let _ = PublicKey::from_ed25519_raw(data);
    let _ = PrivateKey::from_pkcs8_der(data);
});
