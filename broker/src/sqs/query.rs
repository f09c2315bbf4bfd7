//! SQS's query protocol (form-encoded `Action=...&Version=2012-11-05`, answered in XML), spoken
//! by every SDK released before the JSON protocol: boto3 ≤ 1.28, the AWS SDK for Java 1.x, Go v1,
//! PHP, older Ruby. It is a translation layer, not a second implementation: the flattened form
//! parameters become the JSON protocol's input, [`super::actions::dispatch`] runs the action, and
//! its JSON output is written back as XML.
//!
//! Both directions are driven by botocore's service model of the query era (`query-model.json`,
//! written by `tests/sqs/query_model.py` from botocore 1.31), the same data every SDK of that era
//! was generated from: the names of flattened members (`Attribute.1.Name`,
//! `SendMessageBatchRequestEntry.2.Id`, `<QueueUrl>`), which members are numbers, and the query
//! protocol's error codes (`AWS.SimpleQueueService.NonExistentQueue`) come from it, so a new
//! action works through this layer as soon as `dispatch` knows it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::sync::LazyLock;

use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::SqsError;

/// Which of SQS's two wire protocols a request speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// AWS JSON 1.0: `X-Amz-Target: AmazonSQS.<Action>` and a JSON body.
    Json,
    /// Form parameters in the body (POST) or the query string (GET), XML answers.
    Query,
}

impl Protocol {
    /// `X-Amz-Target` means JSON (newer SDKs send it even with other content types); a form
    /// body or a GET means the query protocol; anything else is left to the JSON protocol,
    /// which answers that the target is missing, as before the query protocol was served.
    pub fn of(method: &Method, headers: &HeaderMap) -> Protocol {
        if headers.contains_key("x-amz-target") {
            return Protocol::Json;
        }
        let form = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|ct| {
            ct.trim().to_ascii_lowercase().starts_with("application/x-www-form-urlencoded")
        });
        if form || method == Method::GET {
            Protocol::Query
        } else {
            Protocol::Json
        }
    }
}

/// botocore's model of SQS, reduced to what the wire format needs (see `tests/sqs/query_model.py`).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Model {
    xml_namespace: String,
    operations: HashMap<String, Operation>,
    shapes: HashMap<String, Shape>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Operation {
    input: Option<String>,
    output: Option<String>,
    /// The element between `<{Action}Response>` and the output's members.
    result_wrapper: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Shape {
    #[serde(rename = "type")]
    kind: Kind,
    location_name: Option<String>,
    #[serde(default)]
    flattened: bool,
    /// In the model's order, which is the order of the XML elements.
    #[serde(default)]
    members: Vec<(String, Ref)>,
    member: Option<Ref>,
    key: Option<Ref>,
    value: Option<Ref>,
    /// The error code of the query protocol, for an error shape.
    error: Option<String>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "lowercase")]
enum Kind {
    Structure,
    List,
    Map,
    Integer,
    Long,
    Boolean,
    /// Strings, blobs (base64 in both protocols) and anything else carried as text.
    #[serde(other)]
    Text,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Ref {
    shape: String,
    location_name: Option<String>,
    #[serde(default)]
    flattened: bool,
}

/// A shape as one reference to it sees it: the reference's traits over the shape's own, as
/// botocore resolves them (`resolve_shape_ref`).
#[derive(Clone, Copy)]
struct View<'m> {
    shape: &'m Shape,
    name: Option<&'m str>,
    flattened: bool,
}

static MODEL: LazyLock<Model> = LazyLock::new(|| {
    serde_json::from_str(include_str!("query-model.json")).expect("query-model.json parses (unit-tested)")
});

impl Model {
    /// `None` only for a reference to a shape the model lacks, which a unit test rules out.
    fn view<'m>(&'m self, r: &'m Ref) -> Option<View<'m>> {
        let shape = self.shapes.get(&r.shape)?;
        Some(View {
            shape,
            name: r.location_name.as_deref().or(shape.location_name.as_deref()),
            flattened: r.flattened || shape.flattened,
        })
    }

    fn part<'m>(&'m self, r: &'m Option<Ref>) -> Option<View<'m>> {
        r.as_ref().and_then(|r| self.view(r))
    }

    fn operation_shape(&self, action: &str, output: bool) -> Option<&Shape> {
        let op = self.operations.get(action)?;
        let name = if output { op.output.as_ref() } else { op.input.as_ref() };
        self.shapes.get(name?)
    }
}

