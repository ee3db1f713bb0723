//! The unsubscribe endpoint behind the signed links in `List-Unsubscribe` (see
//! [`crate::track::unsubscribe`]):
//!
//! - `GET /unsubscribe/{token}` shows a small page (zh-CN or en by `Accept-Language`) with a
//!   button that POSTs. It records nothing: mail scanners and link previewers follow links.
//! - `POST /unsubscribe/{token}` records the opt-out and answers 200: RFC 8058 one-click (the
//!   mailbox provider POSTs `List-Unsubscribe=One-Click`) or the page's button.
//!
//! A bad or tampered token answers 400 with a page saying so, never 500. The handlers are
//! generic over [`OptOut`], so they need nothing but somewhere to record the opt-out;
//! [`router`] mounts both.

use std::future::Future;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use jiff::Timestamp;

use crate::channels::{ChannelKind, Purpose};
use crate::clock::SharedClock;
use crate::track::unsubscribe::{LinkSecret, Unsubscribe, verify};

/// The `source` recorded for an RFC 8058 one-click POST from a mailbox provider.
pub const SOURCE_ONE_CLICK: &str = "one-click";
/// The `source` recorded for the button on the unsubscribe page.
pub const SOURCE_PAGE: &str = "unsubscribe-page";

/// Where opt-outs are recorded: the store (`Store::opt_out`), or a recorder in tests.
pub trait OptOut: Clone + Send + Sync + 'static {
    type Error: std::fmt::Display + Send;

    /// Stops `purpose` messages to the member with this external id on `channel`. `Ok(true)` if
    /// the member exists. Doing it twice is harmless.
    fn opt_out(
        &self,
        member: &str,
        channel: ChannelKind,
        purpose: Purpose,
        source: &str,
        now: Timestamp,
    ) -> impl Future<Output = Result<bool, Self::Error>> + Send;
}

/// What the handlers share.
#[derive(Clone)]
pub struct UnsubscribeState<O> {
    /// The key the links were signed with (`smtp.link_secret`).
    pub secret: LinkSecret,
    pub store: O,
    pub clock: SharedClock,
}

/// `GET` and `POST /unsubscribe/{token}`.
pub fn router<O: OptOut, S>(state: UnsubscribeState<O>) -> Router<S> {
    Router::new().route("/unsubscribe/{token}", get(page::<O>).post(unsubscribe::<O>)).with_state(state)
}

/// `GET /unsubscribe/{token}`: the confirmation page. Records nothing.
pub async fn page<O: OptOut>(
    State(state): State<UnsubscribeState<O>>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Response {
    let lang = Lang::from_headers(&headers);
    match verify(&state.secret, &token) {
        Ok(request) => html(StatusCode::OK, lang, lang.confirm_title(), &lang.confirm_body(&request)),
        Err(e) => invalid(lang, &e),
    }
}

/// `POST /unsubscribe/{token}`: records the opt-out. Any POST to a valid link counts, whatever
/// its body: RFC 8058 allows the one-click body as `application/x-www-form-urlencoded` or
/// `multipart/form-data`, and only the source recorded depends on it.
pub async fn unsubscribe<O: OptOut>(
    State(state): State<UnsubscribeState<O>>,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let lang = Lang::from_headers(&headers);
    let request = match verify(&state.secret, &token) {
        Ok(request) => request,
        Err(e) => return invalid(lang, &e),
    };
    let source = if is_one_click(&headers, &body) { SOURCE_ONE_CLICK } else { SOURCE_PAGE };
    let now = state.clock.now();
    match state.store.opt_out(&request.member, request.channel, request.purpose, source, now).await {
        Ok(known) => {
            // An unknown member (erased since) is told the same: there is nothing left to send.
            tracing::info!(
                member.id = %request.member, channel = %request.channel, purpose = request.purpose.as_str(),
                source, known, "unsubscribed"
            );
            html(StatusCode::OK, lang, lang.done_title(), &lang.done_body(&request))
        }
        Err(e) => {
            tracing::error!(error = %e, member.id = %request.member, "recording an unsubscribe failed");
            html(StatusCode::SERVICE_UNAVAILABLE, lang, lang.error_title(), lang.unavailable_body())
        }
    }
}

fn invalid(lang: Lang, e: &crate::track::unsubscribe::TokenError) -> Response {
    tracing::info!(error = %e, "unsubscribe link refused");
    html(StatusCode::BAD_REQUEST, lang, lang.error_title(), lang.invalid_body())
}

/// The RFC 8058 body, `List-Unsubscribe=One-Click`, in either encoding it allows.
fn is_one_click(headers: &HeaderMap, body: &[u8]) -> bool {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let body = String::from_utf8_lossy(body);
    if content_type.to_ascii_lowercase().starts_with("multipart/form-data") {
        return body.contains("name=\"List-Unsubscribe\"") && body.contains("One-Click");
    }
    body.trim().split('&').any(|pair| pair == "List-Unsubscribe=One-Click")
}

/// A page: escaped title, trusted body markup (ours), and headers that keep it out of caches,
/// search engines and Referer headers (the URL holds the token).
fn html(status: StatusCode, lang: Lang, title: &str, body: &str) -> Response {
    let page = format!(
        "<!doctype html>\n<html lang=\"{tag}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"robots\" content=\"noindex\"><title>{title}</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;line-height:1.5}}\
         button{{font-size:1rem;padding:.6rem 1.4rem;cursor:pointer}}</style></head>\
         <body><h1>{title}</h1>\n{body}\n</body></html>\n",
        tag = lang.tag(),
    );
    let mut response = (status, page).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(header::CONTENT_LANGUAGE, HeaderValue::from_static(lang.tag()));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::VARY, HeaderValue::from_static("Accept-Language"));
    headers.insert("x-robots-tag", HeaderValue::from_static("noindex"));
    response
}

