//! Executing the EC2 part of a plan ([`super::ec2_diff`]), one function per kind of change, in
//! order: group, key pair, addresses, instances (then waits until running and associates each
//! host's address), removals.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use aws_sdk_ec2::types::{DomainType, InstanceType, ResourceType};
use base64::Engine as _;

use crate::home::cluster_dir;
use crate::pki::{Pki, PkiError};
use crate::plan::{Action, Change, Kind};
use crate::report::{step, Reporter};

use super::client::Ec2;
use super::desired::{AwsDesired, HostSpec, SSH_KEY_FILE};
use super::error::AwsError;
use super::model::Ec2Observed;
use super::user_data::user_data;

/// Each host's Elastic IP: allocation id and address.
type Addresses = BTreeMap<u32, (String, Option<Ipv4Addr>)>;

/// Executes the EC2 changes of a plan (from [`super::ec2_diff`] of `desired` and `observed`).
pub async fn apply(
    ec2: &Ec2,
    desired: &AwsDesired,
    observed: &Ec2Observed,
    changes: &[Change],
    report: &dyn Reporter,
) -> Result<(), AwsError> {
    let run = Apply { ec2, desired, observed, changes, report };
    let mut group_id = observed.security_group.as_ref().map(|g| g.id.clone());
    if let Some(id) = run.create_group().await? {
        group_id = Some(id);
    }
    run.update_group().await?;
    run.create_key_pair().await?;
    let addresses = run.allocate_addresses().await?;
    let mut instances: BTreeMap<u32, String> = desired
        .hosts
        .iter()
        .filter_map(|h| Some((h.index, observed.instance(h.index)?.id.clone())))
        .collect();
    let mut to_wait = run.run_instances(group_id.as_deref(), &addresses, &mut instances).await?;
    to_wait.extend(run.start_instances(&instances).await?);
    run.wait_running(to_wait).await?;
    run.associate_addresses(&addresses, &instances).await?;
    run.remove().await
}

/// One [`apply`]: the client, what is wanted and what was there, the changes, and where progress
/// goes.
struct Apply<'a> {
    ec2: &'a Ec2,
    desired: &'a AwsDesired,
    observed: &'a Ec2Observed,
    changes: &'a [Change],
    report: &'a dyn Reporter,
}

