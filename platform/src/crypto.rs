//! Secrets: AES-256-GCM for cluster credentials at rest, argon2 password
//! hashes, random bearer/session tokens stored only as SHA-256 digests.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Decodes a base64 32-byte key.
pub fn decode_key(text: &str) -> Result<[u8; 32], String> {
    let bytes = STANDARD
        .decode(text.trim())
        .map_err(|e| format!("not base64: {e}"))?;
    bytes
        .try_into()
        .map_err(|b: Vec<u8>| format!("must decode to 32 bytes, got {}", b.len()))
}

/// Encrypts and decrypts small secrets with one AES-256-GCM key.
#[derive(Clone)]
pub struct SecretBox {
    cipher: Aes256Gcm,
}

impl SecretBox {
    /// A box for `key`.
    pub fn new(key: &[u8; 32]) -> SecretBox {
        SecretBox {
            cipher: Aes256Gcm::new(key.into()),
        }
    }

    /// `base64(nonce ‖ ciphertext)`, a fresh random nonce each time.
    pub fn seal(&self, plaintext: &[u8]) -> String {
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let ct = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), plaintext)
            .expect("AES-GCM encryption cannot fail for small inputs");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        STANDARD.encode(out)
    }

    /// Reverses [`SecretBox::seal`]; fails on a wrong key or tampering.
    pub fn open(&self, sealed: &str) -> anyhow::Result<Vec<u8>> {
        let raw = STANDARD.decode(sealed)?;
        anyhow::ensure!(raw.len() > 12, "sealed secret too short");
        let (nonce, ct) = raw.split_at(12);
        self.cipher
            .decrypt(Nonce::from_slice(nonce), ct)
            .map_err(|_| anyhow::anyhow!("cannot decrypt (wrong encryption key?)"))
    }
}

/// A new random key, base64.
pub fn generate_key() -> String {
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    STANDARD.encode(key)
}

/// A new random token with `prefix` (`tw_…` for API tokens).
pub fn random_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// Hex SHA-256 of a token: what the store keeps.
pub fn token_hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// An argon2id PHC string for `password`.
pub fn hash_password(password: &str) -> String {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).expect("16-byte salt encodes");
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 hashing with default params")
        .to_string()
}

/// Whether `password` matches the PHC string `hash`.
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A valid argon2 hash of a random password, verified against when a login
/// names an unknown user so timing does not reveal which names exist.
pub const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$0Ofq8bUs4Z3Gb0UPfnvDsUhi1f3yUoyJt5tVwbQiEq8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_round_trips_and_detects_wrong_key() {
        let key = decode_key(&generate_key()).unwrap();
        let b = SecretBox::new(&key);
        let sealed = b.seal(b"token-123");
        assert_ne!(sealed, b.seal(b"token-123"), "nonce must be fresh");
        assert_eq!(b.open(&sealed).unwrap(), b"token-123");
        let other = SecretBox::new(&decode_key(&generate_key()).unwrap());
        assert!(other.open(&sealed).is_err());
    }

    #[test]
    fn passwords_verify() {
        let h = hash_password("s3cret");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("s3cret", &h));
        assert!(!verify_password("wrong", &h));
    }

    #[test]
    fn key_must_be_32_bytes() {
        assert!(decode_key("c2hvcnQ=").unwrap_err().contains("32 bytes"));
    }
}
