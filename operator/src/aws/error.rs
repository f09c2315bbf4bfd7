//! The aws provider's failures: one sentence each, saying what to do, from the SDK's error codes.

use crate::config::AwsSettings;
use crate::docker::DockerError;
use crate::pki::PkiError;

/// Attempts per EC2 call, so that throttling (`RequestLimitExceeded`, `Throttling`) is retried
/// with the SDK's exponential backoff and jitter.
pub const MAX_ATTEMPTS: u32 = 10;

/// Failures of the aws provider: one sentence each, saying what to do.
#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    #[error(
        "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) \
         in momctl's environment, then run `momctl up` again"
    )]
    NoCredentials,
    #[error(
        "AWS refused the credentials for region {region} ({code}: {message}): check the access key \
         and aws.region (an opt-in region must be enabled for the account), then run `momctl up` again"
    )]
    Rejected { region: String, code: String, message: String },
    #[error(
        "aws.region `{region}` is not a region EC2 answers for ({cause}); set aws.region to one \
         such as us-east-1 or eu-west-1 (`aws ec2 describe-regions` lists yours), then run `momctl up` again"
    )]
    WrongRegion { region: String, cause: String },
    #[error(
        "cannot reach EC2 at {endpoint} ({cause}): check aws.region (and aws.endpoint_url) and the \
         network, then run `momctl up` again"
    )]
    Unreachable { endpoint: String, cause: String },
    #[error(
        "EC2 refused to start more instances: the account's quota is reached ({code}: {message}); \
         lower aws.hosts or ask AWS for a higher quota (Service Quotas, \"Running On-Demand instances\"), \
         then run `momctl up` again"
    )]
    Quota { code: String, message: String },
    #[error(
        "EC2 has no capacity for {instance_type} in region {region} right now ({code}: {message}); \
         run `momctl up` again later or choose another aws.instance_type"
    )]
    Capacity { instance_type: String, region: String, code: String, message: String },
    #[error(
        "aws.ami `{ami}` is not an image EC2 has in region {region} ({code}); set aws.ami to an AMI id \
         of that region (or null for the newest Debian 12), then run `momctl up` again"
    )]
    BadAmi { ami: String, region: String, code: String },
    #[error(
        "aws.instance_type `{instance_type}` is not offered in region {region} ({code}: {message}); \
         set aws.instance_type to one it offers (e.g. t3.small), then run `momctl up` again"
    )]
    BadInstanceType { instance_type: String, region: String, code: String, message: String },
    #[error(
        "the account's Elastic IP quota is reached ({message}); release unused addresses or ask AWS \
         for more (Service Quotas, \"EC2-VPC Elastic IPs\"), then run `momctl up` again"
    )]
    AddressQuota { message: String },
    #[error(
        "EC2 kept throttling momctl's requests ({code}) after {MAX_ATTEMPTS} attempts with backoff; \
         wait a minute and run `momctl up` again"
    )]
    Throttled { code: String },
    #[error(
        "instance {instance} ({host}) did not reach `running` within {waited_s} s; look at its state \
         reason in the EC2 console, then run `momctl up` again (it waits for it, or replaces it once \
         it is terminated)"
    )]
    NeverRunning { instance: String, host: String, waited_s: u64 },
    #[error(
        "instance {instance} ({host}) went to `{state}` instead of `running`; look at its state \
         reason in the EC2 console, then run `momctl up` again (a terminated host is replaced)"
    )]
    FailedState { instance: String, host: String, state: String },
    #[error(
        "aws.ami is null and no Debian 12 AMI was found in region {region}; set aws.ami to an AMI \
         id of an image with apt and systemd (with moto_server: one of its own, e.g. ami-12c6146b)"
    )]
    NoAmi { region: String },
    #[error(
        "the Docker API of {host} ({addr}) did not answer within {waited_s} s ({cause}); check that \
         aws.admin_cidr contains this machine's address, then run `momctl up` again"
    )]
    DockerUnreachable { host: String, addr: String, waited_s: u64, cause: String },
    #[error("{host} has no address yet; run `momctl up` first")]
    NoHost { host: String },
    #[error("EC2 {what} failed ({code}: {message})")]
    Api { what: String, code: String, message: String },
    #[error("user data: {0}")]
    Template(String),
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// A host's Docker engine (or the local one images come from) did not answer.
    #[error(transparent)]
    Docker(#[from] DockerError),
}

