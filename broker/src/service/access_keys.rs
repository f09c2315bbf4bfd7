//! Access keys for the SQS endpoint's Signature V4: created by the user (or an admin), the secret
//! shown once, stored sealed with the cluster's vault key (a signature check needs it in clear).

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rand::Rng;
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::validate_username;
use super::{Broker, Principal};
use crate::error::{Error, Result};
use crate::meta::{AccessKeyRecord, Role, UserRecord};
use crate::model::{now_ms, rfc3339_ms};

/// A new key, its secret shown this once.
#[derive(Serialize, ToSchema)]
pub struct NewAccessKey {
    pub access_key_id: String,
    pub secret_access_key: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AccessKeyInfo {
    pub access_key_id: String,
    pub created_at: String,
}

fn random_string(alphabet: &[u8], len: usize) -> String {
    let mut rng = rand::rng();
    (0..len).map(|_| alphabet[rng.random_range(0..alphabet.len())] as char).collect()
}

fn cipher(vault: &[u8]) -> Result<Aes256Gcm> {
    Aes256Gcm::new_from_slice(vault).map_err(|_| Error::Unavailable("the vault key is unusable".into()))
}

fn seal(vault: &[u8], secret: &str) -> Result<String> {
    let nonce: [u8; 12] = rand::random();
    let sealed = cipher(vault)?
        .encrypt(Nonce::from_slice(&nonce), secret.as_bytes())
        .map_err(|_| Error::Unavailable("cannot seal the secret".into()))?;
    Ok(STANDARD.encode([&nonce[..], &sealed].concat()))
}

fn open(vault: &[u8], sealed: &str) -> Option<String> {
    let raw = STANDARD.decode(sealed).ok()?;
    let (nonce, ciphertext) = raw.split_at_checked(12)?;
    let plain = cipher(vault).ok()?.decrypt(Nonce::from_slice(nonce), ciphertext).ok()?;
    String::from_utf8(plain).ok()
}

impl Broker {
    /// 404 for a missing user, then 403 unless the caller is that user or an admin.
    fn key_owner(&self, who: &Principal, user: &str) -> Result<()> {
        validate_username(user)?;
        self.meta.get::<UserRecord>(user).ok_or_else(|| Error::UserNotFound(user.into()))?;
        if who.admin || who.name == user {
            Ok(())
        } else {
            Err(Error::Forbidden("only admins may manage another user's access keys".into()))
        }
    }

    pub async fn create_access_key(&self, who: &Principal, user: &str) -> Result<NewAccessKey> {
        self.key_owner(who, user)?;
        let id = format!("AKMOM{}", random_string(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 15));
        let secret = random_string(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", 40);
        let record = AccessKeyRecord {
            user: user.to_string(),
            secret_sealed: seal(&self.meta.secrets()?.vault, &secret)?,
            created_at: rfc3339_ms(now_ms()),
        };
        self.meta.create::<AccessKeyRecord>(&id, record, |_, _| false).await?;
        Ok(NewAccessKey { access_key_id: id, secret_access_key: secret })
    }

    pub fn list_access_keys(&self, who: &Principal, user: &str) -> Result<Vec<AccessKeyInfo>> {
        self.key_owner(who, user)?;
        Ok(self
            .meta
            .list::<AccessKeyRecord>()
            .into_iter()
            .filter(|(_, k)| k.user == user)
            .map(|(access_key_id, k)| AccessKeyInfo { access_key_id, created_at: k.created_at })
            .collect())
    }

    pub async fn delete_access_key(&self, who: &Principal, user: &str, id: &str) -> Result<()> {
        self.key_owner(who, user)?;
        match self.meta.get::<AccessKeyRecord>(id) {
            Some(k) if k.user == user => self.meta.delete::<AccessKeyRecord>(id).await.map(drop),
            _ => Err(Error::NotFound(format!("access key '{id}' does not exist"))),
        }
    }

    /// Drops every access key of a user (when the user is deleted).
    pub(super) async fn delete_access_keys_of(&self, user: &str) -> Result<()> {
        for (id, k) in self.meta.list::<AccessKeyRecord>() {
            if k.user == user {
                self.meta.delete::<AccessKeyRecord>(&id).await?;
            }
        }
        Ok(())
    }

    /// The caller an access key stands for, with the key's secret: `None` for an unknown key or
    /// a key whose user is gone.
    pub fn access_key(&self, id: &str) -> Option<(Principal, String)> {
        let key = self.meta.get::<AccessKeyRecord>(id)?;
        let user = self.meta.get::<UserRecord>(&key.user)?;
        let secret = open(&self.meta.secrets().ok()?.vault, &key.secret_sealed)?;
        Some((Principal { admin: user.role == Role::Admin, name: key.user }, secret))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn seal_round_trip_and_tamper() {
        let vault = [7u8; 32];
        let sealed = super::seal(&vault, "s3cret").unwrap();
        assert_eq!(super::open(&vault, &sealed).as_deref(), Some("s3cret"));
        assert_eq!(super::open(&[8u8; 32], &sealed), None);
        assert_eq!(super::open(&vault, "AAAA"), None);
    }
}