/// One query-protocol request: its action and its other parameters, the query string's and the
/// form body's (the body's win where both name one).
pub struct Request {
    pub action: String,
    params: BTreeMap<String, String>,
}

impl Request {
    pub fn parse(query: Option<&str>, body: &[u8]) -> Result<Request, SqsError> {
        let mut params: BTreeMap<String, String> = form_urlencoded::parse(query.unwrap_or("").as_bytes())
            .chain(form_urlencoded::parse(body))
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let action = params.remove("Action").filter(|a| !a.is_empty()).ok_or_else(|| {
            SqsError::bad("MissingAction", "The request must contain the parameter Action.")
        })?;
        Ok(Request { action, params })
    }

    /// The action's input as the JSON protocol carries it. `queue_url`: the URL the request was
    /// sent to when that is a queue's, which stands for a missing `QueueUrl` parameter (the Java
    /// SDK 1.x and others send queue operations there). An action the model does not know gets
    /// `{}`, and `dispatch` answers for it.
    pub fn input(&self, queue_url: Option<String>) -> Result<Value, SqsError> {
        let Some(shape) = MODEL.operation_shape(&self.action, false) else {
            return Ok(Value::Object(Map::new()));
        };
        let mut input = decode_structure(shape, "", &self.params)?.unwrap_or_default();
        if let Some(url) = queue_url {
            if shape.members.iter().any(|(m, _)| m == "QueueUrl") && !input.contains_key("QueueUrl") {
                input.insert("QueueUrl".into(), Value::String(url));
            }
        }
        Ok(Value::Object(input))
    }
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

fn decode_structure(
    shape: &Shape,
    prefix: &str,
    params: &BTreeMap<String, String>,
) -> Result<Option<Map<String, Value>>, SqsError> {
    let mut out = Map::new();
    for (member, r) in &shape.members {
        let Some(view) = MODEL.view(r) else { continue };
        if let Some(v) = decode(view, &join(prefix, view.name.unwrap_or(member)), params)? {
            out.insert(member.clone(), v);
        }
    }
    Ok((!out.is_empty()).then_some(out))
}

/// The indexes `N` of the parameters named `{base}.N` or `{base}.N.*`, in numeric order (so
/// `.10` comes after `.9`, and `Attribute.1` is not mistaken for a prefix of `Attribute.10`).
fn indexes(base: &str, params: &BTreeMap<String, String>) -> BTreeSet<u32> {
    let start = format!("{base}.");
    params
        .range(start.clone()..)
        .map(|(k, _)| k)
        .take_while(|k| k.starts_with(&start))
        .filter_map(|k| k[start.len()..].split('.').next()?.parse().ok())
        .collect()
}

/// The value of the member serialized at `prefix`, the inverse of botocore's `QuerySerializer`;
/// `None` when the request does not carry it.
fn decode(
    view: View<'_>,
    prefix: &str,
    params: &BTreeMap<String, String>,
) -> Result<Option<Value>, SqsError> {
    match view.shape.kind {
        Kind::Structure => Ok(decode_structure(view.shape, prefix, params)?.map(Value::Object)),
        Kind::List => {
            let Some(member) = MODEL.part(&view.shape.member) else { return Ok(None) };
            // An empty list travels as the bare member name with no value.
            if params.get(prefix).is_some_and(String::is_empty) {
                return Ok(Some(Value::Array(Vec::new())));
            }
            // A flattened list's items are named after the member (`AttributeName.1`, not
            // `AttributeNames.member.1`).
            let base = match (view.flattened, member.name) {
                (true, Some(name)) => match prefix.rsplit_once('.') {
                    Some((head, _)) => format!("{head}.{name}"),
                    None => name.to_string(),
                },
                (true, None) => prefix.to_string(),
                (false, name) => format!("{prefix}.{}", name.unwrap_or("member")),
            };
            let mut items = Vec::new();
            for i in indexes(&base, params) {
                items.extend(decode(member, &format!("{base}.{i}"), params)?);
            }
            Ok((!items.is_empty()).then_some(Value::Array(items)))
        }
        Kind::Map => {
            let (Some(key), Some(value)) = (MODEL.part(&view.shape.key), MODEL.part(&view.shape.value))
            else {
                return Ok(None);
            };
            let base = if view.flattened { prefix.to_string() } else { format!("{prefix}.entry") };
            let mut out = Map::new();
            for i in indexes(&base, params) {
                let entry = format!("{base}.{i}");
                let required = |part: View<'_>, default: &str| {
                    let name = join(&entry, part.name.unwrap_or(default));
                    decode(part, &name, params)?.ok_or_else(|| {
                        SqsError::bad(
                            "MissingParameter",
                            format!("The request must contain the parameter {name}."),
                        )
                    })
                };
                let k = match required(key, "key")? {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                out.insert(k, required(value, "value")?);
            }
            Ok((!out.is_empty()).then_some(Value::Object(out)))
        }
        kind => params.get(prefix).map(|text| scalar(kind, prefix, text)).transpose(),
    }
}

/// A parameter's text as the JSON type its shape has.
fn scalar(kind: Kind, name: &str, text: &str) -> Result<Value, SqsError> {
    let invalid = |reason: &str| {
        SqsError::invalid(format!("Value {text} for parameter {name} is invalid. Reason: {reason}."))
    };
    match kind {
        Kind::Integer | Kind::Long => {
            text.trim().parse::<i64>().map(Value::from).map_err(|_| invalid("must be an integer"))
        }
        Kind::Boolean => match text.to_ascii_lowercase().as_str() {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(invalid("must be true or false")),
        },
        _ => Ok(Value::String(text.to_string())),
    }
}

/// The answer to a query-protocol request: the action's output (or its error) in XML.
pub fn respond(result: Result<(String, Value), SqsError>) -> Response {
    let request_id = request_id();
    let (status, body) = match result {
        Ok((action, output)) => (StatusCode::OK, render_output(&action, &output, &request_id)),
        Err(e) => (e.status, render_error(&e, &request_id)),
    };
    let mut res = (status, body).into_response();
    let headers = res.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml"));
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        headers.insert("x-amzn-requestid", v);
    }
    res
}

