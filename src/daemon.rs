//! `tidings serve`: the daemon's life. Periodic jobs (the evaluation tick, housekeeping) run on
//! tokio-cron-scheduler in UTC; a dispatch worker sends what is due; HTTP serves health and the
//! API. SIGTERM drains in-flight sends within the grace period; SIGHUP reloads templates
//! atomically. Under systemd it reports readiness and pets the watchdog.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use tokio_cron_scheduler::{Job, JobScheduler};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::app::App;
use crate::dispatch::{Dispatcher, Step};
use crate::http::{self, Http};

/// Runs until `shutdown` is cancelled, then drains.
pub async fn serve(app: App, shutdown: CancellationToken) -> anyhow::Result<()> {
    let ready = Arc::new(AtomicBool::new(false));
    tracing::info!(instance = %app.instance_id, database = %app.settings().raw.database.url,
        channels = %app.channels.describe(),
        rules = app.settings().rules.len(), "starting");

    // HTTP first, so a bad address fails start-up before anything else runs. It stays up through
    // the drain (answering 503 on /readyz) and stops last.
    let http_stop = CancellationToken::new();
    let http_task = if app.settings().raw.http.enabled {
        let addr = &app.settings().raw.http.addr;
        let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("http.addr {addr}"))?;
        tracing::info!(addr = %listener.local_addr()?, "http listening");
        let router = http::app(Http { app: app.clone(), ready: ready.clone() });
        let stop = http_stop.clone();
        Some(tokio::spawn(
            async move { axum::serve(listener, router).with_graceful_shutdown(stop.cancelled_owned()).await },
        ))
    } else {
        None
    };

    let scheduler = JobScheduler::new().await.context("scheduler")?;
    let guard = TickGuard::default();
    let tick_app = app.clone();
    let tick_guard = guard.clone();
    scheduler
        .add(Job::new_async(app.settings().raw.evaluation.tick.as_str(), move |_, _| {
            let app = tick_app.clone();
            let guard = tick_guard.clone();
            Box::pin(async move { run_tick(&app, &guard).await })
        })?)
        .await?;
    let hk_app = app.clone();
    scheduler
        .add(Job::new_async("30 */5 * * * *", move |_, _| {
            let app = hk_app.clone();
            Box::pin(async move { housekeeping(&app).await })
        })?)
        .await?;
    if app.settings().raw.model.enabled {
        let model_app = app.clone();
        scheduler
            .add(Job::new_async(app.settings().raw.model.refresh.as_str(), move |_, _| {
                let app = model_app.clone();
                Box::pin(async move { refresh_value(&app).await })
            })?)
            .await?;
    }
    scheduler.start().await.context("starting the scheduler")?;
    // Catch up at once rather than waiting for the first tick; after READY, so a long catch-up
    // does not count against systemd's start timeout.
    let catch_up_app = app.clone();
    tokio::spawn(async move { run_tick(&catch_up_app, &guard).await });

    let alive = Arc::new(AtomicBool::new(true));
    let mut dispatcher = app.dispatcher();
    dispatcher.stop = shutdown.clone();
    let mut worker = tokio::spawn({
        let alive = Alive(alive.clone());
        let (wake, poll, stop) = (app.wake.clone(), app.settings().poll, shutdown.clone());
        async move {
            let _alive = alive;
            work(dispatcher, wake, poll, stop).await
        }
    });
    // Several instances on PostgreSQL: wake this worker when any of them schedules messages.
    let listener = app.store.listen_due(app.wake.clone(), shutdown.clone());
    let reloader = tokio::spawn(reload_on_sighup(app.clone(), shutdown.clone()));
    let watchdog = tokio::spawn(watchdog(alive, shutdown.clone()));

    ready.store(true, Ordering::SeqCst);
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    tracing::info!("ready");

    shutdown.cancelled().await;
    ready.store(false, Ordering::SeqCst);
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    let grace = app.settings().grace.unsigned_abs();
    tracing::info!(grace = ?grace, "shutting down: draining in-flight sends");
    let mut scheduler = scheduler;
    let _ = scheduler.shutdown().await;
    match tokio::time::timeout(grace, &mut worker).await {
        Ok(_) => tracing::info!("dispatch drained"),
        Err(_) => {
            tracing::warn!("grace period over with sends in flight; they will be reported ambiguous");
            worker.abort();
            let _ = worker.await;
        }
    }
    reloader.abort();
    watchdog.abort();
    if let Some(listener) = listener {
        listener.abort();
    }
    http_stop.cancel();
    if let Some(task) = http_task {
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }
    for provider in app.channels.providers() {
        if let crate::channels::Provider::Smtp(smtp) = provider {
            smtp.close().await;
        }
    }
    app.store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Marks the dispatch worker dead when its task ends for any reason, a panic included, so the
/// watchdog stops and systemd restarts a daemon that no longer sends.
struct Alive(Arc<AtomicBool>);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// Keeps ticks from overlapping: a tick that finds the previous one still running is skipped.
#[derive(Clone, Default)]
struct TickGuard(Arc<tokio::sync::Mutex<()>>);