impl Apply<'_> {
    fn of(&self, kind: Kind, action: Action) -> impl Iterator<Item = &Change> {
        self.changes.iter().filter(move |c| c.kind == kind && c.action == action)
    }

    fn host_of(&self, change: &Change) -> Option<&HostSpec> {
        self.desired.hosts.iter().find(|h| h.name == change.name)
    }

    /// The security group with its inbound rules; its id when it was made.
    async fn create_group(&self) -> Result<Option<String>, AwsError> {
        let (ec2, desired) = (self.ec2, self.desired);
        let client = &ec2.client;
        let mut made = None;
        for change in self.of(Kind::SecurityGroup, Action::Create) {
            let id = timed(self.report, format!("create security group {}", change.name), false, async {
                let out = client
                    .create_security_group()
                    .group_name(&desired.group_name)
                    .description(format!("mom cluster {} (momctl)", desired.cluster))
                    .tag_specifications(desired.tag_spec(
                        ResourceType::SecurityGroup,
                        &desired.group_name,
                        None,
                    ))
                    .send()
                    .await
                    .map_err(|e| ec2.fail("CreateSecurityGroup", e))?;
                let id = out.group_id().unwrap_or_default().to_string();
                client
                    .authorize_security_group_ingress()
                    .group_id(&id)
                    .set_ip_permissions(Some(desired.ingress(&id)))
                    .send()
                    .await
                    .map_err(|e| ec2.fail("AuthorizeSecurityGroupIngress", e))?;
                Ok(id)
            })
            .await?;
            made = Some(id);
        }
        Ok(made)
    }

    /// The group's inbound rules replaced by the wanted ones.
    async fn update_group(&self) -> Result<(), AwsError> {
        let (ec2, desired) = (self.ec2, self.desired);
        let client = &ec2.client;
        for change in self.of(Kind::SecurityGroup, Action::Update) {
            let Some(group) = &self.observed.security_group else {
                continue;
            };
            timed(self.report, format!("update security group {} rules", change.name), false, async {
                if !group.permissions.is_empty() {
                    client
                        .revoke_security_group_ingress()
                        .group_id(&group.id)
                        .set_ip_permissions(Some(group.permissions.clone()))
                        .send()
                        .await
                        .map_err(|e| ec2.fail("RevokeSecurityGroupIngress", e))?;
                }
                client
                    .authorize_security_group_ingress()
                    .group_id(&group.id)
                    .set_ip_permissions(Some(desired.ingress(&group.id)))
                    .send()
                    .await
                    .map_err(|e| ec2.fail("AuthorizeSecurityGroupIngress", e))?;
                Ok(())
            })
            .await?;
        }
        Ok(())
    }

    /// The key pair; its private key written to the cluster's directory.
    async fn create_key_pair(&self) -> Result<(), AwsError> {
        let (ec2, desired) = (self.ec2, self.desired);
        let dir = cluster_dir(&desired.cluster);
        for change in self.of(Kind::KeyPair, Action::Create) {
            timed(self.report, format!("create key pair {}", change.name), false, async {
                let out = ec2
                    .client
                    .create_key_pair()
                    .key_name(&desired.key_name)
                    .tag_specifications(desired.tag_spec(ResourceType::KeyPair, &desired.key_name, None))
                    .send()
                    .await
                    .map_err(|e| ec2.fail("CreateKeyPair", e))?;
                std::fs::create_dir_all(&dir).map_err(|source| PkiError::Io {
                    what: "create",
                    path: dir.clone(),
                    source,
                })?;
                // The private key is written once, owner-only, and never printed.
                crate::pki::write_file(
                    &dir.join(SSH_KEY_FILE),
                    out.key_material().unwrap_or_default(),
                    true,
                )?;
                Ok(())
            })
            .await?;
        }
        Ok(())
    }

    /// Each new host's Elastic IP; returns every host's, old and new.
    async fn allocate_addresses(&self) -> Result<Addresses, AwsError> {
        let (ec2, desired) = (self.ec2, self.desired);
        let mut addresses: Addresses = self
            .observed
            .addresses
            .iter()
            .filter_map(|a| Some((a.host?, (a.allocation_id.clone(), a.public_ip))))
            .collect();
        for change in self.of(Kind::Address, Action::Create) {
            let Some(index) = self.host_of(change).map(|h| h.index) else {
                continue;
            };
            let what = format!("allocate Elastic IP for {}", change.name);
            let (id, ip) = timed(self.report, what, false, async {
                let out = ec2
                    .client
                    .allocate_address()
                    .domain(DomainType::Vpc)
                    .tag_specifications(desired.tag_spec(ResourceType::ElasticIp, &change.name, Some(index)))
                    .send()
                    .await
                    .map_err(|e| ec2.fail("AllocateAddress", e))?;
                Ok((
                    out.allocation_id().unwrap_or_default().to_string(),
                    out.public_ip().and_then(|ip| ip.parse().ok()),
                ))
            })
            .await?;
            addresses.insert(index, (id, ip));
        }
        Ok(addresses)
    }

    /// The new instances, each with a server certificate for its address in its user data;
    /// returns them (id, host name) to wait for, and adds them to `instances`.
    async fn run_instances(
        &self,
        group_id: Option<&str>,
        addresses: &Addresses,
        instances: &mut BTreeMap<u32, String>,
    ) -> Result<Vec<(String, String)>, AwsError> {
        let creates: Vec<&HostSpec> =
            self.of(Kind::Instance, Action::Create).filter_map(|c| self.host_of(c)).collect();
        let mut to_wait = Vec::new();
        if self.of(Kind::Instance, Action::Create).next().is_none() {
            return Ok(to_wait);
        }
        let desired = self.desired;
        let pki = Pki::ensure(&cluster_dir(&desired.cluster), &desired.cluster)?;
        let ami = match &desired.settings.ami {
            Some(ami) => ami.clone(),
            None => self.ec2.debian_ami().await?,
        };
        let Some(group_id) = group_id else {
            return Err(AwsError::NoHost { host: "the security group".to_string() });
        };
        for host in creates {
            let ip = addresses.get(&host.index).and_then(|(_, ip)| *ip).unwrap_or(Ipv4Addr::UNSPECIFIED);
            let server = pki.server_cert(&host.name, ip)?;
            let data = user_data(desired, host, &pki.ca_cert_pem, &server)?;
            let what = format!("run instance {} ({}, {ami})", host.name, desired.settings.instance_type);
            let id = timed(self.report, what, false, self.run_instance(host, &ami, group_id, &data)).await?;
            instances.insert(host.index, id.clone());
            to_wait.push((id, host.name.clone()));
        }
        Ok(to_wait)
    }

    /// `RunInstances` of one host; its instance id.
    async fn run_instance(
        &self,
        host: &HostSpec,
        ami: &str,
        group_id: &str,
        user_data: &str,
    ) -> Result<String, AwsError> {
        let (ec2, desired) = (self.ec2, self.desired);
        let token = format!(
            "{}-{}-{}",
            host.name,
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or(0)
        );
        let out = ec2
            .client
            .run_instances()
            .image_id(ami)
            .instance_type(InstanceType::from(desired.settings.instance_type.as_str()))
            .min_count(1)
            .max_count(1)
            .key_name(&desired.key_name)
            .security_group_ids(group_id)
            .user_data(base64::engine::general_purpose::STANDARD.encode(user_data.as_bytes()))
            .client_token(token)
            .tag_specifications(desired.tag_spec(ResourceType::Instance, &host.name, Some(host.index)))
            .tag_specifications(desired.tag_spec(ResourceType::Volume, &host.name, Some(host.index)))
            .send()
            .await
            .map_err(|e| ec2.fail("RunInstances", e))?;
        out.instances().first().and_then(|i| i.instance_id()).map(str::to_string).ok_or_else(|| {
            AwsError::Api {
                what: "RunInstances".to_string(),
                code: "no instance".to_string(),
                message: "the answer named no instance".to_string(),
            }
        })
    }

    /// The stopped instances started; returns them (id, host name) to wait for.
    async fn start_instances(
        &self,
        instances: &BTreeMap<u32, String>,
    ) -> Result<Vec<(String, String)>, AwsError> {
        let ec2 = self.ec2;
        let mut to_wait = Vec::new();
        for change in self.of(Kind::Instance, Action::Start) {
            let Some(index) = self.host_of(change).map(|h| h.index) else {
                continue;
            };
            let Some(id) = instances.get(&index).cloned() else {
                continue;
            };
            timed(self.report, format!("start instance {} ({id})", change.name), false, async {
                ec2.client
                    .start_instances()
                    .instance_ids(&id)
                    .send()
                    .await
                    .map_err(|e| ec2.fail("StartInstances", e))?;
                Ok(())
            })
            .await?;
            to_wait.push((id, change.name.clone()));
        }
        Ok(to_wait)
    }

    /// Waits until `to_wait` and the instances that were pending already are running.
    async fn wait_running(&self, mut to_wait: Vec<(String, String)>) -> Result<(), AwsError> {
        for h in &self.desired.hosts {
            if let Some(i) = self.observed.instance(h.index) {
                if i.state == "pending" {
                    to_wait.push((i.id.clone(), h.name.clone()));
                }
            }
        }
        if to_wait.is_empty() {
            return Ok(());
        }
        let names: Vec<&str> = to_wait.iter().map(|(_, n)| n.as_str()).collect();
        let what = format!(
            "wait until running: {} (at most {} s)",
            names.join(", "),
            self.desired.settings.running_timeout_s
        );
        timed(self.report, what, true, self.ec2.wait_running(&to_wait)).await
    }

    /// Each host's address on its instance.
    async fn associate_addresses(
        &self,
        addresses: &Addresses,
        instances: &BTreeMap<u32, String>,
    ) -> Result<(), AwsError> {
        let ec2 = self.ec2;
        for host in &self.desired.hosts {
            let (Some((allocation, _)), Some(instance)) =
                (addresses.get(&host.index), instances.get(&host.index))
            else {
                continue;
            };
            let current = self
                .observed
                .addresses
                .iter()
                .find(|a| &a.allocation_id == allocation)
                .and_then(|a| a.instance_id.as_ref());
            if current == Some(instance) {
                continue;
            }
            timed(self.report, format!("associate Elastic IP with {}", host.name), false, async {
                ec2.client
                    .associate_address()
                    .allocation_id(allocation)
                    .instance_id(instance)
                    // It may still point at the instance this one replaces.
                    .allow_reassociation(true)
                    .send()
                    .await
                    .map_err(|e| ec2.fail("AssociateAddress", e))?;
                Ok(())
            })
            .await?;
        }
        Ok(())
    }

    /// Instances and addresses no longer wanted, named by their EC2 id (see [`super::ec2_diff`]).
    async fn remove(&self) -> Result<(), AwsError> {
        let ids: Vec<String> = self.of(Kind::Instance, Action::Remove).map(|c| c.name.clone()).collect();
        if !ids.is_empty() {
            terminate(self.ec2, ids, self.report).await?;
        }
        for change in self.of(Kind::Address, Action::Remove) {
            release(self.ec2, &change.name, self.report).await?;
        }
        Ok(())
    }
}