/// A fresh id in UUID form, as SQS's request ids are.
fn request_id() -> String {
    let h = format!("{:032x}", rand::random::<u128>());
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

fn render_output(action: &str, output: &Value, request_id: &str) -> String {
    // The action names an element: only a name of the model's, or a plain word, is written.
    let action = if action.chars().all(|c| c.is_ascii_alphanumeric()) { action } else { "Unknown" };
    let mut x = format!("<?xml version=\"1.0\"?><{action}Response xmlns=\"{}\">", MODEL.xml_namespace);
    let wrapper = MODEL.operations.get(action).and_then(|op| op.result_wrapper.as_deref());
    if let (Some(wrapper), Some(shape)) = (wrapper, MODEL.operation_shape(action, true)) {
        let _ = write!(x, "<{wrapper}>");
        if let Value::Object(o) = output {
            encode_structure(&mut x, shape, o);
        }
        let _ = write!(x, "</{wrapper}>");
    }
    let _ = write!(
        x,
        "<ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata></{action}Response>"
    );
    x
}

fn render_error(e: &SqsError, request_id: &str) -> String {
    // The JSON protocol's code names the error shape; the query protocol answers its `error.code`.
    let code =
        e.query_code.or_else(|| MODEL.shapes.get(e.code).and_then(|s| s.error.as_deref())).unwrap_or(e.code);
    let fault = if e.sender_fault() { "Sender" } else { "Receiver" };
    let mut x = format!(
        "<?xml version=\"1.0\"?><ErrorResponse xmlns=\"{}\"><Error><Type>{fault}</Type><Code>",
        MODEL.xml_namespace
    );
    escape_into(&mut x, code);
    x.push_str("</Code><Message>");
    escape_into(&mut x, &e.message);
    let _ = write!(x, "</Message><Detail/></Error><RequestId>{request_id}</RequestId></ErrorResponse>");
    x
}

/// The members of a structure present in `o`, as botocore's `QueryParser` reads them back.
fn encode_structure(x: &mut String, shape: &Shape, o: &Map<String, Value>) {
    for (member, r) in &shape.members {
        let (Some(v), Some(view)) = (o.get(member), MODEL.view(r)) else { continue };
        let name = view.name.unwrap_or(member);
        match (view.shape.kind, view.flattened, v) {
            // Flattened: one element per item (`<QueueUrl>` repeated), named after the member.
            (Kind::List, true, Value::Array(items)) => {
                let Some(item) = MODEL.part(&view.shape.member) else { continue };
                for v in items {
                    encode(x, item.name.unwrap_or(name), item, v);
                }
            }
            // Flattened: one element per entry (`<Attribute><Name/><Value/></Attribute>`).
            (Kind::Map, true, Value::Object(entries)) => {
                for (k, v) in entries {
                    open(x, name);
                    encode_entry(x, view.shape, k, v);
                    close(x, name);
                }
            }
            (_, _, Value::Null) => {}
            _ => encode(x, name, view, v),
        }
    }
}

fn encode(x: &mut String, name: &str, view: View<'_>, v: &Value) {
    open(x, name);
    match (view.shape.kind, v) {
        (Kind::Structure, Value::Object(o)) => encode_structure(x, view.shape, o),
        (Kind::List, Value::Array(items)) => {
            if let Some(item) = MODEL.part(&view.shape.member) {
                for v in items {
                    encode(x, item.name.unwrap_or("member"), item, v);
                }
            }
        }
        (Kind::Map, Value::Object(entries)) => {
            for (k, v) in entries {
                open(x, "entry");
                encode_entry(x, view.shape, k, v);
                close(x, "entry");
            }
        }
        (_, Value::String(s)) => escape_into(x, s),
        (_, Value::Bool(b)) => x.push_str(if *b { "true" } else { "false" }),
        (_, Value::Number(n)) => {
            let _ = write!(x, "{n}");
        }
        (_, other) => escape_into(x, &other.to_string()),
    }
    close(x, name);
}

fn encode_entry(x: &mut String, map: &Shape, k: &str, v: &Value) {
    if let (Some(key), Some(value)) = (MODEL.part(&map.key), MODEL.part(&map.value)) {
        encode(x, key.name.unwrap_or("key"), key, &Value::String(k.to_string()));
        encode(x, value.name.unwrap_or("value"), value, v);
    }
}

fn open(x: &mut String, name: &str) {
    let _ = write!(x, "<{name}>");
}

fn close(x: &mut String, name: &str) {
    let _ = write!(x, "</{name}>");
}

/// Text content. A carriage return is written as a reference: XML parsers turn a literal one
/// into a line feed, which would change a message body and its MD5.
fn escape_into(x: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => x.push_str("&amp;"),
            '<' => x.push_str("&lt;"),
            '>' => x.push_str("&gt;"),
            '"' => x.push_str("&quot;"),
            '\r' => x.push_str("&#xD;"),
            c => x.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn input(form: &str) -> Value {
        let req = Request::parse(None, form.as_bytes()).expect("a request with an action");
        req.input(None).expect("the form translates")
    }

    #[test]
    fn every_reference_of_the_model_resolves() {
        let refs = MODEL.shapes.values().flat_map(|s| {
            s.members.iter().map(|(_, r)| r).chain(s.member.iter()).chain(s.key.iter()).chain(s.value.iter())
        });
        for r in refs {
            assert!(MODEL.shapes.contains_key(&r.shape), "no shape {}", r.shape);
        }
        for (name, op) in &MODEL.operations {
            for shape in op.input.iter().chain(op.output.iter()) {
                assert!(MODEL.shapes.contains_key(shape), "{name}: no shape {shape}");
            }
        }
    }

    #[test]
    fn flattened_parameters_become_the_json_input() {
        // Numbered out of order and past 9, with a gap: items keep their numeric order.
        let got = input(
            "Action=SendMessageBatch&QueueUrl=http%3A%2F%2Fh%2F000000000000%2Fq\
             &SendMessageBatchRequestEntry.10.Id=ten&SendMessageBatchRequestEntry.10.MessageBody=b10\
             &SendMessageBatchRequestEntry.2.Id=two&SendMessageBatchRequestEntry.2.MessageBody=b2\
             &SendMessageBatchRequestEntry.2.DelaySeconds=5\
             &SendMessageBatchRequestEntry.2.MessageAttribute.1.Name=kind\
             &SendMessageBatchRequestEntry.2.MessageAttribute.1.Value.DataType=String\
             &SendMessageBatchRequestEntry.2.MessageAttribute.1.Value.StringValue=a+b%26c\
             &SendMessageBatchRequestEntry.2.MessageAttribute.11.Name=raw\
             &SendMessageBatchRequestEntry.2.MessageAttribute.11.Value.DataType=Binary\
             &SendMessageBatchRequestEntry.2.MessageAttribute.11.Value.BinaryValue=AP8%3D\
             &SendMessageBatchRequestEntry.1.Id=one&SendMessageBatchRequestEntry.1.MessageBody=b1",
        );
        assert_eq!(
            got,
            json!({
                "QueueUrl": "http://h/000000000000/q",
                "Entries": [
                    { "Id": "one", "MessageBody": "b1" },
                    {
                        "Id": "two", "MessageBody": "b2", "DelaySeconds": 5,
                        "MessageAttributes": {
                            "kind": { "DataType": "String", "StringValue": "a b&c" },
                            "raw": { "DataType": "Binary", "BinaryValue": "AP8=" },
                        },
                    },
                    { "Id": "ten", "MessageBody": "b10" },
                ],
            })
        );
        let got = input(
            "Action=CreateQueue&QueueName=q&Attribute.1.Name=VisibilityTimeout&Attribute.1.Value=30\
             &Attribute.2.Name=DelaySeconds&Attribute.2.Value=0&Tag.1.Key=team&Tag.1.Value=infra",
        );
        assert_eq!(
            got,
            json!({
                "QueueName": "q",
                "Attributes": { "VisibilityTimeout": "30", "DelaySeconds": "0" },
                "tags": { "team": "infra" },
            })
        );
        let got = input(
            "Action=ReceiveMessage&QueueUrl=u&AttributeName.1=All&MessageAttributeName.1=a.*\
             &MessageAttributeName.2=b&MaxNumberOfMessages=10&WaitTimeSeconds=0",
        );
        assert_eq!(
            got,
            json!({
                "QueueUrl": "u", "AttributeNames": ["All"], "MessageAttributeNames": ["a.*", "b"],
                "MaxNumberOfMessages": 10, "WaitTimeSeconds": 0,
            })
        );
        assert_eq!(input("Action=UntagQueue&QueueUrl=u&TagKey.1=a&TagKey.2=b")["TagKeys"], json!(["a", "b"]));
        assert_eq!(
            input("Action=GetQueueAttributes&QueueUrl=u&AttributeNames=")["AttributeNames"],
            json!([])
        );
        // The queue URL the request went to stands for a missing QueueUrl, never over a given one.
        let req = Request::parse(Some("Action=PurgeQueue"), b"").expect("an action");
        assert_eq!(
            req.input(Some("http://h/000000000000/q".into())).ok(),
            Some(json!({ "QueueUrl": "http://h/000000000000/q" }))
        );
        let req = Request::parse(None, b"Action=ListQueues").expect("an action");
        assert_eq!(req.input(Some("http://h/000000000000/q".into())).ok(), Some(json!({})));
    }

    #[test]
    fn malformed_forms_are_sender_errors() {
        let code = |form: &str| match Request::parse(None, form.as_bytes()).and_then(|r| r.input(None)) {
            Ok(v) => panic!("{form} translated to {v}"),
            Err(e) => (e.status, e.code),
        };
        assert_eq!(code("Version=2012-11-05"), (StatusCode::BAD_REQUEST, "MissingAction"));
        assert_eq!(
            code("Action=ReceiveMessage&MaxNumberOfMessages=ten"),
            (StatusCode::BAD_REQUEST, "InvalidParameterValue")
        );
        assert_eq!(
            code("Action=CreateQueue&QueueName=q&Attribute.1.Value=3"),
            (StatusCode::BAD_REQUEST, "MissingParameter")
        );
        // Not UTF-8 and stray separators: decoded lossily, never a panic.
        assert!(Request::parse(None, b"Action=ListQueues&%FF%FE=%C3&&=&QueueNamePrefix").is_ok());
    }

    #[test]
    fn output_is_written_as_the_query_protocol_reads_it() {
        let out = json!({
            "Messages": [{
                "MessageId": "id-1", "ReceiptHandle": "r<1>", "MD5OfBody": "m",
                "Body": "<a href=\"x\">&amp;</a>\r\n",
                "Attributes": { "SentTimestamp": "1" },
                "MessageAttributes": { "k": { "DataType": "String", "StringValue": "v&" } },
            }],
        });
        let xml = render_output("ReceiveMessage", &out, "rid");
        assert_eq!(
            xml,
            "<?xml version=\"1.0\"?>\
             <ReceiveMessageResponse xmlns=\"http://queue.amazonaws.com/doc/2012-11-05/\">\
             <ReceiveMessageResult><Message><MessageId>id-1</MessageId>\
             <ReceiptHandle>r&lt;1&gt;</ReceiptHandle><MD5OfBody>m</MD5OfBody>\
             <Body>&lt;a href=&quot;x&quot;&gt;&amp;amp;&lt;/a&gt;&#xD;\n</Body>\
             <Attribute><Name>SentTimestamp</Name><Value>1</Value></Attribute>\
             <MessageAttribute><Name>k</Name><Value><StringValue>v&amp;</StringValue>\
             <DataType>String</DataType></Value></MessageAttribute>\
             </Message></ReceiveMessageResult><ResponseMetadata><RequestId>rid</RequestId></ResponseMetadata>\
             </ReceiveMessageResponse>"
        );
        let xml = render_output(
            "SendMessageBatch",
            &json!({
                "Successful": [{ "Id": "a", "MessageId": "m", "MD5OfMessageBody": "d" }],
                "Failed": [
                    { "Id": "b", "SenderFault": true, "Code": "InvalidParameterValue", "Message": "no" },
                ],
            }),
            "rid",
        );
        assert!(
            xml.contains(
                "<SendMessageBatchResult><SendMessageBatchResultEntry><Id>a</Id><MessageId>m</MessageId>\
             <MD5OfMessageBody>d</MD5OfMessageBody></SendMessageBatchResultEntry><BatchResultErrorEntry>\
             <Id>b</Id><SenderFault>true</SenderFault><Code>InvalidParameterValue</Code><Message>no</Message>\
             </BatchResultErrorEntry></SendMessageBatchResult>"
            ),
            "{xml}"
        );
        let xml = render_output("ListQueues", &json!({ "QueueUrls": ["u1", "u2"] }), "rid");
        assert!(
            xml.contains(
                "<ListQueuesResult><QueueUrl>u1</QueueUrl><QueueUrl>u2</QueueUrl></ListQueuesResult>"
            ),
            "{xml}"
        );
        let xml = render_output("ListQueueTags", &json!({ "Tags": { "a": "1" } }), "rid");
        assert!(
            xml.contains(
                "<ListQueueTagsResult><Tag><Key>a</Key><Value>1</Value></Tag></ListQueueTagsResult>"
            ),
            "{xml}"
        );
        // No output: only the metadata.
        let xml = render_output("DeleteQueue", &json!({}), "rid");
        assert!(
            xml.ends_with(
                "<DeleteQueueResponse xmlns=\"http://queue.amazonaws.com/doc/2012-11-05/\">\
                 <ResponseMetadata><RequestId>rid</RequestId></ResponseMetadata></DeleteQueueResponse>"
            ),
            "{xml}"
        );
    }

    #[test]
    fn errors_carry_the_query_protocol_code() {
        let xml = render_error(&SqsError::no_queue(), "rid");
        assert!(
            xml.contains("<Error><Type>Sender</Type><Code>AWS.SimpleQueueService.NonExistentQueue</Code>"),
            "{xml}"
        );
        let e = SqsError::bad("MessageNotInflight", "a <b>");
        let xml = render_error(&e, "rid");
        assert!(
            xml.contains(
                "<Code>AWS.SimpleQueueService.MessageNotInflight</Code><Message>a &lt;b&gt;</Message>\
                 <Detail/></Error><RequestId>rid</RequestId>"
            ),
            "{xml}"
        );
        let e = SqsError::new(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable", "down");
        assert!(render_error(&e, "rid").contains("<Type>Receiver</Type><Code>ServiceUnavailable</Code>"));
    }

    #[test]
    fn the_protocol_follows_the_target_header_then_the_form() {
        let mut h = HeaderMap::new();
        assert_eq!(Protocol::of(&Method::POST, &h), Protocol::Json);
        assert_eq!(Protocol::of(&Method::GET, &h), Protocol::Query);
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded; charset=utf-8"),
        );
        assert_eq!(Protocol::of(&Method::POST, &h), Protocol::Query);
        h.insert("x-amz-target", HeaderValue::from_static("AmazonSQS.ListQueues"));
        assert_eq!(Protocol::of(&Method::POST, &h), Protocol::Json);
    }
}
