//! Protocol-checking peers and the test app harness.

/// Instantiates each named test body (an `async fn name(backend: Backend)` in the calling
/// module) on both backends, as `sqlite::name` and `postgres::name`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::support::app::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::support::app::Backend::Postgres).await
                }
            )*
        }
    };
}

pub mod aliyun;
pub mod apns;
pub mod app;
pub mod fcm;
pub mod http_sms;
pub mod jwt;
pub mod smtp;
pub mod tencent;
pub mod twilio;
pub mod webpush;

/// Copies a directory tree (the repository's templates, into a test's own directory).
pub fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
