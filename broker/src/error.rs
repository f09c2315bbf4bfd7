//! The one error type of the broker core. Every transport (`http/`, `grpc/`, `sqs/`) maps it to
//! its own status codes; the core never knows which transport called it.

/// What went wrong, in terms a client can act on. Internal details (Redis or ZooKeeper error text)
/// are logged where they happen and never carried to the client. `Clone` because the error of a
/// combined write (group commit, `store/group.rs`) goes to every caller in it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    InvalidRequest(String),
    /// A request the queue's kind does not take: a FIFO rule broken (a send without its group or
    /// dedup id, a per-message delay); the contract names this code for them.
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    InvalidName(String),
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("queue '{0}' does not exist")]
    QueueNotFound(String),
    #[error("topic '{0}' does not exist")]
    TopicNotFound(String),
    #[error("subscription '{0}' does not exist")]
    SubscriptionNotFound(String),
    #[error("user '{0}' does not exist")]
    UserNotFound(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("the receipt is stale or unknown: the message was acknowledged, redelivered or returned")]
    ReceiptInvalid,
    #[error("{0}")]
    MessageTooLarge(String),
    /// The client did not send the whole request body in time (`MOM_BODY_READ_TIMEOUT_S`).
    #[error("{0}")]
    RequestTimeout(String),
    #[error("too many requests; retry after {retry_after_s} s")]
    RateLimited { retry_after_s: u64 },
    /// The caller already holds `max` waiting receives and push streams on this node
    /// (`MOM_MAX_LONG_POLLS_PER_USER`). Clients back off as for a rate limit, hence the same code.
    #[error("this user already holds {max} long polls and push streams on this node; retry after 1 s or hold fewer at once")]
    TooManyLongPolls { max: usize },
    #[error("{0}")]
    Unavailable(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The stable snake_case code of the API's error shape.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidRequest(_) => "invalid_request",
            Error::InvalidArgument(_) => "invalid_argument",
            Error::InvalidName(_) => "invalid_name",
            Error::Unauthenticated(_) => "unauthenticated",
            Error::Forbidden(_) => "forbidden",
            Error::QueueNotFound(_) => "queue_not_found",
            Error::TopicNotFound(_) => "topic_not_found",
            Error::SubscriptionNotFound(_) => "subscription_not_found",
            Error::UserNotFound(_) => "user_not_found",
            Error::NotFound(_) => "not_found",
            Error::AlreadyExists(_) => "already_exists",
            Error::ReceiptInvalid => "receipt_invalid",
            Error::MessageTooLarge(_) => "message_too_large",
            Error::RequestTimeout(_) => "request_timeout",
            Error::RateLimited { .. } | Error::TooManyLongPolls { .. } => "rate_limited",
            Error::Unavailable(_) => "unavailable",
        }
    }

    /// Seconds a client should wait before retrying (`Retry-After`), for the errors that say so.
    pub fn retry_after_s(&self) -> Option<u64> {
        match self {
            Error::RateLimited { retry_after_s } => Some(*retry_after_s),
            Error::TooManyLongPolls { .. } => Some(1),
            _ => None,
        }
    }

    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::InvalidRequest(msg.into())
    }

    /// Redis could not be reached or answered with an error. The detail goes to the log only.
    pub(crate) fn redis(err: redis::RedisError) -> Self {
        tracing::warn!(error = %err, "redis request failed");
        Error::Unavailable("the message store is unavailable; retry shortly".into())
    }
}
