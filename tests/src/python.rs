//! The Python SDK drivers of `tests/sqs/` (boto3, the AWS CLI, Celery): how each is started, so
//! that every test runs them against the same environment.

use std::path::Path;

/// `python script` aimed at the SQS endpoint `endpoint` with the access key `key_id`/`secret`
/// (as `MOM_SQS_*`), unbuffered, with stdin closed, killed when dropped, and with nothing of the
/// developer's own AWS setup (config files, profile, endpoint overrides) changing what the SDK
/// sends. Add the driver's own variables to it.
pub fn sqs_driver(
    python: &str,
    script: &Path,
    endpoint: &str,
    region: &str,
    key_id: &str,
    secret: &str,
) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(python);
    cmd.arg(script)
        .env("MOM_SQS_ENDPOINT", endpoint)
        .env("MOM_SQS_REGION", region)
        .env("MOM_SQS_KEY_ID", key_id)
        .env("MOM_SQS_SECRET", secret)
        .env("PYTHONUNBUFFERED", "1")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_ENDPOINT_URL_SQS")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    cmd
}