/// Terminates `ids` and waits until EC2 reports them terminated (each a reported step).
pub(super) async fn terminate(ec2: &Ec2, ids: Vec<String>, report: &dyn Reporter) -> Result<(), AwsError> {
    timed(report, format!("terminate instance(s) {}", ids.join(", ")), false, async {
        ec2.client
            .terminate_instances()
            .set_instance_ids(Some(ids.clone()))
            .send()
            .await
            .map_err(|e| ec2.fail("TerminateInstances", e))?;
        Ok(())
    })
    .await?;
    timed(report, "wait until terminated".to_string(), true, ec2.wait_terminated(ids)).await
}

/// Releases the Elastic IP `allocation` (a reported step).
pub(super) async fn release(ec2: &Ec2, allocation: &str, report: &dyn Reporter) -> Result<(), AwsError> {
    timed(report, format!("release Elastic IP {allocation}"), false, async {
        ec2.client
            .release_address()
            .allocation_id(allocation)
            .send()
            .await
            .map_err(|e| ec2.fail("ReleaseAddress", e))?;
        Ok(())
    })
    .await
}

/// One EC2 call (or a few) as a reported step.
pub(super) async fn timed<T>(
    report: &dyn Reporter,
    what: String,
    long: bool,
    call: impl std::future::Future<Output = Result<T, AwsError>>,
) -> Result<T, AwsError> {
    step(report, what, long, call).await
}