/// The languages the pages come in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lang {
    En,
    ZhCn,
}

impl Lang {
    /// The supported language the reader prefers most (by `q`), English when none is asked for.
    fn from_headers(headers: &HeaderMap) -> Lang {
        let accept = headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()).unwrap_or_default();
        Lang::from_accept_language(accept)
    }

    fn from_accept_language(accept: &str) -> Lang {
        let mut best: Option<(f32, Lang)> = None;
        for item in accept.split(',') {
            let mut parts = item.split(';');
            let range = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            let lang = match range.split('-').next() {
                Some("zh") => Lang::ZhCn,
                Some("en") => Lang::En,
                _ => continue,
            };
            // The first of equal weights wins, as the header lists them in order of preference.
            if q > 0.0 && best.is_none_or(|(b, _)| q > b) {
                best = Some((q, lang));
            }
        }
        best.map_or(Lang::En, |(_, lang)| lang)
    }

    fn tag(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::ZhCn => "zh-CN",
        }
    }

    fn what(self, request: &Unsubscribe) -> String {
        let channel = match (self, request.channel) {
            (Lang::En, ChannelKind::Email) => "email",
            (Lang::En, ChannelKind::Sms) => "text messages",
            (Lang::En, ChannelKind::Push) => "notifications",
            (Lang::En, ChannelKind::Webhook) => "messages",
            (Lang::ZhCn, ChannelKind::Email) => "邮件",
            (Lang::ZhCn, ChannelKind::Sms) => "短信",
            (Lang::ZhCn, ChannelKind::Push) => "推送通知",
            (Lang::ZhCn, ChannelKind::Webhook) => "消息",
        };
        match (self, request.purpose) {
            (Lang::En, Purpose::Marketing) => format!("marketing {channel}"),
            (Lang::En, Purpose::Service) => format!("service {channel}"),
            (Lang::ZhCn, Purpose::Marketing) => format!("营销{channel}"),
            (Lang::ZhCn, Purpose::Service) => format!("服务{channel}"),
        }
    }

    fn confirm_title(self) -> &'static str {
        match self {
            Lang::En => "Unsubscribe",
            Lang::ZhCn => "退订",
        }
    }

    fn confirm_body(self, request: &Unsubscribe) -> String {
        let what = self.what(request);
        let (question, button) = match self {
            Lang::En => (format!("Stop receiving {what} from us?"), "Unsubscribe"),
            Lang::ZhCn => (format!("不再接收我们的{what}？"), "确认退订"),
        };
        format!(
            "<p>{question}</p>\n<form method=\"post\"><button type=\"submit\" name=\"confirm\" value=\"1\">{button}</button></form>"
        )
    }

    fn done_title(self) -> &'static str {
        match self {
            Lang::En => "You are unsubscribed",
            Lang::ZhCn => "退订成功",
        }
    }

    fn done_body(self, request: &Unsubscribe) -> String {
        let what = self.what(request);
        match self {
            Lang::En => format!("<p>You will no longer receive {what} from us.</p>"),
            Lang::ZhCn => format!("<p>您将不再收到我们的{what}。</p>"),
        }
    }

    fn error_title(self) -> &'static str {
        match self {
            Lang::En => "Unsubscribe",
            Lang::ZhCn => "退订",
        }
    }

    fn invalid_body(self) -> &'static str {
        match self {
            Lang::En => {
                "<p>This unsubscribe link is not valid: it may have been cut short or changed. \
                 Please use the link in the message you received.</p>"
            }
            Lang::ZhCn => "<p>退订链接无效，可能不完整或已被修改。请使用您收到的消息中的链接。</p>",
        }
    }

    fn unavailable_body(self) -> &'static str {
        match self {
            Lang::En => "<p>We could not record your request just now. Please try again in a few minutes.</p>",
            Lang::ZhCn => "<p>暂时无法处理您的请求，请几分钟后再试。</p>",
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;
    use crate::clock::ManualClock;
    use crate::config::Secret;
    use crate::track::unsubscribe::sign;

    type Recorded = (String, ChannelKind, Purpose, String, Timestamp);

    /// Records opt-outs in memory; fails every call when `broken`.
    #[derive(Clone, Default)]
    struct Recorder {
        calls: Arc<Mutex<Vec<Recorded>>>,
        broken: bool,
    }

    impl OptOut for Recorder {
        type Error = String;

        async fn opt_out(
            &self,
            member: &str,
            channel: ChannelKind,
            purpose: Purpose,
            source: &str,
            now: Timestamp,
        ) -> Result<bool, String> {
            if self.broken {
                return Err("database is away".to_owned());
            }
            self.calls.lock().unwrap().push((member.to_owned(), channel, purpose, source.to_owned(), now));
            Ok(true)
        }
    }

    fn secret() -> LinkSecret {
        LinkSecret::new(&Secret::new("0123456789abcdef0123456789abcdef"), "smtp.link_secret").unwrap()
    }

    const NOW: &str = "2026-11-24T01:30:00Z";

    fn app(recorder: &Recorder) -> Router {
        let clock = Arc::new(ManualClock::new(NOW.parse().unwrap()));
        router(UnsubscribeState { secret: secret(), store: recorder.clone(), clock })
    }

    /// Status, Content-Language and body of one request.
    async fn call(app: Router, request: Request<Body>) -> (StatusCode, String, String) {
        let response = app.oneshot(request).await.unwrap();
        let status = response.status();
        let lang = response.headers()[header::CONTENT_LANGUAGE].to_str().unwrap().to_owned();
        assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, lang, String::from_utf8(body.to_vec()).unwrap())
    }

    fn token() -> String {
        sign(&secret(), "m-1", ChannelKind::Email, Purpose::Marketing)
    }

    fn get(token: &str, accept_language: &str) -> Request<Body> {
        Request::get(format!("/unsubscribe/{token}"))
            .header(header::ACCEPT_LANGUAGE, accept_language)
            .body(Body::empty())
            .unwrap()
    }

    fn post(token: &str, content_type: &str, body: &str) -> Request<Body> {
        Request::post(format!("/unsubscribe/{token}"))
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body.to_owned()))
            .unwrap()
    }

    const FORM: &str = "application/x-www-form-urlencoded";

    #[tokio::test]
    async fn get_shows_a_confirmation_and_records_nothing() {
        let recorder = Recorder::default();
        let (status, lang, body) = call(app(&recorder), get(&token(), "en-GB,en;q=0.9")).await;
        assert_eq!((status, lang.as_str()), (StatusCode::OK, "en"));
        assert!(body.contains("Stop receiving marketing email from us?"), "{body}");
        assert!(body.contains("<form method=\"post\">"), "{body}");
        assert!(!body.contains("m-1"), "the page shows who the link is for: {body}");

        let (status, lang, body) = call(app(&recorder), get(&token(), "zh-CN,zh;q=0.9,en;q=0.8")).await;
        assert_eq!((status, lang.as_str()), (StatusCode::OK, "zh-CN"));
        assert!(body.contains("不再接收我们的营销邮件？"), "{body}");
        assert!(recorder.calls.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn one_click_post_records_the_opt_out() {
        let recorder = Recorder::default();
        let (status, _, body) = call(app(&recorder), post(&token(), FORM, "List-Unsubscribe=One-Click")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let want = ("m-1".to_owned(), ChannelKind::Email, Purpose::Marketing, SOURCE_ONE_CLICK.to_owned());
        let calls = recorder.calls.lock().unwrap().clone();
        assert_eq!(calls.len(), 1);
        let (member, channel, purpose, source, now) = calls[0].clone();
        assert_eq!((member, channel, purpose, source), want);
        assert_eq!(now, NOW.parse::<Timestamp>().unwrap());
    }

    #[tokio::test]
    async fn one_click_as_multipart_and_the_page_button_both_record() {
        let recorder = Recorder::default();
        let multipart =
            "--b\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\nOne-Click\r\n--b--\r\n";
        let (status, _, _) = call(app(&recorder), post(&token(), "multipart/form-data; boundary=b", multipart)).await;
        assert_eq!(status, StatusCode::OK);
        let (status, _, body) = call(app(&recorder), post(&token(), FORM, "confirm=1")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("You will no longer receive marketing email from us."), "{body}");
        let sources: Vec<String> = recorder.calls.lock().unwrap().iter().map(|c| c.3.clone()).collect();
        assert_eq!(sources, [SOURCE_ONE_CLICK, SOURCE_PAGE]);
    }

    #[tokio::test]
    async fn a_tampered_or_foreign_token_is_a_400_and_records_nothing() {
        let recorder = Recorder::default();
        let good = token();
        let mut tampered = good.clone().into_bytes();
        let last = tampered.len() - 1;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        let foreign = sign(
            &LinkSecret::new(&Secret::new("someone else's secret, 32 bytes+"), "k").unwrap(),
            "m-1",
            ChannelKind::Email,
            Purpose::Marketing,
        );
        for token in [tampered.as_str(), foreign.as_str(), "garbage", "%E4%BD%A0"] {
            let (status, _, body) = call(app(&recorder), post(token, FORM, "List-Unsubscribe=One-Click")).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{token}");
            assert!(body.contains("not valid"), "{body}");
            let (status, lang, body) = call(app(&recorder), get(token, "zh")).await;
            assert_eq!((status, lang.as_str()), (StatusCode::BAD_REQUEST, "zh-CN"));
            assert!(body.contains("退订链接无效"), "{body}");
        }
        assert!(recorder.calls.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_store_failure_is_a_503_asking_to_retry() {
        let recorder = Recorder { broken: true, ..Recorder::default() };
        let (status, _, body) = call(app(&recorder), post(&token(), FORM, "List-Unsubscribe=One-Click")).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("try again") && !body.contains("database"), "{body}");
    }

    #[test]
    fn accept_language_picks_the_preferred_supported_language() {
        fn check(header: &str, expected: Lang) {
            assert_eq!(Lang::from_accept_language(header), expected, "{header:?}");
        }
        check("", Lang::En);
        check("zh-CN", Lang::ZhCn);
        check("zh-TW,zh;q=0.9", Lang::ZhCn);
        check("en-US,en;q=0.9,zh-CN;q=0.8", Lang::En);
        check("fr-FR,fr;q=0.9,zh-CN;q=0.8,en;q=0.7", Lang::ZhCn);
        check("en;q=0.5, ZH-cn;q=0.8", Lang::ZhCn);
        check("zh;q=0, en", Lang::En);
        check("de-DE", Lang::En);
        check("*", Lang::En);
    }

    #[test]
    fn one_click_bodies_are_recognised() {
        let form = HeaderMap::from_iter([(header::CONTENT_TYPE, HeaderValue::from_static(FORM))]);
        assert!(is_one_click(&form, b"List-Unsubscribe=One-Click"));
        assert!(is_one_click(&form, b"x=1&List-Unsubscribe=One-Click\r\n"));
        assert!(!is_one_click(&form, b"confirm=1"));
        assert!(!is_one_click(&HeaderMap::new(), b""));
    }
}
