//! Who may do what to a queue or a topic: admins and the owner may do everything; others may
//! publish and consume when access is `authenticated`, or when granted on a `restricted` one. A
//! deleted user's ownership and grants are taken off what it owned.

use std::collections::BTreeMap;

use super::Principal;
use crate::error::{Error, Result};
use crate::meta::{Grant, QueueMeta, TopicMeta};
use crate::model::Access;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Right {
    /// See it listed and read its config and stats.
    View,
    Publish,
    Consume,
    /// Change, purge, delete, grant, redrive.
    Manage,
}

/// Anything with an owner, an access mode and grants.
pub trait Owned {
    fn owner(&self) -> &str;
    fn owner_mut(&mut self) -> &mut String;
    fn access(&self) -> Access;
    fn grants(&self) -> &BTreeMap<String, Grant>;
    fn grants_mut(&mut self) -> &mut BTreeMap<String, Grant>;
}

macro_rules! owned {
    ($t:ty) => {
        impl Owned for $t {
            fn owner(&self) -> &str {
                &self.owner
            }
            fn owner_mut(&mut self) -> &mut String {
                &mut self.owner
            }
            fn access(&self) -> Access {
                self.config.access
            }
            fn grants(&self) -> &BTreeMap<String, Grant> {
                &self.grants
            }
            fn grants_mut(&mut self) -> &mut BTreeMap<String, Grant> {
                &mut self.grants
            }
        }
    };
}

owned!(QueueMeta);
owned!(TopicMeta);

/// Who owns what a deleted user owned: `deleted:NAME`, as Google Cloud IAM marks a deleted
/// principal. No username may hold ':', so a user created later under the same name inherits
/// neither the ownership nor (they are removed) the grants; admins still manage it.
pub fn deleted_owner(name: &str) -> String {
    format!("deleted:{name}")
}

/// Whether `name` owns `target` or holds a grant on it.
pub fn names(target: &impl Owned, name: &str) -> bool {
    target.owner() == name || target.grants().contains_key(name)
}

/// `target` with the deleted user `name` gone from it: no grant, and no longer its owner.
pub fn forget<T: Owned>(mut target: T, name: &str) -> T {
    target.grants_mut().remove(name);
    if target.owner() == name {
        *target.owner_mut() = deleted_owner(name);
    }
    target
}

pub fn allowed(who: &Principal, target: &impl Owned, right: Right) -> bool {
    if who.admin || who.name == target.owner() {
        return true;
    }
    let grant = target.grants().get(&who.name).copied().unwrap_or_default();
    let open = target.access() == Access::Authenticated;
    match right {
        Right::Manage => false,
        Right::Publish => open || grant.publish,
        Right::Consume => open || grant.consume,
        Right::View => open || grant.publish || grant.consume,
    }
}

/// 403 unless `who` has `right` on `target` (named `what` in the message).
pub fn check(who: &Principal, target: &impl Owned, right: Right, what: &str) -> Result<()> {
    if allowed(who, target, right) {
        Ok(())
    } else {
        let verb = match right {
            Right::View => "see",
            Right::Publish => "publish to",
            Right::Consume => "consume from",
            Right::Manage => "manage",
        };
        Err(Error::Forbidden(format!("{} may not {verb} {what}", who.name)))
    }
}

/// 403 unless `who` is an admin.
pub fn admin_only(who: &Principal) -> Result<()> {
    if who.admin {
        Ok(())
    } else {
        Err(Error::Forbidden("only admins may do this".into()))
    }
}
