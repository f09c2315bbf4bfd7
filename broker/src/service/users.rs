//! User administration: create, list, delete, change password. Deleting a user also removes its
//! access keys and grants and disowns its queues and topics (see [`access::deleted_owner`]).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::access::{self, admin_only, Owned};
use super::auth::{blocking, hash_password, validate_password, validate_username};
use super::{Broker, Principal};
use crate::error::{Error, Result};
use crate::meta::{QueueMeta, Record, Role, TopicMeta, UserRecord};
use crate::model::{now_ms, rfc3339_ms};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    pub username: String,
    pub password: String,
    #[serde(default = "default_role")]
    pub role: Role,
}

fn default_role() -> Role {
    Role::User
}

/// Never prints the password.
impl std::fmt::Debug for NewUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewUser").field("username", &self.username).field("role", &self.role).finish()
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserInfo {
    pub username: String,
    pub role: Role,
    pub created_at: String,
}

impl Broker {
    pub async fn create_user(&self, who: &Principal, new: NewUser) -> Result<UserInfo> {
        validate_username(&new.username)?;
        validate_password(&new.password)?;
        admin_only(who)?;
        let pw = new.password;
        let hash = blocking(move || hash_password(&pw)).await??;
        let record = UserRecord { role: new.role, password_hash: hash, created_at: rfc3339_ms(now_ms()) };
        // Creating a user is never idempotent: a taken name is always a conflict.
        self.meta.create::<UserRecord>(&new.username, record.clone(), |_, _| false).await.map_err(
            |e| match e {
                Error::AlreadyExists(_) => {
                    Error::AlreadyExists(format!("user '{}' already exists", new.username))
                }
                e => e,
            },
        )?;
        Ok(UserInfo { username: new.username, role: record.role, created_at: record.created_at })
    }

    pub fn list_users(&self, who: &Principal) -> Result<Vec<UserInfo>> {
        admin_only(who)?;
        Ok(self
            .meta
            .list::<UserRecord>()
            .into_iter()
            .map(|(username, u)| UserInfo { username, role: u.role, created_at: u.created_at })
            .collect())
    }

    pub async fn delete_user(&self, who: &Principal, name: &str) -> Result<()> {
        validate_username(name)?;
        let user = self.meta.get::<UserRecord>(name).ok_or_else(|| Error::UserNotFound(name.into()))?;
        admin_only(who)?;
        let admins = self.meta.list::<UserRecord>().iter().filter(|(_, u)| u.role == Role::Admin).count();
        if user.role == Role::Admin && admins <= 1 {
            return Err(Error::invalid("cannot delete the last admin"));
        }
        self.meta.delete::<UserRecord>(name).await?;
        self.delete_access_keys_of(name).await?;
        // A user created later under this name must not inherit what this one had.
        self.forget_user_in::<QueueMeta>(name).await?;
        self.forget_user_in::<TopicMeta>(name).await
    }

    /// Removes `name`'s grants from every record of kind `T` and disowns what it owned.
    async fn forget_user_in<T: Record + Owned>(&self, name: &str) -> Result<()> {
        for (key, record) in self.meta.list::<T>() {
            if !access::names(&record, name) {
                continue;
            }
            match self.meta.update::<T>(&key, |r| Ok(access::forget(r, name))).await {
                // Deleted meanwhile: nothing left to forget.
                Ok(_) | Err(Error::QueueNotFound(_) | Error::TopicNotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Admins may set anyone's password; users their own. Bumps the user's generation, so every
    /// token issued before stops working.
    pub async fn set_password(&self, who: &Principal, name: &str, password: String) -> Result<()> {
        validate_username(name)?;
        validate_password(&password)?;
        self.meta.get::<UserRecord>(name).ok_or_else(|| Error::UserNotFound(name.into()))?;
        if !(who.admin || who.name == name) {
            return Err(Error::Forbidden("only admins may change another user's password".into()));
        }
        let hash = blocking(move || hash_password(&password)).await??;
        self.meta
            .update::<UserRecord>(name, |mut u| {
                u.password_hash = hash.clone();
                Ok(u)
            })
            .await?;
        Ok(())
    }

    /// 404 `user_not_found` unless `name` is a user (for grants).
    pub fn require_user(&self, name: &str) -> Result<()> {
        validate_username(name)?;
        self.meta.get::<UserRecord>(name).map(|_| ()).ok_or_else(|| Error::UserNotFound(name.into()))
    }
}
