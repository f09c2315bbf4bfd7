//! Pull consumption, of a queue or of a topic's subscription: receive, ack, nack, extend; and
//! `Consume`, the bidirectional consume stream (issue 25).

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Status, Streaming};

use super::auth::{bearer, open};
use super::convert::{message, pb_error, receive_request, settled};
use super::pb;
use super::status::{ok, status, Answer, OrStatus};
use crate::error::{Error, Result};
use crate::service::{check_in_flight, Broker, Principal, Stream as PushState};

/// A queue, or a topic's subscription: what pull consumption names.
enum Target {
    Queue(String),
    Subscription(String, String),
}

fn target(queue: String, topic: String, subscription: String) -> Result<Target, Status> {
    match (queue.is_empty(), topic.is_empty(), subscription.is_empty()) {
        (false, true, true) => Ok(Target::Queue(queue)),
        (true, false, false) => Ok(Target::Subscription(topic, subscription)),
        _ => Err(status(&Error::invalid("name either queue, or topic and subscription"))),
    }
}

pub(super) async fn receive(
    broker: &Arc<Broker>,
    req: Request<pb::ReceiveRequest>,
) -> Answer<pb::ReceiveResponse> {
    let (who, r) = open(req)?;
    let rr = receive_request(r.max, r.wait_s, r.visibility_timeout_s);
    let messages = match target(r.queue, r.topic, r.subscription)? {
        Target::Queue(q) => broker.receive(&who, &q, rr).await,
        Target::Subscription(t, s) => broker.sub_receive(&who, &t, &s, rr).await,
    }
    .grpc()?;
    ok(pb::ReceiveResponse { messages: messages.into_iter().map(message).collect() })
}

pub(super) async fn ack(broker: &Arc<Broker>, req: Request<pb::AckRequest>) -> Answer<pb::SettleResponse> {
    let (who, r) = open(req)?;
    let results = match target(r.queue, r.topic, r.subscription)? {
        Target::Queue(q) => broker.ack(&who, &q, r.receipts).await,
        Target::Subscription(t, s) => broker.sub_ack(&who, &t, &s, r.receipts).await,
    }
    .grpc()?;
    ok(settled(results))
}

pub(super) async fn nack(broker: &Arc<Broker>, req: Request<pb::NackRequest>) -> Answer<pb::SettleResponse> {
    let (who, r) = open(req)?;
    let results = match target(r.queue, r.topic, r.subscription)? {
        Target::Queue(q) => broker.nack(&who, &q, r.receipts, r.delay_s).await,
        Target::Subscription(t, s) => broker.sub_nack(&who, &t, &s, r.receipts, r.delay_s).await,
    }
    .grpc()?;
    ok(settled(results))
}

pub(super) async fn extend_visibility(
    broker: &Arc<Broker>,
    req: Request<pb::ExtendVisibilityRequest>,
) -> Answer<pb::Empty> {
    let (who, r) = open(req)?;
    match target(r.queue, r.topic, r.subscription)? {
        Target::Queue(q) => broker.extend(&who, &q, r.receipt, r.visibility_timeout_s).await,
        Target::Subscription(t, s) => {
            broker.sub_extend(&who, &t, &s, r.receipt, r.visibility_timeout_s).await
        }
    }
    .grpc()?;
    ok(pb::Empty {})
}

/// What `Consume` answers: pushed messages and settle results, in one stream.
pub(super) type ConsumeStream =
    Pin<Box<dyn Stream<Item = std::result::Result<pb::ConsumeResponse, Status>> + Send>>;

/// Responses waiting to be written to the client. Messages never outnumber the stream's credit
/// (the stream receives no more than its room), so this only smooths the writes.
const OUTGOING: usize = 32;

/// `Consume`: the first request opens the stream (checked before it starts: 400, 404, 403, 429
/// as for the HTTP stream), then two tasks share it. The pusher drives
/// [`Broker::queue_stream_next`] / [`Broker::stream_next`] (woken by notifications, never
/// polling) and holds the user's long-poll slot; the reader applies each settle batch (acks in one
/// store call, then nacks, then extensions) and grants its credit. Either ending ends both: a
/// drain or a deleted queue ends the pusher, a client that closes its side or goes away ends the
/// reader. Nothing is released early: unacked deliveries come back after their deadline.
pub(super) async fn consume(
    broker: &Arc<Broker>,
    req: Request<Streaming<pb::ConsumeRequest>>,
) -> Answer<ConsumeStream> {
    // The stream re-checks its token as it goes, so a revoked one ends it.
    let token = bearer(&req);
    let (who, mut incoming) = open(req)?;
    let first = incoming.message().await?;
    let Some(pb::ConsumeRequest { request: Some(pb::consume_request::Request::Open(o)) }) = first else {
        return Err(status(&Error::InvalidArgument("the first request of Consume must be `open`".into())));
    };
    let credit = o.credit as usize;
    check_in_flight("credit", Some(credit)).grpc()?;
    let target = target(o.queue, o.topic, o.subscription)?;
    let state = match &target {
        Target::Queue(q) => broker.open_queue_stream(&who, q, Some(credit), token).await,
        Target::Subscription(t, s) => broker.open_stream(&who, t, s, Some(credit), token).await,
    }
    .grpc()?;
    let (tx, rx) = mpsc::channel(OUTGOING);
    let over = CancellationToken::new();
    let target = Arc::new(target);
    tokio::spawn(read(
        broker.clone(),
        who.clone(),
        target.clone(),
        incoming,
        state.credit(),
        tx.clone(),
        over.clone(),
    ));
    tokio::spawn(push(broker.clone(), who, target, state, tx, over));
    ok(Box::pin(futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|r| (r, rx)) })))
}