async fn run_tick(app: &App, guard: &TickGuard) {
    let Ok(_held) = guard.0.try_lock() else {
        tracing::warn!("previous tick still running; skipping this one");
        return;
    };
    let span = tracing::info_span!("tick", now = %app.now(), instance = %app.instance_id);
    let started = std::time::Instant::now();
    match app.tick().instrument(span.clone()).await {
        Ok(r) => tracing::info!(parent: &span,
            members = r.members,
            planned = r.planned,
            enqueued = r.enqueued,
            skipped = r.skipped,
            took_ms = started.elapsed().as_millis() as u64,
            "tick"
        ),
        Err(e) => tracing::error!(parent: &span, error = %format!("{e:#}"), "tick failed"),
    }
    release_freed_memory();
}

/// Hands back to the system the memory a tick freed: glibc's allocator keeps freed pages for
/// reuse, so a large catch-up tick would leave the daemon's resident memory at its peak. Once a
/// tick (a minute by default); trimming takes well under a millisecond.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap memory to the kernel; it touches no live
    // allocation and is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The nightly value refresh. Instances sharing a PostgreSQL database all fire it: the first
/// takes the evaluator lock and refreshes; the others find it held (they wait for a tick to
/// finish, not for a refresh) or find the refresh just done, and stand down.
async fn refresh_value(app: &App) {
    for _ in 0..150 {
        let recent = app.store.models(crate::members::refresh::BGNBD, false, 1).await.ok().and_then(|m| {
            m.into_iter().next().filter(|m| app.now().duration_since(m.fitted_at) < jiff::SignedDuration::from_hours(1))
        });
        if recent.is_some() {
            tracing::info!("member value refreshed by another instance within the hour; skipped");
            return;
        }
        match app.refresh_value().await {
            Ok(Some(_)) => return,
            Ok(None) => tokio::time::sleep(std::time::Duration::from_secs(2)).await,
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "member value refresh failed");
                return;
            }
        }
    }
    tracing::warn!("member value refresh skipped: the evaluator lock stayed busy for five minutes");
}

async fn housekeeping(app: &App) {
    match app.store.settle(app.now()).await {
        Ok(()) => {}
        Err(e) => tracing::error!(error = %e, "housekeeping failed"),
    }
    // Ambiguous messages on channels the operator chose to retry (a worker killed mid-send).
    for &channel in &app.settings().retry_ambiguous {
        let filter = crate::store::MessageFilter {
            state: Some(crate::store::State::Ambiguous),
            channel: Some(channel),
            ..Default::default()
        };
        match app.store.retry_messages(&filter, app.now(), "retried by dispatch.retry_ambiguous").await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(n, %channel, "ambiguous messages sent again (dispatch.retry_ambiguous)"),
            Err(e) => tracing::error!(error = %e, "retrying ambiguous messages failed"),
        }
    }
    if let Ok(counts) = app.store.count_by_state().await {
        tracing::info!(?counts, "messages by state");
    }
}

/// The dispatch worker: one step at a time; when idle, waits for the next due message, a wake-up
/// from the evaluator, or the poll interval, whichever is first. Stops between steps on shutdown.
pub async fn work(
    d: Dispatcher,
    wake: Arc<tokio::sync::Notify>,
    poll: jiff::SignedDuration,
    shutdown: CancellationToken,
) {
    let poll = poll.unsigned_abs().max(Duration::from_millis(10));
    while !shutdown.is_cancelled() {
        let wait = match d.step().await {
            Ok(Step::Worked(_)) => continue,
            Ok(Step::Idle) => match d.next_due().await {
                Ok(Some(due)) => d.clock.now().duration_until(due).unsigned_abs().min(poll),
                _ => poll,
            },
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "dispatch step failed");
                poll
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

async fn reload_on_sighup(app: App, shutdown: CancellationToken) {
    let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else { return };
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            got = hup.recv() => if got.is_none() { return },
        }
        // systemd 253 and later want the reload's start time with RELOADING=1 (Type=notify-reload
        // fails the reload without it); older ones ignore it.
        match sd_notify::NotifyState::monotonic_usec_now() {
            Ok(now) => drop(sd_notify::notify(&[sd_notify::NotifyState::Reloading, now])),
            Err(_) => drop(sd_notify::notify(&[sd_notify::NotifyState::Reloading])),
        }
        match app.reload_templates().await {
            Ok(()) => {
                tracing::info!("templates reloaded");
                if let Err(e) = app.audit_config().await {
                    tracing::error!(error = %e, "could not record the template changes in the audit log");
                }
            }
            Err(e) => tracing::error!(error = %e, "template reload failed; keeping the previous set"),
        }
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    }
}

async fn watchdog(alive: Arc<AtomicBool>, shutdown: CancellationToken) {
    let Some(timeout) = sd_notify::watchdog_enabled() else { return };
    let every = timeout / 2;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {
                if !alive.load(Ordering::SeqCst) {
                    tracing::error!("the dispatch worker stopped; no longer petting the watchdog");
                    return;
                }
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
            }
        }
    }
}

/// Cancels `token` on SIGTERM or SIGINT.
pub fn cancel_on_signals(token: CancellationToken) {
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM"),
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT"),
        }
        token.cancel();
    });
}
