//! Quota windows reset at the tenant's local midnight: the server's clock is
//! moved to just before a boundary, the quota is exhausted, and the clock is
//! moved past it.

use crate::common::*;
use warden::state::model::Limits;

fn at(text: &str) -> u64 {
    text.parse::<jiff::Timestamp>().unwrap().as_millisecond() as u64
}

async fn status_and_remaining(env: &TestEnv, token: &str) -> (u16, String, Option<String>) {
    let response = env.chat(token, "invoice api endpoint", false).await;
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    };
    (
        response.status().as_u16(),
        header("x-ratelimit-remaining-requests").unwrap_or_default(),
        header("retry-after"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daily_requests_reset_at_the_tenants_local_midnight() {
    let limits = Limits {
        requests_per_day: Some(2),
        ..Limits::default()
    };
    let env = TestEnv::start(vec![
        TenantSpec::new("tokyo")
            .in_timezone("Asia/Tokyo")
            .with_limits(limits.clone()),
        TenantSpec::new("london")
            .in_timezone("Europe/London")
            .with_limits(limits),
    ])
    .await;
    let (tokyo, london) = (env.token("tokyo"), env.token("london"));

    // 23:59:50 in Tokyo (14:59:50 UTC), 14:59:50 in London.
    env.app().clock.jump_to(at("2026-11-22T14:59:50Z"));
    for token in [&tokyo, &london] {
        assert_eq!(status_and_remaining(&env, token).await.0, 200);
        assert_eq!(status_and_remaining(&env, token).await.1, "0");
    }
    let (status, remaining, retry_after) = status_and_remaining(&env, &tokyo).await;
    assert_eq!((status, remaining.as_str()), (429, "0"));
    let retry_after: u64 = retry_after.unwrap().parse().unwrap();
    assert!(
        (1..=10).contains(&retry_after),
        "Tokyo's day ends in ~10 s, Retry-After was {retry_after}"
    );
    let (status, _, retry_after) = status_and_remaining(&env, &london).await;
    assert_eq!(status, 429);
    let retry_after: u64 = retry_after.unwrap().parse().unwrap();
    assert!(
        retry_after > 9 * 3600,
        "London's day ends at 00:00 GMT, Retry-After was {retry_after}"
    );

    // Past Tokyo's midnight: Tokyo starts a new day, London does not.
    env.app().clock.jump_to(at("2026-11-22T15:00:05Z"));
    assert_eq!(
        status_and_remaining(&env, &tokyo).await,
        (200, "1".into(), None)
    );
    assert_eq!(status_and_remaining(&env, &london).await.0, 429);

    // Past London's midnight.
    env.app().clock.jump_to(at("2026-11-23T00:00:05Z"));
    assert_eq!(
        status_and_remaining(&env, &london).await,
        (200, "1".into(), None)
    );

    // /v1/me agrees with the headers.
    let me = get_json(&env.http, &format!("{}/v1/me", env.base), &tokyo).await;
    assert_eq!(me["usage"]["requests_today"], 1, "{me}");
    assert_eq!(me["remaining"]["requests_today"], 1, "{me}");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_quotas_refuse_then_reset_by_day_and_by_month() {
    let limits = Limits {
        tokens_per_day: Some(600),
        tokens_per_month: Some(1_000),
        ..Limits::default()
    };
    let env = TestEnv::start(vec![TenantSpec::new("berlin")
        .in_timezone("Europe/Berlin")
        .with_limits(limits)])
    .await;
    let token = env.token("berlin");
    let ask = |max_tokens: u64| {
        let body = serde_json::json!({
            "model": "gpt-4o-mini",
            "max_tokens": max_tokens,
            "messages": [{"role": "user", "content": "invoice api endpoint"}],
        });
        env.post_raw(&token, Some(TASK), body.to_string())
    };

    // 23:59:30 on 30 November in Berlin (CET, UTC+1).
    env.app().clock.jump_to(at("2026-11-30T22:59:30Z"));
    let first = ask(100).await;
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["x-ratelimit-limit-tokens"], "600");
    let used: u64 = 600
        - first.headers()["x-ratelimit-remaining-tokens"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap();
    assert!(used > 0);
    // An estimate beyond what is left today is refused before it is forwarded.
    let refused = ask(590).await;
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("x-ratelimit-reset-tokens"));
    let (_, code, message) = error_of(refused).await;
    assert_eq!(code, "rate_limit_exceeded", "{message}");

    // A new day and a new month (1 December in Berlin): both windows reset.
    env.app().clock.jump_to(at("2026-11-30T23:00:10Z"));
    let next = ask(100).await;
    assert_eq!(next.status(), 200);
    assert_eq!(
        next.headers()["x-ratelimit-remaining-tokens"],
        first.headers()["x-ratelimit-remaining-tokens"]
    );
    let me = get_json(&env.http, &format!("{}/v1/me", env.base), &token).await;
    assert_eq!(
        me["usage"]["tokens_this_month"], me["usage"]["tokens_today"],
        "{me}"
    );
    env.stop().await;
}
