//! The EC2 client (aws-sdk-ec2): connecting with the standard credential chain, the calls that
//! read a cluster back by its tag, the SDK's waiters, and the mapping of a failed call to an
//! [`AwsError`].

use std::time::Duration;

use aws_sdk_ec2::client::Waiters;
use aws_sdk_ec2::config::http::HttpResponse;
use aws_sdk_ec2::config::{BehaviorVersion, ProvideCredentials, Region};
use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::types::{Filter, InstanceStateName, Tag};
use aws_sdk_ec2::Client;

use crate::config::AwsSettings;

use super::desired::{CLUSTER_TAG, HOST_TAG};
use super::error::{classify, short_cause};
use super::error::{AwsError, MAX_ATTEMPTS};
use super::model::{rule_keys, Ec2Observed, ObservedAddress, ObservedGroup, ObservedInstance, ObservedKey};

/// Owner of the official Debian AMIs, and their names.
const DEBIAN_OWNER: &str = "136693071363";
const DEBIAN_NAME: &str = "debian-12-amd64-*";

/// Regions momctl knows (2025); another name is first checked with one call, without retries.
pub const KNOWN_REGIONS: &[&str] = &[
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-south-1",
    "ap-south-2",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-7",
    "ca-central-1",
    "ca-west-1",
    "eu-central-1",
    "eu-central-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eu-south-1",
    "eu-south-2",
    "eu-north-1",
    "il-central-1",
    "me-south-1",
    "me-central-1",
    "mx-central-1",
    "sa-east-1",
    "us-gov-east-1",
    "us-gov-west-1",
    "cn-north-1",
    "cn-northwest-1",
];

/// An EC2 client for one cluster's region (and endpoint).
pub struct Ec2 {
    pub(super) client: Client,
    settings: AwsSettings,
    endpoint: String,
}

fn tag_value(tags: &[Tag], key: &str) -> Option<String> {
    tags.iter().find(|t| t.key() == Some(key)).and_then(|t| t.value()).map(str::to_string)
}