type Outgoing = mpsc::Sender<std::result::Result<pb::ConsumeResponse, Status>>;

/// Pushes messages while the stream has credit, until the node drains, the target goes away, the
/// client goes away, or the reader ends.
async fn push(
    broker: Arc<Broker>,
    who: Principal,
    target: Arc<Target>,
    mut state: PushState,
    tx: Outgoing,
    over: CancellationToken,
) {
    let _end = over.clone().drop_guard();
    loop {
        let next = async {
            match &*target {
                Target::Queue(q) => broker.queue_stream_next(&who, q, &mut state).await,
                Target::Subscription(t, s) => broker.stream_next(&who, t, s, &mut state).await,
            }
        };
        // Giving up a receive in progress is safe: what it took comes back after its deadline.
        let got = tokio::select! {
            got = next => got,
            _ = over.cancelled() => return,
            _ = tx.closed() => return,
        };
        match got {
            Ok(Some(messages)) => {
                for m in messages {
                    let out = pb::ConsumeResponse {
                        response: Some(pb::consume_response::Response::Message(message(m))),
                    };
                    if tx.send(Ok(out)).await.is_err() {
                        return;
                    }
                }
            }
            Ok(None) => return,
            Err(e) => {
                tracing::info!(error = %e, "ending a gRPC consume stream");
                let _ = tx.send(Err(status(&e))).await;
                return;
            }
        }
    }
}

/// Applies the client's settle batches and grants their credit, until the client closes its side
/// or the pusher ends.
async fn read(
    broker: Arc<Broker>,
    who: Principal,
    target: Arc<Target>,
    mut incoming: Streaming<pb::ConsumeRequest>,
    credit: Arc<crate::service::Credit>,
    tx: Outgoing,
    over: CancellationToken,
) {
    let _end = over.clone().drop_guard();
    loop {
        let req = tokio::select! {
            req = incoming.message() => req,
            _ = over.cancelled() => return,
        };
        let batch = match req {
            Ok(Some(pb::ConsumeRequest { request: Some(pb::consume_request::Request::Settle(b)) })) => b,
            Ok(Some(_)) => {
                let e = Error::InvalidArgument("after `open`, Consume takes only `settle` requests".into());
                let _ = tx.send(Err(status(&e))).await;
                return;
            }
            // The client closed its side, or went away.
            Ok(None) | Err(_) => return,
        };
        let more = batch.credit as usize;
        let answer = settle(&broker, &who, &target, batch).await;
        credit.grant(more);
        let out = pb::ConsumeResponse { response: Some(pb::consume_response::Response::Settled(answer)) };
        if tx.send(Ok(out)).await.is_err() {
            return;
        }
    }
}

/// One settle batch: acks in one store call, then nacks, then visibility extensions. A refused
/// list (over 100 receipts, a bad delay) stops the batch there with `error`.
async fn settle(
    broker: &Broker,
    who: &Principal,
    target: &Target,
    b: pb::ConsumeSettle,
) -> pb::ConsumeSettled {
    let mut out = pb::ConsumeSettled { batch: b.batch, ..Default::default() };
    let done: Result<()> = async {
        if !b.ack.is_empty() {
            let r = match target {
                Target::Queue(q) => broker.ack(who, q, b.ack).await,
                Target::Subscription(t, s) => broker.sub_ack(who, t, s, b.ack).await,
            }?;
            out.ack = settled(r).results;
        }
        if !b.nack.is_empty() {
            let r = match target {
                Target::Queue(q) => broker.nack(who, q, b.nack, b.nack_delay_s).await,
                Target::Subscription(t, s) => broker.sub_nack(who, t, s, b.nack, b.nack_delay_s).await,
            }?;
            out.nack = settled(r).results;
        }
        if !b.extend.is_empty() {
            let secs = b.extend_visibility_timeout_s;
            let r = match target {
                Target::Queue(q) => broker.extend_all(who, q, b.extend, secs).await,
                Target::Subscription(t, s) => broker.sub_extend_all(who, t, s, b.extend, secs).await,
            }?;
            out.extend = settled(r).results;
        }
        Ok(())
    }
    .await;
    if let Err(e) = done {
        out.error = Some(pb_error(&e));
    }
    out
}
