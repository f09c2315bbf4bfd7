//! Prometheus metrics. Counters are bumped on the request path; gauges of queue depth are read
//! from Redis when `/metrics` is scraped, so they are exact at scrape time.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};

/// What happened to messages, counted per queue or topic.
#[derive(Debug, Clone, Copy)]
pub enum Event {
    Sent,
    Received,
    Acked,
    DeadLettered,
    Expired,
}

pub struct Metrics {
    registry: Registry,
    pub http_requests: IntCounterVec,
    pub http_latency: HistogramVec,
    /// gRPC calls by method and status code (`mom_grpc_requests_total`).
    pub grpc_requests: IntCounterVec,
    /// gRPC latency by method: to the response (unary) or to the stream's start (Subscribe).
    pub grpc_latency: HistogramVec,
    events: [IntCounterVec; 5],
    pub depth: IntGaugeVec,
    pub lag: IntGaugeVec,
    /// 1 while this node is the cluster's leader.
    pub leader: prometheus::IntGauge,
    /// HTTP requests this node has begun and not yet answered (bodies still arriving included).
    pub http_in_flight: prometheus::IntGauge,
    /// Client connections open on this node (HTTP and gRPC), and those refused past the limit.
    pub connections_open: prometheus::IntGauge,
    pub connections_refused: prometheus::IntCounter,
    /// Waiting receives and push streams held on this node, and those refused past a user's limit.
    pub long_polls_held: prometheus::IntGauge,
    pub long_polls_refused: prometheus::IntCounter,
    /// Messages per send script call: above 1 for a batch, or when group commit combined
    /// concurrent sends to one queue (`store/group.rs`).
    pub send_batch_size: prometheus::Histogram,
    /// Full reloads of the metadata cache from ZooKeeper, by cause (`meta::Resync`).
    pub metadata_resyncs: IntCounterVec,
    /// Receives of a woken long poll that found nothing (another consumer was faster): the cost
    /// of waking more waiters than there were messages (`waiters.rs`).
    pub receive_empty_wakes: prometheus::IntCounter,
    /// Leader-only work this node, leading by its own view, skipped because the fence in Redis
    /// held a newer leader's token (`Broker::fenced`): a deposed leader that had not noticed.
    pub leader_fenced_off: prometheus::IntCounter,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let http_requests = IntCounterVec::new(
            Opts::new("mom_http_requests_total", "HTTP requests by route, method and status"),
            &["route", "method", "status"],
        )
        .expect("valid metric");
        let buckets = || {
            vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0]
        };
        let http_latency = HistogramVec::new(
            HistogramOpts::new(
                "mom_http_request_duration_seconds",
                "HTTP request latency by route and method",
            )
            .buckets(buckets()),
            &["route", "method"],
        )
        .expect("valid metric");
        let grpc_requests = IntCounterVec::new(
            Opts::new("mom_grpc_requests_total", "gRPC calls by method and status code"),
            &["method", "code"],
        )
        .expect("valid metric");
        let grpc_latency = HistogramVec::new(
            HistogramOpts::new(
                "mom_grpc_request_duration_seconds",
                "gRPC latency by method (to the response, or to the start of a Subscribe stream)",
            )
            .buckets(buckets()),
            &["method"],
        )
        .expect("valid metric");
        let event = |name: &str, help: &str| {
            IntCounterVec::new(Opts::new(name, help), &["kind", "name"]).expect("valid metric")
        };
        let events = [
            event("mom_messages_sent_total", "Messages stored, per queue or topic"),
            event("mom_messages_received_total", "Deliveries handed to consumers"),
            event("mom_messages_acked_total", "Messages acknowledged (gone for good)"),
            event(
                "mom_messages_dead_lettered_total",
                "Messages moved to a dead-letter queue or dropped after max_receives",
            ),
            event("mom_messages_expired_total", "Messages dropped because their retention ended"),
        ];
        let depth = IntGaugeVec::new(
            Opts::new("mom_queue_messages", "Messages in a queue by state, at scrape time"),
            &["queue", "state"],
        )
        .expect("valid metric");
        registry.register(Box::new(http_requests.clone())).expect("unique metric");
        registry.register(Box::new(http_latency.clone())).expect("unique metric");
        registry.register(Box::new(grpc_requests.clone())).expect("unique metric");
        registry.register(Box::new(grpc_latency.clone())).expect("unique metric");
        for e in &events {
            registry.register(Box::new(e.clone())).expect("unique metric");
        }
        let lag = IntGaugeVec::new(
            Opts::new(
                "mom_subscription_lag",
                "Retained messages a subscription matches and has not acked, at scrape time",
            ),
            &["topic", "subscription"],
        )
        .expect("valid metric");
        registry.register(Box::new(depth.clone())).expect("unique metric");
        registry.register(Box::new(lag.clone())).expect("unique metric");
        let leader =
            prometheus::IntGauge::new("mom_leader", "1 while this node leads the cluster's background work")
                .expect("valid metric");
        registry.register(Box::new(leader.clone())).expect("unique metric");
        let gauge = |name: &str, help: &str| {
            let g = prometheus::IntGauge::new(name, help).expect("valid metric");
            registry.register(Box::new(g.clone())).expect("unique metric");
            g
        };
        let counter = |name: &str, help: &str| {
            let c = prometheus::IntCounter::new(name, help).expect("valid metric");
            registry.register(Box::new(c.clone())).expect("unique metric");
            c
        };
        let http_in_flight = gauge(
            "mom_http_requests_in_flight",
            "HTTP requests begun and not yet answered on this node (bodies still arriving included)",
        );
        let connections_open =
            gauge("mom_connections_open", "Client connections open on this node (HTTP and gRPC)");
        let connections_refused = counter(
            "mom_connections_refused_total",
            "Connections refused because MOM_MAX_CONNECTIONS were open",
        );
        let long_polls_held =
            gauge("mom_long_polls_held", "Waiting receives and push streams held on this node");
        let long_polls_refused = counter(
            "mom_long_polls_refused_total",
            "Receives and streams refused because their user held MOM_MAX_LONG_POLLS_PER_USER",
        );
        let send_batch_size = prometheus::Histogram::with_opts(
            HistogramOpts::new(
                "mom_send_batch_size",
                "Messages per send script call (a batch, or concurrent sends to one queue combined)",
            )
            .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 100.0]),
        )
        .expect("valid metric");
        registry.register(Box::new(send_batch_size.clone())).expect("unique metric");
        let metadata_resyncs = IntCounterVec::new(
            Opts::new(
                "mom_metadata_resyncs_total",
                "Full reloads of the metadata cache from ZooKeeper: a new session, a reconnect, or drift found by the periodic check",
            ),
            &["cause"],
        )
        .expect("valid metric");
        for cause in crate::meta::Resync::ALL {
            metadata_resyncs.with_label_values(&[cause.label()]);
        }
        registry.register(Box::new(metadata_resyncs.clone())).expect("unique metric");
        let receive_empty_wakes = counter(
            "mom_receive_empty_wakes_total",
            "Receives of a woken long poll or push stream that found nothing (another consumer took the message first)",
        );
        let leader_fenced_off = counter(
            "mom_leader_fenced_off_total",
            "Leader-only work this node skipped while it believed it led, because the fence in Redis held a newer leader's token",
        );
        Metrics {
            registry,
            http_requests,
            http_latency,
            grpc_requests,
            grpc_latency,
            events,
            depth,
            lag,
            leader,
            http_in_flight,
            connections_open,
            connections_refused,
            long_polls_held,
            long_polls_refused,
            send_batch_size,
            metadata_resyncs,
            receive_empty_wakes,
            leader_fenced_off,
        }
    }

    pub fn count(&self, event: Event, kind: &str, name: &str, n: u64) {
        if n > 0 {
            self.events[event as usize].with_label_values(&[kind, name]).inc_by(n);
        }
    }

    /// Drops every series of a deleted queue or topic.
    pub fn forget(&self, kind: &str, name: &str) {
        for e in &self.events {
            let _ = e.remove_label_values(&[kind, name]);
        }
        for state in ["available", "in_flight", "delayed"] {
            let _ = self.depth.remove_label_values(&[name, state]);
        }
    }

    pub fn render(&self) -> String {
        TextEncoder::new().encode_to_string(&self.registry.gather()).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
