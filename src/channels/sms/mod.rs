//! SMS providers: Twilio (any text), Aliyun and Tencent Cloud (approved templates only, see
//! `render::providers`), and a generic HTTP gateway for local carriers. Each answers a send with
//! a [`SendOutcome`](crate::channels::SendOutcome); the Chinese providers also parse the
//! delivery reports they push.

pub mod aliyun;
pub mod http;
pub mod tencent;
pub mod twilio;

/// A time as Chinese providers write it in delivery reports, `2017-02-02 22:23:24`, in Beijing
/// time (UTC+8 all year; China has kept no daylight saving time since 1991).
pub(crate) fn china_time(text: &str) -> Result<jiff::Timestamp, String> {
    let civil = jiff::civil::DateTime::strptime("%Y-%m-%d %H:%M:%S", text.trim())
        .map_err(|_| format!("{text:?} is not a time as YYYY-MM-DD hh:mm:ss"))?;
    jiff::tz::offset(8).to_timestamp(civil).map_err(|e| e.to_string())
}
