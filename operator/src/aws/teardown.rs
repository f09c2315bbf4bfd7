//! `momctl down` on EC2: everything tagged with the cluster, and nothing else.

use crate::home::cluster_dir;
use crate::pki::PkiError;
use crate::report::Reporter;

use super::apply::{release, terminate, timed};
use super::client::Ec2;
use super::error::AwsError;
use super::model::Ec2Observed;

/// Removes every EC2 resource tagged with the cluster (nothing else), then the cluster's local
/// directory of keys and certificates.
pub async fn teardown(
    ec2: &Ec2,
    cluster: &str,
    observed: &Ec2Observed,
    report: &dyn Reporter,
) -> Result<(), AwsError> {
    let client = &ec2.client;
    let ids: Vec<String> = observed.instances.iter().map(|i| i.id.clone()).collect();
    if !ids.is_empty() {
        terminate(ec2, ids, report).await?;
    }
    for address in &observed.addresses {
        release(ec2, &address.allocation_id, report).await?;
    }
    if let Some(group) = &observed.security_group {
        timed(report, format!("delete security group {} ({})", group.name, group.id), false, async {
            client
                .delete_security_group()
                .group_id(&group.id)
                .send()
                .await
                .map_err(|e| ec2.fail("DeleteSecurityGroup", e))?;
            Ok(())
        })
        .await?;
    }
    if let Some(key) = &observed.key_pair {
        timed(report, format!("delete key pair {}", key.name), false, async {
            // By name (unique per region; moto ignores KeyPairId): the one the tag found.
            client
                .delete_key_pair()
                .key_name(&key.name)
                .send()
                .await
                .map_err(|e| ec2.fail("DeleteKeyPair", e))?;
            Ok(())
        })
        .await?;
    }
    let dir = cluster_dir(cluster);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|source| PkiError::Io {
            what: "remove",
            path: dir.clone(),
            source,
        })?;
    }
    Ok(())
}
