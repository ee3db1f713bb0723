//! The OpenAPI 3.0 description of the HTTP API, served at `GET /api/openapi.json`.
//!
//! Written by hand, in one place, from small builders: every route the router serves under
//! `/api` has an operation here (a test walks the router's paths against it), and the
//! schema-driven fuzz run in `.ci/run` (schemathesis) checks the answers against these schemas.
//! Provider callbacks (`/hooks/…`) and the unsubscribe pages are for providers and members, not
//! API clients, and are described in README instead.

use serde_json::{Map, Value, json};

/// `{"$ref": "#/components/schemas/<name>"}`.
fn r(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn array(items: Value) -> Value {
    json!({"type": "array", "items": items})
}

fn nullable(mut schema: Value) -> Value {
    if schema.get("$ref").is_some() {
        return json!({"allOf": [schema], "nullable": true});
    }
    schema["nullable"] = true.into();
    schema
}

fn obj(props: &[(&str, Value)], required: &[&str]) -> Value {
    let properties: Map<String, Value> = props.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    let mut o = json!({"type": "object", "properties": properties});
    if !required.is_empty() {
        o["required"] = json!(required);
    }
    o
}

fn string() -> Value {
    json!({"type": "string"})
}

fn integer() -> Value {
    json!({"type": "integer"})
}

fn number() -> Value {
    json!({"type": "number"})
}

fn boolean() -> Value {
    json!({"type": "boolean"})
}

fn instant() -> Value {
    json!({"type": "string", "format": "date-time"})
}

fn date() -> Value {
    json!({"type": "string", "format": "date"})
}

fn any_object() -> Value {
    json!({"type": "object"})
}

/// A parameter in the path (`id`) or the query.
fn path(name: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "schema": string()})
}

fn query(name: &str, schema: Value, description: &str) -> Value {
    json!({"name": name, "in": "query", "required": false, "schema": schema, "description": description})
}

fn header(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "header", "required": false, "schema": string(), "description": description})
}

fn json_content(schema: Value) -> Value {
    json!({"application/json": {"schema": schema}})
}

/// An operation: its summary, tag, parameters, request body, and answers (status, schema).
struct Op {
    summary: &'static str,
    tag: &'static str,
    params: Vec<Value>,
    body: Option<Value>,
    answers: Vec<(u16, Value)>,
}

impl Op {
    fn new(tag: &'static str, summary: &'static str) -> Op {
        Op { summary, tag, params: Vec::new(), body: None, answers: Vec::new() }
    }

    fn param(mut self, p: Value) -> Op {
        self.params.push(p);
        self
    }

    fn body(mut self, schema: Value) -> Op {
        self.body = Some(schema);
        self
    }

    fn answer(mut self, status: u16, schema: Value) -> Op {
        self.answers.push((status, schema));
        self
    }

    /// The usual error answers: the JSON error shape for 4xx.
    fn errors(mut self, statuses: &[u16]) -> Op {
        for &s in statuses {
            self.answers.push((s, r("Error")));
        }
        self
    }

    fn build(self, id: String) -> Value {
        let mut responses = Map::new();
        for (status, schema) in self.answers {
            let description = match status {
                200 => "OK",
                201 => "created",
                202 => "accepted",
                204 => "no content",
                400 => "bad request",
                401 => "no valid key or session",
                403 => "the key's role may not do this",
                404 => "not found",
                409 => "conflict",
                413 => "body too large",
                422 => "invalid: the field is named",
                _ => "answer",
            };
            let mut resp = json!({"description": description});
            if status != 204 && !schema.is_null() {
                resp["content"] = json_content(schema);
            }
            responses.insert(status.to_string(), resp);
        }
        let mut op = json!({"operationId": id, "summary": self.summary, "tags": [self.tag], "responses": responses});
        if !self.params.is_empty() {
            op["parameters"] = Value::Array(self.params);
        }
        if let Some(body) = self.body {
            op["requestBody"] = json!({"required": true, "content": json_content(body)});
        }
        op
    }
}

/// The one list shape: a page of items and the cursor of the next page.
fn page(items: Value) -> Value {
    obj(&[("items", array(items)), ("next", nullable(string()))], &["items", "next"])
}