/// What a failed EC2 call is, from its error code (pure, so each sentence is tested).
pub fn classify(what: &str, code: &str, message: &str, settings: &AwsSettings) -> AwsError {
    let (code_s, message_s) = (code.to_string(), message.to_string());
    match code {
        "AuthFailure"
        | "UnauthorizedOperation"
        | "InvalidClientTokenId"
        | "SignatureDoesNotMatch"
        | "OptInRequired"
        | "UnrecognizedClientException"
        | "InvalidAccessKeyId" => {
            AwsError::Rejected { region: settings.region.clone(), code: code_s, message: message_s }
        }
        "InstanceLimitExceeded" | "VcpuLimitExceeded" | "MaxSpotInstanceCountExceeded" => {
            AwsError::Quota { code: code_s, message: message_s }
        }
        "InsufficientInstanceCapacity"
        | "InsufficientHostCapacity"
        | "InsufficientCapacity"
        | "Unsupported" => AwsError::Capacity {
            instance_type: settings.instance_type.clone(),
            region: settings.region.clone(),
            code: code_s,
            message: message_s,
        },
        c if c.starts_with("InvalidAMIID") => AwsError::BadAmi {
            ami: settings.ami.clone().unwrap_or_else(|| "(newest Debian 12)".to_string()),
            region: settings.region.clone(),
            code: code_s,
        },
        c if c.starts_with("InvalidInstanceType") => AwsError::BadInstanceType {
            instance_type: settings.instance_type.clone(),
            region: settings.region.clone(),
            code: code_s,
            message: message_s,
        },
        "AddressLimitExceeded" => AwsError::AddressQuota { message: message_s },
        "RequestLimitExceeded" | "Throttling" | "ThrottlingException" => AwsError::Throttled { code: code_s },
        _ => AwsError::Api { what: what.to_string(), code: code_s, message: message_s },
    }
}

/// The innermost cause of a failed call, without the SDK's debug dump.
pub(super) fn short_cause(e: &dyn std::error::Error) -> String {
    let mut cause = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        cause = s.to_string();
        source = s.source();
    }
    cause
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> AwsSettings {
        AwsSettings {
            region: "eu-west-3".into(),
            instance_type: "t3.small".into(),
            hosts: 3,
            ami: None,
            admin_cidr: "203.0.113.0/24".parse().expect("cidr"),
            endpoint_url: None,
            running_timeout_s: 600,
        }
    }

    #[test]
    fn quota_capacity_and_rejection_are_one_sentence_with_what_to_do() {
        let s = settings();
        let quota = classify(
            "RunInstances",
            "InstanceLimitExceeded",
            "Your quota allows for 0 more running instance(s).",
            &s,
        )
        .to_string();
        assert!(
            quota.contains("quota") && quota.contains("aws.hosts") && quota.contains("momctl up"),
            "{quota}"
        );
        let vcpu = classify("RunInstances", "VcpuLimitExceeded", "vCPU limit", &s);
        assert!(matches!(vcpu, AwsError::Quota { .. }));
        let capacity =
            classify("RunInstances", "InsufficientInstanceCapacity", "no t3.small capacity", &s).to_string();
        assert!(
            capacity.contains("t3.small")
                && capacity.contains("eu-west-3")
                && capacity.contains("aws.instance_type"),
            "{capacity}"
        );
        let auth = classify(
            "DescribeInstances",
            "AuthFailure",
            "AWS was not able to validate the provided access credentials",
            &s,
        )
        .to_string();
        assert!(auth.contains("credentials") && auth.contains("aws.region"), "{auth}");
        let throttled =
            classify("DescribeInstances", "RequestLimitExceeded", "Request limit exceeded.", &s).to_string();
        assert!(throttled.contains("attempts with backoff"), "{throttled}");
        for e in [quota, capacity, auth, throttled] {
            assert_eq!(e.matches(". ").count(), 0, "one sentence: {e}");
        }
    }
}