impl Ec2 {
    /// Loads the standard AWS configuration (environment, profile, instance role) for the region,
    /// and checks that it has credentials before any call is made.
    pub async fn connect(settings: &AwsSettings) -> Result<Ec2, AwsError> {
        let retry = aws_config::retry::RetryConfig::standard()
            .with_max_attempts(MAX_ATTEMPTS)
            .with_initial_backoff(Duration::from_millis(500))
            .with_max_backoff(Duration::from_secs(20));
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(settings.region.clone()))
            .retry_config(retry);
        if let Some(url) = &settings.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        let config = loader.load().await;
        let Some(credentials) = config.credentials_provider() else {
            return Err(AwsError::NoCredentials);
        };
        credentials.provide_credentials().await.map_err(|_| AwsError::NoCredentials)?;
        if !KNOWN_REGIONS.contains(&settings.region.as_str()) {
            // A name momctl does not know: one call without retries says whether EC2 answers.
            let probe = aws_sdk_ec2::config::Builder::from(&config)
                .retry_config(aws_config::retry::RetryConfig::disabled())
                .build();
            if let Err(e) = Client::from_conf(probe).describe_availability_zones().send().await {
                let cause = match e.raw_response() {
                    Some(r) => format!("HTTP {}", r.status().as_u16()),
                    None => short_cause(&e),
                };
                return Err(AwsError::WrongRegion { region: settings.region.clone(), cause });
            }
        }
        let endpoint = settings
            .endpoint_url
            .clone()
            .or_else(|| std::env::var("AWS_ENDPOINT_URL_EC2").ok())
            .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
            .unwrap_or_else(|| format!("https://ec2.{}.amazonaws.com", settings.region));
        Ok(Ec2 { client: Client::new(&config), settings: settings.clone(), endpoint })
    }

    /// An `Ec2` over a client built elsewhere (tests give one with static credentials, so they
    /// need not change the process's environment).
    pub fn with_client(client: Client, settings: &AwsSettings, endpoint: &str) -> Ec2 {
        Ec2 { client, settings: settings.clone(), endpoint: endpoint.to_string() }
    }

    /// The SDK's client, for callers that need more than momctl's calls (tests).
    pub fn client(&self) -> &Client {
        &self.client
    }

    pub(super) fn fail<E>(&self, what: &str, e: SdkError<E, HttpResponse>) -> AwsError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        match &e {
            SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => {
                AwsError::Unreachable { endpoint: self.endpoint.clone(), cause: short_cause(&e) }
            }
            _ => match e.code() {
                Some(code) => classify(what, code, e.message().unwrap_or(""), &self.settings),
                None => AwsError::Api {
                    what: what.to_string(),
                    code: e
                        .raw_response()
                        .map(|r| format!("HTTP {}", r.status().as_u16()))
                        .unwrap_or_else(|| "no code".to_string()),
                    message: format!("from {}", self.endpoint),
                },
            },
        }
    }

    fn cluster_filter(cluster: &str) -> Filter {
        Filter::builder().name(format!("tag:{CLUSTER_TAG}")).values(cluster).build()
    }

    /// Everything EC2 has with the cluster's tag.
    pub async fn observe(&self, cluster: &str) -> Result<Ec2Observed, AwsError> {
        let mut observed = Ec2Observed::default();

        let groups = self
            .client
            .describe_security_groups()
            .filters(Self::cluster_filter(cluster))
            .send()
            .await
            .map_err(|e| self.fail("DescribeSecurityGroups", e))?;
        observed.security_group = groups.security_groups().iter().find_map(|g| {
            Some(ObservedGroup {
                id: g.group_id()?.to_string(),
                name: g.group_name().unwrap_or_default().to_string(),
                rules: rule_keys(g.ip_permissions()),
                permissions: g.ip_permissions().to_vec(),
            })
        });

        let keys = self
            .client
            .describe_key_pairs()
            .filters(Self::cluster_filter(cluster))
            .send()
            .await
            .map_err(|e| self.fail("DescribeKeyPairs", e))?;
        observed.key_pair = keys.key_pairs().iter().find_map(|k| {
            Some(ObservedKey {
                id: k.key_pair_id().unwrap_or_default().to_string(),
                name: k.key_name()?.to_string(),
            })
        });

        let addresses = self
            .client
            .describe_addresses()
            .filters(Self::cluster_filter(cluster))
            .send()
            .await
            .map_err(|e| self.fail("DescribeAddresses", e))?;
        observed.addresses = addresses
            .addresses()
            .iter()
            .filter_map(|a| {
                Some(ObservedAddress {
                    allocation_id: a.allocation_id()?.to_string(),
                    public_ip: a.public_ip().and_then(|ip| ip.parse().ok()),
                    host: tag_value(a.tags(), HOST_TAG).and_then(|h| h.parse().ok()),
                    instance_id: a.instance_id().map(str::to_string),
                })
            })
            .collect();

        let mut next: Option<String> = None;
        loop {
            let page = self
                .client
                .describe_instances()
                .filters(Self::cluster_filter(cluster))
                .filters(
                    Filter::builder()
                        .name("instance-state-name")
                        .values("pending")
                        .values("running")
                        .values("stopping")
                        .values("stopped")
                        .build(),
                )
                .set_next_token(next.take())
                .send()
                .await
                .map_err(|e| self.fail("DescribeInstances", e))?;
            for instance in page.reservations().iter().flat_map(|r| r.instances()) {
                let Some(id) = instance.instance_id() else {
                    continue;
                };
                observed.instances.push(ObservedInstance {
                    id: id.to_string(),
                    host: tag_value(instance.tags(), HOST_TAG).and_then(|h| h.parse().ok()),
                    name: tag_value(instance.tags(), "Name"),
                    state: instance
                        .state()
                        .and_then(|s| s.name())
                        .map(|n| n.as_str().to_string())
                        .unwrap_or_else(|| "unknown".to_string()),
                    public_ip: instance.public_ip_address().and_then(|ip| ip.parse().ok()),
                    private_ip: instance.private_ip_address().and_then(|ip| ip.parse().ok()),
                });
            }
            match page.next_token() {
                Some(token) if !token.is_empty() => next = Some(token.to_string()),
                _ => break,
            }
        }
        observed.instances.sort_by(|a, b| (a.host, &a.id).cmp(&(b.host, &b.id)));
        Ok(observed)
    }

    pub(super) async fn debian_ami(&self) -> Result<String, AwsError> {
        let images = self
            .client
            .describe_images()
            .owners(DEBIAN_OWNER)
            .filters(Filter::builder().name("name").values(DEBIAN_NAME).build())
            .filters(Filter::builder().name("state").values("available").build())
            .send()
            .await
            .map_err(|e| self.fail("DescribeImages", e))?;
        images
            .images()
            .iter()
            .filter_map(|i| Some((i.creation_date()?.to_string(), i.image_id()?.to_string())))
            .max()
            .map(|(_, id)| id)
            .ok_or_else(|| AwsError::NoAmi { region: self.settings.region.clone() })
    }

    /// Waits with the SDK's waiter (`InstanceRunning`, bounded by `aws.running_timeout_s`) until
    /// every instance in `ids` (id, host name) is `running`.
    pub async fn wait_running(&self, ids: &[(String, String)]) -> Result<(), AwsError> {
        if ids.is_empty() {
            return Ok(());
        }
        let max = Duration::from_secs(self.settings.running_timeout_s);
        let result = self
            .client
            .wait_until_instance_running()
            .set_instance_ids(Some(ids.iter().map(|(id, _)| id.clone()).collect()))
            .wait(max)
            .await;
        let first = &ids[0];
        match result {
            Ok(_) => Ok(()),
            Err(aws_sdk_ec2::waiters::instance_running::WaitUntilInstanceRunningError::ExceededMaxWait(
                _,
            )) => Err(not_running_in_time(first, max)),
            Err(aws_sdk_ec2::waiters::instance_running::WaitUntilInstanceRunningError::FailureState(
                state,
            )) => {
                // Name the first instance that is not running.
                let (instance, state) = state
                    .final_poll()
                    .as_result()
                    .ok()
                    .into_iter()
                    .flat_map(|out| out.reservations())
                    .flat_map(|r| r.instances())
                    .find_map(|i| {
                        let name = i.state().and_then(|s| s.name())?;
                        (*name != InstanceStateName::Running).then(|| {
                            (i.instance_id().unwrap_or_default().to_string(), name.as_str().to_string())
                        })
                    })
                    .unwrap_or_else(|| (first.0.clone(), "a failed state".to_string()));
                let host = ids
                    .iter()
                    .find(|(id, _)| *id == instance)
                    .map(|(_, h)| h.clone())
                    .unwrap_or_else(|| first.1.clone());
                Err(AwsError::FailedState { instance, host, state })
            }
            Err(aws_sdk_ec2::waiters::instance_running::WaitUntilInstanceRunningError::OperationFailed(
                failed,
            )) => Err(self.fail("DescribeInstances (waiting for running)", failed.into_error())),
            Err(other) => Err(AwsError::Api {
                what: "waiting for running".to_string(),
                code: "waiter".to_string(),
                message: DisplayErrorContext(&other).to_string(),
            }),
        }
    }

    pub(super) async fn wait_terminated(&self, ids: Vec<String>) -> Result<(), AwsError> {
        if ids.is_empty() {
            return Ok(());
        }
        let max = Duration::from_secs(self.settings.running_timeout_s);
        self.client
            .wait_until_instance_terminated()
            .set_instance_ids(Some(ids.clone()))
            .wait(max)
            .await
            .map_err(|e| AwsError::Api {
                what: format!("waiting for {} to terminate", ids.join(", ")),
                code: "waiter".to_string(),
                message: DisplayErrorContext(&e).to_string(),
            })?;
        Ok(())
    }
}

/// The waiter ran out of time: the sentence of [`AwsError::NeverRunning`].
pub fn not_running_in_time(instance: &(String, String), max: Duration) -> AwsError {
    AwsError::NeverRunning { instance: instance.0.clone(), host: instance.1.clone(), waited_s: max.as_secs() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_waiter_running_out_of_time_names_the_instance_and_what_to_do() {
        // moto makes every instance `running` at once, so a timeout cannot be provoked against it;
        // this is the mapping of the waiter's ExceededMaxWait (see `Ec2::wait_running`).
        let e = not_running_in_time(&("i-0abc".into(), "mom-demo-host-2".into()), Duration::from_secs(30))
            .to_string();
        assert!(
            e.contains("i-0abc")
                && e.contains("mom-demo-host-2")
                && e.contains("30 s")
                && e.contains("momctl up"),
            "{e}"
        );
    }
}