fn paging(op: Op) -> Op {
    op.param(query("limit", json!({"type": "integer", "minimum": 1, "maximum": 1000}), "1 to 1000, default 100"))
        .param(query("cursor", string(), "the `next` of the previous page"))
}

fn schemas() -> Value {
    let item_error = obj(&[("index", integer()), ("field", nullable(string())), ("problem", string())], &["index"]);
    let forecast_row = obj(
        &[
            ("day", date()),
            ("rule", string()),
            ("channel", string()),
            ("occasion", string()),
            ("messages", integer()),
            ("skipped", integer()),
            ("sample", array(string())),
        ],
        &["day", "rule", "channel", "messages", "skipped", "sample"],
    );
    let uplift = obj(&[("absolute", number()), ("low", number()), ("high", number())], &["absolute", "low", "high"]);
    let arm = obj(
        &[
            ("arm", string()),
            ("eligible", integer()),
            ("sent", integer()),
            ("delivered", integer()),
            ("failed", integer()),
            ("converted", integer()),
            ("conversion_rate", nullable(number())),
            ("uplift", nullable(uplift)),
        ],
        &["arm", "eligible", "sent", "delivered", "failed", "converted"],
    );
    let report = obj(
        &[
            ("rule", string()),
            ("experiment", nullable(string())),
            ("conversion_events", array(string())),
            ("window", string()),
            ("since", nullable(instant())),
            ("arms", array(arm)),
        ],
        &["rule", "arms"],
    );
    let defined = obj(
        &[
            ("id", string()),
            ("kind", json!({"type": "string", "enum": ["rule", "journey"]})),
            ("source", json!({"type": "string", "enum": ["config", "api"]})),
            ("overrides_config", boolean()),
            ("version", nullable(integer())),
            ("enabled", boolean()),
            ("updated_by", nullable(string())),
            ("updated_at", nullable(instant())),
            ("definition", any_object()),
        ],
        &["id", "kind", "source", "enabled", "definition"],
    );
    let consent = obj(
        &[
            ("channel", string()),
            ("purpose", string()),
            ("granted", boolean()),
            ("source", string()),
            ("actor", string()),
            ("at", instant()),
        ],
        &["channel", "purpose", "granted"],
    );
    let audit_entry = obj(
        &[
            ("id", integer()),
            ("at", instant()),
            ("actor", string()),
            ("action", string()),
            ("subject", string()),
            ("detail", json!({})),
        ],
        &["id", "at", "actor", "action", "subject"],
    );
    let day_count =
        obj(&[("day", date()), ("channel", string()), ("state", string()), ("count", integer())], &["day", "count"]);
    let rates = obj(
        &[
            ("sent", integer()),
            ("delivered", integer()),
            ("failed", integer()),
            ("delivery_rate", nullable(number())),
            ("failure_rate", nullable(number())),
        ],
        &["sent", "delivered", "failed"],
    );
    let stats = obj(
        &[
            ("days", array(day_count)),
            ("channels", json!({"type": "object", "additionalProperties": rates})),
            (
                "backlog",
                obj(
                    &[("due", integer()), ("scheduled", integer()), ("oldest_due_seconds", nullable(integer()))],
                    &["due", "scheduled"],
                ),
            ),
            ("experiments", array(r("Report"))),
        ],
        &["days", "channels", "backlog", "experiments"],
    );
    let member = obj(
        &[
            ("external_id", string()),
            ("name", nullable(string())),
            ("email", nullable(string())),
            ("phone", nullable(string())),
            ("locale", nullable(string())),
            ("time_zone", nullable(string())),
            ("birth_date", nullable(date())),
            ("member_since", nullable(date())),
            ("tier", nullable(string())),
        ],
        &["external_id"],
    );
    let run = obj(
        &[
            ("id", integer()),
            ("journey_id", string()),
            ("member_id", integer()),
            ("entry_key", string()),
            ("entered_at", instant()),
            ("state", string()),
            ("exit_reason", nullable(string())),
            ("ended_at", nullable(instant())),
        ],
        &["id", "journey_id", "state"],
    );
    json!({
        "Error": obj(&[("error", obj(&[("message", string()), ("field", nullable(string()))], &["message"]))], &["error"]),
        "ItemError": item_error,
        "UpsertResult": obj(
            &[("inserted", integer()), ("updated", integer()), ("unchanged", integer()), ("errors", array(r("ItemError")))],
            &["inserted", "updated", "unchanged", "errors"],
        ),
        "EventsResult": obj(
            &[("recorded", integer()), ("duplicate", integer()), ("accepted", integer()),
              ("unknown_members", array(string())), ("errors", array(r("ItemError")))],
            &["recorded", "duplicate", "errors"],
        ),
        "Member": member,
        "MemberInput": {"type": "object", "required": ["external_id"], "properties": {
            "external_id": string(), "name": string(), "email": string(), "phone": string(),
            "locale": string(), "time_zone": string(), "birth_date": date(), "member_since": date(),
            "tier": string(), "attributes": any_object(), "consent": any_object()}},
        "EventInput": {"type": "object", "required": ["member", "kind"], "properties": {
            "event_id": string(), "member": string(), "kind": string(), "amount": number(),
            "at": instant(), "data": any_object()}},
        "ForecastRow": forecast_row,
        "Report": report,
        "Definition": defined,
        "Applied": obj(&[("definition", nullable(r("Definition"))), ("cancelled", integer()), ("runs_ended", integer())],
            &["cancelled", "runs_ended"]),
        "Consent": consent,
        "AuditEntry": audit_entry,
        "Stats": stats,
        "JourneyRun": run,
        "Message": obj(&[
            ("id", integer()), ("dedupe_key", string()), ("rule_id", string()), ("member_id", integer()),
            ("member", string()), ("occurrence", string()), ("channel", string()), ("state", string()),
            ("reason", nullable(string())), ("attempts", integer()), ("run_at", instant()),
            ("provider", nullable(string())), ("provider_id", nullable(string())), ("instance", nullable(string())),
            ("rendered", json!({"nullable": true})), ("sent_at", nullable(instant())),
            ("experiment", nullable(string())), ("variant", nullable(string())),
        ], &["id", "rule_id", "member", "channel", "state", "run_at"]),
        "HistoryEntry": obj(&[("at", instant()), ("state", string()), ("detail", nullable(string()))], &["at", "state"]),
        "Device": obj(&[("id", integer()), ("platform", string()), ("token", string()), ("registered_at", instant())],
            &["id", "platform", "token"]),
    })
}

/// Every operation, by path and method.
fn operations() -> Vec<(String, &'static str, Op)> {
    let one_or_many = |schema: Value| json!({"oneOf": [schema.clone(), array(schema)]});
    let fixed = vec![
        ("/healthz", "get", Op::new("health", "the process runs").answer(200, Value::Null)),
        (
            "/readyz",
            "get",
            Op::new("health", "the database answers and the daemon is not draining")
                .answer(200, Value::Null)
                .answer(503, Value::Null),
        ),
        (
            "/api/members",
            "post",
            Op::new("members", "upsert one member or a list")
                .body(one_or_many(r("MemberInput")))
                .answer(200, r("UpsertResult"))
                .answer(422, json!({"oneOf": [r("UpsertResult"), r("Error")]}))
                .errors(&[400, 413]),
        ),
        (
            "/api/members/{external_id}",
            "get",
            Op::new("members", "one member").param(path("external_id")).answer(200, r("Member")).errors(&[404]),
        ),
        (
            "/api/members/{external_id}",
            "delete",
            Op::new("rights", "erase a member (personal data removed, history anonymised)")
                .param(path("external_id"))
                .answer(200, any_object())
                .errors(&[404, 409]),
        ),
        (
            "/api/members/{external_id}/export",
            "get",
            Op::new("rights", "everything held about a member")
                .param(path("external_id"))
                .answer(200, any_object())
                .errors(&[404]),
        ),
        (
            "/api/members/{external_id}/consent",
            "get",
            Op::new("consent", "current consent per channel and purpose, and its history")
                .param(path("external_id"))
                .answer(
                    200,
                    obj(
                        &[("member", string()), ("consent", array(r("Consent"))), ("history", array(r("Consent")))],
                        &["member", "consent", "history"],
                    ),
                )
                .errors(&[404]),
        ),
        (
            "/api/members/{external_id}/consent",
            "post",
            Op::new("consent", "grant or revoke consent")
                .param(path("external_id"))
                .param(header("X-Tidings-Actor", "who makes the change"))
                .body(obj(
                    &[
                        ("channel", json!({"type": "string", "enum": ["sms", "email", "push", "webhook"]})),
                        ("purpose", json!({"type": "string", "enum": ["marketing", "service"]})),
                        ("status", json!({"type": "string", "enum": ["granted", "revoked"]})),
                        ("source", string()),
                    ],
                    &["channel", "status"],
                ))
                .answer(200, any_object())
                .errors(&[400, 404, 422]),
        ),
        (
            "/api/members/{external_id}/devices",
            "post",
            Op::new("members", "register a push device or browser subscription")
                .param(path("external_id"))
                .body(any_object())
                .answer(200, any_object())
                .answer(201, any_object())
                .errors(&[400, 404, 422]),
        ),
        (
            "/api/members/{external_id}/devices",
            "delete",
            Op::new("members", "forget a push device")
                .param(path("external_id"))
                .body(any_object())
                .answer(204, Value::Null)
                .errors(&[400, 404, 422]),
        ),
        (
            "/api/members/{external_id}/opt-outs",
            "post",
            Op::new("consent", "opt a member out of a purpose on a channel")
                .param(path("external_id"))
                .body(obj(&[("channel", string()), ("purpose", string())], &["channel"]))
                .answer(200, any_object())
                .errors(&[400, 404, 422]),
        ),
        (
            "/api/events",
            "post",
            Op::new("events", "record one event or a list (idempotent on event_id)")
                .body(one_or_many(r("EventInput")))
                .answer(200, r("EventsResult"))
                .answer(422, json!({"oneOf": [r("EventsResult"), r("Error")]}))
                .errors(&[400, 413]),
        ),
        (
            "/api/messages",
            "get",
            paging(
                Op::new("messages", "messages, newest first, a page at a time")
                    .param(query("rule", string(), "a rule or journey id"))
                    .param(query("member", string(), "a member's external id"))
                    .param(query("state", string(), "scheduled, sent, delivered, failed, skipped…"))
                    .param(query("channel", string(), "sms, email, push or webhook"))
                    .param(query("since", instant(), "run_at at or after"))
                    .param(query("until", instant(), "run_at before")),
            )
            .answer(200, page(r("Message")))
            .errors(&[422]),
        ),
        (
            "/api/messages/{id}",
            "get",
            Op::new("messages", "one message with its history")
                .param(path("id"))
                .answer(200, r("Message"))
                .errors(&[404, 422]),
        ),
        (
            "/api/messages/{id}/retry",
            "post",
            Op::new("messages", "a failed, dead or ambiguous message goes back to scheduled, due now")
                .param(path("id"))
                .answer(200, r("Message"))
                .errors(&[404, 409, 422]),
        ),
        (
            "/api/messages/{id}/cancel",
            "post",
            Op::new("messages", "a scheduled message is skipped as cancelled")
                .param(path("id"))
                .answer(200, r("Message"))
                .errors(&[404, 409, 422]),
        ),
        (
            "/api/members",
            "get",
            paging(
                Op::new("members", "search members")
                    .param(query("q", string(), "a prefix of the external id, name, email or phone"))
                    .param(query("segment", string(), "new, active, high_value, at_risk or lapsed"))
                    .param(query("tier", string(), "a tier"))
                    .param(query("locale", string(), "a locale")),
            )
            .answer(200, page(r("Member")))
            .errors(&[422]),
        ),
        (
            "/api/members/{external_id}/devices",
            "get",
            paging(Op::new("members", "a member's push devices").param(path("external_id")))
                .answer(200, page(r("Device")))
                .errors(&[404, 422]),
        ),
        (
            "/api/messages/send",
            "post",
            Op::new("messages", "a transactional message now, idempotent on idempotency_key")
                .body(obj(
                    &[
                        ("member", string()),
                        ("template", string()),
                        ("channels", array(string())),
                        ("data", any_object()),
                        ("idempotency_key", string()),
                    ],
                    &["member", "template", "idempotency_key"],
                ))
                .answer(200, any_object())
                .answer(202, any_object())
                .errors(&[400, 404, 409, 422]),
        ),
        (
            "/api/messages/{id}/history",
            "get",
            Op::new("messages", "every state change of a message")
                .param(path("id"))
                .answer(200, array(r("HistoryEntry")))
                .errors(&[404, 422]),
        ),
        (
            "/api/forecast",
            "get",
            Op::new("rules", "what would be sent over the next days")
                .param(query("days", integer(), "1 to 366, default 7"))
                .param(query("rule", string(), "one rule or journey"))
                .answer(200, array(r("ForecastRow")))
                .errors(&[404, 422]),
        ),
        (
            "/api/stats",
            "get",
            Op::new("reports", "the dashboard: messages per day, rates, backlog, experiments")
                .param(query("days", integer(), "1 to 92, default 14"))
                .answer(200, r("Stats"))
                .errors(&[422]),
        ),
        (
            "/api/reports/{rule}",
            "get",
            Op::new("reports", "conversions per variant and holdout, with uplift")
                .param(path("rule"))
                .param(query("since", string(), "a date or an instant"))
                .answer(200, r("Report"))
                .errors(&[404, 422]),
        ),
        (
            "/api/audit",
            "get",
            Op::new("audit", "the audit log, newest first")
                .param(query("subject", string(), "e.g. rule:birthday"))
                .param(query("action", string(), "e.g. rule.change"))
                .param(query("before", integer(), "entries with a lower id (paging)"))
                .param(query("limit", integer(), "1 to 1000"))
                .answer(200, obj(&[("entries", array(r("AuditEntry")))], &["entries"]))
                .errors(&[422]),
        ),
        (
            "/api/suppressions",
            "post",
            Op::new("consent", "suppress addresses (bounces, complaints)")
                .body(one_or_many(any_object()))
                .answer(200, obj(&[("suppressed", integer()), ("already", integer())], &["suppressed", "already"]))
                .errors(&[400, 422]),
        ),
        (
            "/api/suppressions",
            "get",
            Op::new("consent", "suppressed addresses, most recent first")
                .param(query("limit", integer(), "1 to 1000"))
                .answer(200, array(any_object()))
                .errors(&[422]),
        ),
        (
            "/api/suppressions/{channel}/{address}",
            "delete",
            Op::new("consent", "lift a suppression")
                .param(path("channel"))
                .param(path("address"))
                .answer(204, Value::Null)
                .errors(&[404, 422]),
        ),
        (
            "/api/journeys/runs",
            "get",
            Op::new("journeys", "journey runs, newest first")
                .param(query("journey", string(), "one journey"))
                .param(query("limit", integer(), "1 to 1000"))
                .answer(200, obj(&[("runs", array(r("JourneyRun")))], &["runs"]))
                .errors(&[422]),
        ),
        (
            "/api/coupons",
            "get",
            Op::new("coupons", "each pool's total and remaining codes")
                .answer(200, obj(&[("pools", array(any_object()))], &["pools"])),
        ),
        (
            "/api/coupons/{pool}",
            "post",
            Op::new("coupons", "import codes into a pool")
                .param(path("pool"))
                .body(obj(&[("codes", array(string()))], &["codes"]))
                .answer(200, obj(&[("imported", integer()), ("duplicate", integer())], &["imported", "duplicate"]))
                .errors(&[400, 422]),
        ),
        (
            "/api/coupons/verify",
            "post",
            Op::new("coupons", "check a signed coupon code")
                .body(obj(&[("code", string())], &["code"]))
                .answer(200, obj(&[("valid", boolean())], &["valid"]))
                .errors(&[400, 404, 422]),
        ),
        (
            "/api/push/vapid-public-key",
            "get",
            Op::new("members", "the Web Push application server key")
                .answer(200, obj(&[("public_key", string())], &["public_key"]))
                .errors(&[404]),
        ),
        (
            "/api/templates",
            "get",
            Op::new("templates", "every template: published version, pending draft, locales, channels")
                .answer(200, any_object()),
        ),
        (
            "/api/templates/{key}",
            "get",
            Op::new("templates", "a template's published version and latest draft")
                .param(path("key"))
                .answer(200, any_object())
                .errors(&[404]),
        ),
        (
            "/api/templates/{key}/versions",
            "get",
            Op::new("templates", "a template's versions, newest first")
                .param(path("key"))
                .param(query("limit", integer(), "1 to 1000"))
                .param(query("before", integer(), "versions below this number"))
                .answer(200, any_object())
                .errors(&[404, 422]),
        ),
        (
            "/api/templates/{key}/versions/{version}",
            "get",
            Op::new("templates", "one version, whole")
                .param(path("key"))
                .param(path("version"))
                .answer(200, any_object())
                .errors(&[404, 422]),
        ),
        (
            "/api/templates/{key}/versions/{version}/publish",
            "post",
            Op::new("templates", "publish a version (409 with its warnings unless acknowledged)")
                .param(path("key"))
                .param(path("version"))
                .body(obj(&[("acknowledge_warnings", boolean())], &[]))
                .answer(200, any_object())
                .answer(409, any_object())
                .errors(&[400, 404, 422]),
        ),
        (
            "/api/templates/{key}/drafts",
            "post",
            Op::new("templates", "a new draft version, checked against the fixture member")
                .param(path("key"))
                .body(obj(&[("variants", any_object()), ("fixture", any_object()), ("note", string())], &["variants"]))
                .answer(201, any_object())
                .errors(&[400, 404, 422]),
        ),
        (
            "/api/templates/{key}/preview",
            "post",
            Op::new(
                "templates",
                "render a draft or a version for a member or the fixture, with SMS counts and warnings",
            )
            .param(path("key"))
            .body(any_object())
            .answer(200, any_object())
            .errors(&[400, 404, 422]),
        ),
        (
            "/api/templates/{key}/rollback",
            "post",
            Op::new("templates", "publish a new version with an earlier one's content")
                .param(path("key"))
                .body(obj(&[("version", integer())], &["version"]))
                .answer(201, any_object())
                .answer(409, any_object())
                .errors(&[400, 404, 422]),
        ),
        (
            "/api/templates/{key}/test-send",
            "post",
            Op::new("templates", "send one rendering to a given phone or address now")
                .param(path("key"))
                .body(obj(
                    &[("channel", string()), ("to", string()), ("version", integer()), ("member", string())],
                    &["channel", "to"],
                ))
                .answer(200, any_object())
                .errors(&[400, 404, 422]),
        ),
        (
            "/api/templates/{key}/diff",
            "get",
            Op::new("templates", "a line diff of two versions, per part")
                .param(path("key"))
                .param(query("from", integer(), "a version"))
                .param(query("to", integer(), "a version"))
                .answer(200, any_object())
                .errors(&[404, 422]),
        ),
        ("/api/openapi.json", "get", Op::new("meta", "this description").answer(200, any_object())),
    ];
    let mut ops: Vec<(String, &'static str, Op)> = fixed.into_iter().map(|(p, m, o)| (p.to_string(), m, o)).collect();
    for (base, tag) in [("/api/rules", "rules"), ("/api/journeys", "journeys")] {
        let list_key = tag;
        let ops_for: Vec<(String, &'static str, Op)> = vec![
            (
                base.to_string(),
                "get",
                Op::new(tag, "every one in force, the file's and the API's")
                    .answer(200, obj(&[(list_key, array(r("Definition")))], &[list_key])),
            ),
            (
                base.to_string(),
                "post",
                Op::new(tag, "create one (checked as the configuration file is)")
                    .param(header("X-Tidings-Actor", "who makes the change"))
                    .body(any_object())
                    .answer(201, r("Applied"))
                    .errors(&[400, 409, 422]),
            ),
        ];
        ops.extend(ops_for);
        let id_path = format!("{base}/{{id}}");
        let sub = |s: &str| format!("{base}/{{id}}/{s}");
        let if_match = header("If-Match", "the ETag as read; refused with 409 when it changed");
        let actor = header("X-Tidings-Actor", "who makes the change");
        ops.push((
            id_path.clone(),
            "get",
            Op::new(tag, "one, with its ETag").param(path("id")).answer(200, r("Definition")).errors(&[404]),
        ));
        ops.push((
            id_path.clone(),
            "put",
            Op::new(tag, "create or replace (overrides the file's of that id)")
                .param(path("id"))
                .param(if_match.clone())
                .param(actor.clone())
                .body(any_object())
                .answer(200, r("Applied"))
                .errors(&[400, 409, 422]),
        ));
        ops.push((
            id_path,
            "delete",
            Op::new(tag, "remove one defined through the API")
                .param(path("id"))
                .param(if_match.clone())
                .param(actor.clone())
                .answer(200, r("Applied"))
                .errors(&[404, 409, 422]),
        ));
        for (s, what) in [("enable", "switch it on"), ("disable", "switch it off; what it had waiting is cancelled")] {
            ops.push((
                sub(s),
                "post",
                Op::new(tag, what)
                    .param(path("id"))
                    .param(if_match.clone())
                    .param(actor.clone())
                    .answer(200, r("Applied"))
                    .errors(&[404, 409, 422]),
            ));
        }
        ops.push((
            sub("history"),
            "get",
            Op::new(tag, "every stored version, newest first")
                .param(path("id"))
                .answer(200, obj(&[("versions", array(any_object()))], &["versions"]))
                .errors(&[404]),
        ));
        ops.push((
            sub("forecast"),
            "get",
            Op::new(tag, "what it would send over the next days, even while disabled")
                .param(path("id"))
                .param(query("days", integer(), "1 to 366, default 7"))
                .answer(200, array(r("ForecastRow")))
                .errors(&[404, 422]),
        ));
    }
    ops
}

/// The whole description.
pub fn document() -> Value {
    let mut paths = Map::new();
    for (p, method, op) in operations() {
        let id = format!("{method}{}", p.replace(['/', '{', '}', '.', '-'], "_"));
        let entry = paths.entry(p).or_insert_with(|| json!({}));
        entry[method] = op.build(id);
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "tidings",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Members, events, rules, journeys, templates and messages of a tidings daemon. \
                Errors are JSON: {\"error\": {\"message\", \"field\"}}.",
        },
        "paths": paths,
        "components": {"schemas": schemas()},
    })
}

/// The paths described (for the test that every route is).
pub fn paths() -> Vec<String> {
    let mut out: Vec<String> = operations().into_iter().map(|(p, _, _)| p).collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_api_route_is_described_and_nothing_else() {
        let described = paths();
        let mut routes: Vec<String> = crate::http::auth::ROUTES
            .iter()
            .map(|(_, p, _)| p.to_string())
            .filter(|p| p.starts_with("/api/") || *p == "/healthz" || *p == "/readyz")
            .collect();
        routes.sort();
        routes.dedup();
        assert_eq!(described, routes);
        let doc = document();
        for (method, p, _) in crate::http::auth::ROUTES.iter().filter(|(_, p, _)| routes.contains(&p.to_string())) {
            let m = method.to_lowercase();
            assert!(doc["paths"][*p][&m].is_object(), "{method} {p} is not described");
        }
    }

    #[test]
    fn every_reference_resolves_and_every_operation_has_an_id() {
        let doc = document();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        let text = doc.to_string();
        for part in text.split("#/components/schemas/").skip(1) {
            let name: String = part.chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
            assert!(schemas.contains_key(&name), "unresolved $ref {name}");
        }
        let mut ids = std::collections::HashSet::new();
        for (_, item) in doc["paths"].as_object().unwrap() {
            for (_, op) in item.as_object().unwrap() {
                assert!(ids.insert(op["operationId"].as_str().unwrap().to_string()), "duplicate operationId");
            }
        }
    }
}
